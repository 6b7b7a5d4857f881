"""Reading directory entries from CSV or JSON Lines files, strictly: a file either reads
exactly as written or is refused with its problems named by row (1-based, the CSV header not
counted) — an unterminated quote, a stray quote, a wrong number of values, an unreadable or
too deeply nested JSON line. Nothing is imported until every row is valid."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from switchboard.config.directories import DirectoryConfig
from switchboard.directory.rows import EntryRow, FileFormat, InvalidEntry, validate_rows
from switchboard.errors import InvalidRequest

RawRow = tuple[int, Mapping[str, Any] | InvalidEntry]
# One RFC 4180 record: quoted fields (quotes doubled inside) or fields without any quote.
_FIELD = r'(?:"(?:[^"]|"")*"|[^,"\r\n]*)'
_RECORD = re.compile(rf"{_FIELD}(?:,{_FIELD})*(?:\r\n|\n|\r)?")
_CSV_ERRORS = {
    "unexpected end of data": "a quoted value is never closed (unterminated quote)",
    "',' expected after '\"'": "a stray quote after a quoted value",
}


def detect_format(name: str | None, content_type: str | None = None) -> FileFormat:
    lowered = (content_type or "").split(";")[0].strip().lower()
    if lowered in ("text/csv", "application/csv"):
        return "csv"
    if lowered in ("application/x-ndjson", "application/jsonl", "application/x-jsonlines"):
        return "jsonl"
    if name and name.lower().endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name and name.lower().endswith(".csv"):
        return "csv"
    raise InvalidRequest(
        "unknown file format: use a .csv or .jsonl file (Content-Type text/csv or "
        "application/x-ndjson)",
        code="UNSUPPORTED_FORMAT",
    )


def parse_entries(
    config: DirectoryConfig,
    directory: str,
    lines: Iterable[str],
    file_format: FileFormat,
    *,
    progress: Callable[[int], None] | None = None,
) -> list[EntryRow]:
    """All rows of a file, validated, or :class:`InvalidRequest` listing the problems."""
    raw_rows = csv_rows(lines) if file_format == "csv" else jsonl_rows(lines)
    return validate_rows(
        config, directory, raw_rows, from_text=file_format == "csv", progress=progress
    )


class _RecordLines:
    """Feeds the csv reader one line at a time and keeps the lines of the current record, so
    a record holding a quote can be checked against the grammar as written."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self.record: list[str] = []

    def __iter__(self) -> _RecordLines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.record.append(line)
        return line


def _stray_quote(cells: list[str], source: _RecordLines) -> bool:
    """A quote inside an unquoted value (``ab"c``, `` "x"``), which the csv module accepts."""
    return any('"' in cell for cell in cells) and not _RECORD.fullmatch("".join(source.record))


def _csv_problem(exc: csv.Error) -> str:
    message = str(exc)
    return _CSV_ERRORS.get(message, f"unreadable CSV: {message}")


def csv_rows(lines: Iterable[str]) -> Iterator[RawRow]:
    source = _RecordLines(lines)
    reader = csv.reader(source, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        yield 0, InvalidEntry(None, f"the CSV header: {_csv_problem(exc)}")
        return
    header = [name.strip().lstrip("\ufeff") for name in header]
    if _stray_quote(header, source):
        yield 0, InvalidEntry(None, 'the CSV header: a stray quote (quote values holding ")')
        return
    if "id" not in header:
        yield 0, InvalidEntry("id", "the CSV header needs an 'id' column")
        return
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated or "" in header:
        yield 0, InvalidEntry(None, f"the CSV header has empty or repeated columns {repeated}")
        return
    number = 0
    while True:
        source.record.clear()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            start = reader.line_num - len(source.record) + 1
            yield number + 1, InvalidEntry(None, f"line {start}: {_csv_problem(exc)}")
            return  # the rest of the file cannot be split into rows reliably
        if not any(cell.strip() for cell in cells):
            continue
        number += 1
        if _stray_quote(cells, source):
            yield (
                number,
                InvalidEntry(None, 'a stray quote: quote a value holding " and double it ("")'),
            )
        elif len(cells) != len(header):
            yield number, InvalidEntry(None, f"{len(cells)} values for {len(header)} columns")
        else:
            yield number, dict(zip(header, cells, strict=True))


def jsonl_rows(lines: Iterable[str]) -> Iterator[RawRow]:
    number = 0
    for line in lines:
        if not line.strip():
            continue
        number += 1
        try:
            value = json.loads(line)
        except RecursionError:
            yield number, InvalidEntry(None, "invalid JSON: nested too deeply")
            continue
        except ValueError as exc:
            yield number, InvalidEntry(None, f"invalid JSON: {exc}")
            continue
        if not isinstance(value, dict):
            yield number, InvalidEntry(None, "each line must be a JSON object")
            continue
        yield number, value


def decode_lines(body: bytes) -> list[str]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"the file is not UTF-8 (byte {exc.start})", code="UNSUPPORTED_ENCODING"
        ) from None
    return io.StringIO(text, newline="").readlines()
