from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from switchboard.config.schema import PriceConfig
from switchboard.money import nano_to_usd_str, price_of, usd_to_nano

PRICE = PriceConfig(
    input_per_mtok=Decimal("0.15"),
    output_per_mtok=Decimal("0.60"),
    cached_input_per_mtok=Decimal("0.075"),
)


def test_override_price_is_exact() -> None:
    cost = price_of(
        model="m",
        provider="p",
        input_tokens=1_000_000,
        output_tokens=10,
        cached_tokens=0,
        overrides={"m": PRICE},
    )
    assert cost.priced
    assert cost.nano_usd == 150_000_000 + 6_000  # $0.15 + 10 × $0.0000006


def test_cached_tokens_use_the_cached_rate() -> None:
    cost = price_of(
        model="m",
        provider="p",
        input_tokens=1000,
        output_tokens=0,
        cached_tokens=400,
        overrides={"m": PRICE},
    )
    assert cost.nano_usd == 600 * 150 + 400 * 75


def test_genai_prices_is_used_for_known_models() -> None:
    cost = price_of(
        model="gpt-4o-mini",
        provider="openai",
        input_tokens=1000,
        output_tokens=10,
        cached_tokens=0,
        overrides={},
    )
    assert cost.priced
    assert cost.nano_usd == 156_000  # genai-prices: $0.000156


def test_unknown_models_are_flagged_unpriced_not_zero_priced() -> None:
    cost = price_of(
        model="no-such-model-xyz",
        provider="custom",
        input_tokens=10,
        output_tokens=10,
        cached_tokens=0,
        overrides={},
    )
    assert (cost.nano_usd, cost.priced) == (0, False)


def test_usd_strings_are_fixed_point() -> None:
    assert nano_to_usd_str(0) == "0.000000000"
    assert nano_to_usd_str(1) == "0.000000001"
    assert nano_to_usd_str(12_345_000_000) == "12.345000000"


def test_demo_model_has_a_builtin_price() -> None:
    assert (
        price_of(
            model="demo",
            provider="switchboard",
            input_tokens=1000,
            output_tokens=1000,
            cached_tokens=0,
            overrides={},
        ).nano_usd
        == 150_000 + 600_000
    )


@given(st.integers(min_value=0, max_value=10**7), st.integers(min_value=0, max_value=10**7))
def test_sums_of_rows_are_exact(input_tokens: int, output_tokens: int) -> None:
    cost = price_of(
        model="m",
        provider="p",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=0,
        overrides={"m": PRICE},
    )
    exact = (
        Decimal(input_tokens) * Decimal("0.15") + Decimal(output_tokens) * Decimal("0.60")
    ) / Decimal(10**6)
    assert Decimal(nano_to_usd_str(cost.nano_usd)) == exact.quantize(Decimal("1e-9"))
    assert usd_to_nano(Decimal(nano_to_usd_str(cost.nano_usd))) == cost.nano_usd
