"""Provider limits shared by every server process and machine, through Redis.

* A concurrency slot is a lease: a member of a sorted set scored by its expiry (Redis' own
  clock), renewed while it is held. A crashed process stops renewing, and its slots expire after
  ``lease_ttl_s``; nothing can hold a slot for ever.
* rpm/tpm are sliding 60-second windows, checked and recorded atomically in one Lua script.
* Waiters of one process queue in FIFO order locally; the head of the queue polls Redis.
* Redis unreachable → :class:`LimiterUnavailable` for that call: limits fail closed, they never
  silently fall back to per-process limits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from contextlib import AbstractAsyncContextManager

import redis
import redis.asyncio as aioredis
from redis.driver_info import DriverInfo
from redis.exceptions import RedisError

from switchboard.errors import LimiterUnavailable
from switchboard.traffic.limiter import SharedLimiterBase
from switchboard.traffic.limits import LimitSpec

log = logging.getLogger("switchboard.traffic")
PREFIX = "switchboard:limits"

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
ACQUIRE = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return 1
end
return 0
"""
)
RENEW = (
    _NOW
    + """
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
  return 1
end
return 0
"""
)
RATE = (
    _NOW
    + """
local window = now - 60000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', window)
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens = math.min(tonumber(ARGV[3]), tpm > 0 and tpm or tonumber(ARGV[3]))
local wait = 0
if rpm > 0 and redis.call('ZCARD', KEYS[1]) + 1 > rpm then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  wait = math.max(wait, tonumber(oldest[2]) + 60000 - now)
end
if tpm > 0 then
  local entries = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  local used = 0
  for i = 1, #entries, 2 do
    used = used + tonumber(string.match(entries[i], ':(%d+)$'))
  end
  if used + tokens > tpm and #entries > 0 then
    wait = math.max(wait, tonumber(entries[2]) + 60000 - now)
  end
end
if wait > 0 then return wait end
if rpm > 0 then redis.call('ZADD', KEYS[1], now, ARGV[4]) end
if tpm > 0 then redis.call('ZADD', KEYS[2], now, ARGV[4] .. ':' .. tokens) end
redis.call('PEXPIRE', KEYS[1], 61000)
redis.call('PEXPIRE', KEYS[2], 61000)
return 0
"""
)


def unavailable(exc: BaseException) -> LimiterUnavailable:
    return LimiterUnavailable(
        f"the shared limiter (Redis) is unreachable: {exc}", retry_after_s=1.0
    )


class RedisLimiter(SharedLimiterBase):
    def __init__(self, url: str, *, lease_ttl_s: float = 30.0, poll_s: float = 0.02) -> None:
        # An explicit DriverInfo: otherwise redis-py reads its version from the installed
        # package's metadata (file I/O) on every new connection, inside the event loop.
        super().__init__(poll_s=poll_s)
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=2,
            socket_connect_timeout=2,
            driver_info=DriverInfo(name="redis-py(switchboard)", lib_version=redis.__version__),
        )
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._ttl_ms = int(lease_ttl_s * 1000)
        self._acquire = self._redis.register_script(ACQUIRE)
        self._renew = self._redis.register_script(RENEW)
        self._rate_script = self._redis.register_script(RATE)

    async def held(self, key: str) -> int:
        """Live leases across all processes (for tests and diagnostics)."""
        slots = f"{PREFIX}:slots:{key}"
        try:
            now_ms = int(time.time() * 1000)
            return int(await self._redis.zcount(slots, now_ms, "+inf"))
        except RedisError as exc:
            raise unavailable(exc) from exc

    def _slot(
        self, spec: LimitSpec, limit: int, deadline: float, started: float
    ) -> AbstractAsyncContextManager[None]:
        key = f"{PREFIX}:slots:{spec.key}"
        member = f"{self._owner}:{uuid.uuid4().hex}"

        async def acquire(_first: bool) -> bool:
            try:
                return bool(await self._acquire(keys=[key], args=[limit, self._ttl_ms, member]))
            except (RedisError, OSError) as exc:
                raise unavailable(exc) from exc

        return self._leased(
            spec,
            deadline,
            started,
            acquire=acquire,
            keep_alive=lambda: self._keep_alive(key, member),
            release=lambda: self._release(key, member),
        )

    async def _keep_alive(self, key: str, member: str) -> None:
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            try:
                await self._renew(keys=[key], args=[self._ttl_ms, member])
            except (RedisError, OSError) as exc:
                log.warning("could not renew lease %s: %s", member, exc)

    async def _release(self, key: str, member: str) -> None:
        try:
            await self._redis.zrem(key, member)
        except (RedisError, OSError) as exc:  # the lease expires by itself
            log.warning(
                "could not release lease %s (it expires in %d ms): %s", member, self._ttl_ms, exc
            )

    async def _rate(self, spec: LimitSpec, tokens: int, deadline: float, started: float) -> None:
        if spec.rpm is None and spec.tpm is None:
            return
        keys = [f"{PREFIX}:rpm:{spec.key}", f"{PREFIX}:tpm:{spec.key}"]
        member = f"{self._owner}:{uuid.uuid4().hex}"

        async def record() -> float:
            try:
                wait_ms = await self._rate_script(
                    keys=keys, args=[spec.rpm or 0, spec.tpm or 0, tokens, member]
                )
            except (RedisError, OSError) as exc:
                raise unavailable(exc) from exc
            return float(wait_ms or 0) / 1000

        await self._windowed(spec, deadline, started, record=record)

    async def ping(self) -> None:
        """Raise :class:`LimiterUnavailable` unless Redis answers (for ``/readyz``)."""
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise unavailable(exc) from exc

    async def aclose(self) -> None:
        await self._redis.aclose()
