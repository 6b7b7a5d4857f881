"""The README's error table is the codes the code raises, each with the status it answers.

Every stable code is collected from the source — ``code="…"`` passed to an error class,
the ``default_code`` of every error class raised without one, the codes ``api/errors.py``
gives framework errors, and the codes written straight into error bodies — and its status is
the one ``api.errors.status_for`` gives. The test fails when a code is missing from the table,
when the table gives it another status, or when the table lists a code nothing raises."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import switchboard
import switchboard.app  # imports every module that defines an error class
from switchboard.api import errors as api_errors
from switchboard.api.errors import status_for
from switchboard.errors import SwitchboardError

SOURCE = Path(switchboard.__file__).parent
README = SOURCE.parents[1] / "README.md"
# Codes documented ahead of the code that raises them (none today): listed in the README,
# checked like any other code as soon as the source raises them.
PENDING: dict[str, int] = {}  # codes documented ahead of the code that raises them
# Codes that never answer a request by themselves.
NOT_HTTP = {
    "QUORUM_REACHED",  # a discussion answer cancelled once the quorum answered (inside a 200)
}
_CODE = re.compile(r"`([A-Z][A-Z0-9_]+)`")


def _error_classes() -> dict[str, type[SwitchboardError]]:
    found: dict[str, type[SwitchboardError]] = {}
    pending: list[type[SwitchboardError]] = [SwitchboardError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


def _calls() -> Iterator[tuple[Path, ast.Call, str]]:
    for path in sorted(SOURCE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                yield path, node, name


def raised_codes() -> dict[str, set[int]]:
    """code → the statuses it is answered with, from the source."""
    classes = _error_classes()
    codes: dict[str, set[int]] = {}

    def add(code: str, status: int) -> None:
        codes.setdefault(code, set()).add(status)

    for path, call, name in _calls():
        keywords = {k.arg: k.value for k in call.keywords}
        code = keywords.get("code")
        if name == "error_body" and call.args:  # a body written directly (limits, SSE)
            first = call.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                add(first.value, 413 if first.value == "PAYLOAD_TOO_LARGE" else 500)
            continue
        if name not in classes:
            continue
        cls = classes[name]
        if code is None:
            error = cls("message")
        elif isinstance(code, ast.Constant) and isinstance(code.value, str):
            error = cls("message", code=code.value)
        else:
            continue  # a code passed through (e.g. an answer's own error)
        if error.code in NOT_HTTP:
            continue
        try:
            add(error.code, status_for(error))
        except StopIteration:
            raise AssertionError(f"{path}: {name}({error.code}) has no HTTP status") from None
    for status, code in api_errors._HTTP_CODES.items():
        add(code, status)
    add("VALIDATION_ERROR", 422)  # every RequestValidationError
    add("INTERNAL_ERROR", 500)  # anything unexpected
    return codes


def readme_codes() -> dict[str, set[int]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Errors", 1)[1].split("\n## ", 1)[0]
    codes: dict[str, set[int]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].isdigit():
            continue
        for code in _CODE.findall(cells[1]):
            codes.setdefault(code, set()).add(int(cells[0]))
    return codes


def test_every_raised_code_is_in_the_readme_with_its_status() -> None:
    raised, documented = raised_codes(), readme_codes()
    missing = {code: statuses for code, statuses in raised.items() if code not in documented}
    assert not missing, f"add to README.md's error table: {missing}"
    wrong = {
        code: (statuses, documented[code])
        for code, statuses in raised.items()
        if statuses != documented[code]
    }
    assert not wrong, f"README status differs from the code's (raised, documented): {wrong}"


def test_the_readme_lists_no_code_that_nothing_raises() -> None:
    raised, documented = raised_codes(), readme_codes()
    stale = {
        code: statuses
        for code, statuses in documented.items()
        if code not in raised and PENDING.get(code) not in statuses
    }
    assert not stale, f"README.md lists codes nothing raises: {stale}"


def test_the_collector_sees_codes_of_every_kind() -> None:
    """Guards the collector itself: a code= argument, a default_code, a framework code, a
    body written directly."""
    raised = raised_codes()
    assert raised["INVALID_CURSOR"] == {400}
    assert raised["UNAUTHENTICATED"] == {401}
    assert raised["METHOD_NOT_ALLOWED"] == {405}
    assert raised["PAYLOAD_TOO_LARGE"] == {413}
    assert raised["UNSUPPORTED_MEDIA_TYPE"] == {415}
