"""The ``cf-aig-*`` request headers, parsed and checked once into ``RequestOptions``. Pure.

Out-of-range values are a 400 that names the header and the allowed range (Cloudflare clamps
silently in places; we prefer to tell the caller).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import orjson

from crossroads.errors import InvalidHeader
from crossroads.providers.pricing import Rates, parse_custom_cost

MAX_METADATA = 5
CACHE_TTL_MIN = 60
CACHE_TTL_MAX = 30 * 24 * 3600
MAX_ATTEMPTS = 5
MAX_RETRY_DELAY = 5000
BACKOFFS = ("constant", "linear", "exponential")


_NO_METADATA: Mapping[str, Any] = MappingProxyType({})


@dataclass(slots=True, frozen=True)
class RequestOptions:
    metadata: Mapping[str, str | int | float | bool] = field(default_factory=lambda: _NO_METADATA)
    cache_ttl: int | None = None
    skip_cache: bool = False
    cache_key: str | None = None
    collect_log: bool | None = None
    collect_log_payload: bool = True
    custom_cost: Rates | None = None
    request_timeout_ms: int | None = None
    max_attempts: int | None = None
    retry_delay_ms: int | None = None
    backoff: str | None = None
    event_id: str | None = None
    byok_alias: str = "default"


def _bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise InvalidHeader(f"{name} must be true or false")


def _int(name: str, value: str, lo: int, hi: int) -> int:
    try:
        n = int(value.strip())
    except ValueError:
        raise InvalidHeader(f"{name} must be an integer between {lo} and {hi}") from None
    if not lo <= n <= hi:
        raise InvalidHeader(f"{name} must be between {lo} and {hi}, got {n}")
    return n


def _cache_ttl(value: str) -> int:
    """0 (do not cache) or 60 s .. 1 month; one message for every bad value."""
    try:
        n = int(value.strip())
    except ValueError:
        n = -1
    if n == 0 or CACHE_TTL_MIN <= n <= CACHE_TTL_MAX:
        return n
    raise InvalidHeader(f"cf-aig-cache-ttl must be 0 (no caching) or between {CACHE_TTL_MIN} "
                        f"and {CACHE_TTL_MAX} seconds, got '{value.strip()[:50]}'")


def parse_metadata(value: str) -> dict[str, str | int | float | bool]:
    """Flat JSON object, at most 5 entries kept (the first five, as Cloudflare), values
    string/number/boolean; ``cf.``-prefixed keys are reserved and dropped."""
    try:
        obj: Any = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise InvalidHeader("cf-aig-metadata must be a JSON object") from None
    if not isinstance(obj, dict):
        raise InvalidHeader("cf-aig-metadata must be a JSON object")
    out: dict[str, str | int | float | bool] = {}
    for key, val in obj.items():
        if isinstance(val, dict | list):
            raise InvalidHeader(f"cf-aig-metadata must be flat: '{key}' is an object or array")
        if val is None:
            continue
        if key.startswith("cf."):
            continue
        if len(out) < MAX_METADATA:
            out[key] = val
    return out


# frozen (its metadata a read-only mapping), so one instance serves every plain request
NO_OPTIONS = RequestOptions()

# every header parse_options reads: a request with none of them (most) skips the lookups
OPTION_HEADERS = frozenset((
    "cf-aig-metadata", "cf-aig-cache-ttl", "cf-cache-ttl", "cf-aig-skip-cache", "cf-skip-cache",
    "cf-aig-cache-key", "cf-aig-collect-log", "cf-aig-collect-log-payload", "cf-aig-custom-cost",
    "cf-aig-request-timeout", "cf-aig-max-attempts", "cf-aig-retry-delay", "cf-aig-backoff",
    "cf-aig-event-id", "cf-aig-byok-alias"))


def parse_options(h: dict[str, str]) -> RequestOptions:
    """``h`` has lower-cased header names. Without any option header (most requests) the
    answer is the shared ``NO_OPTIONS``."""
    if OPTION_HEADERS.isdisjoint(h):
        return NO_OPTIONS
    o: dict[str, Any] = {}
    if (v := h.get("cf-aig-metadata")) is not None:
        o["metadata"] = parse_metadata(v)
    ttl = h.get("cf-aig-cache-ttl", h.get("cf-cache-ttl"))
    if ttl is not None:
        o["cache_ttl"] = _cache_ttl(ttl)
    skip = h.get("cf-aig-skip-cache", h.get("cf-skip-cache"))
    if skip is not None:
        o["skip_cache"] = _bool("cf-aig-skip-cache", skip)
    if (v := h.get("cf-aig-cache-key")) is not None:
        if not v or len(v) > 1024:
            raise InvalidHeader("cf-aig-cache-key must be 1 to 1024 characters")
        o["cache_key"] = v
    if (v := h.get("cf-aig-collect-log")) is not None:
        o["collect_log"] = _bool("cf-aig-collect-log", v)
    if (v := h.get("cf-aig-collect-log-payload")) is not None:
        o["collect_log_payload"] = _bool("cf-aig-collect-log-payload", v)
    if (v := h.get("cf-aig-custom-cost")) is not None:
        o["custom_cost"] = parse_custom_cost(v)
    if (v := h.get("cf-aig-request-timeout")) is not None:
        o["request_timeout_ms"] = _int("cf-aig-request-timeout", v, 1, 3_600_000)
    if (v := h.get("cf-aig-max-attempts")) is not None:
        o["max_attempts"] = _int("cf-aig-max-attempts", v, 1, MAX_ATTEMPTS)
    if (v := h.get("cf-aig-retry-delay")) is not None:
        o["retry_delay_ms"] = _int("cf-aig-retry-delay", v, 0, MAX_RETRY_DELAY)
    if (v := h.get("cf-aig-backoff")) is not None:
        if v not in BACKOFFS:
            raise InvalidHeader("cf-aig-backoff must be one of constant, linear, exponential")
        o["backoff"] = v
    if (v := h.get("cf-aig-event-id")) is not None:
        if not v or len(v) > 200:
            raise InvalidHeader("cf-aig-event-id must be 1 to 200 characters")
        o["event_id"] = v
    if (v := h.get("cf-aig-byok-alias")) is not None:
        if not v or len(v) > 100:
            raise InvalidHeader("cf-aig-byok-alias must be 1 to 100 characters")
        o["byok_alias"] = v
    return RequestOptions(**o)
