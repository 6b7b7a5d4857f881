from __future__ import annotations

from switchboard.config import cascade
from switchboard.config.cascade import Layer


def test_later_layers_win_and_each_leaf_remembers_its_source() -> None:
    merged = cascade.merge(
        [
            Layer("global.yaml", {"model": "a", "model_settings": {"max_tokens": 100}}),
            Layer("acme/account.yaml", {"model_settings": {"temperature": 0.5}}),
            Layer("acme/bot/config.yaml", {"model": "b"}),
            Layer("db", {"model_settings": {"max_tokens": 7}}),
        ]
    )
    assert merged.values["model"] == "b"
    assert merged.values["model_settings"] == {"max_tokens": 7, "temperature": 0.5, "top_p": None}
    assert merged.sources["model"] == "acme/bot/config.yaml"
    assert merged.sources["model_settings.max_tokens"] == "db"
    assert merged.sources["model_settings.temperature"] == "acme/account.yaml"
    assert merged.sources["model_settings.top_p"] == "default"


def test_lists_replace_rather_than_append() -> None:
    merged = cascade.merge([Layer("g", {"tools": ["a", "b"]}), Layer("x", {"tools": ["c"]})])
    assert merged.values["tools"] == ["c"]
    assert merged.sources["tools"] == "x"


def test_new_mapping_keys_get_sources_all_the_way_down() -> None:
    merged = cascade.merge(
        [
            Layer("g", {"providers": {"local": {"base_url": "http://127.0.0.1:9100/v1"}}}),
            Layer("a", {"providers": {"local": {"max_concurrency": 2}}}),
        ]
    )
    rows = {key: source for key, _, source in cascade.explain(merged)}
    assert rows["providers.local.base_url"] == "g"
    assert rows["providers.local.max_concurrency"] == "a"
    config, problems = cascade.validate(merged)
    assert problems == []
    assert config is not None
    assert config.providers["local"].max_concurrency == 2


def test_problems_name_the_layer_that_set_the_bad_key() -> None:
    merged = cascade.merge(
        [
            Layer("configs/global.yaml", {"model_settings": {"max_tokens": 5}}),
            Layer(
                "configs/acme/bot/config.yaml",
                {"model_settings": {"temperature": 9}, "modle": "typo"},
            ),
        ]
    )
    config, problems = cascade.validate(merged)
    assert config is None
    found = {(p.source, p.key) for p in problems}
    assert found == {
        ("configs/acme/bot/config.yaml", "model_settings.temperature"),
        ("configs/acme/bot/config.yaml", "modle"),
    }


def test_defaults_alone_are_valid() -> None:
    config, problems = cascade.validate(cascade.merge([]))
    assert problems == []
    assert config is not None
    assert config.model == "demo"
    assert config.ledger.store_bodies is False
