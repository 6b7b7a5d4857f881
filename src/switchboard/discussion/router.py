from __future__ import annotations

from fastapi import APIRouter

from switchboard.api.deps import ContainerDep, ScopeDep
from switchboard.discussion.schemas import DiscussionIn, DiscussionOut

router = APIRouter(prefix="/v1/accounts/{account}", tags=["discussions"])


@router.post(
    "/discussions",
    response_model=DiscussionOut,
    summary="Ask several models or agents, over rounds, and optionally synthesize",
)
async def discuss(body: DiscussionIn, scope: ScopeDep, container: ContainerDep) -> DiscussionOut:
    return await container.discussions.run(scope, body)
