"""Redis backends: shared counters (rate and budget limits) and the shared response cache.

Counters
    One atomic round trip per check: a Lua script (loaded once, called with EVALSHA; redis-py's
    ``register_script`` reloads it on NOSCRIPT, e.g. after a Redis restart) reads the previous
    and current window and, for ``hit``, adds the amount only if the total stays within the
    limit. The window index and the sliding weight are computed by the caller exactly as
    ``MemoryCounters`` does (``crossroads.limits.window_math``), the sums are done in Lua in
    IEEE doubles and stored with 17 significant digits, so both backends give identical
    admissions for the same sequence of calls. Each window's key lives 2 windows (PX).

    Keys are ``<prefix>{<counter key>}:<window index>`` (prefix ``cxr:``, or ``?prefix=`` in
    the Redis URL): the hash tag puts the previous and
    the current window of one counter in the same Redis Cluster slot (a script touches both).

    Budgets (``check_spent`` / ``add``) are admit-while-below, settle-after: a request is
    admitted while what was spent is below the limit and its actual cost is added when the
    answer is accounted. Concurrent requests admitted before the earlier ones settle can
    overshoot the limit by at most the cost of the requests in flight at that moment.

Failure handling
    The client uses short socket timeouts (``store_timeout``) and no retries. A ``Breaker``
    counts consecutive connection failures; after ``failures`` of them it opens (a timeout
    opens it only if a PING with a longer deadline also fails, see ``Breaker._suspect``):
    every call raises ``RedisUnavailable`` at once (no network wait) and ``rt.degraded["redis"]``
    says so, which ``/healthz`` shows. A background probe PINGs every ``cooldown`` seconds and
    closes the breaker when Redis answers. Callers apply the gateway's ``limits_on_store_failure``
    policy to the exception (fail open: admit; fail closed: 503); the cache treats it as a miss.

Cache
    ``RedisCache`` stores a ``CachedAnswer`` under ``<prefix>cache:<key>`` with SET PX (the TTL),
    the absolute expiry inside the value as well (so the caller's ``now`` decides, as in the
    memory cache), and a per-entry size cap. Memory is bounded by TTLs and the cap; see
    docs/deployment.md for the eviction policy to give the Redis instance.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError
from redis.exceptions import TimeoutError as RedisTimeoutError

from crossroads.cache import CachedAnswer
from crossroads.limits import Admission, Counters, window_math

log = logging.getLogger("crossroads.redis")

T = TypeVar("T")

DEFAULT_PREFIX = "cxr:"
BREAKER_FAILURES = 3  # consecutive failures that open the breaker
BREAKER_COOLDOWN = 2.0  # seconds between probes while open
MAX_ENTRY_BYTES = 8 * 1024 * 1024  # per cached answer (also capped by cache_max_bytes)
MAX_IN_FLIGHT = 64  # concurrent Redis calls per process (the pool holds a few more)


class RedisUnavailable(Exception):
    """Redis is not answering (breaker open): the caller applies its failure policy."""


# KEYS[1] previous window, KEYS[2] current window.
# ARGV[1] amount, ARGV[2] limit, ARGV[3] weight of the previous window (-1: fixed), ARGV[4] ttl ms
_HIT = """
local cur_raw = redis.call('GET', KEYS[2]) or '0'
local cur = tonumber(cur_raw)
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local weight = tonumber(ARGV[3])
local prev_raw = '0'
local used = cur
if weight >= 0 then
  prev_raw = redis.call('GET', KEYS[1]) or '0'
  used = tonumber(prev_raw) * weight + cur
end
if used + amount > limit + 1e-9 then
  return {0, prev_raw, cur_raw}
end
redis.call('SET', KEYS[2], string.format('%.17g', cur + amount), 'PX', ARGV[4])
return {1, prev_raw, cur_raw}
"""

# KEYS[1] current window; ARGV[1] amount, ARGV[2] ttl ms
_ADD = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('SET', KEYS[1], string.format('%.17g', cur + tonumber(ARGV[1])), 'PX', ARGV[2])
return 1
"""


def _num(raw: Any) -> float:
    return 0.0 if raw is None else float(raw)


class RedisCounters:
    """The Counters protocol on Redis (see the module docstring)."""

    def __init__(self, client: aioredis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        self._hit = client.register_script(_HIT)
        self._add = client.register_script(_ADD)

    def _keys(self, key: str, window: float, now: float) -> tuple[str, str]:
        idx = int(math.floor(now / window))
        base = f"{self.prefix}{{{key}}}:"
        return base + str(idx - 1), base + str(idx)

    @staticmethod
    def ttl_ms(window: float) -> int:
        return max(1, math.ceil(2 * window * 1000))

    @staticmethod
    def _weight(window: float, technique: str, now: float) -> float:
        if technique != "sliding":
            return -1.0
        start = math.floor(now / window) * window
        return 1.0 - (now - start) / window

    async def hit(self, key: str, amount: float, limit: float, window: float, technique: str,
                  now: float) -> Admission:
        keys = self._keys(key, window, now)
        weight = self._weight(window, technique, now)
        ok, prev, cur = await self._hit(keys=list(keys), args=[
            repr(float(amount)), repr(float(limit)), repr(weight), self.ttl_ms(window)])
        used, reset = window_math((_num(prev), _num(cur)), window, technique, now)
        if not ok:
            return Admission(False, limit, max(limit - used, 0.0), reset)
        return Admission(True, limit, max(limit - used - amount, 0.0), reset)

    async def check_spent(self, key: str, limit: float, window: float, technique: str,
                          now: float) -> Admission:
        prev, cur = await self.client.mget(list(self._keys(key, window, now)))
        used, reset = window_math((_num(prev), _num(cur)), window, technique, now)
        return Admission(used < limit, limit, max(limit - used, 0.0), reset)

    async def add(self, key: str, amount: float, window: float, technique: str,
                  now: float) -> None:
        await self._add(keys=[self._keys(key, window, now)[1]],
                        args=[repr(float(amount)), self.ttl_ms(window)])

    async def close(self) -> None:
        return None


# -- the breaker ------------------------------------------------------------------------------
_FAILURES = (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError)


class Breaker:
    """Stops calling Redis after ``failures`` consecutive connection failures or timeouts.

    While open, ``call`` raises ``RedisUnavailable`` immediately and a background probe PINGs
    every ``cooldown`` seconds; the first answer closes the breaker. Errors that Redis itself
    answered (e.g. a script error) are passed through and do not count: Redis is up.
    """

    def __init__(self, ping: Callable[[], Awaitable[Any]], degraded: dict[str, str], *,
                 failures: int = BREAKER_FAILURES, cooldown: float = BREAKER_COOLDOWN,
                 timeout: float = 0.25, max_in_flight: int = MAX_IN_FLIGHT,
                 on_recover: Callable[[], Awaitable[Any]] | None = None) -> None:
        self._ping = ping
        self._on_recover = on_recover
        # calls beyond this wait here (untimed) rather than exhaust the connection pool
        self._slots = asyncio.Semaphore(max_in_flight)
        self._degraded = degraded
        self.failures = failures
        self.cooldown = cooldown
        self.timeout = timeout
        self.consecutive = 0
        self.open = False
        self.opened = 0  # how many times it opened (for tests and logs)
        self._probe: asyncio.Task[None] | None = None
        self._confirm: asyncio.Task[None] | None = None

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        if self.open:
            raise RedisUnavailable("redis unavailable (circuit breaker open)")
        async with self._slots:
            if self.open:
                raise RedisUnavailable("redis unavailable (circuit breaker open)")
            try:
                # socket timeouts bound each read; this also bounds reconnects
                async with asyncio.timeout(self.timeout * 2 + 0.05):
                    result = await fn(*args, **kw)
            except MaxConnectionsError:
                raise  # pool exhaustion, not a Redis failure
            except (TimeoutError, RedisTimeoutError):
                self._suspect()
                raise
            except _FAILURES as exc:
                self._failed(exc)
                raise
        self.consecutive = 0
        return result

    def _failed(self, exc: BaseException) -> None:
        self.consecutive += 1
        if self.consecutive >= self.failures and not self.open:
            self.trip(f"unreachable ({type(exc).__name__}); calls stopped, probing every "
                      f"{self.cooldown:g} s")

    def _suspect(self) -> None:
        """A timeout may be Redis stalling or only this process's event loop lagging under a
        burst (the reply was there, read late). Opening on timeouts alone would drop every
        limit exactly when load peaks, so a timeout only opens the breaker if a PING with a
        generous deadline also goes unanswered."""
        if self.open or (self._confirm is not None and not self._confirm.done()):
            return
        self._confirm = asyncio.get_running_loop().create_task(self._confirm_down())

    async def _confirm_down(self) -> None:
        deadline = max(1.0, 4 * self.timeout)
        try:
            async with asyncio.timeout(deadline):
                await self._ping()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self.open:
                self.trip(f"unreachable ({type(exc).__name__}: no answer to PING within "
                          f"{deadline:g} s); calls stopped, probing every {self.cooldown:g} s")

    def trip(self, reason: str) -> None:
        self.open = True
        self.opened += 1
        self._degraded["redis"] = reason
        log.warning("redis breaker open: %s", reason)
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._probe_loop())

    def _close(self) -> None:
        self.open = False
        self.consecutive = 0
        self._degraded.pop("redis", None)
        log.warning("redis answers again; breaker closed")

    async def _probe_loop(self) -> None:
        while self.open:
            await asyncio.sleep(self.cooldown)
            try:
                async with asyncio.timeout(self.timeout * 2 + 0.05):
                    await self._ping()
            except asyncio.CancelledError:
                raise
            except Exception:
                continue
            if self._on_recover is not None:
                try:  # e.g. drop pooled connections to the Redis that went away
                    await self._on_recover()
                except Exception:
                    pass
            self._close()

    async def aclose(self) -> None:
        for task in (self._probe, self._confirm):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass


def split_prefix(url: str) -> tuple[str, str | None]:
    """Remove our ``prefix`` query parameter from a Redis URL: (url, prefix or None)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), None)
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


class RedisLink:
    """One client and one breaker, shared by the counters and the cache of a process."""

    def __init__(self, client: aioredis.Redis, degraded: dict[str, str], *,
                 timeout: float = 0.25, prefix: str = DEFAULT_PREFIX,
                 failures: int = BREAKER_FAILURES, cooldown: float = BREAKER_COOLDOWN) -> None:
        self.client = client
        self.prefix = prefix
        self.breaker = Breaker(client.ping, degraded, failures=failures, cooldown=cooldown,
                               timeout=timeout, on_recover=client.connection_pool.disconnect)
        self._users = 0

    @classmethod
    def from_url(cls, url: str, degraded: dict[str, str], *, timeout: float = 0.25,
                 prefix: str | None = None, **kw: Any) -> RedisLink:
        """``?prefix=...`` in the URL (ours) namespaces every key, so deployments can share
        one Redis; the default prefix is ``cxr:``."""
        url, url_prefix = split_prefix(url)
        prefix = prefix or url_prefix or DEFAULT_PREFIX
        client = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            # one immediate retry, on connection errors only: a pooled connection may have
            # been closed by the server (restart, idle timeout, fail-over)
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            health_check_interval=0, decode_responses=False,
            max_connections=MAX_IN_FLIGHT + 8)
        return cls(client, degraded, timeout=timeout, prefix=prefix, **kw)

    def acquire(self) -> RedisLink:
        self._users += 1
        return self

    async def release(self) -> None:
        self._users -= 1
        if self._users <= 0:
            await self.breaker.aclose()
            await self.client.aclose()

    async def check(self) -> bool:
        """PING once at start-up; if Redis is down, start with the breaker open."""
        try:
            await self.breaker.call(self.client.ping)
            return True
        except Exception as exc:
            if not self.breaker.open:
                self.breaker.trip(f"unreachable at start-up ({type(exc).__name__})")
            return False


class BreakerCounters:
    """Counters whose every call goes through the breaker."""

    def __init__(self, inner: RedisCounters, link: RedisLink) -> None:
        self.inner = inner
        self.link = link.acquire()
        self.breaker = link.breaker

    async def hit(self, key: str, amount: float, limit: float, window: float, technique: str,
                  now: float) -> Admission:
        return await self.breaker.call(self.inner.hit, key, amount, limit, window, technique,
                                       now)

    async def check_spent(self, key: str, limit: float, window: float, technique: str,
                          now: float) -> Admission:
        return await self.breaker.call(self.inner.check_spent, key, limit, window, technique,
                                       now)

    async def add(self, key: str, amount: float, window: float, technique: str,
                  now: float) -> None:
        await self.breaker.call(self.inner.add, key, amount, window, technique, now)

    async def close(self) -> None:
        await self.link.release()


def _link_for(rt: Any) -> RedisLink:
    link: RedisLink | None = getattr(rt, "redis_link", None)
    if link is None:
        s = rt.settings
        link = RedisLink.from_url(s.redis_url, rt.degraded, timeout=s.store_timeout)
        rt.redis_link = link
    return link


async def build_redis_counters(rt: Any) -> Counters:
    link = _link_for(rt)
    await link.check()
    return BreakerCounters(RedisCounters(link.client, link.prefix), link)


# -- the cache --------------------------------------------------------------------------------
_HEAD = struct.Struct(">I")


def encode_answer(answer: CachedAnswer, expires: float) -> bytes:
    head = orjson.dumps({"s": answer.status, "ct": answer.content_type, "p": answer.provider,
                         "m": answer.model, "ti": answer.tokens_in, "to": answer.tokens_out,
                         "x": expires})
    return _HEAD.pack(len(head)) + head + answer.body


def decode_answer(blob: bytes) -> tuple[CachedAnswer, float]:
    (n,) = _HEAD.unpack_from(blob)
    h = orjson.loads(blob[4:4 + n])
    return (CachedAnswer(h["s"], h["ct"], blob[4 + n:], h["p"], h["m"], h["ti"], h["to"]),
            h["x"])


class RedisCache:
    """The Cache protocol on Redis (see the module docstring)."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = DEFAULT_PREFIX,
                 max_entry_bytes: int = MAX_ENTRY_BYTES, link: RedisLink | None = None) -> None:
        self.client = client
        self.prefix = prefix + "cache:"
        self.max_entry_bytes = max_entry_bytes
        self._link = link.acquire() if link is not None else None
        self._breaker = link.breaker if link is not None else None

    @classmethod
    def from_runtime(cls, rt: Any) -> RedisCache:
        link = _link_for(rt)
        cap = min(MAX_ENTRY_BYTES, rt.settings.cache_max_bytes)
        if rt.settings.cache_max_entries <= 0:
            cap = -1
        return cls(link.client, prefix=link.prefix, max_entry_bytes=cap, link=link)

    async def _run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        if self._breaker is not None:
            return await self._breaker.call(fn, *args, **kw)
        return await fn(*args, **kw)

    async def get(self, key: str, now: float) -> CachedAnswer | None:
        blob = await self._run(self.client.get, self.prefix + key)
        if blob is None:
            return None
        answer, expires = decode_answer(blob if isinstance(blob, bytes) else blob.encode())
        if expires <= now:
            return None
        return answer

    async def put(self, key: str, answer: CachedAnswer, ttl: float, now: float) -> None:
        if ttl <= 0 or len(answer.body) > self.max_entry_bytes:
            return
        await self._run(self.client.set, self.prefix + key, encode_answer(answer, now + ttl),
                        px=max(1, math.ceil(ttl * 1000)))

    async def close(self) -> None:
        if self._link is not None:
            await self._link.release()
