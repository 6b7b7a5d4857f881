"""Turning a search request into terms and filters, and fusing rankings."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal

from switchboard.config.directories import DirectoryConfig
from switchboard.directory.repository import Filter
from switchboard.directory.rows import normalize_key
from switchboard.errors import InvalidRequest

SearchMode = Literal["auto", "text", "semantic", "hybrid"]
MAX_TERMS = 16
MAX_FILTER_VALUES = 50
RRF_K = 60  # reciprocal rank fusion constant (Cormack et al. 2009)

STOPWORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "do", "for", "from", "has",
        "have", "how", "i", "in", "is", "it", "me", "my", "near", "of", "on", "or", "please",
        "show", "that", "the", "their", "them", "there", "these", "they", "this", "to", "us",
        "was", "we", "what", "when", "where", "which", "who", "whom", "why", "will", "with", "you",
        "your", "find", "looking", "need", "want", "get", "give",
    }
)  # fmt: skip
_WORD = re.compile(r"\w+")
_RANGE = re.compile(r"^\s*(-?[\d.eE+-]*)\s*\.\.\s*(-?[\d.eE+-]*)\s*$")


def query_terms(query: str) -> list[str]:
    """The distinct words of ``query`` worth matching, lower-cased, stop words dropped."""
    terms: list[str] = []
    for word in _WORD.findall(query.casefold()):
        if word in STOPWORDS or word in terms or len(word) > 64:
            continue
        terms.append(word)
        if len(terms) == MAX_TERMS:
            break
    return terms


def parse_filters(config: DirectoryConfig, raw: Mapping[str, Sequence[str]]) -> list[Filter]:
    """``{field: [value, …]}`` → filters. Several values of a keyword/list/bool field match any
    of them; a number takes ``7``, ``5..20``, ``5..`` or ``..20``."""
    filters: list[Filter] = []
    for name, values in raw.items():
        spec = config.fields.get(name)
        if spec is None:
            raise _invalid(name, f"unknown field (filterable: {_listed(config)})")
        if not spec.is_filterable:
            raise _invalid(name, f"not filterable (filterable: {_listed(config)})")
        cleaned = [v for v in values if v.strip()]
        if not cleaned:
            raise _invalid(name, "empty filter value")
        if len(cleaned) > MAX_FILTER_VALUES:
            raise _invalid(name, f"more than {MAX_FILTER_VALUES} values")
        if spec.type == "number":
            if len(cleaned) != 1:
                raise _invalid(name, "a number filter takes one value or range, e.g. 5..20")
            filters.append(_number_filter(name, cleaned[0]))
        elif spec.type == "bool":
            flags = {_bool(name, v) for v in cleaned}
            filters.append(Filter(name, values=tuple(sorted(flags))))
        else:
            filters.append(Filter(name, values=tuple(dict.fromkeys(map(normalize_key, cleaned)))))
    return filters


def _number_filter(name: str, value: str) -> Filter:
    match = _RANGE.match(value)
    try:
        if match is None:
            number = float(value)
            return Filter(name, low=number, high=number)
        low, high = (float(part) if part else None for part in match.groups())
    except ValueError:
        raise _invalid(name, f"expected a number or a range like 5..20, got {value!r}") from None
    if low is None and high is None:
        raise _invalid(name, "a range needs at least one bound, e.g. 5.. or ..20")
    if low is not None and high is not None and low > high:
        raise _invalid(name, f"empty range {value!r}")
    return Filter(name, low=low, high=high)


def _bool(name: str, value: str) -> str:
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1"):
        return "true"
    if lowered in ("false", "no", "0"):
        return "false"
    raise _invalid(name, f"expected true or false, got {value!r}")


def _listed(config: DirectoryConfig) -> str:
    return ", ".join(config.filterable_fields) or "none"


def _invalid(name: str, message: str) -> InvalidRequest:
    return InvalidRequest(
        f"filter.{name}: {message}",
        code="INVALID_FILTER",
        details={"field": name, "message": message},
    )


def fuse(rankings: Sequence[Sequence[int]]) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of several rankings of entry ids, best first."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, entry_id in enumerate(ranking, start=1):
            scores[entry_id] = scores.get(entry_id, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))
