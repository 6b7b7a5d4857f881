from __future__ import annotations

import typer
import uvicorn

from switchboard.cli.common import console
from switchboard.fakeprovider.app import create_fake_provider
from switchboard.fakeprovider.behaviour import Behaviour


def fake_provider(
    port: int = typer.Option(9100, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Bind address."),
    latency_ms: float = typer.Option(0, help="Delay before each response."),
    stream_pacing_ms: float = typer.Option(0, help="Delay between stream chunks."),
    parallel_tool_calls: int = typer.Option(2, help="Tools called at once per response."),
    rate_429: float = typer.Option(0, help="Share of calls answered 429 (with Retry-After)."),
    retry_after_s: float = typer.Option(1, help="Retry-After sent with 429s."),
    rate_500: float = typer.Option(0, help="Share of calls answered 500."),
    rate_503: float = typer.Option(0, help="Share of calls answered 503."),
    rate_400: float = typer.Option(0, help="Share of calls answered 400."),
    rate_hang: float = typer.Option(0, help="Share of calls that never answer."),
    rate_cut: float = typer.Option(0, help="Share of streams cut half-way."),
    seed: int = typer.Option(0, help="Seed of the fault injection."),
) -> None:
    """Run an OpenAI-compatible fake LLM provider (tests, demos, load tests).

    Point a provider at it in config: providers: {fake: {base_url: http://127.0.0.1:9100/v1}}
    and use model 'fake:any-name'. GET /_stats shows what it served.
    """
    behaviour = Behaviour(
        latency_s=latency_ms / 1000,
        stream_pacing_s=stream_pacing_ms / 1000,
        parallel_tool_calls=parallel_tool_calls,
        rate_429=rate_429,
        retry_after_s=retry_after_s,
        rate_500=rate_500,
        rate_503=rate_503,
        rate_400=rate_400,
        rate_hang=rate_hang,
        rate_cut=rate_cut,
        seed=seed,
    )
    console.print(f"fake provider on http://{host}:{port}/v1  (stats: /_stats)")
    uvicorn.run(
        create_fake_provider(behaviour),
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
