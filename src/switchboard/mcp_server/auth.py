"""Account keys as the MCP SDK's bearer tokens. The SDK's bearer backend calls
:class:`KeyVerifier`; the account it found travels in the access token's claims to the tool
handlers, which read it back with :func:`current_account`."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken

from switchboard.db.uow import AccountScope
from switchboard.errors import Unauthenticated
from switchboard.tenancy.service import TenancyService

ACCOUNT_SCOPE = "account"
"""The one scope /mcp requires: account keys carry it; the admin key does not (403)."""


class KeyVerifier:
    """A ``TokenVerifier`` over the stored key hashes (``TenancyService.authenticate``).

    An unknown or revoked key is ``None`` (401 with the protected-resource metadata). The admin
    key is a valid token without the account scope, so the SDK answers 403
    ``insufficient_scope``: /mcp serves one account's tools, and the operator has none."""

    def __init__(self, tenancy: Callable[[], TenancyService]) -> None:
        self._tenancy = tenancy

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            principal = await self._tenancy().authenticate(token)
        except Unauthenticated:
            return None
        if principal.is_admin or principal.scope is None:
            return AccessToken(token=token, client_id="admin", scopes=[])
        scope = principal.scope
        return AccessToken(
            token=token,
            client_id=str(principal.key_id),
            scopes=[ACCOUNT_SCOPE],
            subject=scope.slug,
            claims={"account_id": str(scope.id), "account_slug": scope.slug},
        )


def current_account() -> AccountScope:
    """The account of the key that authenticated the request being handled, from the SDK's
    access-token context variable (set by its ``AuthContextMiddleware``, which /mcp installs
    behind the bearer check, and inherited by the tasks that serve the request in both
    protocol eras). No handler runs without one, so its absence is a wiring bug."""
    token = get_access_token()
    if token is None or ACCOUNT_SCOPE not in token.scopes:
        raise RuntimeError("an /mcp handler ran without an authenticated account key")
    claims = token.claims or {}
    return AccountScope(id=uuid.UUID(str(claims["account_id"])), slug=str(claims["account_slug"]))
