"""The ``cf-aig-*`` request headers, parsed and checked once into ``RequestOptions``. Pure.

Out-of-range values are a 400 that names the header and the allowed range (Cloudflare clamps
silently in places; we prefer to tell the caller).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

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


class RequestOptions(NamedTuple):
    """Immutable (a tuple: built in one step, and one instance can serve every plain request)."""

    metadata: Mapping[str, str | int | float | bool] = _NO_METADATA
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


_SCALARS = frozenset((str, int, float, bool))


def parse_metadata(value: str) -> dict[str, str | int | float | bool]:
    """Flat JSON object, at most 5 entries kept (the first five, as Cloudflare), values
    string/number/boolean; ``cf.``-prefixed keys are reserved and dropped."""
    try:
        obj: Any = orjson.loads(header_text(value))
    except orjson.JSONDecodeError:
        raise InvalidHeader("cf-aig-metadata must be a JSON object") from None
    if not isinstance(obj, dict):
        raise InvalidHeader("cf-aig-metadata must be a JSON object")
    if len(obj) <= MAX_METADATA:
        for key, val in obj.items():
            if type(val) not in _SCALARS or key.startswith("cf."):
                break
        else:
            return obj  # the usual header: nothing to drop, kept as sent
    out: dict[str, str | int | float | bool] = {}
    for key, val in obj.items():
        if isinstance(val, (dict, list)):  # noqa: UP038 (a tuple: no union object per call)
            raise InvalidHeader(f"cf-aig-metadata must be flat: '{key}' is an object or array")
        if val is None:
            continue
        if key.startswith("cf."):
            continue
        if len(out) < MAX_METADATA:
            out[key] = val
    return out


# immutable (its metadata a read-only mapping), so one instance serves every plain request
NO_OPTIONS = RequestOptions()


def header_text(value: str) -> str:
    """A header value (read as latin-1, one character a byte, as ASGI servers give them) as
    the text its bytes spell in UTF-8, which is how clients send non-ASCII text in a header;
    as read if its bytes are not UTF-8."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _text(name: str, limit: int) -> Callable[[str], str]:
    def check(v: str) -> str:
        v = header_text(v)
        if not v or len(v) > limit:
            raise InvalidHeader(f"{name} must be 1 to {limit} characters")
        return v
    return check


def _backoff(v: str) -> str:
    if v not in BACKOFFS:
        raise InvalidHeader("cf-aig-backoff must be one of constant, linear, exponential")
    return v


# header -> (RequestOptions field, parser of the value, the header that wins over it if both
# are sent: Cloudflare's older ``cf-*`` names give way to the ``cf-aig-*`` ones)
_FIELDS: dict[str, tuple[str, Callable[[str], Any], str | None]] = {
    "cf-aig-metadata": ("metadata", parse_metadata, None),
    "cf-aig-cache-ttl": ("cache_ttl", _cache_ttl, None),
    "cf-cache-ttl": ("cache_ttl", _cache_ttl, "cf-aig-cache-ttl"),
    "cf-aig-skip-cache": ("skip_cache", lambda v: _bool("cf-aig-skip-cache", v), None),
    "cf-skip-cache": ("skip_cache", lambda v: _bool("cf-aig-skip-cache", v), "cf-aig-skip-cache"),
    "cf-aig-cache-key": ("cache_key", _text("cf-aig-cache-key", 1024), None),
    "cf-aig-collect-log": ("collect_log", lambda v: _bool("cf-aig-collect-log", v), None),
    "cf-aig-collect-log-payload": ("collect_log_payload",
                                   lambda v: _bool("cf-aig-collect-log-payload", v), None),
    "cf-aig-custom-cost": ("custom_cost", parse_custom_cost, None),
    "cf-aig-request-timeout": ("request_timeout_ms",
                               lambda v: _int("cf-aig-request-timeout", v, 1, 3_600_000), None),
    "cf-aig-max-attempts": ("max_attempts",
                            lambda v: _int("cf-aig-max-attempts", v, 1, MAX_ATTEMPTS), None),
    "cf-aig-retry-delay": ("retry_delay_ms",
                           lambda v: _int("cf-aig-retry-delay", v, 0, MAX_RETRY_DELAY), None),
    "cf-aig-backoff": ("backoff", _backoff, None),
    "cf-aig-event-id": ("event_id", _text("cf-aig-event-id", 200), None),
    "cf-aig-byok-alias": ("byok_alias", _text("cf-aig-byok-alias", 100), None),
}

# the same with the field's position in RequestOptions (parse_options fills a list)
_PARSERS = {name: (RequestOptions._fields.index(attr), parse, over)
            for name, (attr, parse, over) in _FIELDS.items()}

# every header parse_options reads
OPTION_HEADERS = frozenset(_PARSERS)


def parse_options(h: Mapping[str, str]) -> RequestOptions:
    """``h`` has lower-cased header names. Only the option headers present are looked at;
    without any (most requests) the answer is the shared ``NO_OPTIONS``. Several bad headers:
    the first by name is reported."""
    present = OPTION_HEADERS.intersection(h)
    if not present:
        return NO_OPTIONS
    values = list(NO_OPTIONS)
    for name in sorted(present) if len(present) > 1 else present:
        index, parse, overridden_by = _PARSERS[name]
        if overridden_by is None or overridden_by not in h:
            values[index] = parse(h[name])
    return RequestOptions._make(values)
