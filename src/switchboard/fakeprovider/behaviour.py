"""What the fake provider does, and what it counted (the provider-side truth)."""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(slots=True)
class Behaviour:
    latency_s: float = 0.0  # before the first byte
    stream_pacing_s: float = 0.0  # between stream chunks
    parallel_tool_calls: int = 2  # tools called at once when the last message is the user's
    rate_429: float = 0.0
    retry_after_s: float = 1.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_400: float = 0.0
    rate_hang: float = 0.0  # never answers (until the client gives up)
    rate_cut: float = 0.0  # streams stop half-way, without usage or [DONE]
    seed: int = 0

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name: f.type for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown setting '{name}'")
            current = getattr(self, name)
            setattr(self, name, type(current)(value))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


RESPONSES_KEPT = 20_000


@dataclass(slots=True)
class Stats:
    requests_total: int = 0
    in_flight: int = 0
    in_flight_max: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    # What each response served (the last RESPONSES_KEPT): status 200 | cut | cancelled, and the
    # tokens sent — for a cut or cancelled stream, the completion tokens sent before it ended.
    responses: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)

    def served(
        self, response_id: str, *, status: str, prompt_tokens: int, completion_tokens: int
    ) -> None:
        self.responses[response_id] = {
            "status": status,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
        }
        while len(self.responses) > RESPONSES_KEPT:
            self.responses.popitem(last=False)

    def enter(self) -> None:
        self.requests_total += 1
        self.in_flight += 1
        self.in_flight_max = max(self.in_flight_max, self.in_flight)

    def leave(self) -> None:
        self.in_flight -= 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "in_flight": self.in_flight,
            "in_flight_max": self.in_flight_max,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "by_status": dict(self.by_status),
        }
