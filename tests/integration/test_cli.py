"""The CLI as a new user runs it (against this run's test database)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from switchboard.cli import app
from tests.conftest import unique
from tests.unit.test_config_tree import write

runner = CliRunner()


def test_every_command_has_help() -> None:
    for args in (
        ["--help"],
        ["serve", "--help"],
        ["apply", "--help"],
        ["db", "--help"],
        ["db", "upgrade", "--help"],
        ["config", "explain", "--help"],
        ["registry", "import", "--help"],
        ["accounts", "create", "--help"],
        ["keys", "create", "--help"],
        ["directory", "import", "--help"],
        ["directory", "search", "--help"],
        ["directory", "sample", "--help"],
        ["directory", "reindex", "--help"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
        assert "Usage" in result.output


def test_dry_run_says_exactly_what_apply_would(env_database: str, tmp_path: Path) -> None:
    """--dry-run runs every check apply runs (tools that load from allowed modules, models
    that resolve) and writes nothing; a valid tree dry-run leaves no account behind."""
    slug = unique("dry")
    cases = {
        "unknown tool": ("tools: [nope]\n", "unknown tool 'nope'"),
        "module not allowed": (
            "tools: [g]\ncustom_tools: {g: 'os:getenv'}\n",
            "not in the operator's tool_modules allow-list",
        ),
        "a builtin": (
            "tools: [s]\ntool_modules: [os]\ncustom_tools: {s: 'os:system'}\n",
            "not a plain Python function",
        ),
        "unknown provider": ("model: nope:m\n", "unknown provider 'nope'"),
    }
    for name, (agent_yaml, expected) in cases.items():
        root = write(tmp_path / name.replace(" ", "-"), {f"{slug}/bot/config.yaml": agent_yaml})
        dry = runner.invoke(app, ["apply", str(root), "--dry-run"])
        real = runner.invoke(app, ["apply", str(root)])
        assert (dry.exit_code, real.exit_code) == (1, 1), (name, dry.output, real.output)
        assert expected in dry.output, (name, dry.output)
        assert expected in real.output, (name, real.output)
    valid = write(tmp_path / "valid", {f"{slug}/bot/config.yaml": "model: demo\n"})
    dry = runner.invoke(app, ["apply", str(valid), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    explained = runner.invoke(app, ["config", "explain", f"{slug}/bot"])
    assert explained.exit_code == 1  # rolled back: the account does not exist
    assert "ACCOUNT_NOT_FOUND" in explained.output


def test_apply_explain_and_import(env_database: str, tmp_path: Path) -> None:
    slug = unique("cli")
    files = {
        f"{slug}/account.yaml": "name: CLI Co\n",
        f"{slug}/helper/config.yaml": "model: openai:gpt-4o-mini\ntags: [t]\n",
    }
    root = write(tmp_path / "configs", files)
    dry = runner.invoke(app, ["apply", str(root), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "is valid; apply would change accounts 1 created, 0 updated" in dry.output
    assert "agents 1 created" in dry.output

    applied = runner.invoke(app, ["apply", str(root)])
    assert applied.exit_code == 0, applied.output
    assert "agents 1 created" in applied.output

    explained = runner.invoke(app, ["config", "explain", f"{slug}/helper", "--json"])
    assert explained.exit_code == 0, explained.output
    rows = {row["key"]: row for row in json.loads(explained.output)}
    assert rows["model"]["value"] == "openai:gpt-4o-mini"
    assert rows["model"]["source"].endswith(f"{slug}/helper/config.yaml")

    legacy = tmp_path / "legacy.json"
    legacy.write_text(json.dumps([{"slug": "a"}, {"slug": "b", "tags": ["x"]}]))
    imported = runner.invoke(app, ["registry", "import", str(legacy), "--account", slug])
    assert imported.exit_code == 0, imported.output
    assert "imported 2 agents" in imported.output

    again = runner.invoke(app, ["registry", "import", str(legacy), "--account", slug])
    assert again.exit_code == 1
    assert "IMPORT_INVALID" in again.output
    assert "agent 'a' already exists" in again.output


def test_apply_reports_misplaced_files_and_applies_nothing(
    env_database: str, tmp_path: Path
) -> None:
    slug = unique("cli")
    root = write(
        tmp_path / "configs",
        {
            f"{slug}/ok/config.yaml": "model: demo\n",
            "simple_chat/config.yaml": "model: demo\n",
        },
    )
    result = runner.invoke(app, ["apply", str(root)])
    assert result.exit_code == 1
    assert "nothing applied" in result.output
    assert "simple_chat/config.yaml" in result.output
    missing = runner.invoke(app, ["config", "explain", f"{slug}/ok"])
    assert missing.exit_code == 1
    assert "ACCOUNT_NOT_FOUND" in missing.output


def test_accounts_and_keys_commands(env_database: str) -> None:
    slug = unique("cli")
    created = runner.invoke(app, ["accounts", "create", slug, "--name", "Via CLI"])
    assert created.exit_code == 0, created.output
    duplicate = runner.invoke(app, ["accounts", "create", slug])
    assert duplicate.exit_code == 1
    assert "ACCOUNT_ALREADY_EXISTS" in duplicate.output
    key = runner.invoke(app, ["keys", "create", slug])
    assert key.exit_code == 0, key.output
    assert "sb_" in key.output


def test_broken_legacy_file(env_database: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('[{"slug": ')
    result = runner.invoke(app, ["registry", "import", str(broken), "--account", "x"])
    assert result.exit_code == 1
    assert "not valid JSON" in result.output


def test_usage_command_formats(env_database: str, tmp_path: Path) -> None:
    slug = unique("cli")
    runner.invoke(app, ["accounts", "create", slug])
    as_json = runner.invoke(app, ["usage", slug, "--group-by", "model", "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.output)
    assert report["total"]["requests"] == 0
    as_csv = runner.invoke(app, ["usage", slug, "--format", "csv"])
    assert as_csv.output.splitlines()[0].startswith("group,requests,input_tokens")
    bad = runner.invoke(app, ["usage", slug, "--since", "2026-01-01"])
    assert bad.exit_code == 1
    assert "timezone" in bad.output
    missing = runner.invoke(app, ["usage", unique("none")])
    assert missing.exit_code == 1
    assert "ACCOUNT_NOT_FOUND" in missing.output


def test_directory_import_search_and_errors(env_database: str, tmp_path: Path) -> None:
    slug = unique("dir")
    schema = (
        "directories:\n"
        "  practitioners:\n"
        "    fields:\n"
        "      name: {type: text, required: true}\n"
        "      title: {type: text}\n"
        "      specialty: {type: keyword, searchable: true, required: true}\n"
        "      city: {type: keyword, searchable: true}\n"
        "      languages: {type: list, searchable: true}\n"
        "      insurance: {type: list, searchable: true}\n"
        "      years_experience: {type: number}\n"
        "      accepting_new_patients: {type: bool}\n"
        "      bio: {type: text}\n"
    )
    root = write(tmp_path / "configs", {f"{slug}/account.yaml": schema})
    assert runner.invoke(app, ["apply", str(root)]).exit_code == 0

    sample = tmp_path / "people.csv"
    made = runner.invoke(app, ["directory", "sample", str(sample), "--count", "2500"])
    assert made.exit_code == 0, made.output
    imported = runner.invoke(app, ["directory", "import", slug, "practitioners", str(sample)])
    assert imported.exit_code == 0, imported.output
    assert "imported 2500 entries" in imported.output
    assert "2500 created, 0 updated" in imported.output
    assert "write" in imported.output  # the progress bars

    found = runner.invoke(
        app,
        ["directory", "search", slug, "practitioners", "cardiology", "-f", "city=Seattle"],
    )
    assert found.exit_code == 0, found.output
    lines = found.output.strip().splitlines()
    assert lines
    assert all('"city": "Seattle"' in line and "Cardiology" in line for line in lines)

    broken = tmp_path / "broken.jsonl"
    broken.write_text(
        '{"id": "a", "name": "A", "specialty": "X"}\n{"id": "b", "name": "B"}\nnot json\n',
        encoding="utf-8",
    )
    failed = runner.invoke(app, ["directory", "import", slug, "practitioners", str(broken)])
    assert failed.exit_code == 1
    assert "INVALID_ENTRIES" in failed.output
    assert "2: specialty: required" in failed.output
    assert "3: None: invalid JSON" in failed.output
    again = runner.invoke(app, ["directory", "import", slug, "practitioners", str(sample)])
    assert "0 created, 2500 updated" in again.output

    unknown = runner.invoke(app, ["directory", "import", slug, "products", str(sample)])
    assert unknown.exit_code == 1
    assert "DIRECTORY_NOT_FOUND" in unknown.output
    wrong = runner.invoke(app, ["directory", "import", slug, "practitioners", str(root)])
    assert wrong.exit_code == 1
