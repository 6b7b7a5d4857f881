"""Prices as exact integers. Money is nano-USD (1e-9 USD) everywhere: never a float.

Lookup order for a model: the config cascade's ``prices`` → Switchboard's built-in prices (the
offline ``demo`` model) → genai-prices' bundled table → unpriced (tokens recorded, cost 0 and
``priced = false``, never a silent zero).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Protocol

from genai_prices import Usage, calc_price

NANO_PER_USD = Decimal(1_000_000_000)
MTOK = Decimal(1_000_000)


class Rates(Protocol):
    """USD per million tokens (the config's ``prices`` entries have this shape)."""

    @property
    def input_per_mtok(self) -> Decimal: ...
    @property
    def output_per_mtok(self) -> Decimal: ...
    @property
    def cached_input_per_mtok(self) -> Decimal | None: ...


@dataclass(frozen=True, slots=True)
class Price:
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None = None


BUILTIN_PRICES: dict[str, Price] = {
    # The offline demo model is billed like a small hosted model, so the ledger has real numbers.
    "demo": Price(
        input_per_mtok=Decimal("0.15"),
        output_per_mtok=Decimal("0.60"),
        cached_input_per_mtok=Decimal("0.075"),
    ),
}


@dataclass(frozen=True, slots=True)
class Cost:
    nano_usd: int
    priced: bool


def usd_to_nano(usd: Decimal) -> int:
    return int((usd * NANO_PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))


def nano_to_usd_str(nano: int) -> str:
    """A decimal string such as ``"0.000123450"`` (nine places, exact)."""
    return f"{(Decimal(nano) / NANO_PER_USD).quantize(Decimal('0.000000001')):f}"


def price_of(
    *,
    model: str,
    provider: str,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int,
    overrides: Mapping[str, Rates],
) -> Cost:
    """The cost of one call. ``input_tokens`` includes ``cached_tokens`` (as providers report)."""
    table_price: Rates | None = overrides.get(model) or BUILTIN_PRICES.get(model)
    if table_price is not None:
        cached_rate = table_price.cached_input_per_mtok
        if cached_rate is None:
            cached_rate = table_price.input_per_mtok
        uncached = max(input_tokens - cached_tokens, 0)
        usd = (
            Decimal(uncached) * table_price.input_per_mtok
            + Decimal(cached_tokens) * cached_rate
            + Decimal(output_tokens) * table_price.output_per_mtok
        ) / MTOK
        return Cost(nano_usd=usd_to_nano(usd), priced=True)
    try:
        calculation = calc_price(
            Usage(
                input_tokens=input_tokens,
                cache_read_tokens=cached_tokens or None,
                output_tokens=output_tokens,
            ),
            model,
            provider_id=provider if provider not in ("", "custom") else None,
        )
    except LookupError:
        return Cost(nano_usd=0, priced=False)
    return Cost(nano_usd=usd_to_nano(Decimal(calculation.total_price)), priced=True)
