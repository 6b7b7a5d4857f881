"""Queries for accounts and keys. Never commits: the unit of work does."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select, update

from switchboard.db.base import utcnow
from switchboard.db.uow import AccountScope, UnitOfWork
from switchboard.db.upsert import insert_ignoring_conflict
from switchboard.tenancy.models import Account, ApiKey


@dataclass(frozen=True, slots=True)
class KeyOwner:
    key_id: uuid.UUID
    scope: AccountScope


class AccountRepository:
    """Accounts are the tenancy root, so this repository is the one that is not account-scoped."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def insert(self, *, slug: str, name: str) -> Account | None:
        """Insert an account; ``None`` when the slug is taken (decided by the UNIQUE index)."""
        now = utcnow()
        row = {"id": uuid.uuid4(), "slug": slug, "name": name, "created_at": now, "updated_at": now}
        inserted = await insert_ignoring_conflict(
            self._uow, Account, row, conflict_columns=("slug",)
        )
        return await self.get_by_slug(slug) if inserted else None

    async def get_by_slug(self, slug: str) -> Account | None:
        result = await self._uow.session.execute(select(Account).where(Account.slug == slug))
        return result.scalar_one_or_none()

    async def page(self, *, after: str | None, limit: int) -> list[Account]:
        """Accounts in slug order, after ``after``."""
        query = select(Account).order_by(Account.slug).limit(limit)
        if after is not None:
            query = query.where(Account.slug > after)
        result = await self._uow.session.execute(query)
        return list(result.scalars())

    async def upsert(self, *, slug: str, name: str) -> tuple[Account, bool]:
        """Create or rename; returns the account and whether it was created."""
        account = await self.insert(slug=slug, name=name)
        if account is not None:
            return account, True
        await self._uow.session.execute(
            update(Account)
            .where(Account.slug == slug, Account.name != name)
            .values(name=name, updated_at=utcnow())
        )
        existing = await self.get_by_slug(slug)
        assert existing is not None  # accounts are never deleted
        return existing, False


class ApiKeyRepository:
    """Keys of the unit of work's account; ``find_owner`` is the one global lookup (auth)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    def add(self, *, name: str | None, prefix: str, key_hash: str) -> ApiKey:
        key = ApiKey(
            id=uuid.uuid4(),
            account_id=self._uow.account.id,
            name=name,
            prefix=prefix,
            key_hash=key_hash,
            created_at=utcnow(),
        )
        self._uow.session.add(key)
        return key

    async def revoke(self, key_id: uuid.UUID) -> bool:
        """Revoke an active key of this account; False when there is none to revoke."""
        result = await self._uow.session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                ApiKey.account_id == self._uow.account.id,
                ApiKey.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
        )
        return bool(getattr(result, "rowcount", 0))

    async def page(self, *, after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[ApiKey]:
        """Keys oldest first, from just after the keyset position ``after``."""
        statement = select(ApiKey).where(ApiKey.account_id == self._uow.account.id)
        if after is not None:
            created, key_id = after
            statement = statement.where(
                or_(
                    ApiKey.created_at > created,
                    and_(ApiKey.created_at == created, ApiKey.id > key_id),
                )
            )
        result = await self._uow.session.execute(
            statement.order_by(ApiKey.created_at, ApiKey.id).limit(limit)
        )
        return list(result.scalars())

    async def find_owner(self, key_hash: str) -> KeyOwner | None:
        result = await self._uow.session.execute(
            select(ApiKey.id, Account.id, Account.slug)
            .join(Account, Account.id == ApiKey.account_id)
            .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )
        row = result.one_or_none()
        if row is None:
            return None
        return KeyOwner(key_id=row[0], scope=AccountScope(id=row[1], slug=row[2]))
