from __future__ import annotations

import httpx

from tests.conftest import new_account


async def test_agent_crud(client: httpx.AsyncClient) -> None:
    slug, headers = await new_account(client)
    base = f"/v1/accounts/{slug}/agents"
    created = await client.post(
        base,
        headers=headers,
        json={
            "slug": "support",
            "display_name": "Support",
            "model": "demo",
            "tags": ["faq", "billing"],
            "team": "care",
            "config": {"model_settings": {"max_tokens": 64}},
        },
    )
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["tags"] == ["billing", "faq"]
    assert agent["enabled"] is True

    fetched = await client.get(f"{base}/support", headers=headers)
    assert fetched.json() == agent

    patched = await client.patch(
        f"{base}/support", headers=headers, json={"enabled": False, "tags": ["faq"], "team": None}
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["enabled"], body["tags"], body["team"]) == (False, ["faq"], None)
    assert body["display_name"] == "Support"  # untouched fields stay

    assert (await client.delete(f"{base}/support", headers=headers)).status_code == 204
    gone = await client.get(f"{base}/support", headers=headers)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "AGENT_NOT_FOUND"
    assert (await client.delete(f"{base}/support", headers=headers)).status_code == 404


async def test_list_filters_and_paginates(client: httpx.AsyncClient) -> None:
    slug, headers = await new_account(client)
    base = f"/v1/accounts/{slug}/agents"
    for i in range(7):
        response = await client.post(
            base,
            headers=headers,
            json={
                "slug": f"agent-{i}",
                "tags": ["even"] if i % 2 == 0 else ["odd"],
                "team": "a" if i < 3 else "b",
                "enabled": i != 6,
            },
        )
        assert response.status_code == 201

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(base, headers=headers, params=params)).json()
        seen += [a["slug"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"agent-{i}" for i in range(7)]

    async def slugs(**params: object) -> list[str]:
        page = (await client.get(base, headers=headers, params=params)).json()
        return [a["slug"] for a in page["items"]]

    assert await slugs(tag="even") == ["agent-0", "agent-2", "agent-4", "agent-6"]
    assert await slugs(team="a") == ["agent-0", "agent-1", "agent-2"]
    assert await slugs(enabled="false") == ["agent-6"]
    assert await slugs(tag="even", team="b", enabled="true") == ["agent-4"]


async def test_agents_are_invisible_across_accounts(client: httpx.AsyncClient) -> None:
    mine, my_headers = await new_account(client)
    other, other_headers = await new_account(client)
    await client.post(f"/v1/accounts/{other}/agents", headers=other_headers, json={"slug": "bot"})
    # Same slug in my account is allowed: uniqueness is per account.
    same = await client.post(
        f"/v1/accounts/{mine}/agents", headers=my_headers, json={"slug": "bot"}
    )
    assert same.status_code == 201
    for method, path in [
        ("GET", f"/v1/accounts/{other}/agents"),
        ("GET", f"/v1/accounts/{other}/agents/bot"),
        ("PATCH", f"/v1/accounts/{other}/agents/bot"),
        ("DELETE", f"/v1/accounts/{other}/agents/bot"),
        ("GET", f"/v1/accounts/{other}/agents/bot/config"),
    ]:
        response = await client.request(
            method, path, headers=my_headers, json={} if method == "PATCH" else None
        )
        assert response.status_code == 404, (method, path)
    still = await client.get(f"/v1/accounts/{other}/agents/bot", headers=other_headers)
    assert still.status_code == 200


async def test_effective_config_shows_sources(client: httpx.AsyncClient) -> None:
    slug, headers = await new_account(client)
    await client.post(
        f"/v1/accounts/{slug}/agents",
        headers=headers,
        json={
            "slug": "bot",
            "model": "openai:gpt-4o-mini",
            "config": {"model_settings": {"temperature": 0.2}},
        },
    )
    explained = (await client.get(f"/v1/accounts/{slug}/agents/bot/config", headers=headers)).json()
    sources = {row["key"]: row["source"] for row in explained["sources"]}
    assert explained["config"]["model"] == "openai:gpt-4o-mini"
    assert explained["config"]["model_settings"]["temperature"] == 0.2
    assert sources["model"] == "db"
    assert sources["model_settings.temperature"] == "db"
    assert sources["model_settings.max_tokens"] == "default"


async def test_invalid_config_overrides_are_rejected_and_nothing_written(
    client: httpx.AsyncClient,
) -> None:
    slug, headers = await new_account(client)
    base = f"/v1/accounts/{slug}/agents"
    bad = await client.post(
        base,
        headers=headers,
        json={
            "slug": "bot",
            "config": {"model_settings": {"max_tokens": -1}, "nonsense": 1},
        },
    )
    assert bad.status_code == 422
    error = bad.json()["error"]
    assert error["code"] == "INVALID_CONFIG"
    keys = {p["key"] for p in error["details"]["problems"]}
    assert keys == {"model_settings.max_tokens", "nonsense"}
    assert (await client.get(f"{base}/bot", headers=headers)).status_code == 404

    await client.post(base, headers=headers, json={"slug": "bot"})
    patched = await client.patch(
        f"{base}/bot",
        headers=headers,
        json={"enabled": False, "config": {"memory": {"max_messages": 0}}},
    )
    assert patched.status_code == 422
    unchanged = (await client.get(f"{base}/bot", headers=headers)).json()
    assert unchanged["enabled"] is True  # the patch rolled back as a whole
    assert unchanged["config"] == {}
