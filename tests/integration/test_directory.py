"""Directories through the service, on SQLite and PostgreSQL: import (all or nothing, upsert),
entry CRUD, full-text ranking, filters, paging, indexes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from switchboard.bootstrap import Container
from switchboard.db.uow import AccountScope
from switchboard.directory.files import decode_lines, parse_entries
from switchboard.directory.repository import DirectoryRepository
from switchboard.directory.search import parse_filters
from switchboard.directory.synthetic import locations, practitioners
from switchboard.errors import InvalidRequest, NotFound
from switchboard.runtime.runs import RunRequest
from tests.directories import load, set_directories


def _jsonl(records: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(record) + "\n" for record in records]


@pytest.fixture
async def hospital(container: Container, account: AccountScope) -> AccountScope:
    await set_directories(container, account)
    await load(container, account, "practitioners", practitioners(600))
    await load(container, account, "locations", locations())
    return account


async def test_reimport_updates_entries_and_their_filter_values(
    container: Container, account: AccountScope
) -> None:
    await set_directories(container, account)
    records = list(practitioners(50))
    assert await load(container, account, "practitioners", records) == 50
    moved = {**records[0], "city": "Anchorage", "languages": ["English", "Inuktitut"]}
    config = await container.directories.schema(account, "practitioners")
    rows = parse_entries(config, "practitioners", _jsonl([moved, *records[1:3]]), "jsonl")
    result = await container.directories.import_entries(account, "practitioners", config, rows)
    assert (result.total, result.created, result.updated) == (3, 0, 3)
    assert await container.directories.count(account, "practitioners") == 50
    entry = await container.directories.get_entry(account, "practitioners", moved["id"])
    assert entry.data["city"] == "Anchorage"
    old_city = await container.directories.search(
        account, "practitioners", filters={"city": [records[0]["city"]]}, limit=100
    )
    assert moved["id"] not in [hit.entry.external_id for hit in old_city.hits]
    new_city = await container.directories.search(
        account, "practitioners", filters={"languages": ["inuktitut"]}
    )
    assert [hit.entry.external_id for hit in new_city.hits] == [moved["id"]]
    by_text = await container.directories.search(account, "practitioners", query="Anchorage")
    assert [hit.entry.external_id for hit in by_text.hits] == [moved["id"]]


async def test_one_invalid_row_imports_nothing(container: Container, account: AccountScope) -> None:
    """The bad row is the last of 2 500: earlier batches would already be written if the
    import were not one transaction."""
    await set_directories(container, account)
    records = list(practitioners(2500))
    records[-1] = {**records[-1], "years_experience": "a lot"}
    config = await container.directories.schema(account, "practitioners")
    with pytest.raises(InvalidRequest) as caught:
        parse_entries(config, "practitioners", _jsonl(records), "jsonl")
    assert caught.value.code == "INVALID_ENTRIES"
    assert caught.value.details["problems"] == [
        {"row": 2500, "field": "years_experience", "message": "expected a number, got str"}
    ]
    assert await container.directories.count(account, "practitioners") == 0


async def test_a_failing_write_rolls_the_whole_import_back(
    container: Container, account: AccountScope, monkeypatch: pytest.MonkeyPatch
) -> None:
    await set_directories(container, account)
    config = await container.directories.schema(account, "practitioners")
    rows = parse_entries(config, "practitioners", _jsonl(list(practitioners(2500))), "jsonl")
    calls = 0
    original = DirectoryRepository.upsert

    async def failing(self: DirectoryRepository, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:  # after two batches of 1 000 were written in this transaction
            raise InvalidRequest("boom", code="TEST_FAILURE")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(DirectoryRepository, "upsert", failing)
    with pytest.raises(InvalidRequest):
        await container.directories.import_entries(account, "practitioners", config, rows)
    assert calls == 3
    assert await container.directories.count(account, "practitioners") == 0


@pytest.mark.parametrize(
    ("lines", "file_format", "row", "field", "message"),
    [
        (['{"id": "a", "name": "A", "specialty": "X"}\n', "{not json\n"], "jsonl", 2, None, "invalid JSON"),
        (['["a list"]\n'], "jsonl", 1, None, "each line must be a JSON object"),
        (['{"name": "A", "specialty": "X"}\n'], "jsonl", 1, "id", "every entry needs an id"),
        (['{"id": "a/b", "name": "A", "specialty": "X"}\n'], "jsonl", 1, "id", "without '/'"),
        (['{"id": "a", "specialty": "X"}\n'], "jsonl", 1, "name", "required"),
        (['{"id": "a", "name": "A", "specialty": "X", "colour": "red"}\n'], "jsonl", 1, "colour", "unknown field"),
        (['{"id": "a", "name": "A", "specialty": 3}\n'], "jsonl", 1, "specialty", "expected text"),
        (['{"id": "a", "name": "A", "specialty": "X", "languages": "English"}\n'], "jsonl", 1, "languages", "list of texts"),
        (['{"id": "a", "name": "A", "specialty": "X", "accepting_new_patients": "yes"}\n'], "jsonl", 1, "accepting_new_patients", "expected true or false"),
        (['{"id": "a", "name": "A", "specialty": "X"}\n', '{"id": "a", "name": "B", "specialty": "Y"}\n'], "jsonl", 2, "id", "repeats row 1"),
        (["name,specialty\n", "A,X\n"], "csv", 0, "id", "needs an 'id' column"),
        (["id,name,specialty\n", "a,A,X,extra\n"], "csv", 1, None, "4 values for 3 columns"),
        (["id,name,specialty,years_experience\n", "a,A,X,ten\n"], "csv", 1, "years_experience", "expected a number"),
        (["id,name,specialty,accepting_new_patients\n", "a,A,X,maybe\n"], "csv", 1, "accepting_new_patients", "true or false"),
    ],
)  # fmt: skip
async def test_invalid_rows_are_reported_by_row_and_field(
    container: Container,
    account: AccountScope,
    lines: list[str],
    file_format: str,
    row: int,
    field: str | None,
    message: str,
) -> None:
    await set_directories(container, account)
    config = await container.directories.schema(account, "practitioners")
    with pytest.raises(InvalidRequest) as caught:
        parse_entries(config, "practitioners", lines, file_format)  # type: ignore[arg-type]
    [problem] = [p for p in caught.value.details["problems"] if p["row"] == row]
    assert problem["field"] == field
    assert message in problem["message"]


def test_broken_bytes_and_empty_files() -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_lines(b"id,name\n\xff\xfe,x\n")
    assert caught.value.code == "UNSUPPORTED_ENCODING"
    assert decode_lines(b"\xef\xbb\xbfid,name\r\na,b\r\n") == ["id,name\r\n", "a,b\r\n"]


async def test_csv_values_are_typed_by_the_schema(
    container: Container, account: AccountScope
) -> None:
    await set_directories(container, account)
    config = await container.directories.schema(account, "practitioners")
    lines = [
        "id,name,specialty,languages,years_experience,accepting_new_patients\n",
        'p1,"Dr. A, MD",Cardiology,English|Spanish,12,yes\n',
        "p2,Dr. B,Neurology,,,\n",
    ]
    rows = parse_entries(config, "practitioners", lines, "csv")
    await container.directories.import_entries(account, "practitioners", config, rows)
    first = await container.directories.get_entry(account, "practitioners", "p1")
    assert first.data == {
        "name": "Dr. A, MD",
        "specialty": "Cardiology",
        "languages": ["English", "Spanish"],
        "years_experience": 12,
        "accepting_new_patients": True,
    }
    second = await container.directories.get_entry(account, "practitioners", "p2")
    assert second.data == {"name": "Dr. B", "specialty": "Neurology"}


async def test_filters_match_exactly(container: Container, hospital: AccountScope) -> None:
    everyone = list(practitioners(600))

    async def ids(**filters: list[str]) -> set[str]:
        found: set[str] = set()
        cursor = None
        while True:
            page = await container.directories.search(
                hospital, "practitioners", filters=filters, limit=100, cursor=cursor
            )
            found |= {hit.entry.external_id for hit in page.hits}
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    def expected(predicate: Any) -> set[str]:
        return {r["id"] for r in everyone if predicate(r)}

    assert await ids(city=["SEATTLE"]) == expected(lambda r: r["city"] == "Seattle")
    assert await ids(city=["Seattle", "Tacoma"]) == expected(
        lambda r: r["city"] in ("Seattle", "Tacoma")
    )
    assert await ids(languages=["spanish"], insurance=["Medicare"]) == expected(
        lambda r: "Spanish" in r["languages"] and "Medicare" in r["insurance"]
    )
    assert await ids(years_experience=["10..20"]) == expected(
        lambda r: 10 <= r["years_experience"] <= 20
    )
    assert await ids(years_experience=["35.."]) == expected(lambda r: r["years_experience"] >= 35)
    assert await ids(years_experience=["..3"]) == expected(lambda r: r["years_experience"] <= 3)
    assert await ids(years_experience=["7"]) == expected(lambda r: r["years_experience"] == 7)
    assert await ids(accepting_new_patients=["false"], specialty=["Cardiology"]) == expected(
        lambda r: not r["accepting_new_patients"] and r["specialty"] == "Cardiology"
    )


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"colour": ["red"]}, "unknown field"),
        ({"name": ["Dr. A"]}, "not filterable"),
        ({"years_experience": ["ten"]}, "expected a number"),
        ({"years_experience": ["20..10"]}, "empty range"),
        ({"years_experience": [".."]}, "at least one bound"),
        ({"years_experience": ["1", "2"]}, "one value or range"),
        ({"accepting_new_patients": ["maybe"]}, "true or false"),
        ({"city": [" "]}, "empty filter value"),
    ],
)
async def test_bad_filters_are_rejected(
    container: Container, account: AccountScope, filters: dict[str, list[str]], message: str
) -> None:
    await set_directories(container, account)
    with pytest.raises(InvalidRequest) as caught:
        await container.directories.search(account, "practitioners", filters=filters)
    assert caught.value.code == "INVALID_FILTER"
    assert message in caught.value.message


async def test_text_search_ranks_entries_matching_more_terms_first(
    container: Container, hospital: AccountScope
) -> None:
    page = await container.directories.search(
        hospital, "practitioners", query="find me cardiologists in Seattle who accept Medicare"
    )
    assert page.mode == "text"
    top = page.hits[0].entry.data
    assert (top["specialty"], top["city"]) == ("Cardiology", "Seattle")
    assert "Medicare" in top["insurance"]
    scores = [hit.score for hit in page.hits]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]


async def test_text_and_filters_combine(container: Container, hospital: AccountScope) -> None:
    page = await container.directories.search(
        hospital,
        "practitioners",
        query="heart arrhythmia",
        filters={"city": ["Seattle"], "insurance": ["medicare"]},
        limit=50,
    )
    assert page.hits
    for hit in page.hits:
        assert hit.entry.data["city"] == "Seattle"
        assert "Medicare" in hit.entry.data["insurance"]
        assert hit.entry.data["specialty"] == "Cardiology"


async def test_paging_visits_every_match_once(container: Container, hospital: AccountScope) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        page = await container.directories.search(
            hospital, "practitioners", query="Seattle", limit=7, cursor=cursor
        )
        seen += [hit.entry.external_id for hit in page.hits]
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = {r["id"] for r in practitioners(600) if r["city"] == "Seattle"}
    assert len(seen) == len(set(seen)) == len(expected)
    assert set(seen) == expected


async def test_unknown_directory_entry_and_cursor(
    container: Container, hospital: AccountScope
) -> None:
    with pytest.raises(NotFound) as caught:
        await container.directories.search(hospital, "products", query="x")
    assert caught.value.code == "DIRECTORY_NOT_FOUND"
    with pytest.raises(NotFound) as caught:
        await container.directories.get_entry(hospital, "practitioners", "nope")
    assert caught.value.code == "ENTRY_NOT_FOUND"
    with pytest.raises(InvalidRequest) as caught_cursor:
        await container.directories.search(hospital, "practitioners", cursor="garbage")
    assert caught_cursor.value.code == "INVALID_CURSOR"
    with pytest.raises(InvalidRequest) as caught_mode:
        await container.directories.search(hospital, "practitioners", query="x", mode="semantic")
    assert caught_mode.value.code == "SEMANTIC_SEARCH_UNAVAILABLE"


async def test_put_creates_then_replaces_and_delete_removes(
    container: Container, account: AccountScope
) -> None:
    await set_directories(container, account)
    data = {"name": "Dr. New", "specialty": "Cardiology", "city": "Seattle"}
    entry, created = await container.directories.put_entry(account, "practitioners", "n1", data)
    assert created
    assert entry.data == data
    entry, created = await container.directories.put_entry(
        account, "practitioners", "n1", {**data, "city": "Tacoma"}
    )
    assert not created
    assert entry.data["city"] == "Tacoma"
    assert entry.updated_at >= entry.created_at
    with pytest.raises(InvalidRequest) as caught:
        await container.directories.put_entry(account, "practitioners", "n1", {"name": "x"})
    assert caught.value.code == "INVALID_ENTRY"
    assert (await container.directories.get_entry(account, "practitioners", "n1")).data[
        "city"
    ] == "Tacoma"
    await container.directories.delete_entry(account, "practitioners", "n1")
    with pytest.raises(NotFound):
        await container.directories.delete_entry(account, "practitioners", "n1")
    assert await container.directories.count(account, "practitioners") == 0
    page = await container.directories.search(account, "practitioners", query="Tacoma")
    assert page.hits == []  # the full-text index forgot it too


async def test_concurrent_puts_of_one_new_id_create_it_once(
    container: Container, account: AccountScope
) -> None:
    await set_directories(container, account)
    barrier = asyncio.Barrier(20)

    async def put(index: int) -> bool:
        await barrier.wait()
        data = {"name": f"Dr. {index}", "specialty": "Cardiology"}
        _, created = await container.directories.put_entry(account, "practitioners", "race", data)
        return created

    created = await asyncio.gather(*(put(i) for i in range(20)))
    assert created.count(True) == 1
    assert await container.directories.count(account, "practitioners") == 1
    page = await container.directories.search(
        account, "practitioners", filters={"specialty": ["cardiology"]}
    )
    assert len(page.hits) == 1


async def test_concurrent_imports_of_the_same_ids_never_duplicate(
    container: Container, account: AccountScope
) -> None:
    await set_directories(container, account)
    config = await container.directories.schema(account, "practitioners")
    records = list(practitioners(300))
    rows = parse_entries(config, "practitioners", _jsonl(records), "jsonl")
    barrier = asyncio.Barrier(5)

    async def run() -> int:
        await barrier.wait()
        result = await container.directories.import_entries(account, "practitioners", config, rows)
        return result.created

    created = await asyncio.gather(*(run() for _ in range(5)))
    assert sum(created) == 300
    assert await container.directories.count(account, "practitioners") == 300
    page = await container.directories.search(
        account, "practitioners", filters={"city": ["seattle"]}, limit=100
    )
    assert len(page.hits) == sum(1 for r in records if r["city"] == "Seattle")


async def test_search_queries_use_the_indexes(container: Container, hospital: AccountScope) -> None:
    config = await container.directories.schema(hospital, "practitioners")
    filters = parse_filters(config, {"city": ["seattle"], "years_experience": ["5..20"]})
    async with container.uow(scope=hospital) as u:
        if u.dialect == "postgresql":  # statistics, as autovacuum would gather them
            await u.session.execute(text("ANALYZE directory_entries, directory_numbers"))
        repository = DirectoryRepository(u, "practitioners")
        statements = {
            "text": repository.search_statement(["cardiology"], filters),
            "filter": repository.search_statement([], filters),
            "text only": repository.search_statement(["cardiology"], []),
        }
        plans = {}
        for name, statement in statements.items():
            compiled = statement.compile(
                dialect=u.session.bind.dialect, compile_kwargs={"literal_binds": True}
            )
            if u.dialect == "postgresql":
                await u.session.execute(text("SET LOCAL enable_seqscan = off"))
                rows = await u.session.execute(text(f"EXPLAIN {compiled}"))
                plans[name] = "\n".join(str(r[0]) for r in rows)
            else:
                rows = await u.session.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
                plans[name] = "\n".join(str(r[-1]) for r in rows)
    if u.dialect == "postgresql":
        # The planner chooses between the GIN index (words and facet tokens at once) and the
        # account's unique index by cost; no plan scans a table.
        assert all("Seq Scan" not in plan for plan in plans.values()), plans
        async with container.uow(write=False) as u:
            gin = await u.session.execute(
                text(
                    "SELECT indexdef FROM pg_indexes "
                    "WHERE indexname = 'ix_directory_entries_search_vector'"
                )
            )
            assert "USING gin (search_vector)" in gin.scalar_one()
        return
    for plan in plans.values():
        assert "VIRTUAL TABLE INDEX" in plan  # FTS5: words and facet tokens in one lookup
    for plan in (plans["text"], plans["filter"]):
        assert "directory_numbers USING PRIMARY KEY" in plan or (
            "sqlite_autoindex_directory_numbers" in plan
        ), plan


def test_the_demo_config_declares_the_seeded_directories() -> None:
    """configs/demo/account.yaml and the seed (make run) describe the same directories."""
    import yaml

    from switchboard.directory.synthetic import DEMO_DIRECTORIES

    root = Path(__file__).resolve().parents[2]
    data = yaml.safe_load((root / "configs/demo/account.yaml").read_text(encoding="utf-8"))
    assert data["directories"] == DEMO_DIRECTORIES


async def test_seed_fills_the_demo_directory_once(container: Container) -> None:
    from switchboard.operations.seed import (
        DEMO_ACCOUNT,
        DEMO_PRACTITIONERS,
        DIRECTORY_AGENT,
        seed_demo,
    )

    await seed_demo(container)  # a server of another test may have seeded it already
    await seed_demo(container)  # a restart: nothing more
    found = await container.tenancy.get_account(DEMO_ACCOUNT)
    scope = AccountScope(found.id, found.slug)
    assert await container.directories.count(scope, "practitioners") == DEMO_PRACTITIONERS
    assert await container.directories.count(scope, "locations") == len(list(locations()))
    agent = await container.agents.resolve(scope, DIRECTORY_AGENT)
    assert agent.config.tools == ["search_directory", "get_directory_entry"]
    question = RunRequest(message="find me cardiologists in Seattle who accept Medicare")
    submitted = await container.runs.submit(scope, DIRECTORY_AGENT, question)
    assert submitted.local is not None
    outcome = await submitted.local.outcome
    assert outcome.done is not None, outcome
    top = outcome.done.reply.split("practitioners:", 1)[1].splitlines()[1]
    assert "specialty: Cardiology" in top
    assert "city: Seattle" in top
    assert "Medicare" in top


async def test_reindex_applies_a_changed_schema_all_or_nothing(
    container: Container, account: AccountScope
) -> None:
    from switchboard.directory.synthetic import PRACTITIONERS

    quiet_city = {
        **PRACTITIONERS,
        "semantic": False,
        "fields": {**PRACTITIONERS["fields"], "city": {"type": "keyword"}},
    }
    await set_directories(container, account, {"practitioners": quiet_city})
    await load(container, account, "practitioners", practitioners(200))
    seattle = {r["id"] for r in practitioners(200) if r["city"] == "Seattle"}

    async def by_text() -> set[str]:
        page = await container.directories.search(
            account, "practitioners", query="Seattle", mode="text", limit=100
        )
        return {hit.entry.external_id for hit in page.hits if hit.entry.data["city"] == "Seattle"}

    bios_only = await by_text()  # bios mention the city; the city field is not searchable yet
    loud_city = {**quiet_city, "fields": {**quiet_city["fields"], "city": {"type": "keyword", "searchable": True, "filterable": False}}}  # fmt: skip
    await set_directories(container, account, {"practitioners": loud_city})
    result = await container.directories.reindex(account, "practitioners")
    assert (result.total, result.created, result.updated) == (200, 0, 200)
    assert await by_text() == seattle >= bios_only
    with pytest.raises(InvalidRequest) as caught:  # city is not filterable any more
        await container.directories.search(account, "practitioners", filters={"city": ["x"]})
    assert caught.value.code == "INVALID_FILTER"

    stricter = {**loud_city, "fields": {**loud_city["fields"], "board_id": {"type": "keyword", "required": True}}}  # fmt: skip
    await set_directories(container, account, {"practitioners": stricter})
    with pytest.raises(InvalidRequest) as refused:
        await container.directories.reindex(account, "practitioners")
    assert refused.value.code == "INVALID_ENTRIES"
    assert refused.value.details["total_problems"] == 200
    assert refused.value.details["problems"][0] == {
        "row": 1,
        "field": "board_id",
        "message": "required",
    }
    assert await by_text() == seattle  # unchanged


async def test_a_put_during_a_reindex_is_not_overwritten(
    container: Container, account: AccountScope, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PUT starts after the reindex has read the entries: it must wait for the reindex to
    commit and then win, not be overwritten by the entry's older data."""
    await set_directories(container, account)
    await load(container, account, "practitioners", practitioners(20))
    target = next(iter(practitioners(1)))["id"]
    newer = {"name": "Dr. Newer", "specialty": "Neurology", "city": "Anchorage"}
    original = DirectoryRepository.locked_entries
    started: list[asyncio.Task[Any]] = []

    async def then_put(self: DirectoryRepository) -> Any:
        stored = await original(self)
        started.append(
            asyncio.create_task(
                container.directories.put_entry(account, "practitioners", target, newer)
            )
        )
        return stored

    monkeypatch.setattr(DirectoryRepository, "locked_entries", then_put)
    result = await container.directories.reindex(account, "practitioners")
    assert result.total == 20
    await started[0]
    entry = await container.directories.get_entry(account, "practitioners", target)
    assert entry.data == newer
    page = await container.directories.search(account, "practitioners", query="Anchorage")
    assert [hit.entry.external_id for hit in page.hits] == [target]
