"""Issue 16, the console at /ui over HTTP, on SQLite and PostgreSQL: the session cookie (signed,
HttpOnly, SameSite=Strict, never the key), CSRF on every form, and the tenant boundary —
generated from the app's console routes, so a new page is covered without editing this file."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from fastapi import FastAPI
from pydantic import SecretStr

from switchboard.settings import Settings
from switchboard.ui.deps import require_operator
from switchboard.ui.session import COOKIE, SessionCodec
from tests.api.test_tenant_boundary import _calls, _table_counts, _victim
from tests.conftest import ADMIN, ADMIN_KEY, make_settings, new_account, serving
from tests.ui.console import console_routes, csrf_of, log_in, visitor

NO_SESSION_NEEDED = {"/ui/login"}


async def _params(app: FastAPI, client: Any) -> tuple[str, str, dict[str, str]]:
    """A victim account with one of everything, its key, and the path parameters of each of its
    resources (a ledger row included)."""
    slug, params = await _victim(app, client)
    key = await client.post(f"/v1/accounts/{slug}/keys", json={}, headers=ADMIN)
    rows = await client.get(f"/v1/accounts/{slug}/llm-requests", headers=ADMIN)
    params["row_id"] = rows.json()["items"][0]["id"]
    return slug, key.json()["key"], params


async def test_every_page_needs_a_session(settings: Settings) -> None:
    async with serving(settings) as (app, client):
        _, _, params = await _params(app, client)
        checked = []
        async with visitor(app) as anonymous:
            for route in console_routes(app):
                if route.path in NO_SESSION_NEEDED:
                    continue
                for method in route.methods:
                    response = await anonymous.request(method, route.path.format(**params))
                    assert response.status_code == 303, (method, route.path, response.text)
                    assert response.headers["location"].startswith("/ui/login"), route.path
                    checked.append(route.path)
        assert len(checked) >= 15, checked


async def test_the_session_cookie_is_signed_httponly_strict_and_never_holds_the_key(
    settings: Settings,
) -> None:
    async with serving(settings) as (app, client):
        slug, headers = await new_account(client)
        key = headers["Authorization"].removeprefix("Bearer ")
        async with visitor(app) as http:
            form = await http.get("/ui/login")
            token = csrf_of(form.text)
            wrong = await http.post("/ui/login", data={"key": "sb_nope", "csrf_token": token})
            assert wrong.status_code == 401
            assert "Invalid or revoked key" in wrong.text
            assert COOKIE not in http.cookies
            forged = await http.post("/ui/login", data={"key": key, "csrf_token": "forged"})
            assert forged.status_code == 403
            assert COOKIE not in http.cookies

            form = await http.get("/ui/login")
            response = await http.post(
                "/ui/login",
                data={"key": key, "csrf_token": csrf_of(form.text), "next": "//evil.example/"},
            )
            assert response.status_code == 303
            assert response.headers["location"] == "/ui/"  # never another site
            cookie = next(
                v for k, v in response.headers.multi_items() if k == "set-cookie" and COOKIE in v
            )
            attributes = {part.strip().lower() for part in cookie.split(";")}
            assert {"httponly", "samesite=strict", "path=/ui"} <= attributes
            value = http.cookies[COOKIE]
            assert key not in value
            assert key[3:] not in value
            page = await http.get(f"/ui/accounts/{slug}")
            assert page.status_code == 200
            tampered = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
            http.cookies.set(COOKIE, tampered, path="/ui")
            assert (await http.get(f"/ui/accounts/{slug}")).status_code == 303


async def test_a_revoked_key_ends_its_console_sessions(settings: Settings) -> None:
    async with serving(settings) as (app, client):
        slug, _ = await new_account(client)
        created = await client.post(f"/v1/accounts/{slug}/keys", json={}, headers=ADMIN)
        async with visitor(app) as http:
            await log_in(http, created.json()["key"])
            assert (await http.get(f"/ui/accounts/{slug}")).status_code == 200
            revoked = await client.delete(
                f"/v1/accounts/{slug}/keys/{created.json()['id']}", headers=ADMIN
            )
            assert revoked.status_code == 204
            after = await http.get(f"/ui/accounts/{slug}")
            assert after.status_code == 303
            assert after.headers["location"].startswith("/ui/login")


def test_rotating_the_admin_key_ends_admin_sessions(tmp_path: Any) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/x.db"
    first = SessionCodec(make_settings(url, console_secret=SecretStr("s" * 32)))
    rotated = SessionCodec(
        make_settings(url, console_secret=SecretStr("s" * 32), admin_key=SecretStr("other-key"))
    )
    cookie, _ = first.issue_admin()
    assert first.read(cookie) is not None
    assert rotated.read(cookie) is None


async def test_every_account_page_keeps_an_account_key_inside_its_account(
    settings: Settings,
) -> None:
    async with serving(settings) as (app, client):
        victim, victim_key, params = await _params(app, client)
        _, attacker_headers = await new_account(client)
        attacker_key = attacker_headers["Authorization"].removeprefix("Bearer ")
        async with visitor(app) as attacker, visitor(app) as owner:
            attacker_csrf = await log_in(attacker, attacker_key)
            owner_csrf = await log_in(owner, victim_key)
            before = await _table_counts(app)
            checked = []
            for route in console_routes(app):
                if "{account}" not in route.path:
                    continue
                path = route.path.format(**params)
                for method in sorted(route.methods):
                    attack = await attacker.request(
                        method, path, headers={"X-CSRF-Token": attacker_csrf}
                    )
                    assert attack.status_code == 404, (method, route.path, attack.text[:300])
                    assert "ACCOUNT_NOT_FOUND" in attack.text
                    # The page says only what the attacker typed is not found.
                    assert params["run_id"] not in attack.text
                    assert params["conversation_id"] not in attack.text
                    if method == "GET":  # the same page is there for its own account
                        own = await owner.get(path)
                        assert own.status_code == 200, (route.path, own.text[:500])
                    checked.append(f"{method} {route.path}")
            after = await _table_counts(app)
            assert after == before
            assert len(checked) >= 12, checked
            # The owner's own POST (cancel of an ended run) works with its token.
            cancel = await owner.post(
                f"/ui/accounts/{victim}/runs/{params['run_id']}/cancel",
                data={"csrf_token": owner_csrf},
            )
            assert cancel.status_code == 303


async def test_the_operator_sees_every_page_of_every_account(settings: Settings) -> None:
    async with serving(settings) as (app, client):
        _, _, params = await _params(app, client)
        async with visitor(app) as operator:
            await log_in(operator, ADMIN_KEY)
            for route in console_routes(app):
                if "GET" not in route.methods or route.path in NO_SESSION_NEEDED:
                    continue
                page = await operator.get(route.path.format(**params))
                assert page.status_code in (200, 303), (route.path, page.text[:500])


async def test_forms_without_the_sessions_csrf_token_are_refused(settings: Settings) -> None:
    async with serving(settings) as (app, client):
        slug, headers = await new_account(client)
        key = headers["Authorization"].removeprefix("Bearer ")
        async with visitor(app) as http:
            csrf = await log_in(http, key)
            for data in ({}, {"csrf_token": "x" * len(csrf)}):
                refused = await http.post("/ui/logout", data=data)
                assert refused.status_code == 403
                assert "CSRF_FAILED" in refused.text
                assert (await http.get(f"/ui/accounts/{slug}")).status_code == 200  # still in
            out = await http.post("/ui/logout", data={"csrf_token": csrf})
            assert out.status_code == 303
            assert (await http.get(f"/ui/accounts/{slug}")).status_code == 303


async def test_operator_pages_need_the_admin_key(settings: Settings) -> None:
    async with serving(settings) as (app, client):
        _, headers = await new_account(client)
        async with visitor(app) as tenant, visitor(app) as operator:
            await log_in(tenant, headers["Authorization"].removeprefix("Bearer "))
            await log_in(operator, ADMIN_KEY)
            # Every console route behind require_operator, found from the app itself.
            paths = [
                r.path
                for r in console_routes(app)
                if require_operator in set(_calls(r.dependant)) and "GET" in r.methods
            ]
            assert "/ui/limits" in paths
            for path in paths:
                page = await tenant.get(path)
                assert page.status_code == 403, path
                assert "ADMIN_REQUIRED" in page.text
                assert (await operator.get(path)).status_code == 200, path
            mine = await tenant.get("/ui/accounts")  # an account key: straight to its own
            assert mine.status_code == 303


async def test_unknown_ids_and_bad_input_are_error_pages_not_500s(settings: Settings) -> None:
    async with serving(settings) as (app, client):
        slug, headers = await new_account(client)
        async with visitor(app) as http:
            await log_in(http, headers["Authorization"].removeprefix("Bearer "))
            cases = {
                f"/ui/accounts/{slug}/runs/{uuid.uuid4()}": (404, "RUN_NOT_FOUND"),
                f"/ui/accounts/{slug}/ledger/{uuid.uuid4()}": (404, "LEDGER_ROW_NOT_FOUND"),
                f"/ui/accounts/{slug}/conversations/{uuid.uuid4()}": (
                    404,
                    "CONVERSATION_NOT_FOUND",
                ),
                f"/ui/accounts/{slug}/agents/nope": (404, "AGENT_NOT_FOUND"),
                f"/ui/accounts/{slug}/directories/nope": (404, "DIRECTORY_NOT_FOUND"),
                f"/ui/accounts/{slug}/runs/not-a-uuid": (422, "VALIDATION_ERROR"),
                f"/ui/accounts/{slug}/ledger?status=bogus": (422, "VALIDATION_ERROR"),
                f"/ui/accounts/{slug}/ledger?since=yesterday": (422, "VALIDATION_ERROR"),
                f"/ui/accounts/{slug}/ledger?cursor=garbage": (400, None),
                "/ui/?days=0": (422, "VALIDATION_ERROR"),
            }
            for path, (status, code) in cases.items():
                page = await http.get(path)
                assert page.status_code == status, (path, page.status_code, page.text[:300])
                assert page.headers["content-type"].startswith("text/html")
                if code:
                    assert code in page.text, (path, page.text[:300])


async def test_the_overview_charts_one_point_per_day_from_the_rollup(settings: Settings) -> None:
    async with serving(settings) as (app, client):
        slug, headers = await new_account(client)
        base = f"/v1/accounts/{slug}"
        assert (await client.post(f"{base}/agents", headers=ADMIN, json={"slug": "bot"})).is_success
        for _ in range(3):
            chat = await client.post(
                f"{base}/agents/bot/chat", headers=headers, json={"message": "hi"}
            )
            assert chat.status_code == 200, chat.text
        ledger = (await client.get(f"{base}/llm-requests", headers=headers)).json()["items"]
        async with visitor(app) as http:
            await log_in(http, headers["Authorization"].removeprefix("Bearer "))
            page = await http.get("/ui/?days=7&stack=model")
            assert page.status_code == 200
            found = re.search(r'id="overview-data">(.*?)</script>', page.text, re.S)
            assert found is not None
            data = json.loads(found.group(1))
            assert len(data["days"]) == 7
            assert sum(sum(s["calls"]) for s in data["series"]) == len(ledger)
            assert all(len(s["calls"]) == 7 for s in data["series"])
            assert data["series"][0]["calls"][-1] == len(ledger)  # today is the last point
