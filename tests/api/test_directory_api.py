"""The directory API and the agents' directory tools over HTTP: import, CRUD, search, errors,
isolation between accounts, and the demo model answering with parallel searches."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from switchboard.bootstrap import Container
from switchboard.db.uow import AccountScope
from switchboard.directory.rows import LIST_SEPARATOR
from switchboard.directory.synthetic import locations, practitioners
from switchboard.runtime.tools.directory import get_directory_entry, search_directory
from switchboard.settings import Settings
from tests.conftest import ADMIN, make_settings, new_account, serving
from tests.directories import set_directories

NDJSON = {"content-type": "application/x-ndjson"}


@dataclass
class Tenant:
    slug: str
    headers: dict[str, str]
    scope: AccountScope

    def url(self, path: str) -> str:
        return f"/v1/accounts/{self.slug}/directories{path}"


@dataclass
class Env:
    http: httpx.AsyncClient
    container: Container

    async def tenant(self, *, records: int = 200) -> Tenant:
        slug, headers = await new_account(self.http)
        account = await self.container.tenancy.get_account(slug)
        tenant = Tenant(slug, headers, AccountScope(account.id, account.slug))
        await set_directories(self.container, tenant.scope)
        if records:
            body = _ndjson(practitioners(records))
            response = await self.http.post(
                tenant.url("/practitioners/entries:import"),
                content=body,
                headers={**headers, **NDJSON},
            )
            assert response.status_code == 200, response.text
            response = await self.http.post(
                tenant.url("/locations/entries:import"),
                content=_ndjson(locations()),
                headers={**headers, **NDJSON},
            )
            assert response.status_code == 200, response.text
        return tenant


def _ndjson(records: Any) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def _csv(records: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    lines = [",".join(columns)]
    for record in records:
        cells = []
        for column in columns:
            value = record.get(column, "")
            value = LIST_SEPARATOR.join(value) if isinstance(value, list) else str(value)
            cells.append(f'"{value}"')
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def directory_settings(database_url: str) -> Settings:
    return make_settings(database_url, max_import_bytes=2_000_000)


@pytest.fixture
async def env(directory_settings: Settings) -> AsyncIterator[Env]:
    async with serving(directory_settings) as (app, http):
        yield Env(http, app.state.container)


async def test_import_csv_and_jsonl_then_read_search_and_delete(env: Env) -> None:
    tenant = await env.tenant(records=0)
    records = list(practitioners(30))
    columns = ["id", "name", "specialty", "city", "languages", "years_experience"]
    response = await env.http.post(
        tenant.url("/practitioners/entries:import"),
        content=_csv(records, columns),
        headers={**tenant.headers, "content-type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "directory": "practitioners",
        "total": 30,
        "created": 30,
        "updated": 0,
        "embedded": 0,
    }
    again = await env.http.post(
        tenant.url("/practitioners/entries:import?format=jsonl"),
        content=_ndjson(records[:10]),
        headers={**tenant.headers, "content-type": "application/octet-stream"},
    )
    assert again.json()["updated"] == 10
    detail = await env.http.get(tenant.url("/practitioners"), headers=tenant.headers)
    assert detail.json()["entries"] == 30
    assert detail.json()["fields"]["city"] == {
        "type": "keyword",
        "filterable": True,
        "searchable": True,
        "required": False,
    }
    listed = await env.http.get(tenant.url(""), headers=tenant.headers)
    assert [d["name"] for d in listed.json()["items"]] == ["locations", "practitioners"]

    entry = await env.http.get(
        tenant.url(f"/practitioners/entries/{records[0]['id']}"), headers=tenant.headers
    )
    assert entry.status_code == 200
    assert entry.json()["data"]["insurance"] == records[0]["insurance"]  # from the JSONL re-import

    city = records[0]["city"]
    found = await env.http.get(
        tenant.url("/practitioners/search"),
        params={"q": records[0]["specialty"], "filter.city": city.upper(), "limit": 100},
        headers=tenant.headers,
    )
    assert found.status_code == 200, found.text
    assert records[0]["id"] in [item["id"] for item in found.json()["items"]]
    assert all(item["data"]["city"] == city for item in found.json()["items"])

    reindexed = await env.http.post(tenant.url("/practitioners:reindex"), headers=tenant.headers)
    assert reindexed.status_code == 200, reindexed.text
    assert reindexed.json()["updated"] == 30

    deleted = await env.http.delete(
        tenant.url(f"/practitioners/entries/{records[0]['id']}"), headers=tenant.headers
    )
    assert deleted.status_code == 204
    gone = await env.http.get(
        tenant.url(f"/practitioners/entries/{records[0]['id']}"), headers=tenant.headers
    )
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "ENTRY_NOT_FOUND"


async def test_put_creates_201_then_replaces_200(env: Env) -> None:
    tenant = await env.tenant(records=0)
    url = tenant.url("/practitioners/entries/dr-new")
    body = {"data": {"name": "Dr. New", "specialty": "Cardiology", "languages": ["English"]}}
    created = await env.http.put(url, json=body, headers=tenant.headers)
    assert created.status_code == 201, created.text
    assert created.json()["id"] == "dr-new"
    replaced = await env.http.put(
        url, json={"data": {**body["data"], "city": "Seattle"}}, headers=tenant.headers
    )
    assert replaced.status_code == 200
    assert replaced.json()["data"]["city"] == "Seattle"


async def test_search_pages_with_a_cursor(env: Env) -> None:
    tenant = await env.tenant()
    seen: list[str] = []
    params: dict[str, Any] = {"filter.accepting_new_patients": "true", "limit": 40}
    for _ in range(20):
        page = await env.http.get(
            tenant.url("/practitioners/search"), params=params, headers=tenant.headers
        )
        assert page.status_code == 200, page.text
        assert page.json()["mode"] == "filter"
        seen += [item["id"] for item in page.json()["items"]]
        if page.json()["next_cursor"] is None:
            break
        params["cursor"] = page.json()["next_cursor"]
    expected = sorted(r["id"] for r in practitioners(200) if r["accepting_new_patients"])
    assert seen == expected


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("post", "/practitioners/entries:import", {"content": b'{"id": "x"}\n', "headers": NDJSON}, 422, "INVALID_ENTRIES"),
        ("post", "/practitioners/entries:import", {"content": b"\xff\xfe\n", "headers": NDJSON}, 422, "UNSUPPORTED_ENCODING"),
        ("post", "/practitioners/entries:import", {"content": b"id,name\n", "headers": {"content-type": "application/pdf"}}, 422, "UNSUPPORTED_FORMAT"),
        ("post", "/practitioners/entries:import", {"content": b"", "headers": NDJSON}, 422, "EMPTY_IMPORT"),
        ("post", "/practitioners/entries:import", {"content": b"x" * 2_000_100, "headers": NDJSON}, 413, "PAYLOAD_TOO_LARGE"),
        ("post", "/products/entries:import", {"content": b"{}\n", "headers": NDJSON}, 404, "DIRECTORY_NOT_FOUND"),
        ("post", "/Bad Name/entries:import", {"content": b"{}\n", "headers": NDJSON}, 422, "VALIDATION_ERROR"),
        ("put", "/practitioners/entries/x", {"json": {"data": {"name": "A"}}}, 422, "INVALID_ENTRY"),
        ("put", "/practitioners/entries/x", {"json": {"data": {"name": "A", "specialty": "B", "zodiac": "leo"}}}, 422, "INVALID_ENTRY"),
        ("put", "/practitioners/entries/x", {"json": {"name": "A"}}, 422, "VALIDATION_ERROR"),
        ("put", "/practitioners/entries/x", {"json": {"data": {"name": "A", "specialty": "B", "years_experience": "many"}}}, 422, "INVALID_ENTRY"),
        ("put", "/practitioners/entries/x", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "INVALID_JSON"),
        ("get", "/practitioners/entries/nobody", {}, 404, "ENTRY_NOT_FOUND"),
        ("delete", "/practitioners/entries/nobody", {}, 404, "ENTRY_NOT_FOUND"),
        ("get", "/products", {}, 404, "DIRECTORY_NOT_FOUND"),
        ("get", "/practitioners/search", {"params": {"filter.name": "x"}}, 422, "INVALID_FILTER"),
        ("get", "/practitioners/search", {"params": {"filter.colour": "x"}}, 422, "INVALID_FILTER"),
        ("get", "/practitioners/search", {"params": {"filter.years_experience": "9..1"}}, 422, "INVALID_FILTER"),
        ("get", "/practitioners/search", {"params": {"q": "x", "mode": "semantic"}}, 422, "SEMANTIC_SEARCH_UNAVAILABLE"),
        ("get", "/practitioners/search", {"params": {"mode": "psychic"}}, 422, "VALIDATION_ERROR"),
        ("get", "/practitioners/search", {"params": {"limit": 0}}, 422, "VALIDATION_ERROR"),
        ("get", "/practitioners/search", {"params": {"limit": "ten"}}, 422, "VALIDATION_ERROR"),
        ("get", "/practitioners/search", {"params": {"cursor": "bogus"}}, 400, "INVALID_CURSOR"),
        ("get", "/practitioners/search", {"params": {"q": "x" * 1001}}, 422, "VALIDATION_ERROR"),
    ],
)  # fmt: skip
async def test_bad_input_gets_a_clear_error_and_writes_nothing(
    env: Env, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    tenant = await env.tenant(records=0)
    kwargs = dict(kwargs)  # shared by both backends' runs
    headers = {**tenant.headers, **kwargs.pop("headers", {})}
    response = await env.http.request(method, tenant.url(path), headers=headers, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    for directory in ("practitioners", "locations"):
        assert await env.container.directories.count(tenant.scope, directory) == 0


async def test_import_errors_list_rows_and_fields(env: Env) -> None:
    tenant = await env.tenant(records=0)
    records = list(practitioners(5))
    records[1] = {**records[1], "years_experience": "old"}
    records[3] = {**records[3], "shoe_size": 44}
    response = await env.http.post(
        tenant.url("/practitioners/entries:import"),
        content=_ndjson(records),
        headers={**tenant.headers, **NDJSON},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["details"]["total_problems"] == 2
    assert [(p["row"], p["field"]) for p in error["details"]["problems"]] == [
        (2, "years_experience"),
        (4, "shoe_size"),
    ]
    assert "row 2, field 'years_experience'" in error["message"]


async def test_no_endpoint_reaches_another_accounts_entries(env: Env) -> None:
    """Two accounts hold the same directory names and the same external ids. Whatever one asks
    for, it sees and changes only its own entries; with the other's path it gets 404."""
    mine, theirs = await env.tenant(), await env.tenant()
    for tenant, city in ((mine, "Mine-ville"), (theirs, "Theirs-ville")):
        response = await env.http.put(
            tenant.url("/practitioners/entries/shared-id"),
            json={"data": {"name": "Dr. Shared", "specialty": "Cardiology", "city": city}},
            headers=tenant.headers,
        )
        assert response.status_code == 201
    own = await env.http.get(mine.url("/practitioners/entries/shared-id"), headers=mine.headers)
    assert own.json()["data"]["city"] == "Mine-ville"
    searches = [
        {"q": "Theirs-ville"},
        {"q": "Dr. Shared", "limit": 100},
        {"filter.city": "Theirs-ville"},
        {"q": "cardiology", "filter.specialty": "Cardiology", "limit": 100},
    ]
    for params in searches:
        response = await env.http.get(
            mine.url("/practitioners/search"), params=params, headers=mine.headers
        )
        assert response.status_code == 200
        assert all(item["data"].get("city") != "Theirs-ville" for item in response.json()["items"])
    # Their URLs with my key: 404, and nothing of theirs changes.
    requests = [
        ("get", "/practitioners/entries/shared-id", {}),
        ("put", "/practitioners/entries/shared-id", {"json": {"data": {"name": "x", "specialty": "y"}}}),
        ("delete", "/practitioners/entries/shared-id", {}),
        ("get", "/practitioners/search", {"params": {"q": "Theirs-ville"}}),
        ("get", "/practitioners", {}),
        ("get", "", {}),
        ("post", "/practitioners:reindex", {}),
        ("post", "/practitioners/entries:import", {"content": b'{"id":"shared-id","name":"x","specialty":"y"}\n', "headers": NDJSON}),
    ]  # fmt: skip
    for method, path, kwargs in requests:
        headers = {**mine.headers, **kwargs.pop("headers", {})}
        response = await env.http.request(method, theirs.url(path), headers=headers, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
    kept = await env.http.get(
        theirs.url("/practitioners/entries/shared-id"), headers=theirs.headers
    )
    assert kept.json()["data"]["city"] == "Theirs-ville"
    assert await env.container.directories.count(theirs.scope, "practitioners") == 201
    # Deleting mine leaves theirs.
    await env.http.delete(mine.url("/practitioners/entries/shared-id"), headers=mine.headers)
    still = await env.http.get(
        theirs.url("/practitioners/entries/shared-id"), headers=theirs.headers
    )
    assert still.status_code == 200


async def test_tools_never_return_another_accounts_entries(env: Env) -> None:
    mine, theirs = await env.tenant(records=0), await env.tenant(records=0)
    await env.http.put(
        theirs.url("/practitioners/entries/secret"),
        json={"data": {"name": "Dr. Secret", "specialty": "Cardiology", "city": "Hidden"}},
        headers=theirs.headers,
    )
    await env.http.put(
        mine.url("/practitioners/entries/public"),
        json={"data": {"name": "Dr. Public", "specialty": "Cardiology", "city": "Open"}},
        headers=mine.headers,
    )
    agent = {"slug": "finder", "tools": ["search_directory", "get_directory_entry"]}
    created = await env.http.post(
        f"/v1/accounts/{mine.slug}/agents", headers=mine.headers, json=agent
    )
    assert created.status_code == 201, created.text
    reply = (
        await env.http.post(
            f"/v1/accounts/{mine.slug}/agents/finder/chat",
            headers=mine.headers,
            json={"message": "Dr. Secret cardiology Hidden"},
        )
    ).json()["reply"]
    assert "Dr. Public" in reply
    assert "Secret" not in reply.replace("Dr. Secret cardiology Hidden", "")
    assert "Hidden" not in reply.replace("Dr. Secret cardiology Hidden", "")

    context = _tool_context(env.container, mine.scope)
    found = await search_directory(context, "practitioners", "secret hidden cardiology")
    assert "[public]" in found
    assert "secret" not in found.lower().split("]", 1)[-1].replace("dr. public", "")
    filtered = await search_directory(
        context, "practitioners", "", {"city": "Hidden", "specialty": ["Cardiology"]}
    )
    assert filtered == "practitioners: no results"
    lookup = await get_directory_entry(context, "practitioners", "secret")
    assert lookup == "ERROR: no entry 'secret' in directory 'practitioners'"
    own = await get_directory_entry(context, "practitioners", "public")
    assert "name: Dr. Public" in own
    bad = await search_directory(context, "practitioners", "x", {"colour": "red"})
    assert bad.startswith("ERROR: filter.colour: unknown field")
    unknown = await search_directory(context, "products", "x")
    assert unknown.startswith("ERROR: no directory 'products'")


def _tool_context(container: Container, scope: AccountScope) -> Any:
    import uuid

    from switchboard.memories.service import MemoryService
    from switchboard.runtime.tools.context import ToolContext

    class Context:
        deps = ToolContext(
            uow=container.uow,
            account=scope,
            agent_id=uuid.uuid4(),
            agent_slug="finder",
            conversation_id=uuid.uuid4(),
            run_id=uuid.uuid4(),
            memories=MemoryService(container.uow),
            directories=container.directories,
        )

    return Context()


async def test_demo_model_answers_with_parallel_searches(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two searches (practitioners, locations) meet at a barrier: if they ran one after the
    other the first would time out and its result would be an error."""
    tenant = await env.tenant(records=1000)
    await env.http.post(
        f"/v1/accounts/{tenant.slug}/agents",
        headers=tenant.headers,
        json={"slug": "front-desk", "tools": ["search_directory", "get_directory_entry"]},
    )
    service = env.container.directories
    original = service.search
    barrier = asyncio.Barrier(2)
    tasks: set[asyncio.Task[Any] | None] = set()

    async def meeting(*args: Any, **kwargs: Any) -> Any:
        tasks.add(asyncio.current_task())
        async with asyncio.timeout(5):
            await barrier.wait()
        return await original(*args, **kwargs)

    monkeypatch.setattr(service, "search", meeting)
    response = await env.http.post(
        f"/v1/accounts/{tenant.slug}/agents/front-desk/chat",
        headers=tenant.headers,
        json={"message": "find me cardiologists in Seattle who accept Medicare"},
    )
    assert response.status_code == 200, response.text
    reply = response.json()["reply"]
    assert "ERROR" not in reply
    assert len(tasks) == 2
    practitioners_part = reply.split("practitioners:", 1)[1].split("locations:", 1)[0]
    first = practitioners_part.split("\n")[1]
    assert "specialty: Cardiology" in first
    assert "city: Seattle" in first
    assert "Medicare" in first
    assert "Seattle" in reply.split("locations:", 1)[1]

    messages = (
        await env.http.get(
            f"/v1/accounts/{tenant.slug}/conversations/{response.json()['conversation_id']}/messages",
            headers=tenant.headers,
        )
    ).json()["items"]
    calls = [m for m in messages if m["role"] == "tool_call"]
    assert len(calls) == 1  # one model response carrying both calls


async def test_admin_reaches_any_account(env: Env) -> None:
    tenant = await env.tenant(records=0)
    response = await env.http.get(tenant.url(""), headers=ADMIN)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        '"',
        "'; DROP TABLE directory_entries; --",
        "cardiology OR seattle",
        "NEAR(a b)",
        "spec* col:val {x} ^y",
        "x -y & z | !w <-> v",
        "café São Paulo Ørsted",
        "心脏科 医生",
        "🫀 doctor",
        "a_b c_d",
        "\u0000\u0001",
        " ",
        "the and of who",
    ],
)
async def test_any_query_text_is_safe(env: Env, query: str) -> None:
    tenant = await env.tenant(records=50)
    for params in ({"q": query}, {"q": query, "filter.city": "Seattle"}):
        response = await env.http.get(
            tenant.url("/practitioners/search"), params=params, headers=tenant.headers
        )
        if "\x00" in query:  # no text input may hold a NUL (see test_hostile_input.py)
            assert response.status_code == 422, response.text
            assert response.json()["error"]["code"] == "VALIDATION_ERROR"
        else:
            assert response.status_code == 200, response.text
    tool = await search_directory(
        _tool_context(env.container, tenant.scope), "practitioners", query
    )
    assert not tool.startswith("ERROR"), tool
