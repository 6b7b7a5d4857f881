"""Validating directory entries against their schema (files are read in ``files.py``).

Every problem names its row (1-based, the header of a CSV file not counted) and field, so a
bad file can be fixed in one pass: nothing is imported until every row is valid. Values are
checked to what the databases can hold: text without NUL or lone surrogates, finite numbers
within the range of a double."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from switchboard.config.directories import DirectoryConfig, DirectoryField
from switchboard.errors import InvalidRequest
from switchboard.schemas import unsafe_text_reason

FileFormat = Literal["csv", "jsonl"]
MAX_TEXT = 10_000
MAX_KEYWORD = 500
MAX_LIST_ITEMS = 100
MAX_EXTERNAL_ID = 200
MAX_PROBLEMS = 50
LIST_SEPARATOR = "|"
_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f"}


@dataclass(frozen=True, slots=True)
class EntryRow:
    """A valid entry: normalised data, the text indexed for search, its facet tokens (keyword,
    list and bool values) and its number fields."""

    external_id: str
    data: dict[str, Any]
    search_text: str
    facets: tuple[tuple[str, str], ...]  # (field, case-folded value) of every filterable value
    numbers: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class RowProblem:
    row: int
    field: str | None
    message: str

    def as_dict(self) -> dict[str, object]:
        return {"row": self.row, "field": self.field, "message": self.message}


class InvalidEntry(ValueError):
    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(slots=True)
class ImportProblems:
    problems: list[RowProblem] = field(default_factory=list)
    total: int = 0

    def add(self, problem: RowProblem) -> None:
        self.total += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    def error(self, directory: str) -> InvalidRequest:
        first = self.problems[0]
        where = f"row {first.row}" + (f", field '{first.field}'" if first.field else "")
        return InvalidRequest(
            f"{self.total} invalid row(s) for directory '{directory}', nothing was imported "
            f"(the first at {where} — {first.message})",
            code="INVALID_ENTRIES",
            details={
                "problems": [p.as_dict() for p in self.problems],
                "total_problems": self.total,
            },
        )


def normalize_key(value: str) -> str:
    """How keyword and list values are compared by filters: trimmed and case-folded."""
    return value.strip().casefold()


def validate_external_id(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidEntry("id", "every entry needs an id (a non-empty text)")
    value = value.strip()
    if (
        len(value) > MAX_EXTERNAL_ID
        or "/" in value
        or value in (".", "..")
        or any(ord(c) < 32 for c in value)
        or unsafe_text_reason(value) is not None
    ):
        raise InvalidEntry(
            "id",
            f"ids are at most {MAX_EXTERNAL_ID} characters of valid Unicode, without '/' or "
            "control chars, and not '.' or '..'",
        )
    return value


def _text(name: str, value: str) -> str:
    reason = unsafe_text_reason(value)
    if reason is not None:
        raise InvalidEntry(name, f"text {reason}")
    return value


def build_entry(
    config: DirectoryConfig, external_id: str, raw: Mapping[str, Any], *, from_text: bool = False
) -> EntryRow:
    """Validate ``raw`` (field → value) against ``config``. ``from_text`` accepts the text forms
    a CSV cell holds ('3.5', 'yes', 'a|b')."""
    data: dict[str, Any] = {}
    for name in raw:
        if name not in config.fields:
            known = ", ".join(sorted(config.fields))
            raise InvalidEntry(name, f"unknown field (the schema has: id, {known})")
    for name, spec in config.fields.items():
        value = raw.get(name)
        if from_text and isinstance(value, str) and not value.strip():
            value = None
        if value is None:
            if spec.required:
                raise InvalidEntry(name, "required")
            continue
        data[name] = _coerce(name, spec, value, from_text=from_text)
    return EntryRow(
        external_id=external_id,
        data=data,
        search_text=search_text(config, data),
        facets=tuple(dict.fromkeys(_facets(config, data))),
        numbers=tuple(
            (name, float(data[name]))
            for name, spec in config.fields.items()
            if spec.type == "number" and spec.is_filterable and name in data
        ),
    )


def _coerce(name: str, spec: DirectoryField, value: Any, *, from_text: bool) -> Any:
    kind = spec.type
    if kind in ("text", "keyword"):
        if not isinstance(value, str):
            raise InvalidEntry(name, f"expected text, got {type(value).__name__}")
        limit = MAX_TEXT if kind == "text" else MAX_KEYWORD
        if len(value) > limit:
            raise InvalidEntry(name, f"longer than {limit} characters")
        return _text(name, value).strip()
    if kind == "number":
        if from_text and isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise InvalidEntry(name, f"expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidEntry(name, f"expected a number, got {type(value).__name__}")
        try:
            as_float = float(value)  # an int past the range of a double overflows here
        except OverflowError:
            as_float = math.inf
        if not math.isfinite(as_float):
            raise InvalidEntry(name, "expected a finite number within the range of a double")
        return int(value) if as_float.is_integer() and abs(value) < 2**53 else as_float
    if kind == "bool":
        if from_text and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise InvalidEntry(name, f"expected true or false, got {value!r}")
        if not isinstance(value, bool):
            raise InvalidEntry(name, f"expected true or false, got {type(value).__name__}")
        return value
    # list
    if from_text and isinstance(value, str):
        value = [item for item in value.split(LIST_SEPARATOR) if item.strip()]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidEntry(name, "expected a list of texts")
    if len(value) > MAX_LIST_ITEMS:
        raise InvalidEntry(name, f"more than {MAX_LIST_ITEMS} items")
    items: list[str] = []
    seen: set[str] = set()
    for item in value:
        if len(item) > MAX_KEYWORD:
            raise InvalidEntry(name, f"an item is longer than {MAX_KEYWORD} characters")
        key = normalize_key(_text(name, item))
        if key and key not in seen:
            seen.add(key)
            items.append(item.strip())
    return items


def search_text(config: DirectoryConfig, data: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for name in config.searchable_fields:
        value = data.get(name)
        if isinstance(value, list):
            parts.append(", ".join(value))
        elif isinstance(value, str):
            parts.append(value)
    return "\n".join(part for part in parts if part)


def _facets(config: DirectoryConfig, data: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for name, spec in config.fields.items():
        if not spec.is_filterable or name not in data or spec.type == "number":
            continue
        value = data[name]
        if spec.type == "bool":
            yield name, "true" if value else "false"
        elif spec.type == "list":
            for item in value:
                yield name, normalize_key(item)
        else:
            yield name, normalize_key(value)


def validate_rows(
    config: DirectoryConfig,
    directory: str,
    raw_rows: Iterable[tuple[int, Mapping[str, Any] | InvalidEntry]],
    *,
    from_text: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[EntryRow]:
    """Numbered records (field → value, with ``id``) validated all together."""
    problems = ImportProblems()
    rows: list[EntryRow] = []
    first_row: dict[str, int] = {}
    for number, raw in raw_rows:
        if progress is not None and number % 1000 == 0:
            progress(number)
        try:
            if isinstance(raw, InvalidEntry):
                raise raw
            fields = dict(raw)
            external_id = validate_external_id(fields.pop("id", None))
            entry = build_entry(config, external_id, fields, from_text=from_text)
        except InvalidEntry as exc:
            problems.add(RowProblem(number, exc.field, exc.message))
            continue
        if entry.external_id in first_row:
            problems.add(
                RowProblem(
                    number,
                    "id",
                    f"id {entry.external_id!r} repeats row {first_row[entry.external_id]}",
                )
            )
            continue
        first_row[entry.external_id] = number
        rows.append(entry)
    if problems.total:
        raise problems.error(directory)
    if not rows:
        raise InvalidRequest("the file holds no entries", code="EMPTY_IMPORT")
    return rows
