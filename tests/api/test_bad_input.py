"""Table-driven: every kind of bad input gets a 4xx with a stable code and writes nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ADMIN, new_account


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        (
            "POST",
            "/v1/accounts",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "INVALID_JSON",
        ),
        ("POST", "/v1/accounts", {"json": {"slug": 5, "name": "x"}}, 422, "VALIDATION_ERROR"),
        (
            "POST",
            "/v1/accounts",
            {"json": {"slug": "ok", "name": "x", "extra": 1}},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "POST",
            "/v1/accounts",
            {"json": {"slug": "Not A Slug", "name": "x"}},
            422,
            "VALIDATION_ERROR",
        ),
        ("POST", "/v1/accounts", {"json": ["a", "list"]}, 422, "VALIDATION_ERROR"),
        ("POST", "/v1/accounts", {"json": {"name": "missing slug"}}, 422, "VALIDATION_ERROR"),
        (
            "POST",
            "/v1/accounts",
            {"content": b"x" * 2_000_000, "headers": {"content-type": "application/json"}},
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        ("GET", "/v1/nowhere", {}, 404, "NOT_FOUND"),
        ("PUT", "/v1/accounts", {}, 405, "METHOD_NOT_ALLOWED"),
    ],
)
async def test_admin_endpoint_bad_input(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    kwargs: dict[str, object],
    status: int,
    code: str,
) -> None:
    options = dict(kwargs)
    headers = {**ADMIN, **options.pop("headers", {})}  # type: ignore[dict-item]
    response = await client.request(method, path, headers=headers, **options)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["retryable"] is False
    assert error["class"] == "permanent"
    assert error["message"]


async def test_key_id_must_be_a_uuid(client: httpx.AsyncClient) -> None:
    slug, _ = await new_account(client)
    response = await client.delete(f"/v1/accounts/{slug}/keys/not-a-uuid", headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


AGENT_CASES = [
    ("POST", "", {"slug": "bot", "tools": "not-a-list"}, 422, "VALIDATION_ERROR"),
    ("POST", "", {"slug": "bot", "enabled": "maybe"}, 422, "VALIDATION_ERROR"),
    ("POST", "", {"slug": "bot", "unknown_field": 1}, 422, "VALIDATION_ERROR"),
    ("POST", "", {"slug": "x" * 65}, 422, "VALIDATION_ERROR"),
    (
        "POST",
        "",
        {"slug": "bot", "config": {"model_settings": {"max_tokens": "lots"}}},
        422,
        "INVALID_CONFIG",
    ),
    ("PATCH", "/bot", {"display_name": None}, 422, "VALIDATION_ERROR"),
    ("PATCH", "/bot", {"bogus": True}, 422, "VALIDATION_ERROR"),
    ("PATCH", "/missing", {"enabled": False}, 404, "AGENT_NOT_FOUND"),
    ("GET", "/missing", None, 404, "AGENT_NOT_FOUND"),
    ("GET", "/missing/config", None, 404, "AGENT_NOT_FOUND"),
    ("GET", "?limit=0", None, 422, "VALIDATION_ERROR"),
    ("GET", "?limit=abc", None, 422, "VALIDATION_ERROR"),
    ("GET", "?cursor=garbage!!", None, 400, "INVALID_CURSOR"),
    ("GET", "?enabled=sometimes", None, 422, "VALIDATION_ERROR"),
]


@pytest.mark.parametrize(("method", "suffix", "body", "status", "code"), AGENT_CASES)
async def test_agent_endpoint_bad_input(
    client: httpx.AsyncClient, method: str, suffix: str, body: object, status: int, code: str
) -> None:
    slug, headers = await new_account(client)
    base = f"/v1/accounts/{slug}/agents"
    assert (await client.post(base, headers=headers, json={"slug": "bot"})).status_code == 201
    before = (await client.get(base, headers=headers)).json()
    response = await client.request(method, base + suffix, headers=headers, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    after = (await client.get(base, headers=headers)).json()
    assert after == before  # nothing half-written


async def test_openapi_is_served_and_lists_the_routes(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in [
        "/v1/accounts",
        "/v1/accounts/{account}",
        "/v1/accounts/{account}/keys",
        "/v1/accounts/{account}/keys/{key_id}",
        "/v1/accounts/{account}/agents",
        "/v1/accounts/{account}/agents/{agent}",
        "/v1/accounts/{account}/agents/{agent}/config",
        "/healthz",
        "/readyz",
        "/v1/accounts/{account}/agents/{agent}/chat",
        "/v1/accounts/{account}/conversations",
        "/v1/accounts/{account}/conversations/{conversation_id}/messages",
        "/v1/accounts/{account}/llm-requests",
        "/v1/accounts/{account}/usage",
    ]:
        assert path in paths, path
    assert set(paths["/v1/accounts/{account}/agents/{agent}"]) == {"get", "patch", "delete"}
    # error responses are described, with the one error body
    responses = paths["/v1/accounts/{account}/agents"]["post"]["responses"]
    assert responses["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    detail = spec["components"]["schemas"]["ErrorDetail"]["properties"]
    assert {"code", "message", "retryable", "class"} <= set(detail)


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
