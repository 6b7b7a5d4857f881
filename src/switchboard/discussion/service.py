"""Multi-model discussions. Every participant call takes the same path as a chat step —
admission, retries, budget, write-ahead ledger (``kind = discussion``) — so a discussion of 10
participants against a provider limit of 5 never has more than 5 calls in flight. A round is
all-settled: a participant that fails is reported with its error; with a quorum, the round ends
as soon as enough have answered and the others are cancelled (their rows say so)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field, replace

from pydantic_ai import Agent

from switchboard.config.roles import model_allowed, model_not_allowed
from switchboard.config.schema import EffectiveConfig
from switchboard.db.uow import AccountScope
from switchboard.discussion.schemas import AnswerOut, DiscussionIn, DiscussionOut, ErrorOut
from switchboard.errors import ProviderTimeout, SwitchboardError
from switchboard.money import nano_to_usd_str
from switchboard.registry.service import AgentService, invalid_config
from switchboard.runtime.gateway import Gateway
from switchboard.runtime.ledgered import CallRecord
from switchboard.runtime.models import check_model
from switchboard.telemetry import DISABLED, Telemetry

SYNTHESIS_INSTRUCTIONS = (
    "You are the synthesizer of a discussion. Combine the participants' answers into one "
    "answer: keep what they agree on, resolve disagreements, be brief."
)


@dataclass(frozen=True, slots=True)
class Speaker:
    name: str
    config: EffectiveConfig
    agent_id: uuid.UUID | None
    agent_slug: str | None


@dataclass(slots=True)
class Answer:
    participant: str
    text: str | None = None
    error: SwitchboardError | None = None
    calls: list[CallRecord] = field(default_factory=list)

    def out(self) -> AnswerOut:
        error = None
        if self.error is not None:
            error = ErrorOut(
                code=self.error.code, message=self.error.message, retryable=self.error.retryable
            )
        return AnswerOut(
            participant=self.participant,
            answer=self.text,
            error=error,
            llm_request_ids=[c.row_id for c in self.calls],
        )


class DiscussionService:
    def __init__(
        self, *, agents: AgentService, gateway: Gateway, telemetry: Telemetry = DISABLED
    ) -> None:
        self._agents = agents
        self._gateway = gateway
        self._capabilities = list(telemetry.capabilities) or None  # chat spans, traces on

    async def _speaker(self, scope: AccountScope, name: str, account: EffectiveConfig) -> Speaker:
        """An agent of the account, or a model string on the account's config — which obeys
        the operator's ``models.allowed`` (403) and must name a provider the server knows
        (422), checked before anything is called."""
        resolved = await self._agents.find(scope, name)
        if resolved is not None:
            return Speaker(name, resolved.config, resolved.agent.id, resolved.agent.slug)
        config = account.model_copy(update={"model": name})
        if not model_allowed(config):
            raise model_not_allowed(name)
        problems = check_model(config)
        if problems:
            raise invalid_config(
                [replace(p, key=f"participants: {name}", source="request") for p in problems]
            )
        return Speaker(name, config, None, None)

    async def run(self, scope: AccountScope, request: DiscussionIn) -> DiscussionOut:
        discussion_id = uuid.uuid4()
        account = await self._agents.account_config(scope)
        names = [*request.participants, *([request.synthesizer] if request.synthesizer else [])]
        known = {name: await self._speaker(scope, name, account) for name in dict.fromkeys(names)}
        speakers = [known[name] for name in request.participants]
        rounds: list[list[Answer]] = []
        synthesis: Answer | None = None
        try:
            async with asyncio.timeout(request.deadline_s):
                for number in range(1, request.rounds + 1):
                    prompt = _round_prompt(request.prompt, rounds, number)
                    answers = [Answer(s.name) for s in speakers]
                    rounds.append(answers)  # kept, with what it has, if the deadline passes
                    await self._round(
                        scope, discussion_id, speakers, prompt, answers, request.quorum
                    )
                if request.synthesizer is not None:
                    synthesizer = known[request.synthesizer]
                    synthesis = Answer(request.synthesizer)
                    await self._answer(
                        scope,
                        discussion_id,
                        synthesizer,
                        _synthesis_prompt(request.prompt, rounds),
                        synthesis,
                        instructions=SYNTHESIS_INSTRUCTIONS,
                    )
        except TimeoutError:
            if synthesis is not None and synthesis.text is None and synthesis.error is None:
                synthesis.error = ProviderTimeout("the discussion deadline passed")
        answers = [a for round_ in rounds for a in round_] + ([synthesis] if synthesis else [])
        calls = [c for a in answers for c in a.calls]
        return DiscussionOut(
            id=discussion_id,
            rounds=[[a.out() for a in round_] for round_ in rounds],
            synthesis=synthesis.out() if synthesis else None,
            llm_request_ids=[c.row_id for c in calls],
            cost_usd=nano_to_usd_str(sum(c.cost.nano_usd for c in calls)),
        )

    async def _round(
        self,
        scope: AccountScope,
        discussion_id: uuid.UUID,
        speakers: list[Speaker],
        prompt: str,
        answers: list[Answer],
        quorum: int | None,
    ) -> None:
        tasks = [
            asyncio.create_task(self._answer(scope, discussion_id, s, prompt, a))
            for s, a in zip(speakers, answers, strict=True)
        ]
        needed = quorum or len(tasks)
        pending = set(tasks)
        try:
            while pending and sum(a.text is not None for a in answers) < needed:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            reached = quorum is not None and sum(a.text is not None for a in answers) >= quorum
            for task, answer in zip(tasks, answers, strict=True):
                if task.cancelled() and answer.text is None and answer.error is None:
                    answer.error = _skipped(quorum_reached=reached)

    async def _answer(
        self,
        scope: AccountScope,
        discussion_id: uuid.UUID,
        speaker: Speaker,
        prompt: str,
        answer: Answer,
        *,
        instructions: str | None = None,
    ) -> None:
        try:
            model = self._gateway.model_for(
                scope,
                speaker.config,
                kind="discussion",
                run_id=discussion_id,
                agent_id=speaker.agent_id,
                agent_slug=speaker.agent_slug,
                on_call=answer.calls.append,
            )
            agent: Agent[None, str] = Agent(
                model, instructions=instructions or speaker.config.system_prompt
            )
            result = await agent.run(
                prompt,
                model_settings=self._gateway.settings_for(speaker.config),
                capabilities=self._capabilities,
            )
            answer.text = str(result.output)
        except SwitchboardError as exc:
            answer.error = exc


def _skipped(*, quorum_reached: bool) -> SwitchboardError:
    if quorum_reached:
        return SwitchboardError("not needed: the quorum was reached first", code="QUORUM_REACHED")
    return ProviderTimeout("the discussion deadline passed")


def _round_prompt(prompt: str, rounds: list[list[Answer]], number: int) -> str:
    if not rounds:
        return prompt
    earlier = "\n".join(
        f"- round {i} — {a.participant}: {a.text}"
        for i, round_ in enumerate(rounds, start=1)
        for a in round_
        if a.text is not None
    )
    return f"{prompt}\n\nAnswers so far:\n{earlier}\n\nRound {number}: give your answer."


def _synthesis_prompt(prompt: str, rounds: list[list[Answer]]) -> str:
    return _round_prompt(prompt, rounds, len(rounds) + 1).replace(
        f"Round {len(rounds) + 1}: give your answer.", "Synthesize the final answer."
    )
