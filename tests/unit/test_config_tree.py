from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.operations.config_tree import ConfigTreeInvalid, load_tree


def write(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root


def problems(root: Path) -> list[str]:
    with pytest.raises(ConfigTreeInvalid) as caught:
        load_tree(root)
    return [str(p) for p in caught.value.problems]


def test_the_shipped_example_tree_is_valid() -> None:
    tree = load_tree(Path(__file__).resolve().parents[2] / "configs")
    assert [a.slug for a in tree.accounts] == ["demo"]
    assert tree.accounts[0].name == "Demo Clinic"
    assert [a.slug for a in tree.accounts[0].agents] == ["assistant", "front-desk"]


def test_valid_tree(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "global.yaml": "model: demo\n",
            "acme/account.yaml": "name: Acme Inc\nmodel_settings: {temperature: 0.1}\n",
            "acme/support/config.yaml": "display_name: Support\ntags: [a]\nmodel: openai:gpt-4o\n",
            "acme/sales/config.yaml": "",
            ".hidden": "ignored",
        },
    )
    tree = load_tree(root)
    account = tree.accounts[0]
    assert (account.slug, account.name) == ("acme", "Acme Inc")
    assert account.layer is not None
    assert account.layer.data == {"model_settings": {"temperature": 0.1}}
    support = next(a for a in account.agents if a.slug == "support")
    assert support.profile.display_name == "Support"
    assert support.profile.tags == ["a"]
    assert support.layer.data == {"model": "openai:gpt-4o"}  # config, not profile


def test_agent_config_at_account_level_is_reported(tmp_path: Path) -> None:
    root = write(tmp_path, {"simple_chat/config.yaml": "model: demo\n"})
    [problem] = problems(root)
    assert "simple_chat/config.yaml" in problem
    assert "belongs in an agent folder" in problem


def test_misspelt_file_names_get_a_suggestion(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "globl.yaml": "model: demo\n",
            "acme/acount.yaml": "name: x\n",
            "acme/bot/confg.yaml": "x: 1\n",
        },
    )
    found = "\n".join(problems(root))
    assert "globl.yaml" in found
    assert "did you mean global.yaml?" in found
    assert "acount.yaml" in found
    assert "did you mean account.yaml?" in found
    assert "confg.yaml" in found
    assert "did you mean config.yaml?" in found
    assert "acme/bot/config.yaml: (file): missing" in found


def test_yaml_errors_name_file_and_line(tmp_path: Path) -> None:
    root = write(tmp_path, {"acme/bot/config.yaml": "model: demo\nmodel_settings: [unclosed\n"})
    [problem] = problems(root)
    assert "acme/bot/config.yaml" in problem
    assert "line 3" in problem or "line 2" in problem
    assert "invalid YAML" in problem


def test_invalid_values_name_file_and_key(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "global.yaml": "memory: {max_messages: 0}\n",
            "acme/bot/config.yaml": "enabled: perhaps\nmodel_settings: {max_tokens: -3}\n",
        },
    )
    found = problems(root)
    assert any("acme/bot/config.yaml: enabled:" in p for p in found), found
    assert all("model_settings.max_tokens" not in p for p in found if "enabled" in p)


def test_invalid_config_value_names_the_layer(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "global.yaml": "memory: {max_messages: 0}\n",
            "acme/bot/config.yaml": "model_settings: {max_tokens: -3}\n",
        },
    )
    found = problems(root)
    assert any(p.startswith(f"{root}/global.yaml: memory.max_messages") for p in found), found
    assert any(
        p.startswith(f"{root}/acme/bot/config.yaml: model_settings.max_tokens") for p in found
    ), found


def test_bad_folder_names_and_non_mapping_files(tmp_path: Path) -> None:
    root = write(tmp_path, {"Bad Name/account.yaml": "name: x\n", "ok/bot/config.yaml": "- a\n"})
    found = "\n".join(problems(root))
    assert "Bad Name" in found
    assert "slugs" in found
    assert "must be a mapping" in found


def test_missing_root(tmp_path: Path) -> None:
    assert "not a directory" in problems(tmp_path / "nope")[0]


def test_directories_belong_to_accounts(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "acme/account.yaml": "directories: {staff: {fields: {name: {type: text}}}}\n",
            "acme/bot/config.yaml": "directories: {staff: {fields: {name: {type: text}}}}\n",
        },
    )
    [problem] = problems(root)
    assert problem.endswith(
        "config.yaml: directories: directories belong to an account: declare them in "
        "account.yaml or global.yaml"
    )


@pytest.mark.parametrize(
    ("directory", "message"),
    [
        ("{fields: {name: {type: text, filterable: true}}}", "searchable, not filterable"),
        ("{fields: {age: {type: number, searchable: true}}}", "filterable, not searchable"),
        ("{fields: {age: {type: number}}}", "at least one field must be searchable"),
        ("{fields: {id: {type: text}}}", "reserved"),
        ("{fields: {name: {type: blob}}}", "Input should be 'text'"),
        ("{fields: {Name: {type: text}}}", "String should match pattern"),
        ("{fields: {}}", "at least 1 item"),
    ],
)
def test_invalid_directory_schemas_are_reported(
    tmp_path: Path, directory: str, message: str
) -> None:
    root = write(
        tmp_path,
        {
            "acme/account.yaml": f"directories: {{staff: {directory}}}\n",
            "acme/bot/config.yaml": "",
        },
    )
    found = problems(root)
    assert any("directories.staff" in p and message in p for p in found), found
