"""``/readyz`` says ready only when what the server needs answers: here, the configured Redis."""

from __future__ import annotations

import httpx

from switchboard.settings import Settings
from tests.conftest import serving

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


async def _ready(settings: Settings) -> httpx.Response:
    async with serving(settings) as (_, http):
        return await http.get("/readyz")


async def test_readyz_is_503_while_the_configured_redis_is_unreachable(settings: Settings) -> None:
    response = await _ready(settings.model_copy(update={"redis_url": UNREACHABLE_REDIS}))
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "LIMITER_UNAVAILABLE"
    assert error["retryable"] is True
    assert "Retry-After" in response.headers
    assert "127.0.0.1:1" not in response.text  # no internal address for an unauthenticated caller


async def test_readyz_is_ready_when_the_configured_redis_answers(
    settings: Settings, redis_url: str
) -> None:
    response = await _ready(settings.model_copy(update={"redis_url": redis_url}))
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready"}
