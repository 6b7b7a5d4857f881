"""Facet tokens: how exact filters ride in the full-text index.

Every keyword, list item and bool value of an entry becomes one token, and so does the entry's
account + directory (its scope). A token is a decimal number derived from a 56-bit BLAKE2b
hash of the scope, the field and the case-folded value: only digits, so no tokenizer or
stemmer changes it (SQLite FTS5 with porter, PostgreSQL's 'simple' config). A text + filter
search is then one index intersection — ``(terms) AND city AND (insurance A OR insurance B)``,
or ``(terms) AND scope`` without filters — instead of a join per filter. The SQL around it
still checks account and directory on every row, so isolation never rests on a hash; a false
filter match would need a 56-bit collision."""

from __future__ import annotations

import hashlib
import uuid

_BYTES = 7


def _token(*parts: str) -> str:
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=_BYTES).digest()
    return str(int.from_bytes(digest, "big"))


def facet_token(scope: str, field: str, normalized_value: str) -> str:
    """A value's token within one account's directory (``scope`` is its scope token), so a
    filtered search never walks the postings of other accounts or directories."""
    return _token("f", scope, field, normalized_value)


def scope_token(account_id: uuid.UUID, directory: str) -> str:
    return _token("s", str(account_id), directory)
