"""Real HTTP on loopback: Switchboard under uvicorn in the test's event loop, and the fake
provider as its own process (``switchboard fake-provider``)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from switchboard.app import create_app
from switchboard.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[str]:
    async with live_app(settings) as (base, _):
        yield base


@asynccontextmanager
async def live_app(settings: Settings) -> AsyncIterator[tuple[str, FastAPI]]:
    """The app served on a free loopback port: its base URL, and the app (for its state)."""
    port = free_port()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
        timeout_keep_alive=60,  # no idle-close race with the test's pooled connections
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 20
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await task


class FakeProviderProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "switchboard", "fake-provider", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.url}/_stats", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the fake provider did not start") from None
                time.sleep(0.1)

    async def stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{self.url}/_stats")).json()  # type: ignore[no-any-return]

    async def reset(self, **behaviour: Any) -> None:
        defaults: dict[str, Any] = {
            "latency_s": 0.0,
            "stream_pacing_s": 0.0,
            "parallel_tool_calls": 2,
            "rate_429": 0.0,
            "rate_500": 0.0,
            "rate_503": 0.0,
            "rate_400": 0.0,
            "rate_hang": 0.0,
            "rate_cut": 0.0,
        }
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{self.url}/_config", json=defaults | behaviour)
            response.raise_for_status()
            (await client.post(f"{self.url}/_stats/reset")).raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=3)
        if self.process.stderr is not None:
            self.process.stderr.close()  # else a ResourceWarning when the object is collected
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()  # else an unclosed-file ResourceWarning fails a test


PRICE = {"input_per_mtok": "0.15", "output_per_mtok": "0.60", "cached_input_per_mtok": "0.075"}


def fake_agent_body(
    slug: str,
    fake_url: str,
    *,
    tools: list[str] | None = None,
    provider: str = "fake",
    limits: dict[str, Any] | None = None,
    **config: Any,
) -> dict[str, Any]:
    provider_config = {"base_url": f"{fake_url}/v1", "continuous_usage_stats": True}
    return {
        "slug": slug,
        "model": f"{provider}:fake-model",
        "tools": tools or [],
        "config": {
            "providers": {provider: provider_config | (limits or {})},
            "prices": {"fake-model": PRICE},
            **config,
        },
    }


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """Parse a Server-Sent Events response into (event, data) pairs."""
    event, data = "message", []
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            yield event, json.loads("\n".join(data))
            event, data = "message", []


async def sse_with_ids(response: httpx.Response) -> AsyncIterator[tuple[int | None, str, Any]]:
    """Parse a Server-Sent Events response into (id, event, data) triples."""
    event_id: int | None = None
    event, data = "message", []
    async for line in response.aiter_lines():
        if line.startswith("id:"):
            event_id = int(line[3:].strip())
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            yield event_id, event, json.loads("\n".join(data))
            event_id, event, data = None, "message", []


class ServerProcess:
    """``switchboard serve`` as its own process (crash tests, several processes, benchmarks).
    Its log goes to a temporary file — a pipe nobody reads would fill up and stall it — and is
    shown if the server dies before it is ready."""

    def __init__(
        self,
        database_url: str,
        *,
        admin_key: str,
        port: int | None = None,
        seed: bool = True,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "switchboard", "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(  # noqa: S603 - our own CLI
            [*command, *([] if seed else ["--no-seed"]), *(args or [])],
            env={
                **os.environ,
                "SWITCHBOARD_DATABASE_URL": database_url,
                "SWITCHBOARD_ADMIN_KEY": admin_key,
                "SWITCHBOARD_EMBEDDER": "none",  # no model load at start (the demo directory)
                **(env or {}),
            },
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    async def ready(self, *, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited:\n{self._tail()}")
                try:
                    if (await http.get(f"{self.url}/readyz", timeout=1)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"the server did not become ready:\n{self._tail()}")

    def _tail(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
