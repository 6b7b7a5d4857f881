"""Semantic and hybrid directory search with the local all-MiniLM-L6-v2 model (the 'semantic'
extra), on SQLite and PostgreSQL. With SWITCHBOARD_TEST_REQUIRE_SEMANTIC=1 (CI) a missing
extra fails the run instead of skipping."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from switchboard.bootstrap import Container, build_container
from switchboard.db.uow import AccountScope
from switchboard.directory.embedding import semantic_installed
from switchboard.directory.synthetic import practitioners
from tests.conftest import make_settings, unique
from tests.directories import load, set_directories


@pytest.fixture
async def semantic(database_url: str) -> AsyncIterator[tuple[Container, AccountScope]]:
    if not await asyncio.to_thread(semantic_installed):
        message = "the semantic extra is not installed (pip install -e '.[semantic]')"
        if os.environ.get("SWITCHBOARD_TEST_REQUIRE_SEMANTIC") == "1":
            pytest.fail(message)
        pytest.skip(message)
    container = await build_container(make_settings(database_url, embedder="minilm"))
    try:
        created = await container.tenancy.create_account(slug=unique("sem"), name="Semantic")
        scope = AccountScope(created.id, created.slug)
        await set_directories(container, scope)
        await load(container, scope, "practitioners", practitioners(300))
        yield container, scope
    finally:
        await container.aclose()


@pytest.mark.parametrize(
    ("query", "specialty"),
    [
        ("kids doctor", "Pediatrics"),
        ("my chest hurts", "Cardiology"),
        ("trouble sleeping and feeling sad", "Psychiatry"),
    ],
)
async def test_semantic_search_finds_meaning_without_shared_words(
    semantic: tuple[Container, AccountScope], query: str, specialty: str
) -> None:
    container, scope = semantic
    page = await container.directories.search(
        scope, "practitioners", query=query, mode="semantic", limit=5
    )
    assert page.mode == "semantic"
    assert [hit.entry.data["specialty"] for hit in page.hits] == [specialty] * 5
    scores = [hit.score or 0.0 for hit in page.hits]
    assert scores == sorted(scores, reverse=True)
    assert 0 < scores[-1] <= scores[0] <= 1


async def test_auto_mode_is_hybrid_and_respects_filters(
    semantic: tuple[Container, AccountScope],
) -> None:
    container, scope = semantic
    page = await container.directories.search(
        scope,
        "practitioners",
        query="heart doctor who speaks Spanish",
        filters={"city": ["Seattle", "Tacoma", "Bellevue"]},
        limit=5,
    )
    assert page.mode == "hybrid"
    assert page.hits
    assert all(hit.entry.data["city"] in ("Seattle", "Tacoma", "Bellevue") for hit in page.hits)
    assert page.hits[0].entry.data["specialty"] == "Cardiology"
    text_only = await container.directories.search(
        scope, "practitioners", query="kids doctor", mode="text", limit=5
    )
    assert text_only.hits == []  # no shared word: only meaning finds them
    hybrid = await container.directories.search(scope, "practitioners", query="kids doctor")
    assert hybrid.hits[0].entry.data["specialty"] == "Pediatrics"


async def test_imports_and_puts_store_embeddings(
    semantic: tuple[Container, AccountScope],
) -> None:
    container, scope = semantic
    data = {"name": "Dr. Sole", "specialty": "Podiatry", "bio": "Treats foot and ankle pain."}
    await container.directories.put_entry(scope, "practitioners", "podiatrist", data)
    page = await container.directories.search(
        scope, "practitioners", query="my feet ache", mode="semantic", limit=1
    )
    assert [hit.entry.external_id for hit in page.hits] == ["podiatrist"]
    config = await container.directories.schema(scope, "practitioners")
    from switchboard.directory.rows import validate_rows

    rows = validate_rows(config, "practitioners", enumerate(practitioners(3), start=1))
    result = await container.directories.import_entries(scope, "practitioners", config, rows)
    assert result.embedded == 3


async def test_unrelated_queries_find_nothing_rather_than_the_nearest_anything(
    semantic: tuple[Container, AccountScope],
) -> None:
    container, scope = semantic
    for mode in ("semantic", "hybrid"):
        page = await container.directories.search(
            scope,
            "practitioners",
            query="zebra migration patterns",
            mode=mode,  # type: ignore[arg-type]
        )
        assert page.hits == [], mode
    related = await container.directories.search(
        scope, "practitioners", query="heart doctor", mode="semantic", limit=100
    )
    assert len(related.hits) == 100
    assert all((hit.score or 0) >= 0.2 for hit in related.hits)


async def test_reindex_reuses_embeddings_of_unchanged_text(
    semantic: tuple[Container, AccountScope], monkeypatch: pytest.MonkeyPatch
) -> None:
    container, scope = semantic
    embedder = container.directories.embedder
    assert embedder is not None
    embedded: list[int] = []
    original = embedder.embed

    async def counting(texts: list[str]) -> object:
        embedded.append(len(texts))
        return await original(texts)

    monkeypatch.setattr(embedder, "embed", counting)
    await container.directories.put_entry(
        scope, "practitioners", "prac-000001", {"name": "Dr. Changed", "specialty": "Podiatry"}
    )
    embedded.clear()
    result = await container.directories.reindex(scope, "practitioners")
    assert (result.total, result.embedded) == (300, 300)
    assert embedded == []  # every text is as stored: nothing to embed again
    page = await container.directories.search(
        scope, "practitioners", query="kids doctor", mode="semantic", limit=5
    )
    assert [hit.entry.data["specialty"] for hit in page.hits] == ["Pediatrics"] * 5
