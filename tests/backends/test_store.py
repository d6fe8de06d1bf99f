"""SQL store contract: the same operations on SQLite and PostgreSQL, over real connections.

Tests on PostgreSQL share one fresh database per run, so each test works under its own
account id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from typing import Any

import pytest

from crossroads.errors import Conflict, NotFound
from crossroads.ids import uuid7
from crossroads.store import logs as ls
from crossroads.store import routes as rs
from crossroads.store.sql import SQLStore

ELEMENTS: list[dict[str, Any]] = [
    {"id": "s", "type": "start", "outputs": {"next": {"elementId": "m"}}},
    {"id": "m", "type": "model", "properties": {"provider": "openai", "model": "gpt-4o",
                                               "timeout": 0, "retries": 0},
     "outputs": {"success": {"elementId": "e"}}},
    {"id": "e", "type": "end", "outputs": {}},
]


@pytest.fixture
def acct() -> str:
    return "acct-" + secrets.token_hex(4)


async def test_gateways_crud_and_change_epoch(store: SQLStore, acct: str) -> None:
    e0 = await store.epoch()
    gw = await store.create_gateway(acct, "g1", {"cache_ttl": 60, "collect_logs": True})
    assert gw["id"] == "g1" and gw["cache_ttl"] == 60
    assert gw["created_at"].tzinfo is not None
    with pytest.raises(Conflict):
        await store.create_gateway(acct, "g1", {})
    await store.create_gateway(acct, "g2", {})
    assert [g["id"] for g in await store.list_gateways(acct)] == ["g1", "g2"]
    up = await store.update_gateway(acct, "g1", {"cache_ttl": 5})
    assert up["cache_ttl"] == 5 and "collect_logs" not in up
    await store.delete_gateway(acct, "g2")
    with pytest.raises(NotFound):
        await store.get_gateway(acct, "g2")
    with pytest.raises(NotFound):
        await store.update_gateway(acct, "nope", {})
    assert await store.epoch() >= e0 + 4


async def test_meta_set_and_get(store: SQLStore, acct: str) -> None:
    assert await store.get_meta(acct) is None
    await store.set_meta(acct, "one")
    await store.set_meta(acct, "two")
    assert await store.get_meta(acct) == "two"


async def test_tokens(store: SQLStore, acct: str) -> None:
    digest = secrets.token_hex(32)
    tok = await store.create_token(acct, "g1", "ci", digest)
    await store.create_token(acct, None, "all-gateways", secrets.token_hex(32))
    assert "digest" not in tok
    assert [t["name"] for t in await store.list_tokens(acct)] == ["ci", "all-gateways"]
    assert [t["name"] for t in await store.list_tokens(acct, "g1")] == ["ci"]
    assert (digest, acct, "g1") in await store.all_token_digests()
    await store.delete_token(acct, tok["id"])
    with pytest.raises(NotFound):
        await store.delete_token(acct, tok["id"])
    assert [t["name"] for t in await store.list_tokens(acct)] == ["all-gateways"]


async def test_provider_keys_replace_by_alias(store: SQLStore, acct: str) -> None:
    await store.put_key(acct, "g1", "openai", "default", "cipher-1", "sk-...1234")
    row = await store.put_key(acct, "g1", "openai", "default", "cipher-2", "sk-...5678",
                              rate_limit=10.0, rate_limit_period=60.0)
    await store.put_key(acct, "g1", "anthropic", "default", "cipher-3", "sk-ant-...")
    keys = await store.list_keys(acct, "g1")
    assert [(k["provider"], k["preview"]) for k in keys] == [
        ("anthropic", "sk-ant-..."), ("openai", "sk-...5678")]
    assert "secret" not in keys[0]
    assert {k["secret"] for k in await store.all_keys() if k["account_id"] == acct} == {
        "cipher-2", "cipher-3"}
    assert row["rate_limit"] == 10.0
    await store.delete_key(acct, "g1", row["id"])
    with pytest.raises(NotFound):
        await store.delete_key(acct, "g1", row["id"])


async def test_custom_providers(store: SQLStore, acct: str) -> None:
    p = await store.put_custom_provider(acct, "custom-a", {"base_url": "http://a"})
    with pytest.raises(Conflict):
        await store.put_custom_provider(acct, "custom-a", {"base_url": "http://b"})
    p2 = await store.put_custom_provider(acct, "custom-a", {"base_url": "http://c"}, p["id"])
    assert p2["base_url"] == "http://c" and p2["id"] == p["id"]
    await store.delete_custom_provider(acct, p["id"])
    assert await store.list_custom_providers(acct) == []


async def test_routes_versions_and_deployments(store: SQLStore, acct: str) -> None:
    route = await rs.create_route(store, acct, "g1", "support", ELEMENTS, "first")
    assert route["deployed_version_id"] is not None
    with pytest.raises(Conflict):
        await rs.create_route(store, acct, "g1", "support", ELEMENTS)
    v2 = await rs.create_version(store, acct, "g1", "support", ELEMENTS[::-1], "second")
    assert v2["number"] == 2 and v2["elements"] == ELEMENTS[::-1]
    assert (await rs.get_version(store, acct, "g1", route["id"], "v2"))["id"] == v2["id"]
    dep = await rs.deploy(store, acct, "g1", route["id"], "2", "go")
    assert dep["version_number"] == 2
    assert len(await rs.list_deployments(store, acct, "g1", route["id"])) == 2
    deployed = [d for d in await rs.deployed_routes(store) if d["account_id"] == acct]
    assert [(d["name"], d["number"]) for d in deployed] == [("support", 2)]
    await rs.create_route(store, acct, "g1", "other", ELEMENTS)
    with pytest.raises(Conflict):
        await rs.rename_route(store, acct, "g1", "other", "support")
    renamed = await rs.rename_route(store, acct, "g1", "other", "third")
    assert renamed["name"] == "third"
    await rs.delete_route(store, acct, "g1", "support")
    with pytest.raises(NotFound):
        await rs.get_route(store, acct, "g1", route["id"])
    with pytest.raises(NotFound):
        await rs.get_version(store, acct, "g1", "third", "v9")


async def test_concurrent_saves_get_distinct_version_numbers(store: SQLStore, acct: str) -> None:
    route = await rs.create_route(store, acct, "g1", "busy", ELEMENTS)
    saved = await asyncio.gather(*[
        rs.create_version(store, acct, "g1", route["id"], ELEMENTS, f"save {i}")
        for i in range(20)])
    assert sorted(v["number"] for v in saved) == list(range(2, 22))
    versions = await rs.list_versions(store, acct, "g1", route["id"])
    assert [v["number"] for v in versions] == list(range(1, 22))


def _log(acct: str, i: int, **kw: Any) -> dict[str, Any]:
    base = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    row = dict(id=uuid7(), account_id=acct, gateway_id="g1",
               created_at=base + dt.timedelta(seconds=i), provider="openai",
               model="gpt-4o-mini", path="chat/completions", status_code=200, success=True,
               cached=False, tokens_in=10 + i, tokens_out=5, cost=0.001 * i, duration=100 + i,
               metadata=f'{{"user":"u{i % 2}"}}', event_id=f"evt-{i}",
               request_body=b"req", response_body=b"resp")
    row.update(kw)
    return row


async def test_logs_insert_list_filter_and_delete(store: SQLStore, acct: str) -> None:
    rows = [_log(acct, i) for i in range(10)]
    rows[3].update(provider="anthropic", model="claude", success=False, status_code=500)
    rows[4] = {k: v for k, v in rows[4].items() if k not in ("tokens_out", "metadata")}
    await store.insert_logs(rows)
    got, info = await ls.list_logs(store, ls.LogQuery(acct, "g1", per_page=4))
    assert info["total_count"] == 10 and info["count"] == 4
    assert [r["event_id"] for r in got] == ["evt-9", "evt-8", "evt-7", "evt-6"]
    assert "request_body" not in got[0]
    assert info["max_cost"] == pytest.approx(0.009) and info["min_tokens_in"] == 10
    q = ls.LogQuery(acct, "g1", filters=[ls.Filter("provider", "eq", ["anthropic"])])
    assert [r["model"] for r in (await ls.list_logs(store, q))[0]] == ["claude"]
    q = ls.LogQuery(acct, "g1", simple={"success": "false"})
    assert [r["status_code"] for r in (await ls.list_logs(store, q))[0]] == [500]
    q = ls.LogQuery(acct, "g1", filters=[ls.Filter("metadata.value", "eq", ["u1"])])
    assert (await ls.list_logs(store, q))[1]["total_count"] == 5
    q = ls.LogQuery(acct, "g1", filters=[ls.Filter("cost", "gt", [0.0045])], order_by="cost",
                    direction="asc")
    assert [r["event_id"] for r in (await ls.list_logs(store, q))[0]] == [
        "evt-5", "evt-6", "evt-7", "evt-8", "evt-9"]
    one = await ls.get_log(store, acct, "g1", rows[0]["id"])
    assert one["request_body"] == b"req" and one["created_at"].year == 2025
    await ls.patch_log(store, acct, "g1", rows[0]["id"], {"feedback": 1, "score": 0.5})
    assert (await ls.get_log(store, acct, "g1", rows[0]["id"]))["feedback"] == 1
    deleted = await ls.delete_logs(store, ls.LogQuery(acct, "g1", simple={"provider": "openai"}),
                                   batch=3)
    assert deleted == 9 and await ls.count_logs(store, acct, "g1") == 1


async def test_concurrent_log_writers_lose_nothing(store: SQLStore, acct: str) -> None:
    batches = [[_log(acct, b * 50 + i) for i in range(50)] for b in range(10)]
    await asyncio.gather(*[store.insert_logs(b) for b in batches])
    assert await ls.count_logs(store, acct, "g1") == 500


async def test_a_retried_log_batch_is_written_once(store: SQLStore, acct: str) -> None:
    batch = [_log(acct, i) for i in range(5)]
    await store.insert_logs(batch[:3])  # committed, but the writer never heard back
    await store.insert_logs(batch)  # the writer's retry of the whole batch
    assert await ls.count_logs(store, acct, "g1") == 5
