"""One data-plane request in flight: who sent it, to which gateway, with what options, and
the log record that is filled in as it goes."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from crossroads import tokens
from crossroads.attempts import RetryPolicy, merge_policy
from crossroads.errors import (
    MissingProviderKey,
    NotFound,
    ServiceDegraded,
    Unauthorized,
    UnknownProvider,
)
from crossroads.headers import NO_OPTIONS, RequestOptions
from crossroads.providers.base import Credentials, Provider
from crossroads.runtime import Runtime
from crossroads.snapshot import Snapshot
from crossroads.store.schema import LOG_COLUMNS
from crossroads.store.schema import logs as logs_table


@dataclass(slots=True)
class Call:
    rt: Runtime
    snap: Snapshot
    account: str
    gateway_id: str
    gateway: dict[str, Any]
    headers: dict[str, str]
    options: RequestOptions
    log_id: str
    started: float  # perf_counter
    caller_key: str | None = None  # the caller's own provider key (Authorization), if any
    # headers that carried the gateway token (never forwarded upstream)
    consumed: tuple[str, ...] = ()
    record: dict[str, Any] = field(default_factory=dict)
    response_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    # called with the answer's cost once known (route budget nodes settle through these)
    cost_hooks: list[Any] = field(default_factory=list)

    def provider(self, slug: str) -> tuple[Provider, str]:
        found = self.rt.providers.get(slug, self.snap, self.account)
        if found is None:
            raise UnknownProvider(f"unknown provider '{slug}'")
        return found

    def credentials(self, slug: str, caller_has_key: bool = False) -> Credentials | None:
        """The stored key to use, or None when the caller brought its own."""
        if self.caller_key is not None or caller_has_key:
            return None
        creds = self.snap.keys.get((self.account, self.gateway_id, slug, self.options.byok_alias))
        if creds is None:
            raise MissingProviderKey(
                f"no provider key for '{slug}' (alias '{self.options.byok_alias}') on gateway "
                f"'{self.gateway_id}': store one (crossroads keys add, or the provider_configs "
                "API) or send your provider key in the Authorization header")
        return creds

    def ready_credentials(self, adapter: Provider, slug: str
                          ) -> tuple[Credentials | None, str | None] | None:
        """What ``signing_credentials`` answers, when that needs no await (the adapter signs
        nothing ahead and the key is at hand: most calls); None otherwise."""
        if getattr(adapter, "prepare_credentials", None) is not None:
            return None
        try:
            return self.credentials(slug), self.caller_key
        except MissingProviderKey:
            return None

    async def signing_credentials(self, adapter: Provider, slug: str, *,
                                  caller_has_key: bool = False
                                  ) -> tuple[Credentials | None, str | None]:
        """(credentials to sign with, the caller's own key to forward) for one upstream call.

        Adapters with an async ``prepare_credentials`` step (token minting, signing time) get it
        run here; on the compat path a caller's own key goes through that step too (e.g. a
        service-account JSON), while on the native path a caller's headers pass as they are."""
        try:
            creds = self.credentials(slug, caller_has_key=caller_has_key)
        except MissingProviderKey:
            fresh = await self.rt.refreshed(self.snap)  # stored a moment ago, e.g. by the CLI
            if fresh is None:
                raise
            self.snap = fresh
            creds = self.credentials(slug, caller_has_key=caller_has_key)
        caller = self.caller_key
        prepare = getattr(adapter, "prepare_credentials", None)
        if prepare is None:
            return creds, caller
        if creds is None and caller is not None and not caller_has_key:
            creds, caller = Credentials(caller), None
        if creds is not None:
            creds = await prepare(creds, self.rt.upstream.session, self.rt.clock)
        return creds, caller

    def store_failed(self, what: str, exc: Exception) -> None:
        """A limit's store failed: raise ``ServiceDegraded`` if this gateway fails closed
        (``limits_on_store_failure``), else return and the limit admits the call."""
        policy = (self.gateway.get("limits_on_store_failure")
                  or self.rt.settings.limits_on_store_failure)
        if policy == "closed":
            raise ServiceDegraded(f"{what} store unavailable and this gateway fails closed"
                                  ) from exc

    def policy(self, step: dict[str, Any] | None = None) -> RetryPolicy:
        """Retries and timeout for one upstream call: the gateway's settings, overridden by
        ``step`` (a universal-endpoint step's ``config``) and the request's cf-aig-* headers."""
        o = self.options
        if (step is None and o.max_attempts is None and o.retry_delay_ms is None
                and o.backoff is None and o.request_timeout_ms is None):
            # the gateway's own policy: built once per configuration snapshot
            key = (self.account, self.gateway_id)
            policy = self.snap.policies.get(key)
            if policy is None:
                policy = self.snap.policies[key] = merge_policy(None, None, None, None, None,
                                                                self.gateway)
            return policy
        return merge_policy(step, o.max_attempts, o.retry_delay_ms, o.backoff,
                            o.request_timeout_ms, self.gateway)

    def base_headers(self) -> list[tuple[bytes, bytes]]:
        log_id = self.log_id.encode()
        event = self.options.event_id
        return [(b"cf-aig-log-id", log_id), (b"cf-aig-request-id", log_id),
                (b"cf-aig-event-id", event.encode() if event else log_id)
                ] + self.response_headers

    def finish(self, *, status: int, success: bool, error: str | None = None) -> None:
        rec = self.record
        rec["status_code"] = status
        rec["success"] = success
        rec["duration"] = int((time.perf_counter() - self.started) * 1000)
        if error:
            rec["error"] = error[:2000]
        self.rt.metrics.observe(rec)
        collect = self.gateway.get("collect_logs", True)
        if self.options.collect_log is not None:
            collect = self.options.collect_log
        otel = self.gateway.get("otel")
        if otel:  # bodies go to the collectors only when they are logged
            self.rt.otel.export(self.account, self.gateway_id, otel, rec, self.headers,
                                bool(collect) and self.options.collect_log_payload)
        if not collect:
            return
        if not self.options.collect_log_payload:
            rec["request_body"] = rec["response_body"] = None
        rec.pop("error_kind", None)
        self.rt.logs.put(rec)


# Where SDKs put their api key: a gateway token found there authenticates the request (as in
# Cloudflare's example `new OpenAI({apiKey: cloudflareToken})`) and is never forwarded.
KEY_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")
_KEY_HEADER_SET = frozenset(KEY_HEADERS)


def authenticate(rt: Runtime, snap: Snapshot, account: str, gateway_id: str,
                 gateway: dict[str, Any], headers: dict[str, str]
                 ) -> tuple[str | None, tuple[str, ...]]:
    """Check the gateway token. Return the caller's own provider key from ``Authorization``
    (None when absent or when it was the gateway token) and the headers that carried a
    gateway token."""

    def valid(token: str) -> bool:
        d = tokens.presented_digest(token)
        if d == snap.admin_digest:
            return True
        owner = snap.tokens.get(d)
        return owner is not None and owner[0] == account and owner[1] in (None, gateway_id)

    authed = False
    if (value := headers.get("cf-aig-authorization")) is not None:
        gw_token = tokens.bearer(value)
        if gw_token is None or not valid(gw_token):
            raise Unauthorized("invalid cf-aig-authorization token")
        authed = True
    if _KEY_HEADER_SET.isdisjoint(headers):  # no SDK key header: nothing to check or forward
        if gateway.get("authentication") and not authed:
            raise Unauthorized("missing cf-aig-authorization: this gateway requires a token")
        return None, ()
    consumed: list[str] = []
    for name in KEY_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        candidate = tokens.bearer(value) or value.strip()
        if candidate.startswith(tokens.PREFIX) and valid(candidate):
            authed = True
            consumed.append(name)
    caller_key = None
    auth = headers.get("authorization")
    if auth is not None and "authorization" not in consumed:
        caller_key = tokens.bearer(auth) or auth
    if gateway.get("authentication") and not authed:
        raise Unauthorized("missing cf-aig-authorization: this gateway requires a token")
    return caller_key, tuple(consumed)


# browsers cannot set a WebSocket handshake's headers: they send the gateway token as a
# subprotocol, ``cf-aig-authorization.<token>``
BROWSER_TOKEN = "cf-aig-authorization."


def subprotocols(value: str) -> tuple[list[str], str | None]:
    """A handshake's ``sec-websocket-protocol``: the subprotocols offered but a browser's
    gateway token, and that token (None if there is none)."""
    others: list[str] = []
    token = None
    for p in value.split(","):
        p = p.strip()
        if p.startswith(BROWSER_TOKEN):
            token = p[len(BROWSER_TOKEN):]
        elif p:
            others.append(p)
    return others, token


async def admitted(rt: Runtime, account: str, gateway_id: str, headers: dict[str, str]
                   ) -> tuple[Snapshot, dict[str, Any], str | None, tuple[str, ...]]:
    """The gateway and the caller's credentials: (snapshot, gateway, caller's own key, headers
    that carried the gateway token). A token refused is looked up once more in a refreshed
    configuration (made a moment ago, e.g. by the CLI or another replica)."""
    snap = rt.snapshot
    gateway = snap.gateways.get((account, gateway_id))
    if gateway is None:
        raise NotFound(f"gateway '{gateway_id}' not found in account '{account}'")
    try:
        return (snap, gateway, *authenticate(rt, snap, account, gateway_id, gateway, headers))
    except Unauthorized:
        fresh = await rt.refreshed(snap)
        if fresh is None or (gateway := fresh.gateways.get((account, gateway_id))) is None:
            raise
        return (fresh, gateway,
                *authenticate(rt, fresh, account, gateway_id, gateway, headers))


def start_call(rt: Runtime, snap: Snapshot, account: str, gateway_id: str,
               gateway: dict[str, Any], headers: dict[str, str], options: RequestOptions,
               caller_key: str | None, consumed: tuple[str, ...], path: str,
               body: bytes) -> Call:
    """A request's ``Call``, its log record started (``path`` as logged)."""
    log_id = rt.new_log_id()
    record = new_record(options, headers, log_id, account, gateway_id, path, body,
                        rt.log_body_cap)
    record["created_at"] = dt.datetime.now(dt.UTC)
    return Call(rt, snap, account, gateway_id, gateway, headers, options, log_id,
                time.perf_counter(), caller_key, consumed, record)


# every column of the ``logs`` table with its default (``success`` starts False), derived from
# the table so that a new column is never missed; ``new_record`` copies it (one dict copy rather
# than 35 insertions) and sets what this request brings. Keyed by ``LOG_COLUMNS``, plain
# ``str`` (a dict with one key of a ``str`` subclass takes CPython's generic lookup for every
# access: a rich comparison per probe, ~300 instructions against ~50).
_RECORD_TEMPLATE: dict[str, Any] = {
    name: getattr(c.default, "arg", None) for name, c in zip(LOG_COLUMNS, logs_table.c,
                                                              strict=True)}
_RECORD_TEMPLATE["success"] = False


def new_record(options: RequestOptions, headers: dict[str, str], log_id: str, account: str,
               gateway_id: str, path: str, body: bytes, cap: int) -> dict[str, Any]:
    """The request's log record: every column of the ``logs`` table is a key (the SQLite
    writer reads them all by subscript); the rest is filled in as it goes."""
    rec = _RECORD_TEMPLATE.copy()
    rec["id"] = log_id
    rec["account_id"] = account
    rec["gateway_id"] = gateway_id
    rec["path"] = path
    rec["request_size"] = size = len(body)
    rec["request_head_complete"] = size <= cap
    if cap:
        rec["request_body"] = body[:cap]
    rec["request_content_type"] = headers.get("content-type")
    if options is not NO_OPTIONS:  # a request with cf-aig-* options
        if options.metadata:
            rec["metadata"] = orjson.dumps(options.metadata).decode()
        rec["event_id"] = options.event_id
        rec["custom_cost"] = options.custom_cost is not None
    return rec
