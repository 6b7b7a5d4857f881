"""Prompts the runtime itself sends (not an agent's). The offline ``demo`` model recognises the
summary request by :data:`SUMMARY_REQUEST`, like any model reads its prompt; nothing in the turn
depends on the demo model."""

from __future__ import annotations

from collections.abc import Sequence

SUMMARY_INSTRUCTIONS = "Summarize the conversation for your own later reference. Be brief."
SUMMARY_REQUEST = "Summarize the conversation below"


def summary_prompt(lines: Sequence[str]) -> str:
    """The user prompt of a summary call: the request, then one line per message."""
    return SUMMARY_REQUEST + ":\n" + "\n".join(lines)
