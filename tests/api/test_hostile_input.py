"""Hostile input over HTTP, on SQLite and PostgreSQL: every case gets its documented 4xx with a
stable code — never a 500 — and changes no row of any table. A table of cases, then the body
limits (authenticate before reading a large body), strict CSV, and the protocol details (415,
400 INVALID_JSON, the 405 Allow header, paged keys)."""

# Table-driven cases keep one case per line.
# ruff: noqa: E501

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchboard.app import create_app
from switchboard.bootstrap import Container
from switchboard.db.base import Base
from switchboard.db.uow import AccountScope, CrossAccount, UnitOfWork
from switchboard.pagination import encode_cursor
from switchboard.settings import Settings
from tests.conftest import ADMIN, make_settings, new_account
from tests.directories import set_directories

MiB = 1_048_576
IMPORT_LIMIT = 2 * MiB
JSON = {"content-type": "application/json"}
NDJSON = {"content-type": "application/x-ndjson"}
CSV = {"content-type": "text/csv"}
DEEP = ("[" * 100_000 + "]" * 100_000).encode()
HUGE = "9" * 400


class ReceivedBytes:
    """ASGI wrapper counting the request-body bytes the application actually read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.received = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counting() -> Message:
            message = await receive()
            self.received += len(message.get("body", b""))
            return message

        await self.app(scope, counting, send)


@dataclass
class Env:
    http: httpx.AsyncClient
    container: Container
    meter: ReceivedBytes

    async def tenant(self) -> Tenant:
        slug, headers = await new_account(self.http)
        account = await self.container.tenancy.get_account(slug)
        scope = AccountScope(account.id, account.slug)
        await set_directories(self.container, scope)
        created = await self.http.post(
            f"/v1/accounts/{slug}/agents", json={"slug": "bot"}, headers=headers
        )
        assert created.status_code == 201, created.text
        return Tenant(slug, headers)

    async def row_counts(self) -> dict[str, int]:
        """Rows of every table: what no rejected request may change."""

        async def op(u: UnitOfWork) -> dict[str, int]:
            counts: dict[str, int] = {}
            for table in sorted(Base.metadata.tables):
                result = await u.session.execute(text(f'SELECT count(*) FROM "{table}"'))  # noqa: S608
                counts[table] = int(result.scalar_one())
            return counts

        return await self.container.uow.run(
            op, scope=CrossAccount("test: row counts of every table"), write=False
        )


@dataclass
class Tenant:
    slug: str
    headers: dict[str, str]


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Env]:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        meter = ReceivedBytes(manager.app)
        transport = httpx.ASGITransport(app=meter)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield Env(http, app.state.container, meter)


@pytest.fixture
async def env(database_url: str) -> AsyncIterator[Env]:
    async with serving(make_settings(database_url, max_import_bytes=IMPORT_LIMIT)) as served:
        yield served


def raw_json(text_: str) -> dict[str, Any]:
    """A JSON body sent byte for byte (httpx cannot encode a lone surrogate itself)."""
    return {"content": text_.encode(), "headers": JSON}


def ndjson(*lines: str) -> dict[str, Any]:
    return {"content": "".join(line + "\n" for line in lines).encode(), "headers": NDJSON}


def csv_body(text_: str) -> dict[str, Any]:
    return {"content": text_.encode(), "headers": CSV}


NAIVE = encode_cursor("2026-01-01T00:00:00", "00000000-0000-0000-0000-000000000001")
DATE_ONLY = encode_cursor("2026-01-01", "00000000-0000-0000-0000-000000000001")
UNDERFLOW = encode_cursor("0001-01-01T00:00:00+01:00", "00000000-0000-0000-0000-000000000001")
OVERFLOW = encode_cursor("9999-12-31T23:59:59-01:00", "00000000-0000-0000-0000-000000000001")
NUL_CURSOR = encode_cursor("a\x00b")
SUPERSCRIPT = encode_cursor("²")
BEYOND_INT64 = encode_cursor(str(2**63))
CONVERSATION = "/conversations/00000000-0000-0000-0000-000000000001/messages"
ENTRIES = "/directories/practitioners/entries"
IMPORT = f"{ENTRIES}:import"
SEARCH = "/directories/practitioners/search"
A_ROW = '"id": "p1", "name": "Dr. A", "specialty": "Cardiology"'

# (case, method, path under /v1/accounts/{account}, request kwargs, status, code)
CASES: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    # --- NUL and lone surrogates in every kind of text ------------------------------------
    ("chat NUL", "POST", "/agents/bot/chat", {"json": {"message": "hi\x00"}}, 422, "VALIDATION_ERROR"),
    ("chat surrogate", "POST", "/agents/bot/chat", raw_json('{"message": "hi \\ud800"}'), 422, "VALIDATION_ERROR"),
    ("chat user NUL", "POST", "/agents/bot/chat", {"json": {"message": "hi", "user": "u\x00"}}, 422, "VALIDATION_ERROR"),
    ("chat agent NUL", "POST", "/agents/b%00t/chat", {"json": {"message": "hi"}}, 422, "VALIDATION_ERROR"),
    ("chat conversation id", "POST", "/agents/bot/chat", {"json": {"message": "hi", "conversation_id": "x\x00"}}, 422, "VALIDATION_ERROR"),
    ("conversations ?agent NUL", "GET", "/conversations?agent=b%00t", {}, 422, "VALIDATION_ERROR"),
    ("ledger ?agent NUL", "GET", "/llm-requests?agent=b%00t", {}, 422, "VALIDATION_ERROR"),
    ("budget ?agent NUL", "GET", "/budget?agent=b%00t", {}, 422, "VALIDATION_ERROR"),
    ("discussion prompt NUL", "POST", "/discussions", {"json": {"prompt": "a\x00", "participants": ["demo"]}}, 422, "VALIDATION_ERROR"),
    ("discussion participant surrogate", "POST", "/discussions", raw_json('{"prompt": "a", "participants": ["\\udfff"]}'), 422, "VALIDATION_ERROR"),
    ("agent name NUL", "POST", "/agents", {"json": {"slug": "bot2", "display_name": "B\x00"}}, 422, "VALIDATION_ERROR"),
    ("agent config NUL", "POST", "/agents", {"json": {"slug": "bot2", "config": {"system_prompt": "x\x00"}}}, 422, "VALIDATION_ERROR"),
    ("agent prompt surrogate", "PATCH", "/agents/bot", raw_json('{"system_prompt": "\\ud800"}'), 422, "VALIDATION_ERROR"),
    ("entry text NUL", "PUT", f"{ENTRIES}/p1", {"json": {"data": {"name": "A\x00", "specialty": "B"}}}, 422, "VALIDATION_ERROR"),
    ("entry nested key NUL", "PUT", f"{ENTRIES}/p1", {"json": {"data": {"name": "A", "specialty": "B", "x": {"k\x00": 1}}}}, 422, "VALIDATION_ERROR"),
    ("entry surrogate", "PUT", f"{ENTRIES}/p1", raw_json('{"data": {"name": "\\ud800", "specialty": "B"}}'), 422, "VALIDATION_ERROR"),
    ("entry 400-digit number", "PUT", f"{ENTRIES}/p1", raw_json(f'{{"data": {{"name": "A", "specialty": "B", "years_experience": {HUGE}}}}}'), 422, "VALIDATION_ERROR"),
    ("entry NaN", "PUT", f"{ENTRIES}/p1", raw_json('{"data": {"name": "A", "specialty": "B", "years_experience": NaN}}'), 422, "VALIDATION_ERROR"),
    ("entry id NUL", "PUT", f"{ENTRIES}/p%001", {"json": {"data": {"name": "A", "specialty": "B"}}}, 422, "VALIDATION_ERROR"),
    ("entry id ..", "PUT", f"{ENTRIES}/%2E%2E", {"json": {"data": {"name": "A", "specialty": "B"}}}, 422, "INVALID_ENTRY"),
    ("entry id .", "PUT", f"{ENTRIES}/%2E", {"json": {"data": {"name": "A", "specialty": "B"}}}, 422, "INVALID_ENTRY"),
    ("search ?q NUL", "GET", f"{SEARCH}?q=a%00", {}, 422, "VALIDATION_ERROR"),
    ("search ?filter NUL", "GET", f"{SEARCH}?filter.city=a%00", {}, 422, "VALIDATION_ERROR"),
    ("search ?filter name NUL", "GET", f"{SEARCH}?filter.c%00ty=a", {}, 422, "VALIDATION_ERROR"),
    ("import NUL", "POST", IMPORT, ndjson(f'{{{A_ROW}, "bio": "x\\u0000"}}'), 422, "INVALID_ENTRIES"),
    ("import surrogate", "POST", IMPORT, ndjson(f'{{{A_ROW}, "bio": "\\ud800"}}'), 422, "INVALID_ENTRIES"),
    ("import list surrogate", "POST", IMPORT, ndjson(f'{{{A_ROW}, "languages": ["\\udc00"]}}'), 422, "INVALID_ENTRIES"),
    ("import id surrogate", "POST", IMPORT, ndjson('{"id": "\\ud800", "name": "A", "specialty": "B"}'), 422, "INVALID_ENTRIES"),
    ("import surrogate field name", "POST", IMPORT, ndjson(f'{{{A_ROW}, "\\ud800": 1}}'), 422, "INVALID_ENTRIES"),
    ("body surrogate field name", "PUT", f"{ENTRIES}/p1", raw_json('{"data": {}, "\\ud800": 1}'), 422, "VALIDATION_ERROR"),
    ("import id ..", "POST", IMPORT, ndjson('{"id": "..", "name": "A", "specialty": "B"}'), 422, "INVALID_ENTRIES"),
    ("import 400-digit number", "POST", IMPORT, ndjson(f'{{{A_ROW}, "years_experience": {HUGE}}}'), 422, "INVALID_ENTRIES"),
    ("import deep nesting", "POST", IMPORT, {"content": DEEP + b"\n", "headers": NDJSON}, 422, "INVALID_ENTRIES"),
    ("import deep field", "POST", IMPORT, ndjson(f'{{{A_ROW}, "bio": {"[" * 50_000}{"]" * 50_000}}}'), 422, "INVALID_ENTRIES"),
    ("import CSV NUL", "POST", IMPORT, csv_body("id,name,specialty\np1,A\x00,B\n"), 422, "INVALID_ENTRIES"),
    # --- cursors, datetimes and numbers to their real ranges -------------------------------
    ("conversations naive cursor", "GET", f"/conversations?cursor={NAIVE}", {}, 400, "INVALID_CURSOR"),
    ("conversations date-only cursor", "GET", f"/conversations?cursor={DATE_ONLY}", {}, 400, "INVALID_CURSOR"),
    ("conversations underflow cursor", "GET", f"/conversations?cursor={UNDERFLOW}", {}, 400, "INVALID_CURSOR"),
    ("ledger naive cursor", "GET", f"/llm-requests?cursor={NAIVE}", {}, 400, "INVALID_CURSOR"),
    ("ledger overflow cursor", "GET", f"/llm-requests?cursor={OVERFLOW}", {}, 400, "INVALID_CURSOR"),
    ("ledger since underflow", "GET", "/llm-requests?since=0001-01-01T00:00:00%2B01:00", {}, 400, "INVALID_QUERY"),
    ("ledger until overflow", "GET", "/llm-requests?until=9999-12-31T23:59:59-01:00", {}, 400, "INVALID_QUERY"),
    ("ledger since date-only", "GET", "/llm-requests?since=2026-01-01", {}, 400, "INVALID_QUERY"),
    ("ledger since naive", "GET", "/llm-requests?since=2026-01-01T00:00:00", {}, 400, "INVALID_QUERY"),
    ("ledger since a number", "GET", "/llm-requests?since=0.8166689576523224", {}, 422, "VALIDATION_ERROR"),
    ("usage until a number", "GET", "/usage?until=1700000000", {}, 422, "VALIDATION_ERROR"),
    ("usage until overflow", "GET", "/usage?until=9999-12-31T23:59:59-01:00", {}, 400, "INVALID_QUERY"),
    ("usage since underflow", "GET", "/usage?since=0001-01-01T00:00:00%2B01:00", {}, 400, "INVALID_QUERY"),
    ("messages superscript cursor", "GET", f"{CONVERSATION}?cursor={SUPERSCRIPT}", {}, 400, "INVALID_CURSOR"),
    ("messages int64 cursor", "GET", f"{CONVERSATION}?cursor={BEYOND_INT64}", {}, 400, "INVALID_CURSOR"),
    ("search superscript cursor", "GET", f"{SEARCH}?cursor={SUPERSCRIPT}", {}, 400, "INVALID_CURSOR"),
    ("agents NUL cursor", "GET", f"/agents?cursor={NUL_CURSOR}", {}, 400, "INVALID_CURSOR"),
    ("keys naive cursor", "GET", f"/keys?cursor={NAIVE}", {"headers": ADMIN}, 400, "INVALID_CURSOR"),
    ("keys garbage cursor", "GET", "/keys?cursor=garbage!!", {"headers": ADMIN}, 400, "INVALID_CURSOR"),
    # --- strict CSV: a broken file is refused whole ---------------------------------------
    ("CSV unterminated quote", "POST", IMPORT, csv_body('id,name,specialty\nq10,"abc,B\nq11,def,B\nq12,ghi,B\n'), 422, "INVALID_ENTRIES"),
    ("CSV stray quote", "POST", IMPORT, csv_body('id,name,specialty\nq10,ab"c,B\nq11,def,B\n'), 422, "INVALID_ENTRIES"),
    ("CSV quote after quoted", "POST", IMPORT, csv_body('id,name,specialty\nq10,"ab"c,B\n'), 422, "INVALID_ENTRIES"),
    ("CSV too few values", "POST", IMPORT, csv_body("id,name,specialty\nq10,abc\nq11,def,B\n"), 422, "INVALID_ENTRIES"),
    ("CSV too many values", "POST", IMPORT, csv_body("id,name,specialty\nq10,abc,B,extra\n"), 422, "INVALID_ENTRIES"),
    ("CSV repeated column", "POST", IMPORT, csv_body("id,name,name,specialty\nq10,a,b,B\n"), 422, "INVALID_ENTRIES"),
    # --- protocol ------------------------------------------------------------------------
    ("body not UTF-8", "POST", "/agents", {"content": b'{"slug": "\xff"}', "headers": JSON}, 400, "INVALID_JSON"),
    ("body deeply nested", "POST", "/agents", {"content": DEEP, "headers": JSON}, 400, "INVALID_JSON"),
    ("body not JSON", "POST", "/agents", {"content": b"{slug: bot2", "headers": JSON}, 400, "INVALID_JSON"),
    ("text/plain body", "POST", "/agents", {"content": b'{"slug": "bot2"}', "headers": {"content-type": "text/plain"}}, 415, "UNSUPPORTED_MEDIA_TYPE"),
    ("form body", "PUT", f"{ENTRIES}/p1", {"data": {"data": "x"}}, 415, "UNSUPPORTED_MEDIA_TYPE"),
    # --- path and query parameters of the registry -----------------------------------------
    ("agents ?tag NUL", "GET", "/agents?tag=a%00", {}, 422, "VALIDATION_ERROR"),
    ("agents ?team NUL", "GET", "/agents?team=a%00", {}, 422, "VALIDATION_ERROR"),
    ("agent path NUL", "GET", "/agents/b%00t", {}, 422, "VALIDATION_ERROR"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
async def test_hostile_input_gets_its_4xx_and_changes_no_row(
    env: Env, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    tenant = await env.tenant()
    options = dict(kwargs)  # the table is shared by both backends' runs
    headers = {**tenant.headers, **options.pop("headers", {})}
    before = await env.row_counts()
    response = await env.http.request(
        method, f"/v1/accounts/{tenant.slug}{path}", headers=headers, **options
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["retryable"] is False
    assert await env.row_counts() == before


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("POST", "/v1/accounts", {"json": {"slug": "ok", "name": "N\x00"}}, 422, "VALIDATION_ERROR"),
        ("POST", "/v1/accounts", raw_json('{"slug": "ok", "name": "\\ud800"}'), 422, "VALIDATION_ERROR"),
        ("POST", "/v1/accounts/{account}/keys", {"json": {"name": "k\x00"}}, 422, "VALIDATION_ERROR"),
        ("GET", "/v1/accounts/a%00b", {}, 422, "VALIDATION_ERROR"),
        ("GET", "/v1/accounts/a%00b/conversations", {}, 422, "VALIDATION_ERROR"),
    ],
)  # fmt: skip
async def test_admin_text_is_checked_too(
    env: Env, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    slug, _ = await new_account(env.http)
    options = dict(kwargs)
    headers = {**ADMIN, **options.pop("headers", {})}
    before = await env.row_counts()
    url = path.replace("{account}", slug)
    response = await env.http.request(method, url, headers=headers, **options)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert await env.row_counts() == before


async def test_broken_csv_names_its_row_and_imports_nothing(env: Env) -> None:
    """The issue's reproduction: an unterminated quote once imported one entry whose name
    swallowed the next rows."""
    tenant = await env.tenant()
    before = await env.row_counts()
    cases = {
        'id,name,specialty\nq10,"abc,B\nq11,def,B\nq12,ghi,B\n': (1, "unterminated quote"),
        'id,name,specialty\nq10,abc,B\nq11,d"ef,B\n': (2, "stray quote"),
        "id,name,specialty\nq10,abc,B\nq11,def,B\nq12,ghi\n": (3, "2 values for 3 columns"),
    }
    for body, (row, words) in cases.items():
        response = await env.http.post(
            f"/v1/accounts/{tenant.slug}{IMPORT}",
            content=body.encode(),
            headers={**tenant.headers, **CSV},
        )
        assert response.status_code == 422, response.text
        [problem] = response.json()["error"]["details"]["problems"]
        assert problem["row"] == row
        assert words in problem["message"]
    assert await env.row_counts() == before


# --- authenticate before reading a large body ---------------------------------------------


async def _chunks(size: int, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    for _ in range(size // chunk):
        yield b"x" * chunk


@pytest.mark.parametrize("path", ["entries:import", "entries%3Aimport"])
async def test_import_without_a_key_is_refused_before_its_body_is_read(
    database_url: str, path: str
) -> None:
    """5 MiB is within the import limit (8 MiB here), yet without a key not one byte of it is
    read: the key is checked first, and the import route's body is never buffered."""
    settings = make_settings(database_url, max_import_bytes=8 * MiB)
    async with serving(settings) as env:
        tenant = await env.tenant()
        url = f"/v1/accounts/{tenant.slug}/directories/practitioners/{path}"
        for streamed in (False, True):
            for headers in (NDJSON, {**NDJSON, "Authorization": "Bearer wrong"}):
                env.meter.received = 0
                content = _chunks(5 * MiB) if streamed else b"x" * (5 * MiB)
                response = await env.http.post(url, content=content, headers=headers)
                assert response.status_code == 401, response.text
                assert response.json()["error"]["code"] == "UNAUTHENTICATED"
                assert env.meter.received == 0  # not one byte of the body was read


async def test_import_body_is_streamed_under_the_import_limit(env: Env) -> None:
    tenant = await env.tenant()
    url = f"/v1/accounts/{tenant.slug}{IMPORT}"
    headers = {**tenant.headers, **NDJSON}
    before = await env.row_counts()
    # declared too large: refused before the app runs
    declared = await env.http.post(url, content=b"x" * (IMPORT_LIMIT + 1), headers=headers)
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    # chunked (no length): the handler stops reading once past the limit
    env.meter.received = 0
    streamed = await env.http.post(url, content=_chunks(5 * MiB), headers=headers)
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert env.meter.received <= IMPORT_LIMIT + 64 * 1024
    assert await env.row_counts() == before
    # a body under the limit is imported as before
    body = json.dumps({"id": "p1", "name": "Dr. A", "specialty": "Cardiology"}) + "\n"
    ok = await env.http.post(url, content=body.encode(), headers=headers)
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/directories/practitioners/entries:import"),
        ("GET", "/directories/practitioners/entries:import"),
        ("POST", "/directories/practitioners/entries:import/"),
        ("POST", "/directories/practitioners/other:import"),
        ("POST", "/agents:import"),
        ("POST", "/directories/practitioners/entries:import/extra"),
    ],
)
async def test_other_methods_and_paths_keep_the_small_limit(
    database_url: str, method: str, path: str
) -> None:
    settings = make_settings(database_url, max_body_bytes=64 * 1024, max_import_bytes=8 * MiB)
    async with serving(settings) as env:
        tenant = await env.tenant()
        for content in (b"x" * (5 * MiB), _chunks(5 * MiB)):  # each used once
            response = await env.http.request(
                method,
                f"/v1/accounts/{tenant.slug}{path}",
                content=content,
                headers={**tenant.headers, **NDJSON},
            )
            assert response.status_code == 413, response.text
            assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
            assert "65536 bytes" in response.json()["error"]["message"]


# --- protocol details ---------------------------------------------------------------------


async def test_405_allow_lists_every_method_of_the_path(env: Env) -> None:
    tenant = await env.tenant()
    response = await env.http.put(f"/v1/accounts/{tenant.slug}/keys", headers=ADMIN)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert {"GET", "POST"} <= allowed
    entry = await env.http.post(f"/v1/accounts/{tenant.slug}{ENTRIES}/p1", headers=tenant.headers)
    assert entry.status_code == 405
    assert {"GET", "PUT", "DELETE"} <= {m.strip() for m in entry.headers["allow"].split(",")}


async def test_keys_are_listed_in_pages(env: Env) -> None:
    slug, _ = await new_account(env.http)  # one key already
    for name in ("b", "c", "d", "e"):
        created = await env.http.post(
            f"/v1/accounts/{slug}/keys", json={"name": name}, headers=ADMIN
        )
        assert created.status_code == 201
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await env.http.get(f"/v1/accounts/{slug}/keys", params=params, headers=ADMIN)
        assert page.status_code == 200, page.text
        assert set(page.json()) == {"items", "next_cursor"}
        seen += [key["id"] for key in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    everything = await env.http.get(f"/v1/accounts/{slug}/keys", headers=ADMIN)
    assert [key["id"] for key in everything.json()["items"]] == seen
    assert everything.json()["next_cursor"] is None
