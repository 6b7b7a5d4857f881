"""The console's session: a signed (not encrypted), HttpOnly, SameSite=Strict cookie that names
who logged in — the operator, or the digest of an account key, never a key itself — and carries
the session's CSRF token. Every page checks it again: a revoked key or a rotated admin key ends
its sessions at the next click."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Literal

from itsdangerous import BadSignature, URLSafeTimedSerializer

from switchboard.settings import Settings
from switchboard.tenancy.keys import hash_key

log = logging.getLogger("switchboard.ui")

COOKIE = "sb_console"
LOGIN_COOKIE = "sb_console_login"  # the login form's own CSRF token (double submit)
PATH = "/ui"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_TTL_S = 3600


@dataclass(frozen=True, slots=True)
class SessionClaims:
    """What the cookie says: who (``admin`` or an account key's digest) and the CSRF token."""

    who: Literal["admin", "key"]
    csrf: str
    key_hash: str | None = None
    admin_fingerprint: str | None = None


def _fingerprint(secret: str) -> str:
    return hashlib.sha256(b"switchboard-admin:" + secret.encode()).hexdigest()[:32]


class SessionCodec:
    """Signs and reads the session cookie with the console secret (SWITCHBOARD_CONSOLE_SECRET,
    else derived from the admin key, else random per process)."""

    def __init__(self, settings: Settings) -> None:
        admin = settings.admin_key.get_secret_value() if settings.admin_key else None
        if settings.console_secret is not None:
            secret = settings.console_secret.get_secret_value()
        elif admin is not None:
            secret = hmac.new(admin.encode(), b"switchboard console session", "sha256").hexdigest()
        else:
            secret = secrets.token_urlsafe(32)
            log.warning(
                "no SWITCHBOARD_CONSOLE_SECRET and no admin key: console sessions are signed "
                "with a random secret of this process (they end at restart and are not shared "
                "between workers)"
            )
        self._admin_fingerprint = _fingerprint(admin) if admin is not None else None
        self.max_age_s = int(settings.console_session_hours * 3600)
        self._session = URLSafeTimedSerializer(secret, salt="switchboard-console-session")
        self._login = URLSafeTimedSerializer(secret, salt="switchboard-console-login")

    def issue_admin(self) -> tuple[str, SessionClaims]:
        claims = SessionClaims(
            who="admin", csrf=secrets.token_urlsafe(24), admin_fingerprint=self._admin_fingerprint
        )
        return self._dump(claims), claims

    def issue_key(self, presented_key: str) -> tuple[str, SessionClaims]:
        claims = SessionClaims(
            who="key", csrf=secrets.token_urlsafe(24), key_hash=hash_key(presented_key)
        )
        return self._dump(claims), claims

    def _dump(self, claims: SessionClaims) -> str:
        payload = {"w": claims.who, "c": claims.csrf}
        if claims.key_hash is not None:
            payload["h"] = claims.key_hash
        if claims.admin_fingerprint is not None:
            payload["a"] = claims.admin_fingerprint
        return self._session.dumps(payload)

    def read(self, raw: str | None) -> SessionClaims | None:
        """The claims of a valid, unexpired cookie; None otherwise. An admin session whose admin
        key has changed since is no longer valid."""
        if not raw:
            return None
        try:
            payload = self._session.loads(raw, max_age=self.max_age_s)
        except BadSignature:  # includes SignatureExpired
            return None
        if not isinstance(payload, dict):
            return None
        who, csrf = payload.get("w"), payload.get("c")
        if not isinstance(csrf, str):
            return None
        if who == "admin":
            if self._admin_fingerprint is None or payload.get("a") != self._admin_fingerprint:
                return None
            return SessionClaims(who="admin", csrf=csrf, admin_fingerprint=self._admin_fingerprint)
        key_hash = payload.get("h")
        if who == "key" and isinstance(key_hash, str):
            return SessionClaims(who="key", csrf=csrf, key_hash=key_hash)
        return None

    def login_token(self) -> tuple[str, str]:
        """A CSRF token for the login form: (cookie value, form value)."""
        token = secrets.token_urlsafe(24)
        return self._login.dumps(token), token

    def login_token_ok(self, cookie: str | None, form: str | None) -> bool:
        if not cookie or not form:
            return False
        try:
            expected = self._login.loads(cookie, max_age=LOGIN_TTL_S)
        except BadSignature:
            return False
        return isinstance(expected, str) and secrets.compare_digest(expected, form)


def same_token(expected: str, given: str | None) -> bool:
    return given is not None and secrets.compare_digest(expected.encode(), given.encode())
