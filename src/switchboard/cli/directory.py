from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from switchboard.bootstrap import Container
from switchboard.cli.common import account_scope, console, fail, run_with_container
from switchboard.directory.files import detect_format, parse_entries
from switchboard.directory.rows import LIST_SEPARATOR, EntryRow
from switchboard.directory.service import ImportResult
from switchboard.directory.service import Progress as ProgressCallback
from switchboard.directory.synthetic import PRACTITIONERS, practitioners
from switchboard.errors import InvalidRequest

app = typer.Typer(help="Account directories: import, search, sample data.", no_args_is_help=True)


@app.command("import")
def import_file(
    account: str = typer.Argument(..., help="Account slug."),
    directory: str = typer.Argument(..., help="Directory (schema) name from the account config."),
    file: Path = typer.Argument(..., help="A .csv (header with an 'id' column) or .jsonl file."),
    file_format: str = typer.Option(
        None, "--format", help="csv or jsonl (default: from the file name)."
    ),
) -> None:
    """Import entries in one transaction: every row valid, or nothing imported. Rows whose id
    exists are updated. Invalid rows are listed with their row number and field."""
    try:
        chosen = detect_format(f".{file_format}" if file_format else file.name)
    except InvalidRequest as exc:
        fail(exc.message)
    if not file.is_file():
        fail(f"no such file: {file}")

    async def op(c: Container) -> ImportResult:
        scope = await account_scope(c, account)
        config = await c.directories.schema(scope, directory)
        with _progress() as progress:
            reading = progress.add_task("validate", total=None)

            def read() -> list[EntryRow]:
                with file.open(encoding="utf-8-sig", newline="") as handle:
                    return parse_entries(
                        config,
                        directory,
                        handle,
                        chosen,
                        progress=lambda n: progress.update(reading, completed=n),
                    )

            try:
                rows = await asyncio.to_thread(read)
            except UnicodeDecodeError as exc:
                fail(f"{file} is not UTF-8 (byte {exc.start} of a chunk)")
            progress.update(reading, total=len(rows), completed=len(rows))
            return await c.directories.import_entries(
                scope, directory, config, rows, progress=_stages(progress)
            )

    result = run_with_container(op)
    console.print(
        f"imported {result.total} entries into {account}/{directory}: "
        f"{result.created} created, {result.updated} updated"
        + (f", {result.embedded} embedded" if result.embedded else "")
    )


@app.command("reindex")
def reindex(
    account: str = typer.Argument(..., help="Account slug."),
    directory: str = typer.Argument(..., help="Directory name."),
) -> None:
    """Rebuild every entry's index (search text, filters, embedding) with the directory's
    current schema, after changing its fields. All or nothing."""

    async def op(c: Container) -> ImportResult:
        scope = await account_scope(c, account)
        with _progress() as progress:
            return await c.directories.reindex(scope, directory, progress=_stages(progress))

    result = run_with_container(op)
    console.print(f"reindexed {result.total} entries of {account}/{directory}")


def _stages(progress: Progress) -> ProgressCallback:
    """A service progress callback that shows each stage (embed, write) as its own bar."""
    tasks: dict[str, TaskID] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done)

    return report


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:>9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@app.command("search")
def search(
    account: str = typer.Argument(..., help="Account slug."),
    directory: str = typer.Argument(..., help="Directory name."),
    query: str = typer.Argument("", help="Words to search for."),
    filters: list[str] = typer.Option(
        [], "--filter", "-f", help="field=value (repeatable; numbers take ranges like 5..20)."
    ),
    mode: str = typer.Option("auto", help="auto, text, semantic or hybrid."),
    limit: int = typer.Option(10, min=1, max=100),
) -> None:
    """Search a directory as the API and the agents' tool do."""
    parsed: dict[str, list[str]] = {}
    for item in filters:
        field, sep, value = item.partition("=")
        if not sep:
            fail(f"--filter {item!r}: expected field=value")
        parsed.setdefault(field.strip(), []).append(value)
    if mode not in ("auto", "text", "semantic", "hybrid"):
        fail("--mode must be auto, text, semantic or hybrid")

    async def op(c: Container) -> list[tuple[str, float | None, dict[str, Any]]]:
        page = await c.directories.search(
            await account_scope(c, account),
            directory,
            query=query,
            filters=parsed,
            mode=mode,  # type: ignore[arg-type]
            limit=limit,
        )
        return [(h.entry.external_id, h.score, h.entry.data) for h in page.hits]

    for external_id, score, data in run_with_container(op):
        shown = f"{score:.4f}" if score is not None else "-"
        console.print(f"{shown}  {external_id}  {json.dumps(data, ensure_ascii=False)}")


@app.command("sample")
def sample(
    file: Path = typer.Argument(..., help="Where to write (.jsonl or .csv)."),
    count: int = typer.Option(1000, min=1, max=10_000_000, help="How many practitioners."),
) -> None:
    """Write a synthetic hospital practitioners file (the demo 'practitioners' schema)."""
    chosen = detect_format(file.name)
    fields = ["id", *PRACTITIONERS["fields"]]
    with file.open("w", encoding="utf-8", newline="") as handle:
        if chosen == "jsonl":
            for record in practitioners(count):
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            for record in practitioners(count):
                writer.writerow(
                    {
                        k: LIST_SEPARATOR.join(v) if isinstance(v, list) else v
                        for k, v in record.items()
                    }
                )
    console.print(f"wrote {count} practitioners to {file}")
