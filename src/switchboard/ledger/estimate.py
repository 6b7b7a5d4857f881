"""Token estimates for calls whose provider never reported usage (a cut stream, a cancelled or
interrupted call), and for the budget's worst case. No tokenizer runs here: tiktoken fetches its
encodings at run time, which fails offline, and no single tokenizer fits every model anyway.

The heuristic (documented in the README): BPE tokenizers of the GPT, Llama and Mistral families
average about four bytes of English text per token, and about one token per character of
non-Latin scripts. So a text counts ``ceil(ascii_bytes / 4) + non_ascii_characters`` tokens,
plus ``PER_MESSAGE`` tokens of framing per message or part. Rows carrying such numbers say so:
``usage_source = "estimated"``.

For the budget's *worst case* the same count is taken with a safety margin
(:data:`WORST_CASE_FACTOR`), plus the output cap at the output price.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

PER_MESSAGE = 4  # role and framing tokens of one message (OpenAI's documented overhead)
WORST_CASE_FACTOR = 1.5  # margin of the worst-case estimate over the typical one


def estimate_tokens(text: str) -> int:
    """The typical token count of ``text`` (0 for an empty text)."""
    if not text:
        return 0
    non_ascii = sum(1 for character in text if ord(character) > 127)
    ascii_bytes = len(text) - non_ascii
    return math.ceil(ascii_bytes / 4) + non_ascii


def estimate_parts(parts: Iterable[str]) -> int:
    """The typical token count of a request or response made of ``parts`` (texts of messages,
    tool calls, tool definitions), framing included."""
    return sum(estimate_tokens(part) + PER_MESSAGE for part in parts)


def worst_case_input(typical: int) -> int:
    """An input token count the real one should not exceed (the budget's hold)."""
    return math.ceil(typical * WORST_CASE_FACTOR) + PER_MESSAGE
