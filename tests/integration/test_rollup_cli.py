"""``switchboard ledger rollup verify|rebuild`` as an operator runs them (against this run's
test database)."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import update
from typer.testing import CliRunner

from switchboard.bootstrap import build_container
from switchboard.cli import app
from switchboard.db.uow import AccountScope, CrossAccount, UnitOfWork
from switchboard.ledger.models import UsageDaily
from switchboard.ledger.service import CallContext, TokenUsage
from tests.conftest import make_settings, unique

runner = CliRunner()


def _seed(database_url: str, slug: str) -> None:
    """An account with two settled calls, then its rollup row corrupted (one call too many)."""

    async def main() -> None:
        container = await build_container(make_settings(database_url))
        try:
            made = await container.tenancy.create_account(slug=slug, name=slug)
            scope = AccountScope(made.id, made.slug)
            ctx = CallContext(scope=scope, run_id=uuid.uuid4(), provider="fake", model="m")
            for latency_ms in (30, 300):
                row_id, _ = await container.ledger.open(ctx)
                await container.ledger.finish(
                    ctx,
                    row_id,
                    status="complete",
                    usage=TokenUsage(input_tokens=3),
                    latency_ms=latency_ms,
                )

            async def corrupt(u: UnitOfWork) -> None:
                await u.session.execute(
                    update(UsageDaily)
                    .where(UsageDaily.account_id == made.id)
                    .values(requests=UsageDaily.requests + 1)
                )

            await container.uow.run(corrupt, scope=CrossAccount("test: corrupt the rollup"))
        finally:
            await container.aclose()

    asyncio.run(main())


def test_rollup_commands_have_help() -> None:
    for args in (["ledger", "rollup", "--help"], ["ledger", "rollup", "verify", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output
    rebuild = runner.invoke(app, ["ledger", "rollup", "rebuild", "--help"])
    assert rebuild.exit_code == 0
    assert "--account" in rebuild.output


def test_verify_shows_the_difference_and_rebuild_repairs_it(env_database: str) -> None:
    slug = unique("rollcli")
    _seed(env_database, slug)
    found = runner.invoke(app, ["ledger", "rollup", "verify", "--account", slug])
    assert found.exit_code == 1, found.output
    assert "usage_daily vs llm_requests" in found.output
    [line] = [row for row in found.output.splitlines() if "│ requests" in row]
    assert [cell.strip() for cell in line.split("│")[-4:-1]] == ["requests", "3", "2"], line
    assert "1 of 1 rollup rows differ from the ledger" in found.output

    rebuilt = runner.invoke(app, ["ledger", "rollup", "rebuild", "--account", slug])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "rebuilt the rollup: 1 rows written" in rebuilt.output
    assert "rollup equals the ledger: 1 rows" in rebuilt.output
    again = runner.invoke(app, ["ledger", "rollup", "verify", "--account", slug])
    assert again.exit_code == 0, again.output
    assert "rollup equals the ledger: 1 rows" in again.output

    missing = runner.invoke(app, ["ledger", "rollup", "verify", "--account", unique("none")])
    assert missing.exit_code == 1
    assert "ACCOUNT_NOT_FOUND" in missing.output
