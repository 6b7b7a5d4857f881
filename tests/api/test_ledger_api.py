from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx

from tests.conftest import new_account


async def _chat(
    client: httpx.AsyncClient, slug: str, agent: str, headers: dict[str, str], message: str = "hi"
) -> dict[str, object]:
    response = await client.post(
        f"/v1/accounts/{slug}/agents/{agent}/chat", headers=headers, json={"message": message}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_ledger_filters_pagination_and_usage(client: httpx.AsyncClient) -> None:
    slug, headers = await new_account(client)
    base = f"/v1/accounts/{slug}"
    await client.post(f"{base}/agents", headers=headers, json={"slug": "a", "tools": ["calculate"]})
    await client.post(f"{base}/agents", headers=headers, json={"slug": "b"})
    first = await _chat(client, slug, "a", headers, "1+1")
    await _chat(client, slug, "a", headers, "2+2")
    await _chat(client, slug, "b", headers)

    ids: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(f"{base}/llm-requests", headers=headers, params=params)).json()
        ids += [row["id"] for row in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(ids) == len(set(ids)) == 5  # 2 + 2 + 1 provider calls

    by_conversation = (
        await client.get(
            f"{base}/llm-requests",
            headers=headers,
            params={"conversation_id": first["conversation_id"]},
        )
    ).json()["items"]
    assert {r["id"] for r in by_conversation} == set(first["llm_request_ids"])  # type: ignore[arg-type]
    by_agent = (
        await client.get(f"{base}/llm-requests", headers=headers, params={"agent": "b"})
    ).json()["items"]
    assert len(by_agent) == 1
    complete = (
        await client.get(f"{base}/llm-requests", headers=headers, params={"status": "complete"})
    ).json()["items"]
    assert len(complete) == 5
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    none = (
        await client.get(f"{base}/llm-requests", headers=headers, params={"since": future})
    ).json()["items"]
    assert none == []

    report = (
        await client.get(f"{base}/usage", headers=headers, params={"group_by": "agent"})
    ).json()
    groups = {g["group"]: g for g in report["groups"]}
    assert (groups["a"]["requests"], groups["b"]["requests"]) == (4, 1)
    assert report["total"]["requests"] == 5
    assert Decimal(report["total"]["cost_usd"]) == sum(
        Decimal(g["cost_usd"]) for g in report["groups"]
    )
    day = (await client.get(f"{base}/usage", headers=headers, params={"group_by": "day"})).json()
    assert [g["group"] for g in day["groups"]] == [datetime.now(UTC).date().isoformat()]
    model = (
        await client.get(f"{base}/usage", headers=headers, params={"group_by": "model"})
    ).json()
    assert [g["group"] for g in model["groups"]] == ["demo"]


async def test_ledger_rejects_bad_queries(client: httpx.AsyncClient) -> None:
    slug, headers = await new_account(client)
    base = f"/v1/accounts/{slug}"
    for path, params, status, code in [
        ("/llm-requests", {"status": "weird"}, 422, "VALIDATION_ERROR"),
        ("/llm-requests", {"since": "yesterday"}, 422, "VALIDATION_ERROR"),
        ("/llm-requests", {"since": "2026-01-01T00:00:00"}, 400, "INVALID_QUERY"),
        ("/llm-requests", {"cursor": "bm9wZQ"}, 400, "INVALID_CURSOR"),
        ("/llm-requests", {"conversation_id": "x"}, 422, "VALIDATION_ERROR"),
        ("/usage", {"group_by": "team"}, 422, "VALIDATION_ERROR"),
    ]:
        response = await client.get(base + path, headers=headers, params=params)
        assert response.status_code == status, (path, params, response.text)
        assert response.json()["error"]["code"] == code


async def test_ledger_is_scoped_to_the_account(client: httpx.AsyncClient) -> None:
    mine, my_headers = await new_account(client)
    other, other_headers = await new_account(client)
    await client.post(f"/v1/accounts/{other}/agents", headers=other_headers, json={"slug": "x"})
    theirs = await _chat(client, other, "x", other_headers)
    rows = (
        await client.get(
            f"/v1/accounts/{mine}/llm-requests",
            headers=my_headers,
            params={"conversation_id": theirs["conversation_id"]},
        )
    ).json()
    assert rows["items"] == []
    assert (await client.get(f"/v1/accounts/{other}/usage", headers=my_headers)).status_code == 404
    usage = (await client.get(f"/v1/accounts/{mine}/usage", headers=my_headers)).json()
    assert usage["total"]["requests"] == 0
    assert usage["total"]["cost_usd"] == "0.000000000"
