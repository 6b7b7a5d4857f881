from __future__ import annotations

import typer
from pydantic import ValidationError

from switchboard.bootstrap import Container
from switchboard.cli.common import account_scope, console, fail, run_with_container
from switchboard.discussion.schemas import DiscussionIn, DiscussionOut


def discuss(
    account: str = typer.Argument(..., help="Account slug (billed for every call)."),
    prompt: str = typer.Option(..., "--prompt", "-p", help="The question."),
    participant: list[str] = typer.Option(
        ..., "--participant", help="An agent slug or a model string; repeat for each."
    ),
    rounds: int = typer.Option(1, help="Rounds; later rounds see earlier answers."),
    synthesizer: str = typer.Option(None, help="Agent slug or model that writes the synthesis."),
    quorum: int = typer.Option(None, help="End a round once this many have answered."),
    deadline_s: float = typer.Option(None, help="Give up on unanswered calls after this."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole result as JSON."),
) -> None:
    """Run a multi-model discussion, through the same limits, budgets and ledger as chats."""
    try:
        request = DiscussionIn(
            prompt=prompt,
            participants=participant,
            rounds=rounds,
            synthesizer=synthesizer,
            quorum=quorum,
            deadline_s=deadline_s,
        )
    except ValidationError as exc:
        fail(
            "invalid discussion",
            problems=[
                f"{'.'.join(str(p) for p in e['loc']) or '(input)'}: {e['msg']}"
                for e in exc.errors()
            ],
        )

    async def op(c: Container) -> DiscussionOut:
        return await c.discussions.run(await account_scope(c, account), request)

    result = run_with_container(op)
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    for number, answers in enumerate(result.rounds, start=1):
        console.print(f"[bold]round {number}[/]")
        for answer in answers:
            text = (
                answer.answer
                if answer.error is None
                else f"ERROR {answer.error.code}: {answer.error.message}"
            )
            console.print(f"  {answer.participant}: {text}", highlight=False, markup=False)
    if result.synthesis is not None:
        console.print(
            f"[bold]synthesis[/] ({result.synthesis.participant}): "
            f"{result.synthesis.answer or result.synthesis.error}",
            highlight=False,
        )
    console.print(f"{len(result.llm_request_ids)} provider calls, {result.cost_usd} USD")
