"""Accounts, API keys and authentication. One unit of work per operation."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from switchboard.cache import Cache
from switchboard.db.uow import AccountScope, CrossAccount, UnitOfWork, UnitOfWorkFactory
from switchboard.errors import Conflict, NotFound, Unauthenticated
from switchboard.pagination import decode_time_cursor, encode_time_cursor
from switchboard.schemas import unsafe_text_reason
from switchboard.tenancy import keys
from switchboard.tenancy.models import Account, ApiKey
from switchboard.tenancy.repository import AccountRepository, ApiKeyRepository

SCOPE_CACHE_SIZE = 10_000
SCOPE_CACHE_TTL_S = 60.0


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the operator (admin key) or one account (its API key)."""

    is_admin: bool
    scope: AccountScope | None = None
    key_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: ApiKey
    secret: str


def account_not_found(slug: str) -> NotFound:
    return NotFound(f"account '{slug}' not found", code="ACCOUNT_NOT_FOUND")


class TenancyService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        *,
        admin_key: str | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uow = uow
        self._admin_key = admin_key
        # Slug → scope for admin requests. No code path deletes an account or changes its slug
        # (``upsert`` renames only the display name, which a scope does not hold), so nothing
        # here has to invalidate; the TTL bounds how long a change made elsewhere (by hand in
        # the database, or a future delete in another process) can go unseen. Only found
        # accounts are cached, so a new account is seen at once.
        self._scopes: Cache[str, AccountScope] = Cache(
            SCOPE_CACHE_SIZE, ttl_s=SCOPE_CACHE_TTL_S, clock=clock
        )

    async def create_account(self, *, slug: str, name: str) -> Account:
        async def op(u: UnitOfWork) -> Account:
            account = await AccountRepository(u).insert(slug=slug, name=name)
            if account is None:
                raise Conflict(f"account '{slug}' already exists", code="ACCOUNT_ALREADY_EXISTS")
            return account

        return await self._uow.run(op)

    @staticmethod
    async def ensure_account_in(u: UnitOfWork, *, slug: str, name: str) -> tuple[Account, bool]:
        """Create or rename an account within an open unit of work; (account, created)."""
        return await AccountRepository(u).upsert(slug=slug, name=name)

    async def get_account(self, slug: str) -> Account:
        if unsafe_text_reason(slug) is not None:  # cannot exist, and cannot be queried
            raise account_not_found(slug)

        async def op(u: UnitOfWork) -> Account:
            account = await AccountRepository(u).get_by_slug(slug)
            if account is None:
                raise account_not_found(slug)
            return account

        return await self._uow.run(op, write=False)

    async def accounts(self, *, limit: int = 10_000) -> list[Account]:
        """Every account (the operator's view), in slug order, at most ``limit``."""

        async def op(u: UnitOfWork) -> list[Account]:
            return await AccountRepository(u).page(after=None, limit=limit)

        return await self._uow.run(op, write=False)

    async def create_key(self, scope: AccountScope, *, name: str | None) -> CreatedKey:
        secret = keys.generate_key()

        async def op(u: UnitOfWork) -> ApiKey:
            return ApiKeyRepository(u).add(
                name=name, prefix=keys.display_prefix(secret), key_hash=keys.hash_key(secret)
            )

        return CreatedKey(key=await self._uow.run(op, scope=scope), secret=secret)

    async def list_keys(
        self, scope: AccountScope, *, cursor: str | None, limit: int
    ) -> tuple[list[ApiKey], str | None]:
        """The account's keys, oldest first, a page at a time."""
        after = decode_time_cursor(cursor)

        async def op(u: UnitOfWork) -> list[ApiKey]:
            return await ApiKeyRepository(u).page(after=after, limit=limit + 1)

        rows = await self._uow.run(op, scope=scope, write=False)
        if len(rows) > limit:
            last = rows[limit - 1]
            return rows[:limit], encode_time_cursor(last.created_at, last.id)
        return rows, None

    async def revoke_key(self, scope: AccountScope, key_id: uuid.UUID) -> None:
        async def op(u: UnitOfWork) -> None:
            if not await ApiKeyRepository(u).revoke(key_id):
                raise NotFound(f"no active key '{key_id}' in this account", code="KEY_NOT_FOUND")

        await self._uow.run(op, scope=scope)

    async def authenticate(self, presented: str | None) -> Principal:
        if not presented:
            raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
        if self.is_admin_key(presented):
            return Principal(is_admin=True)

        return await self.authenticate_digest(keys.hash_key(presented))

    async def authenticate_digest(self, key_hash: str) -> Principal:
        """The account of the active key with this digest (a console session holds the digest
        of the key it logged in with, never the key, and is checked again on every page: a
        revoked key ends its sessions)."""

        async def op(u: UnitOfWork) -> Principal | None:
            owner = await ApiKeyRepository(u).find_owner(key_hash)
            if owner is None:
                return None
            return Principal(is_admin=False, scope=owner.scope, key_id=owner.key_id)

        principal = await self._uow.run(
            op,
            scope=CrossAccount("authentication: a key's account is found by its hash"),
            write=False,
        )
        if principal is None:
            raise Unauthenticated("invalid or revoked API key")
        return principal

    def is_admin_key(self, presented: str) -> bool:
        return self._admin_key is not None and keys.same_secret(presented, self._admin_key)

    async def resolve(self, principal: Principal, slug: str) -> AccountScope:
        """The account a request may act on. Another account's slug is 'not found', so a key
        never learns which other accounts exist."""
        if not principal.is_admin:
            if principal.scope is None or principal.scope.slug != slug:
                raise account_not_found(slug)
            return principal.scope
        cached = self._scopes.get(slug)
        if cached is not None:
            return cached
        account = await self.get_account(slug)
        scope = AccountScope(id=account.id, slug=account.slug)
        self._scopes.put(slug, scope)
        return scope
