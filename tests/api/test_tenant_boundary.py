"""The tenant boundary (rule 12): what an account key can reach, generated from the app itself.

* Every route of the app, called with one account's key on another account's path, answers 404
  (403 where the route is the operator's), and the database does not change.
* Every operator key of the config schema, set by an account key through every tenant-reachable
  way (register, PATCH, PATCH removing it), answers 403 OPERATOR_SETTING and writes nothing.
* Each attack of the tenant-boundary report, as a test.

A new route or config key is covered here without editing this file.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import func, select

from switchboard.api.deps import require_admin, require_metrics_access
from switchboard.config.roles import OPERATOR_KEYS, ROLES, TENANT_KEYS
from switchboard.config.schema import EffectiveConfig
from switchboard.db.base import Base
from switchboard.db.uow import AccountScope, CrossAccount, UnitOfWork
from switchboard.registry.repository import ConfigLayerRepository
from switchboard.settings import Settings
from switchboard.ui.errors import ConsoleRoute
from tests.conftest import ADMIN, new_account, serving

OPERATOR_ONLY = {require_admin, require_metrics_access}

# What a tenant might try for each operator key; keys not listed get their built-in default.
ATTEMPTS: dict[str, Any] = {
    "custom_tools": {"sh": "subprocess:getoutput"},
    "tool_modules": ["os", "subprocess"],
    "providers": {
        "evil": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "SWITCHBOARD_ADMIN_KEY"}
    },
    "prices": {"fake-model": {"input_per_mtok": "0", "output_per_mtok": "0"}},
    "retry": {"attempts": 20},
    "ledger": {"store_bodies": True},
    "budget": {"limit_usd": "1000000", "period": "day"},
    "models": {"allowed": ["*"]},
    "ceilings": {"request_timeout_s": 3600, "tool_timeout_s": 3600},
    "directories": {"x": {"fields": {"name": {"type": "text"}}}},
}
# Valid values a tenant may set for each tenant key; others get their default.
TENANT_VALUES: dict[str, Any] = {
    "model": "demo",
    "system_prompt": "Be brief.",
    "tools": ["calculate"],
    "model_settings": {"max_tokens": 64},
    "memory": {"max_messages": 5},
    "tool_timeout_s": 10,
    "request_timeout_s": 60,
}


def _default(key: str) -> Any:
    return EffectiveConfig().model_dump(mode="json")[key]


def _attempt(key: str) -> Any:
    return ATTEMPTS.get(key, _default(key))


# --- the role table itself ------------------------------------------------------------------


def test_every_config_key_has_a_role_and_the_readme_shows_it() -> None:
    assert set(ROLES) == set(EffectiveConfig.model_fields)
    assert {"custom_tools", "tool_modules", "providers", "prices", "retry", "ledger"} <= set(
        OPERATOR_KEYS
    )
    assert {"budget", "models", "ceilings", "directories"} <= set(OPERATOR_KEYS)
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Who may set what", 1)[1].split("\n#", 1)[0]
    for key, role in ROLES.items():
        assert f"| `{key}` | {role} |" in table, f"README role table lacks {key} ({role})"


# --- every route ----------------------------------------------------------------------------


def _routes(app: FastAPI) -> Iterator[APIRoute]:
    def walk(routes: list[Any]) -> Iterator[Any]:
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI's included routers
                yield from walk(route.original_router.routes)
            else:
                yield route

    # The console's pages (/ui) have their own generated boundary test, with session cookies
    # (tests/ui/test_console.py).
    yield from (
        r for r in walk(app.routes) if isinstance(r, APIRoute) and not isinstance(r, ConsoleRoute)
    )


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def _operator_only(route: APIRoute) -> bool:
    return any(call in OPERATOR_ONLY for call in _calls(route.dependant))


async def _table_counts(app: FastAPI) -> dict[str, int]:
    async def op(u: UnitOfWork) -> dict[str, int]:
        counts = {}
        for table in Base.metadata.sorted_tables:
            statement = select(func.count()).select_from(table)
            counts[table.name] = int((await u.session.execute(statement)).scalar_one())
        return counts

    result: dict[str, int] = await app.state.container.uow.run(
        op, scope=CrossAccount("test: row counts of every table"), write=False
    )
    return result


async def _put_layer(app: FastAPI, slug: str, data: dict[str, Any]) -> None:
    """What an operator's account.yaml would hold, written as ``apply`` writes it."""
    container = app.state.container
    found = await container.tenancy.get_account(slug)

    async def op(u: UnitOfWork) -> None:
        await ConfigLayerRepository(u).put(
            source=f"configs/{slug}/account.yaml", data=data, account_id=found.id
        )

    await container.uow.run(op, scope=AccountScope(found.id, found.slug))


async def _victim(app: FastAPI, client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    """An account with one of everything; the path parameters that reach its resources."""
    slug, headers = await new_account(client)
    await _put_layer(app, slug, {"directories": {"people": {"fields": {"name": {"type": "text"}}}}})
    base = f"/v1/accounts/{slug}"
    assert (await client.post(f"{base}/agents", headers=ADMIN, json={"slug": "bot"})).is_success
    chat = await client.post(f"{base}/agents/bot/chat", headers=headers, json={"message": "hi"})
    assert chat.status_code == 200, chat.text
    entry = await client.put(
        f"{base}/directories/people/entries/e1", headers=ADMIN, json={"data": {"name": "Ann"}}
    )
    assert entry.is_success, entry.text
    keys = await client.get(f"{base}/keys", headers=ADMIN)
    items = keys.json()["items"] if isinstance(keys.json(), dict) else keys.json()
    return slug, {
        "account": slug,
        "agent": "bot",
        "conversation_id": chat.json()["conversation_id"],
        "run_id": chat.json()["run_id"],
        "key_id": items[0]["id"],
        "directory": "people",
        "entry_id": "e1",
    }


async def test_every_route_keeps_an_account_key_inside_its_account(settings: Settings) -> None:
    async with serving(settings) as (app, client):
        victim, params = await _victim(app, client)
        attacker, headers = await new_account(client)
        before = await _table_counts(app)
        checked = []
        for route in _routes(app):
            operator_only = _operator_only(route)
            if "{account}" not in route.path and not operator_only:
                continue  # /healthz, /readyz: nobody's data
            for method in sorted(route.methods):
                path = route.path.format(**params)
                response = await client.request(method, path, headers=headers, json={})
                expected = 403 if operator_only else 404
                assert response.status_code == expected, (method, route.path, response.text)
                code = response.json()["error"]["code"]
                assert code == "ADMIN_REQUIRED" if operator_only else code == "ACCOUNT_NOT_FOUND"
                if operator_only and "{account}" in route.path:  # not even on its own account
                    own = route.path.format(**(params | {"account": attacker}))
                    mine = await client.request(method, own, headers=headers, json={})
                    assert mine.status_code == 403, (method, route.path, mine.text)
                checked.append(f"{method} {route.path}")
        after = await _table_counts(app)
    assert after == before  # nothing written by any of them
    assert len(checked) >= 25, checked  # the app's routes, not a hand-picked few
    assert victim != attacker


# --- every operator key ---------------------------------------------------------------------


@pytest.mark.parametrize("key", OPERATOR_KEYS)
async def test_an_account_key_cannot_set_any_operator_key(settings: Settings, key: str) -> None:
    async with serving(settings) as (app, client):
        slug, headers = await new_account(client)
        base = f"/v1/accounts/{slug}/agents"
        # the operator set the same key on an agent (a valid value, where there is one)
        operator_value = _default(key) if key != "budget" else None
        admin_config = {key: operator_value} if operator_value is not None else {}
        made = await client.post(base, headers=ADMIN, json={"slug": "ops", "config": admin_config})
        assert made.status_code == 201, made.text
        before = await _table_counts(app)
        stored = (await client.get(f"{base}/ops", headers=headers)).json()

        attempts = {
            "register": await client.post(
                base, headers=headers, json={"slug": "mine", "config": {key: _attempt(key)}}
            ),
            "patch": await client.patch(
                f"{base}/ops", headers=headers, json={"config": {key: _attempt(key)}}
            ),
        }
        if admin_config:  # removing what the operator set is changing it too
            attempts["patch-remove"] = await client.patch(
                f"{base}/ops", headers=headers, json={"config": {}}
            )
        after = await _table_counts(app)
        unchanged = (await client.get(f"{base}/ops", headers=headers)).json()
        missing = await client.get(f"{base}/mine", headers=headers)
    for way, response in attempts.items():
        assert response.status_code == 403, (way, response.text)
        error = response.json()["error"]
        assert error["code"] == "OPERATOR_SETTING", way
        assert error["details"]["keys"] == [key], way
    assert after == before
    assert unchanged == stored
    assert missing.status_code == 404


@pytest.mark.parametrize("key", TENANT_KEYS)
async def test_an_account_key_may_set_every_tenant_key(settings: Settings, key: str) -> None:
    value = TENANT_VALUES.get(key, _default(key))
    async with serving(settings) as (_, client):
        slug, headers = await new_account(client)
        base = f"/v1/accounts/{slug}/agents"
        made = await client.post(base, headers=headers, json={"slug": "a", "config": {key: value}})
        patched = await client.patch(f"{base}/a", headers=headers, json={"config": {key: value}})
    assert made.status_code == 201, made.text
    assert patched.status_code == 200, patched.text


async def test_timeouts_above_the_operators_ceiling_are_the_operators(
    settings: Settings,
) -> None:
    async with serving(settings) as (app, client):
        slug, headers = await new_account(client)
        await _put_layer(app, slug, {"ceilings": {"request_timeout_s": 60, "tool_timeout_s": 5}})
        base = f"/v1/accounts/{slug}/agents"
        high = await client.post(
            base, headers=headers, json={"slug": "a", "config": {"request_timeout_s": 61}}
        )
        ok = await client.post(
            base, headers=headers, json={"slug": "b", "config": {"tool_timeout_s": 5}}
        )
        operator = await client.post(
            base, headers=ADMIN, json={"slug": "c", "config": {"request_timeout_s": 600}}
        )
    assert high.status_code == 403, high.text
    assert high.json()["error"]["code"] == "OPERATOR_SETTING"
    assert ok.status_code == 201, ok.text
    assert operator.status_code == 201, operator.text


async def test_models_outside_the_operators_list_are_refused_everywhere(
    settings: Settings,
) -> None:
    async with serving(settings) as (app, client):
        slug, headers = await new_account(client)
        await _put_layer(app, slug, {"models": {"allowed": ["demo", "fake:*"]}})
        base = f"/v1/accounts/{slug}"
        made = await client.post(
            f"{base}/agents", headers=headers, json={"slug": "a", "model": "openai:gpt-4o"}
        )
        allowed = await client.post(f"{base}/agents", headers=headers, json={"slug": "b"})
        patched = await client.patch(
            f"{base}/agents/b", headers=headers, json={"model": "anthropic:claude-sonnet-4-5"}
        )
        discussion = await client.post(
            f"{base}/discussions",
            headers=headers,
            json={"prompt": "hi", "participants": ["demo", "openai:gpt-4o-mini"]},
        )
        rows = await client.get(f"{base}/llm-requests", headers=headers)
    for response in (made, patched, discussion):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "MODEL_NOT_ALLOWED"
    assert allowed.status_code == 201, allowed.text
    assert rows.json()["items"] == []  # the discussion called nothing


# --- the reported attacks -------------------------------------------------------------------


async def test_no_shell_and_no_server_secret_through_custom_tools(settings: Settings) -> None:
    async with serving(settings) as (_, client):
        slug, headers = await new_account(client)
        base = f"/v1/accounts/{slug}/agents"
        shell = await client.post(
            base,
            headers=headers,
            json={
                "slug": "sh",
                "tools": ["sh"],
                "config": {"custom_tools": {"sh": "subprocess:getoutput"}},
            },
        )
        # even the operator cannot load code from a module it did not allow-list …
        unlisted = await client.post(
            base,
            headers=ADMIN,
            json={"slug": "g", "tools": ["g"], "config": {"custom_tools": {"g": "os:getenv"}}},
        )
        # … nor a builtin, nor a name another module defined, even from an allowed module
        builtin = await client.post(
            base,
            headers=ADMIN,
            json={
                "slug": "s",
                "tools": ["s"],
                "config": {"tool_modules": ["os"], "custom_tools": {"s": "os:system"}},
            },
        )
        reexport = await client.post(
            base,
            headers=ADMIN,
            json={
                "slug": "r",
                "tools": ["r"],
                "config": {
                    "tool_modules": ["tests.tools"],
                    "custom_tools": {"r": "tests.tools:ToolContext"},
                },
            },
        )
        listed = await client.get(base, headers=ADMIN)
    assert shell.status_code == 403
    assert shell.json()["error"]["details"]["keys"] == ["custom_tools"]
    problems = {
        name: response.json()["error"]["details"]["problems"][0]["message"]
        for name, response in (("unlisted", unlisted), ("builtin", builtin), ("re", reexport))
    }
    assert "not in the operator's tool_modules allow-list" in problems["unlisted"]
    assert "not a plain Python function" in problems["builtin"]
    assert "not a plain Python function" in problems["re"]  # a class, defined elsewhere
    assert listed.json()["items"] == []


async def test_no_route_sends_a_server_credential_anywhere(settings: Settings) -> None:
    async with serving(settings) as (_, client):
        slug, headers = await new_account(client)
        base = f"/v1/accounts/{slug}/agents"
        evil = {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "SWITCHBOARD_ADMIN_KEY"}
        as_tenant = await client.post(
            base,
            headers=headers,
            json={"slug": "x", "model": "evil:m", "config": {"providers": {"evil": evil}}},
        )
        as_operator = await client.post(
            base,
            headers=ADMIN,
            json={"slug": "x", "model": "evil:m", "config": {"providers": {"evil": evil}}},
        )
        declared = {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "UPSTREAM_KEY"}
        await client.post(
            base,
            headers=ADMIN,
            json={"slug": "y", "model": "up:m", "config": {"providers": {"up": declared}}},
        )
        redirect = await client.patch(
            f"{base}/y",
            headers=headers,
            json={"config": {"providers": {"up": {"base_url": "http://127.0.0.1:8/v1"}}}},
        )
    assert as_tenant.status_code == 403
    assert as_operator.status_code == 422  # the server's own variables are never a provider key
    assert "SWITCHBOARD_" in str(as_operator.json()["error"]["details"])
    assert redirect.status_code == 403
    assert redirect.json()["error"]["details"]["keys"] == ["providers"]


async def test_unknown_providers_are_refused_at_registration(settings: Settings) -> None:
    async with serving(settings) as (_, client):
        slug, headers = await new_account(client)
        base = f"/v1/accounts/{slug}/agents"
        responses = [
            await client.post(base, headers=headers, json={"slug": f"m{i}", "model": model})
            for i, model in enumerate(["0", "nope:model", "x:"])
        ]
        known = await client.post(
            base, headers=headers, json={"slug": "ok", "model": "openai:gpt-4o-mini"}
        )
    for response in responses:
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "INVALID_CONFIG"
    assert known.status_code == 201, known.text


async def test_metrics_need_the_admin_key_or_the_metrics_token(database_url: str) -> None:
    from tests.conftest import make_settings

    token = f"scrape-{uuid.uuid4().hex}"
    async with serving(make_settings(database_url, metrics_token=token)) as (_, client):
        _, headers = await new_account(client)
        anonymous = await client.get("/metrics")
        tenant = await client.get("/metrics", headers=headers)
        scraper = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        scraper_elsewhere = await client.get(
            "/v1/accounts/nope", headers={"Authorization": f"Bearer {token}"}
        )
        admin = await client.get("/metrics", headers=ADMIN)
        docs = await client.get("/docs")
        spec = await client.get("/openapi.json")
    assert anonymous.status_code == 401
    assert tenant.status_code == 403
    assert scraper.status_code == 200
    assert scraper_elsewhere.status_code == 401  # the token opens /metrics only
    assert admin.status_code == 200
    assert docs.status_code == spec.status_code == 200  # the API description is public


async def test_a_tenant_patch_racing_an_operator_write_cannot_strip_it(
    settings: Settings, backend: str
) -> None:
    """The admin adds an operator key while a tenant PATCHes the same agent's config: the
    tenant's check must compare against what its update replaces (a locked row), so it gets
    403 instead of silently overwriting the operator's write."""
    if backend != "postgres":
        pytest.skip("row locks: PostgreSQL (SQLite serialises every write transaction anyway)")
    from sqlalchemy import text

    from switchboard.registry.repository import AgentRepository

    async with serving(settings) as (app, client):
        slug, headers = await new_account(client)
        base = f"/v1/accounts/{slug}/agents"
        assert (await client.post(base, headers=ADMIN, json={"slug": "a"})).status_code == 201
        container = app.state.container
        found = await container.tenancy.get_account(slug)

        async def waiting_on_a_lock(u: UnitOfWork) -> int:
            statement = text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            return int((await u.session.execute(statement)).scalar_one())

        tenant: asyncio.Task[httpx.Response] | None = None

        async def operator_update(u: UnitOfWork) -> None:
            nonlocal tenant
            repo = AgentRepository(u)
            assert await repo.get("a", with_tags=False, for_update=True) is not None
            tenant = asyncio.create_task(
                client.patch(
                    f"{base}/a", headers=headers, json={"config": {"memory": {"max_messages": 5}}}
                )
            )
            for _ in range(500):  # until the tenant's update waits on the operator's lock
                if await container.uow.run(waiting_on_a_lock, write=False):
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the tenant's PATCH never waited on the row lock")
            await repo.update("a", {"config": {"models": {"allowed": ["demo"]}}})

        await container.uow.run(operator_update, scope=AccountScope(found.id, found.slug))
        assert tenant is not None
        response = await tenant
        stored = (await client.get(f"{base}/a", headers=ADMIN)).json()
    assert response.status_code == 403, response.text
    assert response.json()["error"]["details"]["keys"] == ["models"]
    assert stored["config"] == {"models": {"allowed": ["demo"]}}
