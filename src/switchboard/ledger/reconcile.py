"""Reconciliation: the ledger against a provider's own counters (the fake provider's
``GET /_stats``). Calls are compared one for one; tokens are compared where the provider counts
them — answered calls whose usage it reported. Partial and estimated usage (cut, cancelled,
interrupted calls) is listed apart, so the report says which cost is measured and which is
estimated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from switchboard.ledger.schemas import TotalsRow


@dataclass(frozen=True, slots=True)
class Line:
    what: str
    ledger: int
    provider: int | None  # None: the provider does not count it (informational)

    @property
    def differs(self) -> bool:
        return self.provider is not None and self.ledger != self.provider


@dataclass(frozen=True, slots=True)
class Reconciliation:
    lines: list[Line] = field(default_factory=list)
    measured_cost_nano_usd: int = 0
    estimated_cost_nano_usd: int = 0

    @property
    def differences(self) -> list[Line]:
        return [line for line in self.lines if line.differs]

    @property
    def ok(self) -> bool:
        return not self.differences


def _sum(rows: list[TotalsRow], attribute: str) -> int:
    return sum(int(getattr(row, attribute)) for row in rows)


def reconcile(totals: list[TotalsRow], stats: Mapping[str, Any]) -> Reconciliation:
    answered = [r for r in totals if r.status == "complete" and r.usage_source == "reported"]
    pending = [r for r in totals if r.status == "pending"]
    partial = [r for r in totals if r.usage_source == "partial"]
    estimated = [r for r in totals if r.usage_source == "estimated" and r.status != "pending"]
    by_status = stats.get("by_status") or {}
    lines = [
        Line("calls", _sum(totals, "requests"), int(stats.get("requests_total", 0))),
        Line("calls still pending", _sum(pending, "requests"), 0),
        Line("answered calls", _sum(answered, "requests"), int(by_status.get("200", 0))),
        Line("input tokens (answered)", _sum(answered, "input_tokens"), stats["prompt_tokens"]),
        Line(
            "output tokens (answered)", _sum(answered, "output_tokens"), stats["completion_tokens"]
        ),
        Line("calls with partial usage", _sum(partial, "requests"), None),
        Line("calls with estimated usage", _sum(estimated, "requests"), None),
        Line("estimated input tokens", _sum(estimated, "input_tokens"), None),
        Line("estimated output tokens", _sum(estimated, "output_tokens"), None),
    ]
    estimated_cost = _sum([r for r in totals if r.usage_source == "estimated"], "cost_nano_usd")
    return Reconciliation(
        lines=lines,
        measured_cost_nano_usd=_sum(totals, "cost_nano_usd") - estimated_cost,
        estimated_cost_nano_usd=estimated_cost,
    )
