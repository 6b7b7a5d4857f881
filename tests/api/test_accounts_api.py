from __future__ import annotations

import httpx

from tests.conftest import ADMIN, new_account, unique


async def test_admin_creates_account_and_duplicate_is_409(client: httpx.AsyncClient) -> None:
    slug = unique("acme")
    created = await client.post("/v1/accounts", json={"slug": slug, "name": "Acme"}, headers=ADMIN)
    assert created.status_code == 201
    assert created.json()["slug"] == slug
    again = await client.post("/v1/accounts", json={"slug": slug, "name": "Other"}, headers=ADMIN)
    assert again.status_code == 409
    assert again.json() == {
        "error": {
            "code": "ACCOUNT_ALREADY_EXISTS",
            "message": f"account '{slug}' already exists",
            "retryable": False,
            "class": "permanent",
        }
    }
    fetched = await client.get(f"/v1/accounts/{slug}", headers=ADMIN)
    assert fetched.json()["name"] == "Acme"


async def test_missing_or_invalid_key_is_401(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/accounts/whatever")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "UNAUTHENTICATED"
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = await client.get("/v1/accounts/whatever", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


async def test_account_key_cannot_do_admin_work(client: httpx.AsyncClient) -> None:
    slug, headers = await new_account(client)
    create = await client.post(
        "/v1/accounts", json={"slug": unique("x"), "name": "x"}, headers=headers
    )
    assert create.status_code == 403
    assert create.json()["error"]["code"] == "ADMIN_REQUIRED"
    keys = await client.post(f"/v1/accounts/{slug}/keys", json={}, headers=headers)
    assert keys.status_code == 403


async def test_key_reaches_only_its_own_account(client: httpx.AsyncClient) -> None:
    mine, headers = await new_account(client)
    other, _ = await new_account(client)
    assert (await client.get(f"/v1/accounts/{mine}", headers=headers)).status_code == 200
    foreign = await client.get(f"/v1/accounts/{other}", headers=headers)
    absent = await client.get(f"/v1/accounts/{unique('none')}", headers=headers)
    # Another account and a missing one look the same: existence does not leak.
    assert foreign.status_code == absent.status_code == 404
    assert foreign.json()["error"]["code"] == absent.json()["error"]["code"] == "ACCOUNT_NOT_FOUND"


async def test_keys_are_shown_once_stored_hashed_and_revocable(client: httpx.AsyncClient) -> None:
    slug, _ = await new_account(client)
    created = await client.post(f"/v1/accounts/{slug}/keys", json={"name": "ci"}, headers=ADMIN)
    body = created.json()
    headers = {"Authorization": f"Bearer {body['key']}"}
    assert (await client.get(f"/v1/accounts/{slug}", headers=headers)).status_code == 200
    page = (await client.get(f"/v1/accounts/{slug}/keys", headers=ADMIN)).json()
    assert page["next_cursor"] is None
    listed = page["items"]
    assert body["key"] not in str(listed)
    assert any(k["id"] == body["id"] and k["revoked_at"] is None for k in listed)
    revoked = await client.delete(f"/v1/accounts/{slug}/keys/{body['id']}", headers=ADMIN)
    assert revoked.status_code == 204
    assert (await client.get(f"/v1/accounts/{slug}", headers=headers)).status_code == 401
    twice = await client.delete(f"/v1/accounts/{slug}/keys/{body['id']}", headers=ADMIN)
    assert twice.status_code == 404
    assert twice.json()["error"]["code"] == "KEY_NOT_FOUND"


async def test_key_of_another_account_cannot_be_revoked_through_mine(
    client: httpx.AsyncClient,
) -> None:
    mine, _ = await new_account(client)
    other, _ = await new_account(client)
    key = (await client.post(f"/v1/accounts/{other}/keys", json={}, headers=ADMIN)).json()
    response = await client.delete(f"/v1/accounts/{mine}/keys/{key['id']}", headers=ADMIN)
    assert response.status_code == 404
    still = {"Authorization": f"Bearer {key['key']}"}
    assert (await client.get(f"/v1/accounts/{other}", headers=still)).status_code == 200
