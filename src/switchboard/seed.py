"""First-start seeding for ``make run``: a demo account with an agent on the offline ``demo``
model and the built-in tools, so a chat works with no key and no network."""

from __future__ import annotations

from dataclasses import dataclass

from switchboard.bootstrap import Container
from switchboard.db.uow import AccountScope, UnitOfWork
from switchboard.registry.schemas import AgentCreate
from switchboard.tenancy.service import TenancyService

DEMO_ACCOUNT = "demo"
DEMO_AGENT = "assistant"


@dataclass(frozen=True, slots=True)
class Seeded:
    created: bool
    key: str | None = None


async def seed_demo(container: Container) -> Seeded:
    """Create the demo account, agent and an API key once; later calls change nothing."""

    async def op(u: UnitOfWork) -> AccountScope | None:
        account, created = await TenancyService.ensure_account_in(
            u, slug=DEMO_ACCOUNT, name="Demo Clinic"
        )
        if not created:
            return None
        scope = AccountScope(id=account.id, slug=account.slug)
        await container.agents.create_in(
            u.bound_to(scope),
            AgentCreate(
                slug=DEMO_AGENT,
                display_name="Demo assistant",
                description="Runs on the offline demo model; calls its tools in parallel.",
                model="demo",
                tools=["calculate", "current_time", "remember", "recall"],
                tags=["demo"],
            ),
        )
        return scope

    scope = await container.uow.run(op)
    if scope is None:
        return Seeded(created=False)
    created = await container.tenancy.create_key(scope, name="demo (made by make run)")
    return Seeded(created=True, key=created.secret)
