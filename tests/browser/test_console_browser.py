"""Issue 16: the console in a real headless browser — Debian's chromium-headless-shell driven by
Playwright (``executable_path``; no browser download) against the server on real HTTP, with the
fake provider behind it. Screenshots of each page go to ``var/test-artifacts/console/``
(SWITCHBOARD_TEST_ARTIFACTS).

Without the browser the test is skipped, unless SWITCHBOARD_TEST_REQUIRE_BROWSER=1 (CI), where it
fails."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.conftest import ADMIN, ADMIN_KEY, fresh_database, make_settings, unique
from tests.live import FakeProviderProcess, fake_agent_body, live_app

BROWSER = os.environ.get("SWITCHBOARD_TEST_BROWSER", "/usr/bin/chromium-headless-shell")
REQUIRE_BROWSER = os.environ.get("SWITCHBOARD_TEST_REQUIRE_BROWSER") == "1"
ARTIFACTS = Path(os.environ.get("SWITCHBOARD_TEST_ARTIFACTS", "var/test-artifacts")) / "console"
TIMEOUT_MS = 15_000
STATUS_IS = "s => document.querySelector('[data-testid=run-status]').textContent.trim() === s"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not await asyncio.to_thread(Path(BROWSER).exists):
        reason = f"no headless Chromium at {BROWSER} (apt-get install chromium-headless-shell)"
        if REQUIRE_BROWSER:
            pytest.fail(f"the browser tests are required: {reason}")
        pytest.skip(reason)
    await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=BROWSER)
        try:
            yield launched
        finally:
            await launched.close()


async def _tenant(http: httpx.AsyncClient, fake: FakeProviderProcess) -> tuple[str, str]:
    slug = unique("ui")
    assert (
        await http.post("/v1/accounts", json={"slug": slug, "name": slug}, headers=ADMIN)
    ).status_code == 201
    key = (await http.post(f"/v1/accounts/{slug}/keys", json={}, headers=ADMIN)).json()["key"]
    body = fake_agent_body("bot", fake.url, tools=["current_time"])
    created = await http.post(f"/v1/accounts/{slug}/agents", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    return slug, key


async def _log_in(page: Page, base: str, key: str) -> None:
    await page.goto(f"{base}/ui/")
    assert page.url.startswith(f"{base}/ui/login")  # sent to log in first
    await page.fill("input[name=key]", key)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/ui/")


async def _shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_the_console_in_a_real_browser(
    browser: Browser, fake: FakeProviderProcess, tmp_path: Path
) -> None:
    async with (
        fresh_database("sqlite", tmp_path) as url,
        live_app(make_settings(url)) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=30) as http,
    ):
        slug, key = await _tenant(http, fake)
        other, _ = await _tenant(http, fake)
        auth = {"Authorization": f"Bearer {key}"}
        chats = []
        for text in ("what time is it?", "and now?"):
            chat = await http.post(
                f"/v1/accounts/{slug}/agents/bot/chat", json={"message": text}, headers=auth
            )
            assert chat.status_code == 200, chat.text
            chats.append(chat.json())
        ledger = (await http.get(f"/v1/accounts/{slug}/llm-requests", headers=auth)).json()
        total_rows = len(ledger["items"])
        first_run_rows = [r for r in ledger["items"] if r["run_id"] == chats[0]["run_id"]]
        assert 0 < len(first_run_rows) < total_rows

        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await _log_in(page, base, key)

        # The overview: one point per day of the range, the calls of today all there.
        await page.wait_for_function("window.sbCharts && window.sbCharts.calls")
        points = await page.evaluate("window.sbCharts.calls.data[0].length")
        assert points == 30
        charted: Any = await page.evaluate(
            "window.sbCharts.calls.data.slice(1).map(s => s[s.length - 1])"
        )
        assert max(charted) == total_rows  # stacked: the top series is the day's total
        assert await page.locator("canvas").count() >= 3
        await _shot(page, "overview")

        # The ledger: a filter narrows the rows.
        await page.goto(f"{base}/ui/accounts/{slug}/ledger")
        rows = page.locator("[data-testid=ledger-rows] tbody tr[data-row-id]")
        assert await rows.count() == total_rows
        await page.fill("input[name=run_id]", chats[0]["run_id"])
        await page.click("[data-testid=ledger-filters] button[type=submit]")
        await page.wait_for_url(f"**/ledger?*run_id={chats[0]['run_id']}*")
        assert await rows.count() == len(first_run_rows)
        await _shot(page, "ledger-filtered")

        # A conversation shows its tool calls and their results, with each turn's cost.
        await page.goto(f"{base}/ui/accounts/{slug}/conversations/{chats[0]['conversation_id']}")
        assert await page.locator("[data-testid=tool-call]").count() >= 1
        assert await page.locator("[data-testid=tool-result]").count() >= 1
        assert "current_time" in await page.locator("[data-testid=tool-call]").first.inner_text()
        assert "$" in await page.locator("[data-testid=turn-cost]").first.inner_text()
        await _shot(page, "conversation")

        # Cancelling a live run from its page makes it cancelled.
        await fake.reset(latency_s=60)
        started = await http.post(
            f"/v1/accounts/{slug}/agents/bot/runs",
            json={"message": "take your time", "background": True},
            headers=auth,
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        await page.goto(f"{base}/ui/accounts/{slug}/runs/{run_id}")
        status = page.locator("[data-testid=run-status]")
        await page.wait_for_function(STATUS_IS, arg="running")
        await _shot(page, "run-live")
        await page.click("[data-testid=cancel-run]")
        await page.wait_for_function(STATUS_IS, arg="cancelled")
        assert (await status.inner_text()).strip() == "cancelled"
        await fake.reset()
        run = await http.get(f"/v1/accounts/{slug}/agents/bot/runs/{run_id}", headers=auth)
        assert run.json()["status"] == "cancelled"
        await _shot(page, "run-cancelled")

        # An account key cannot open another account's pages.
        for path in ("", "/ledger", "/conversations", "/runs"):
            response = await page.goto(f"{base}/ui/accounts/{other}{path}")
            assert response is not None
            assert response.status == 404, path
        await _shot(page, "other-account-404")

        # The operator logs in with the admin key and sees both accounts.
        operator = await (await browser.new_context()).new_page()
        await _log_in(operator, base, ADMIN_KEY)
        await operator.goto(f"{base}/ui/accounts")
        text = await operator.locator("main").inner_text()
        assert slug in text
        assert other in text
        await operator.goto(f"{base}/ui/limits")
        assert "fake" in await operator.locator("[data-testid=limits]").inner_text()
        await _shot(operator, "limits")
        assert errors == []
        await context.close()
