from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from switchboard.api.deps import ActorDep, AgentSlug, ContainerDep, ScopeDep
from switchboard.config import cascade
from switchboard.pagination import DEFAULT_LIMIT, MAX_LIMIT
from switchboard.registry.schemas import (
    AgentCreate,
    AgentFilters,
    AgentOut,
    AgentPage,
    AgentPatch,
    ConfigExplained,
    ConfigSource,
)
from switchboard.schemas import SafeStr

router = APIRouter(prefix="/v1/accounts/{account}/agents", tags=["agents"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=AgentOut,
    summary="Register an agent; 409 AGENT_ALREADY_EXISTS when the slug is taken",
    description="With an account key, operator keys in `config` (providers, prices, "
    "custom_tools, …) are refused with 403 OPERATOR_SETTING and a model outside the "
    "operator's `models.allowed` with 403 MODEL_NOT_ALLOWED.",
)
async def create_agent(
    body: AgentCreate, scope: ScopeDep, actor: ActorDep, container: ContainerDep
) -> AgentOut:
    return AgentOut.model_validate(await container.agents.create(scope, body, actor=actor))


@router.get("", response_model=AgentPage, summary="List agents, sorted by slug")
async def list_agents(
    scope: ScopeDep,
    container: ContainerDep,
    tag: Annotated[SafeStr | None, Query(max_length=64)] = None,
    team: Annotated[SafeStr | None, Query(max_length=64)] = None,
    enabled: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[SafeStr | None, Query(max_length=500)] = None,
) -> AgentPage:
    agents, next_cursor = await container.agents.page(
        scope, AgentFilters(tag=tag, team=team, enabled=enabled), cursor=cursor, limit=limit
    )
    return AgentPage(items=[AgentOut.model_validate(a) for a in agents], next_cursor=next_cursor)


@router.get("/{agent}", response_model=AgentOut, summary="Get an agent")
async def get_agent(agent: AgentSlug, scope: ScopeDep, container: ContainerDep) -> AgentOut:
    return AgentOut.model_validate(await container.agents.get(scope, agent))


@router.patch("/{agent}", response_model=AgentOut, summary="Change some fields of an agent")
async def patch_agent(
    agent: AgentSlug, body: AgentPatch, scope: ScopeDep, actor: ActorDep, container: ContainerDep
) -> AgentOut:
    return AgentOut.model_validate(await container.agents.update(scope, agent, body, actor=actor))


@router.delete("/{agent}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an agent")
async def delete_agent(agent: AgentSlug, scope: ScopeDep, container: ContainerDep) -> Response:
    await container.agents.delete(scope, agent)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{agent}/config",
    response_model=ConfigExplained,
    summary="The effective config and where each value came from",
)
async def agent_config(
    agent: AgentSlug, scope: ScopeDep, container: ContainerDep
) -> ConfigExplained:
    resolved = await container.agents.resolve(scope, agent)
    return ConfigExplained(
        account=scope.slug,
        agent=agent,
        config=resolved.config.model_dump(mode="json"),
        sources=[
            ConfigSource(key=key, value=value, source=source)
            for key, value, source in cascade.explain(resolved.merged)
        ],
    )
