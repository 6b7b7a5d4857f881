"""Bounded work per request and per config file (issue 11): no config can stall the server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from switchboard.config import cascade
from switchboard.config.bounds import MAX_ALIASES, MAX_OVERRIDE_BYTES, MAX_OVERRIDE_NODES
from switchboard.operations.config_tree import ConfigTreeInvalid, load_tree
from switchboard.settings import Settings
from tests.conftest import ADMIN, new_account, serving

PRICE = {"input_per_mtok": "0.15", "output_per_mtok": "0.6"}


def _largest_valid_prices() -> dict[str, object]:
    """As many prices as the override bounds allow (each entry is three keys)."""
    prices: dict[str, object] = {}
    while True:
        candidate = {**prices, f"model-{len(prices):05d}": PRICE}
        config = {"prices": candidate}
        nodes = 1 + 3 * len(candidate)
        if nodes > MAX_OVERRIDE_NODES or len(str(config)) > MAX_OVERRIDE_BYTES * 0.9:
            return {"prices": prices}
        prices = candidate


def test_merging_is_linear_in_the_size_of_the_layers() -> None:
    """20 000 keys took 20 s when every replacement scanned every known path."""
    wide = {f"k{i}": {"a": i, "b": [i]} for i in range(20_000)}
    layers = [cascade.Layer("one", wide), cascade.Layer("two", wide)]
    started = time.process_time()
    merged = cascade.merge(layers)
    assert time.process_time() - started < 2.0
    assert merged.sources["k19999.a"] == "two"
    _, problems = cascade.validate(merged)
    assert len(problems) == cascade.MAX_PROBLEMS  # reported, bounded


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "alias bomb",
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n"
                for i in range(8)
            ),
            "once aliases expand",
        ),
        (
            "many aliases",
            "a: &a 1\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n",
            f"more than {MAX_ALIASES} aliases",
        ),
        ("deep nesting", "a: " + "[" * 3000 + "]" * 3000 + "\n", "nested deeper"),
        (
            "deep mapping",
            "".join(f"{' ' * i}k{i}:\n" for i in range(40)) + " " * 40 + "v\n",
            "nested deeper",
        ),
    ],
)
def test_hostile_config_files_are_reported_with_their_file(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    (tmp_path / "global.yaml").write_text(text, encoding="utf-8")
    started = time.process_time()
    with pytest.raises(ConfigTreeInvalid) as caught:
        load_tree(tmp_path)
    assert time.process_time() - started < 2.0, name
    [problem] = caught.value.problems
    assert problem.source.endswith("global.yaml")
    assert expected in problem.message, problem.message


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("too many keys", {"prices": {f"m{i}": PRICE for i in range(MAX_OVERRIDE_NODES)}}),
        ("too deep", {"x": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}}),
        ("too large", {"system_prompt": "x" * (MAX_OVERRIDE_BYTES + 10)}),
    ],
)
async def test_oversized_overrides_are_refused_before_any_work(
    client: httpx.AsyncClient, name: str, config: dict[str, object]
) -> None:
    slug, _ = await new_account(client)
    response = await client.post(
        f"/v1/accounts/{slug}/agents", headers=ADMIN, json={"slug": "big", "config": config}
    )
    listed = await client.get(f"/v1/accounts/{slug}/agents", headers=ADMIN)
    assert response.status_code == 422, (name, response.text)
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert listed.json()["items"] == []


async def test_the_largest_allowed_config_never_stalls_healthz(settings: Settings) -> None:
    """While the largest config the limits allow is registered, patched and resolved (its
    merge, validation and tool and model checks run on the event loop), /healthz answers
    within 50 ms."""
    config = _largest_valid_prices()
    assert len(config["prices"]) > 500  # type: ignore[arg-type]
    async with serving(settings) as (_, client):
        slug, _ = await new_account(client)
        base = f"/v1/accounts/{slug}/agents"
        stop = asyncio.Event()
        latencies: list[float] = []

        async def probe() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                response = await client.get("/healthz")
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200
                await asyncio.sleep(0.005)

        async def work() -> None:
            for i in range(5):
                made = await client.post(
                    base, headers=ADMIN, json={"slug": f"big-{i}", "config": config}
                )
                assert made.status_code == 201, made.text
                resolved = await client.get(f"{base}/big-{i}/config", headers=ADMIN)
                assert resolved.status_code == 200
            stop.set()

        await asyncio.gather(probe(), work())
    assert len(latencies) >= 5
    assert max(latencies) < 0.05, sorted(latencies)[-5:]
