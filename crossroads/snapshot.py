"""An immutable, in-memory picture of the configuration that the request path reads.

Built from the store at start and after every change (local, or seen through the change
epoch from another replica); swapped in with one assignment, so a request sees either the old
configuration or the new one, never half of each.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from sys import intern
from typing import Any

from crossroads.providers import BUILTIN, Credentials, Provider, build_adapter, custom_spec
from crossroads.providers.catalog import ProviderSpec
from crossroads.store.sql import SQLStore
from crossroads.vault import Vault

log = logging.getLogger("crossroads.snapshot")


@dataclass(frozen=True, slots=True)
class DeployedRoute:
    route_id: str
    name: str
    version_id: str
    version_number: int
    graph: Any  # crossroads.routing.graph.RouteGraph

    # ``cf-aig-route`` and ``cf-aig-route-version``, encoded once per deployment
    headers: list[tuple[bytes, bytes]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", [
            (b"cf-aig-route", self.name.encode()),
            (b"cf-aig-route-version", str(self.version_number).encode())])


@dataclass(slots=True)
class Snapshot:
    epoch: int = -1
    admin_digest: str | None = None
    gateways: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    keys: dict[tuple[str, str, str, str], Credentials] = field(default_factory=dict)
    custom: dict[tuple[str, str], ProviderSpec] = field(default_factory=dict)
    routes: dict[tuple[str, str, str], DeployedRoute] = field(default_factory=dict)
    # derived lazily by the request path, per (account, gateway): the gateway's retry policy
    policies: dict[tuple[str, str], Any] = field(default_factory=dict)
    # every account and gateway id in the keys above, mapped to the (interned) object those
    # keys hold: the data plane reads a request's names through it, so that its lookups find
    # the keys' items identical rather than comparing text. Not ``sys.intern`` on the request's
    # own text: Python 3.12's first releases made interned strings immortal (CPython issue
    # 113993), and URLs are anyone's to make
    names: dict[str, str] = field(default_factory=dict)


class Providers:
    """Adapters by slug, built once; custom providers come from the snapshot."""

    def __init__(self, upstreams: dict[str, str]) -> None:
        self._upstreams = upstreams
        self._adapters: dict[str, Provider] = {}
        self._bases: dict[str, str] = {}
        for slug, spec in BUILTIN.items():
            try:
                self._adapters[slug] = build_adapter(spec)
            except KeyError:
                continue  # adapter kind not available
            self._bases[slug] = upstreams.get(slug, spec.base_url)
        # bases naming the account (Workers AI's ``.../accounts/{account}/ai``): the account
        # of the request's URL, as Cloudflare's gateway fills in its own
        self._per_account = frozenset(s for s, b in self._bases.items() if "{account}" in b)

    def known(self, slug: str) -> bool:
        return slug in self._adapters or slug.startswith("custom-")

    def get(self, slug: str, snap: Snapshot, account: str) -> tuple[Provider, str] | None:
        adapter = self._adapters.get(slug)
        if adapter is not None:
            if slug in self._per_account:
                return adapter, self._bases[slug].replace("{account}", account)
            return adapter, self._bases[slug]
        if slug.startswith("custom-"):
            spec = snap.custom.get((account, slug))
            if spec is None and slug in self._upstreams:
                spec = custom_spec(slug[len("custom-"):], self._upstreams[slug])
            if spec is not None:
                key = "custom:" + account + ":" + slug + ":" + spec.base_url
                cached = self._adapters.get(key)
                if cached is None:
                    cached = self._adapters[key] = build_adapter(spec)
                return cached, spec.base_url
        return None


def key_context(account: str, gateway: str, provider: str, alias: str) -> str:
    return f"{account}/{gateway}/{provider}/{alias}"


async def load_snapshot(store: SQLStore, vault: Vault, known_provider: Any) -> Snapshot:
    snap = Snapshot(epoch=await store.epoch(), admin_digest=await store.get_meta("admin_digest"))
    # the names in the keys of these tables are interned (a bounded set: what is configured),
    # and the request's account and gateway read through ``names``: see ``Snapshot.names``
    for account, gw in await store.all_gateways():
        account, gateway_id = intern(account), intern(gw["id"])
        snap.gateways[(account, gateway_id)] = gw
        snap.names[account], snap.names[gateway_id] = account, gateway_id
    for digest, account, gateway in await store.all_token_digests():
        snap.tokens[digest] = (intern(account), gateway if gateway is None else intern(gateway))
    for row in await store.all_keys():
        ctx = key_context(row["account_id"], row["gateway_id"], row["provider"], row["alias"])
        try:
            secret = vault.decrypt(row["secret"], ctx)
        except Exception:  # wrong master key or tampered row: skip, say so, never the value
            log.error("cannot decrypt stored key %s (wrong master key?)", ctx)
            continue
        snap.keys[(intern(row["account_id"]), intern(row["gateway_id"]), intern(row["provider"]),
                   intern(row["alias"]))] = \
            Credentials(secret)
    for cp in await store.list_custom_providers():
        snap.custom[(cp["account_id"], "custom-" + cp["slug"])] = custom_spec(cp["slug"],
                                                                                cp["base_url"])
    await _load_routes(store, snap, known_provider)
    return snap


async def _load_routes(store: SQLStore, snap: Snapshot, known_provider: Any) -> None:
    from crossroads.routing.graph import parse_route
    from crossroads.store.routes import deployed_routes

    for row in await deployed_routes(store):
        try:
            graph = parse_route(row["elements"], known_provider, name=row["name"],
                                version=row["number"])
        except Exception as exc:
            log.error("deployed route %s is invalid: %s", row["name"], exc)
            continue
        key = (intern(row["account_id"]), intern(row["gateway_id"]), row["name"])
        snap.routes[key] = DeployedRoute(row["route_id"], row["name"], row["version_id"],
                                         row["number"], graph)
