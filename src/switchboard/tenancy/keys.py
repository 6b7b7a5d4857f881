"""API key material. Keys are 256-bit random secrets, so a fast SHA-256 digest is a safe way to
store them (slow password hashes exist for low-entropy secrets)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "sb_"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:10]


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
