"""The run sweeper takes only dead processes' runs: a process whose own lease lapsed (a stall
under load longer than the TTL) never interrupts its own live runs; another process does."""

from __future__ import annotations

import uuid

from sqlalchemy import update

from switchboard.db.base import utcnow
from switchboard.db.uow import UnitOfWork
from switchboard.ledger.models import ProcessLease
from switchboard.settings import Settings
from tests.conftest import new_account, serving
from tests.runs.helpers import HANG_AGENT, add_agent, create_run, runs_url, wait_status


async def test_a_lapsed_lease_never_sweeps_its_own_process_s_runs(settings: Settings) -> None:
    async with serving(settings) as (app, client):
        container = app.state.container
        slug, headers = await new_account(client)
        await add_agent(client, slug, HANG_AGENT)
        created = await create_run(client, slug, "slow", headers, message="m", background=True)
        run_id = created.json()["id"]
        owner = container.ledger.lease.owner_id

        async def lapse(u: UnitOfWork) -> None:
            await u.session.execute(
                update(ProcessLease)
                .where(ProcessLease.owner_id == owner)
                .values(expires_at=utcnow())
            )

        await container.uow.run(lapse)
        assert await container.runs.runs.sweep(alive=owner) == 0  # its own sweep
        run = await client.get(f"{runs_url(slug, 'slow')}/{run_id}", headers=headers)
        assert run.json()["status"] == "running"
        await container.uow.run(lapse)  # the heartbeat may have renewed it meanwhile
        assert await container.runs.runs.sweep(alive=uuid.uuid4()) == 1  # another process's
        final = await wait_status(client, slug, "slow", headers, run_id)
        assert (final["status"], final["error"]["code"]) == ("interrupted", "RUN_OWNER_DIED")
