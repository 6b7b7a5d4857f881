"""Schemathesis over ``/openapi.json``: every operation, on SQLite and PostgreSQL, with the admin
key and with an account key. Rule 8: a client's input never gets a 5xx (other than a deliberate
503 with a stable code), and every answer conforms to the documented status codes, content types
and schemas.

The server is the real one (``switchboard serve`` in its own process, on a fresh database, with
the demo account seeded on first start), so operations reach real code: most generated cases
target the demo account, its ``assistant`` agent and the seeded ``practitioners`` directory;
others use generated paths (404s) or data that violates the schema (4xx).

Bounded: ``SWITCHBOARD_FUZZ_EXAMPLES`` cases per operation, key and backend (50: 6 000 requests,
about two minutes here), derandomised so a run is reproducible; raise it and set
``SWITCHBOARD_FUZZ_SEED`` locally to fuzz harder and differently. Every failure of a run is
collected (not only the first), with its curl reproduction and the server log's tail.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from switchboard.app import create_app
from tests.conftest import ADMIN, ADMIN_KEY, BACKENDS, fresh_database, make_settings
from tests.live import free_port

EXAMPLES = int(os.environ.get("SWITCHBOARD_FUZZ_EXAMPLES", "50"))
# Unset: derandomised (the same cases every run). Set: a different, reproducible run per seed.
SEED = os.environ.get("SWITCHBOARD_FUZZ_SEED")
SPEC: dict[str, Any] = create_app(make_settings("sqlite+aiosqlite:///:memory:")).openapi()
SCHEMA = schemathesis.openapi.from_dict(SPEC)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# A deliberate 503 carries one of these codes (and Retry-After); anything else ≥ 500 is a bug.
DELIBERATE_503 = {
    "DATABASE_BUSY",
    "DATABASE_UNAVAILABLE",
    "BUDGET_BUSY",
    "LIMITER_UNAVAILABLE",
    "PROVIDER_BUSY",
    "STARTING",
}

DEMO = "demo"
SCRATCH_AGENT = "fuzz-scratch"  # PATCH and DELETE target this one, so chats keep an agent
OPERATIONS = [f"{method.upper()} {path}" for path, item in SPEC["paths"].items() for method in item]

# Findings the fuzzer reproduces that are owned (and being fixed) elsewhere, per operation and
# check: a run whose only failures are listed here is an expected failure with its reason, never
# a skip; any other failure still fails it. None shows with the default (derandomised) cases.
KNOWN: dict[tuple[str, str], str] = {}


@dataclass
class FuzzTarget:
    base_url: str
    log: Path
    headers: dict[str, dict[str, str]]
    path_parameters: dict[str, str]
    examples_run: dict[str, int] = field(default_factory=dict)

    def log_tail(self, lines: int = 60) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])


def _wait_until_seeded(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    last_entry = f"{base}/v1/accounts/{DEMO}/directories/practitioners/entries/prac-001000"
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text(encoding='utf-8')}")
        try:
            if (
                httpx.get(f"{base}/readyz", timeout=2).status_code == 200
                and httpx.get(last_entry, headers=ADMIN, timeout=2).status_code == 200
            ):
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not seed in time:\n{log.read_text('utf-8')}")
        time.sleep(0.2)


def _fixture_data(base: str) -> tuple[dict[str, str], dict[str, str]]:
    """An account key for the demo account, a scratch agent and a conversation."""
    with httpx.Client(base_url=base, headers=ADMIN, timeout=30) as http:
        key = http.post(f"/v1/accounts/{DEMO}/keys", json={"name": "fuzz"})
        assert key.status_code == 201, key.text
        account_headers = {"Authorization": f"Bearer {key.json()['key']}"}
        agent = http.post(
            f"/v1/accounts/{DEMO}/agents", json={"slug": SCRATCH_AGENT, "model": "demo"}
        )
        assert agent.status_code == 201, agent.text
        chat = http.post(
            f"/v1/accounts/{DEMO}/agents/assistant/chat", json={"message": "What is 6*7?"}
        )
        assert chat.status_code == 200, chat.text
        conversation = str(chat.json()["conversation_id"])
    return account_headers, {"conversation_id": conversation}


def _start_server(url: str, folder: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log = folder / "server.log"
    env = os.environ | {
        "SWITCHBOARD_DATABASE_URL": url,
        "SWITCHBOARD_ADMIN_KEY": ADMIN_KEY,
        "SWITCHBOARD_EMBEDDER": "none",
    }
    env.pop("SWITCHBOARD_REDIS_URL", None)
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "switchboard", "serve", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_seeded(base, process, log)
    except BaseException:
        _stop(process)
        raise
    return process, base, log


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module", params=BACKENDS)
async def fuzz_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FuzzTarget]:
    """``switchboard serve`` on a fresh database of the backend, seeded on its first start."""
    folder = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    async with fresh_database(request.param, folder) as url:
        process, base, log = await asyncio.to_thread(_start_server, url, folder)
        try:
            account_headers, extra = await asyncio.to_thread(_fixture_data, base)
            yield FuzzTarget(
                base_url=base,
                log=log,
                headers={"admin": ADMIN, "account": account_headers},
                path_parameters={
                    "account": DEMO,
                    "agent": "assistant",
                    "directory": "practitioners",
                    "entry_id": "prac-000001",
                    **extra,
                },
            )
        finally:
            await asyncio.to_thread(_stop, process)


def _fixed_parameters(target: FuzzTarget, operation: str) -> dict[str, str]:
    method, path = operation.split(" ", 1)
    wanted = {name for name in target.path_parameters if "{" + name + "}" in path}
    fixed = {name: target.path_parameters[name] for name in wanted}
    if method in ("PATCH", "DELETE") and "agent" in fixed:
        fixed["agent"] = SCRATCH_AGENT
    if method in ("PUT", "DELETE") and "entry_id" in fixed:
        fixed["entry_id"] = "prac-000002"
    return fixed


def _describe(failure: BaseException, case: Any, response: requests.Response | None) -> str:
    status = response.status_code if response is not None else "no response"
    body = response.text[:300] if response is not None else ""
    title = failure.title if isinstance(failure, Failure) else type(failure).__name__
    return f"{title} [{status}]: {body}\n    {case.as_curl_command()}"


def _seeded(test: Callable[[], None]) -> Callable[[], None]:
    return hypothesis.seed(int(SEED))(test) if SEED is not None else test


def _is_deliberate_503(response: requests.Response) -> bool:
    if response.status_code != 503 or "Retry-After" not in response.headers:
        return False
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return False
    return code in DELIBERATE_503


@pytest.mark.parametrize("key", ["admin", "account"])
@pytest.mark.parametrize("operation", OPERATIONS)
def test_fuzz(fuzz_target: FuzzTarget, key: str, operation: str) -> None:
    method, path = operation.split(" ", 1)
    api_operation = SCHEMA[path][method]
    fixed = _fixed_parameters(fuzz_target, operation)
    headers = fuzz_target.headers[key]
    # Mostly the seeded resources with a valid key, so cases reach real code; some with
    # generated paths and credentials (404, 401).
    strategy = st.one_of(
        api_operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed, headers=headers),
        api_operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed, headers=headers),
        api_operation.as_strategy(GenerationMode.POSITIVE, headers=headers),
        api_operation.as_strategy(GenerationMode.POSITIVE),
    )
    failures: dict[str, str] = {}
    session = requests.Session()
    count = 0

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=SEED is None,
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @_seeded
    @hypothesis.given(case=strategy)
    def run(case: Any) -> None:
        nonlocal count
        count += 1
        response = None
        try:
            response = case.call(base_url=fuzz_target.base_url, session=session, timeout=30)
            if _is_deliberate_503(response):
                return
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                failures.setdefault(failure.title, _describe(failure, case, response))
        except Failure as failure:
            failures.setdefault(failure.title, _describe(failure, case, response))
        except requests.RequestException as exc:
            failures.setdefault(type(exc).__name__, _describe(exc, case, response))

    try:
        run()
    finally:
        session.close()
    unexpected = {
        title: text for title, text in failures.items() if (operation, title) not in KNOWN
    }
    assert not unexpected, (
        f"{operation} with the {key} key: {len(unexpected)} kinds of failure in {count} cases\n"
        + "\n".join(f"- {text}" for text in unexpected.values())
        + f"\n--- server log (tail) ---\n{fuzz_target.log_tail()}"
    )
    if failures:
        pytest.xfail("; ".join(KNOWN[operation, title] for title in failures))
