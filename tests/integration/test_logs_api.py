"""The logs API driven by the official ``cloudflare`` SDK, metadata / event id / custom cost on
the way in, retention per gateway, and ``crossroads logs --follow``."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudflare
import httpx
import pytest
from harness import RunningGateway, ServerThread, StandinServer
from standins import openai as openai_standin
from standins.openai import STATE, Fail, Reply

from crossroads.ids import uuid7

ACCOUNT = "local"


def sdk(gw: RunningGateway) -> cloudflare.Cloudflare:
    return cloudflare.Cloudflare(api_token=gw.admin_token, base_url=gw.api, max_retries=0)


def chat(gw: RunningGateway, token: str, model: str = "gpt-4o-mini",
         **headers: str) -> httpx.Response:
    return httpx.post(gw.compat() + "/chat/completions", timeout=20,
                      headers={"cf-aig-authorization": f"Bearer {token}", **headers},
                      json={"model": f"openai/{model}",
                            "messages": [{"role": "user", "content": "hello " + model}]})


def _populate(gateway: RunningGateway, openai_up: StandinServer) -> dict[str, str]:
    """Four logs: two models, metadata, one provider failure, different token counts."""
    state = openai_up.app[STATE]
    state.queue = [Reply(prompt_tokens=10, completion_tokens=5),
                   Reply(prompt_tokens=200, completion_tokens=50),
                   Fail(500, "boom"),
                   Reply(prompt_tokens=30, completion_tokens=3)]
    token = gateway.token()
    ids = {}
    ids["small"] = chat(gateway, token, **{"cf-aig-metadata": '{"team": "a", "n": 1}'}
                        ).headers["cf-aig-log-id"]
    ids["big"] = chat(gateway, token, "gpt-4o", **{"cf-aig-metadata": '{"team": "b"}'}
                      ).headers["cf-aig-log-id"]
    ids["failed"] = chat(gateway, token, "gpt-4o").headers["cf-aig-log-id"]
    ids["mid"] = chat(gateway, token, **{"cf-aig-event-id": "evt-42"}).headers["cf-aig-log-id"]
    gateway.drain_logs()
    return ids


@pytest.fixture
def populated(gateway: RunningGateway, openai_up: StandinServer
              ) -> tuple[RunningGateway, dict[str, str]]:
    """For tests that change the logs: their own gateway."""
    return gateway, _populate(gateway, openai_up)


@pytest.fixture(scope="module")
def shared(server_thread: ServerThread, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[RunningGateway, dict[str, str]]]:
    """For read-only tests: one populated gateway for the module."""
    up = StandinServer(server_thread, openai_standin.create_app()).start()
    gw = RunningGateway(server_thread, tmp_path_factory.mktemp("logs-shared"),
                        {"CROSSROADS_UPSTREAM_OPENAI": up.url + "/v1"}).start()
    gw.put_key("openai", "sk-stored-secret-123456")
    ids = _populate(gw, up)
    yield gw, ids
    gw.stop()
    up.stop()


def listed(gw: RunningGateway, **kw: Any) -> list[str]:
    return [x.id for x in sdk(gw).ai_gateway.logs.list("default", account_id=ACCOUNT, **kw)]


def F(key: str, op: str, *values: Any) -> dict[str, Any]:
    return {"key": key, "operator": op, "value": list(values)}


def test_list_all_newest_first(shared: tuple[RunningGateway, dict[str, str]]) -> None:
    gw, ids = shared
    assert listed(gw) == [ids["mid"], ids["failed"], ids["big"], ids["small"]]
    assert listed(gw, direction="asc") == [ids["small"], ids["big"], ids["failed"], ids["mid"]]


@pytest.mark.parametrize("filters,expected", [
    ([F("provider", "eq", "openai")], ["small", "big", "failed", "mid"]),
    ([F("model", "eq", "gpt-4o")], ["big", "failed"]),
    ([F("model", "neq", "gpt-4o")], ["small", "mid"]),
    ([F("model", "contains", "4o-m")], ["small", "mid"]),
    ([F("success", "eq", False)], ["failed"]),
    ([F("success", "eq", True), F("model", "eq", "gpt-4o-mini")], ["small", "mid"]),
    ([F("tokens_in", "gt", 20)], ["big", "mid"]),
    ([F("tokens_in", "lt", 100)], ["small", "mid"]),
    ([F("tokens", "gt", 100)], ["big"]),
    ([F("cost", "gt", 0.00001)], ["big"]),
    ([F("cost", "lt", 0.00001)], ["small", "mid"]),
    ([F("metadata.key", "eq", "team")], ["small", "big"]),
    ([F("metadata.value", "eq", "b")], ["big"]),
    ([F("metadata.value", "eq", 1)], ["small"]),
    ([F("event_id", "eq", "evt-42")], ["mid"]),
    ([F("model", "eq", "gpt-4o", "gpt-4o-mini"), F("success", "eq", True)],
     ["small", "big", "mid"]),
    # several values on an earlier filter: the SDK flattens all values into one list
    ([F("provider", "eq", "openai", "groq"), F("tokens_in", "gt", 20), F("success", "eq", True)],
     ["big", "mid"]),
])
def test_list_filters(shared: tuple[RunningGateway, dict[str, str]],
                      filters: list[dict[str, Any]], expected: list[str]) -> None:
    gw, ids = shared
    got = listed(gw, filters=filters, direction="asc")
    assert got == [ids[k] for k in expected]


def test_simple_params(shared: tuple[RunningGateway, dict[str, str]]) -> None:
    gw, ids = shared
    assert listed(gw, model="gpt-4o", direction="asc") == [ids["big"], ids["failed"]]
    assert listed(gw, success=False) == [ids["failed"]]
    assert listed(gw, min_tokens_in=20, max_tokens_in=100) == [ids["mid"]]
    assert listed(gw, cached=True) == []
    assert listed(gw, search="evt-42") == [ids["mid"]]


def test_ordering_paging_and_result_info(shared: tuple[RunningGateway, dict[str, str]]
                                         ) -> None:
    gw, ids = shared
    page = sdk(gw).ai_gateway.logs.list("default", account_id=ACCOUNT, per_page=3,
                                        order_by="model", order_by_direction="asc")
    assert [x.model for x in page.result] == ["gpt-4o", "gpt-4o", "gpt-4o-mini"]
    info = page.result_info
    assert info is not None
    extra = info.model_extra or {}
    assert (info.page, info.per_page, info.count, info.total_count) == (1, 3, 3, 4)
    assert (extra["min_tokens_in"], extra["max_tokens_in"]) == (10, 200)
    assert extra["max_total_tokens"] == 250
    assert extra["min_cost"] > 0 and extra["max_cost"] > extra["min_cost"]
    # the SDK's auto-paging walks every page
    everything = list(sdk(gw).ai_gateway.logs.list("default", account_id=ACCOUNT, per_page=1))
    assert [x.id for x in everything] == [ids["mid"], ids["failed"], ids["big"], ids["small"]]
    second = sdk(gw).ai_gateway.logs.list("default", account_id=ACCOUNT, per_page=3, page=2)
    assert [x.id for x in second.result] == [ids["small"]]


def test_get_one_and_its_bodies(shared: tuple[RunningGateway, dict[str, str]]) -> None:
    gw, ids = shared
    c = sdk(gw)
    log = c.ai_gateway.logs.get(ids["big"], account_id=ACCOUNT, gateway_id="default")
    assert (log.provider, log.model, log.success, log.status_code) == (
        "openai", "gpt-4o", True, 200)
    assert (log.tokens_in, log.tokens_out) == (200, 50)
    assert log.path == "/compat/chat/completions"
    assert json.loads(log.metadata or "") == {"team": "b"}
    assert log.custom_cost is False and log.cached is False
    assert isinstance(log.created_at, dt.datetime)
    req = c.ai_gateway.logs.request(ids["big"], account_id=ACCOUNT, gateway_id="default")
    assert req["result"]["messages"][0]["content"] == "hello gpt-4o"  # type: ignore[index]
    resp = c.ai_gateway.logs.response(ids["big"], account_id=ACCOUNT, gateway_id="default")
    assert resp["result"]["usage"]["prompt_tokens"] == 200  # type: ignore[index]
    failed = c.ai_gateway.logs.response(ids["failed"], account_id=ACCOUNT,
                                        gateway_id="default")
    assert failed["result"]["error"]["message"] == "boom"  # type: ignore[index]
    with pytest.raises(cloudflare.NotFoundError):
        c.ai_gateway.logs.get("missing", account_id=ACCOUNT, gateway_id="default")


def test_edit_feedback_score_metadata(populated: tuple[RunningGateway, dict[str, str]]) -> None:
    gw, ids = populated
    c = sdk(gw)
    c.ai_gateway.logs.edit(ids["small"], account_id=ACCOUNT, gateway_id="default",
                           feedback=1, score=90, metadata={"reviewed": "yes"})
    c.ai_gateway.logs.edit(ids["big"], account_id=ACCOUNT, gateway_id="default", feedback=-1)
    log = c.ai_gateway.logs.get(ids["small"], account_id=ACCOUNT, gateway_id="default")
    assert json.loads(log.metadata or "") == {"reviewed": "yes"}
    row = next(r for r in gw.logs() if r["id"] == ids["small"])
    assert (row["feedback"], row["score"]) == (1, 90)
    assert listed(gw, feedback=1) == [ids["small"]]
    assert listed(gw, feedback=0) == [ids["big"]]
    assert listed(gw, filters=[F("feedback", "eq", 1)]) == [ids["small"]]
    with pytest.raises(cloudflare.BadRequestError):
        c.ai_gateway.logs.edit(ids["small"], account_id=ACCOUNT, gateway_id="default",
                               feedback=3)
    with pytest.raises(cloudflare.NotFoundError):
        c.ai_gateway.logs.edit("missing", account_id=ACCOUNT, gateway_id="default", feedback=1)


def test_delete_by_filter(populated: tuple[RunningGateway, dict[str, str]]) -> None:
    gw, ids = populated
    c = sdk(gw)
    r = c.ai_gateway.logs.delete("default", account_id=ACCOUNT,
                                 filters=[F("model", "eq", "gpt-4o")])
    assert r.success is True
    assert listed(gw, direction="asc") == [ids["small"], ids["mid"]]
    c.ai_gateway.logs.delete("default", account_id=ACCOUNT, limit=1, order_by="created_at",
                             order_by_direction="asc")
    assert listed(gw) == [ids["mid"]]


def test_logs_api_needs_the_admin_token(gateway: RunningGateway) -> None:
    c = cloudflare.Cloudflare(api_token="cxr_wrong", base_url=gateway.api, max_retries=0)
    with pytest.raises(cloudflare.AuthenticationError):
        c.ai_gateway.logs.list("default", account_id=ACCOUNT).result  # noqa: B018


# -- metadata, event id, custom cost ----------------------------------------------------------

def test_metadata_kept_flat_first_five_and_cf_keys_dropped(gateway: RunningGateway) -> None:
    meta = {"cf.user_id": "x", "a": 1, "b": "two", "c": True, "d": 4.5, "e": "5", "f": 6}
    r = chat(gateway, gateway.token(), **{"cf-aig-metadata": json.dumps(meta)})
    gateway.drain_logs()
    log = sdk(gateway).ai_gateway.logs.get(r.headers["cf-aig-log-id"], account_id=ACCOUNT,
                                           gateway_id="default")
    assert json.loads(log.metadata or "") == {"a": 1, "b": "two", "c": True, "d": 4.5, "e": "5"}


@pytest.mark.parametrize("header,value,needle", [
    ("cf-aig-metadata", '{"a": {"b": 1}}', "flat"),
    ("cf-aig-metadata", '{"a": [1, 2]}', "flat"),
    ("cf-aig-metadata", "not json", "JSON object"),
    ("cf-aig-metadata", '"a string"', "JSON object"),
    ("cf-aig-custom-cost", "not json", "JSON object"),
    ("cf-aig-custom-cost", "[1]", "JSON object"),
    ("cf-aig-custom-cost", '{"per_token_in": 0.001}', "per_token_out"),
    ("cf-aig-custom-cost", '{"per_token_in": -1, "per_token_out": 0}', "per_token_in"),
    ("cf-aig-custom-cost", '{"per_token_in": "1", "per_token_out": 0}', "per_token_in"),
    ("cf-aig-event-id", "x" * 201, "cf-aig-event-id"),
])
def test_bad_values_are_400_naming_the_header(gateway: RunningGateway, header: str,
                                              value: str, needle: str) -> None:
    r = chat(gateway, gateway.token(), **{header: value})
    assert r.status_code == 400, r.text
    msg = r.json()["error"][0]["message"]
    assert header in msg and needle in msg


def test_event_id_echoed_and_generated(gateway: RunningGateway) -> None:
    token = gateway.token()
    r = chat(gateway, token, **{"cf-aig-event-id": "order-123"})
    assert r.headers["cf-aig-event-id"] == "order-123"
    plain = chat(gateway, token)
    assert plain.headers["cf-aig-event-id"] == plain.headers["cf-aig-log-id"]
    gateway.drain_logs()
    assert listed(gateway, filters=[F("event_id", "eq", "order-123")]) == [
        r.headers["cf-aig-log-id"]]


def test_custom_cost_applied_and_flagged(gateway: RunningGateway) -> None:
    rates = {"per_token_in": 0.001, "per_token_out": 0.002}
    r = chat(gateway, gateway.token(), **{"cf-aig-custom-cost": json.dumps(rates)})
    assert r.status_code == 200
    gateway.drain_logs()
    log = sdk(gateway).ai_gateway.logs.get(r.headers["cf-aig-log-id"], account_id=ACCOUNT,
                                           gateway_id="default")
    assert log.custom_cost is True
    assert log.cost == pytest.approx(12 * 0.001 + 7 * 0.002)


def test_custom_cost_with_cache_rates(gateway: RunningGateway, openai_up: StandinServer) -> None:
    openai_up.app[STATE].queue = [Reply(prompt_tokens=100, completion_tokens=10,
                                        cached_tokens=40)]
    rates = {"per_token_in": 0.01, "per_token_out": 0.02, "per_cache_read_token": 0.001}
    r = chat(gateway, gateway.token(), **{"cf-aig-custom-cost": json.dumps(rates)})
    gateway.drain_logs()
    row = gateway.logs()[0]
    assert row["id"] == r.headers["cf-aig-log-id"] and row["custom_cost"] is True
    assert row["cost"] == pytest.approx(60 * 0.01 + 40 * 0.001 + 10 * 0.02)


# -- retention ---------------------------------------------------------------------------------

def _insert(gw: RunningGateway, n: int, start: dt.datetime, gateway: str = "default") -> None:
    rows = [{"id": uuid7(), "account_id": ACCOUNT, "gateway_id": gateway,
             "created_at": start + dt.timedelta(seconds=i), "provider": "openai",
             "model": f"m{i}", "path": "/x", "success": True, "cached": False,
             "custom_cost": False, "duration": 1} for i in range(n)]
    for i in range(0, n, 2000):
        gw.thread.run(gw.rt.store.insert_logs(rows[i:i + 2000]), timeout=60)


def _count(gw: RunningGateway, gateway: str = "default") -> int:
    from crossroads.store.logs import count_logs

    gw.drain_logs()
    return gw.thread.run(count_logs(gw.rt.store, ACCOUNT, gateway))


def test_retention_delete_oldest_in_batches(gateway: RunningGateway) -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    _insert(gateway, 10_030, start)
    gateway.update_gateway(log_management=10_000, log_management_strategy="DELETE_OLDEST")
    ret = gateway.rt.retention
    ret.batch = 7  # bounded batches: 30 rows go in 5 batches
    deleted = gateway.thread.run(ret.sweep())
    assert deleted == {(ACCOUNT, "default"): 30}
    assert _count(gateway) == 10_000
    oldest = listed_first(gateway)
    assert oldest == "m30"  # m0..m29 were the oldest
    assert gateway.thread.run(ret.sweep()) == {}


def listed_first(gw: RunningGateway) -> str:
    page = sdk(gw).ai_gateway.logs.list("default", account_id=ACCOUNT, per_page=1,
                                        direction="asc")
    return page.result[0].model


def test_retention_stop_inserting(gateway: RunningGateway) -> None:
    _insert(gateway, 9_999, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    gateway.update_gateway(log_management=10_000, log_management_strategy="STOP_INSERTING")
    gateway.thread.run(gateway.rt.retention.sweep())
    token = gateway.token()
    codes = [chat(gateway, token).status_code for _ in range(3)]
    assert codes == [200, 200, 200]  # requests are served; only their logs are not kept
    assert _count(gateway) == 10_000
    assert gateway.rt.retention.refused == 2
    gateway.update_gateway(log_management=10_001)
    gateway.thread.run(gateway.rt.retention.sweep())
    chat(gateway, token)
    chat(gateway, token)
    assert _count(gateway) == 10_001


def test_retention_settings_go_through_the_sdk(gateway: RunningGateway) -> None:
    c = sdk(gateway)
    gw = c.ai_gateway.get("default", account_id=ACCOUNT)
    c.ai_gateway.update("default", account_id=ACCOUNT, cache_invalidate_on_update=False,
                        cache_ttl=gw.cache_ttl, collect_logs=True,
                        rate_limiting_interval=0, rate_limiting_limit=0,
                        log_management=10_000, log_management_strategy="STOP_INSERTING")
    assert gateway.rt.snapshot.gateways[(ACCOUNT, "default")]["log_management"] == 10_000
    with pytest.raises(cloudflare.BadRequestError):
        c.ai_gateway.update("default", account_id=ACCOUNT, cache_invalidate_on_update=False,
                            cache_ttl=None, collect_logs=True, rate_limiting_interval=0,
                            rate_limiting_limit=0, log_management=5)


# -- crossroads logs --follow ------------------------------------------------------------------

def test_cli_logs_follow_prints_new_rows(gateway_factory: Callable[..., RunningGateway],
                                         openai_up: StandinServer, tmp_path: Path) -> None:
    data_dir = tmp_path / "follow"
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": openai_up.url + "/v1"},
                         data_dir=data_dir)
    gw.put_key("openai", "sk-x")
    env = dict(os.environ, COLUMNS="250", NO_COLOR="1")
    exe = Path(sys.executable).parent / "crossroads"
    proc = subprocess.Popen([str(exe), "logs", "--follow", "--interval", "0.1",
                             "--data-dir", str(data_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, text=True)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(iter(proc.stdout.readline, "")),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        while not any("time" in line for line in out):  # the (empty) first table
            assert proc.poll() is None, "".join(out)
            assert time.monotonic() < deadline, "".join(out)
            time.sleep(0.05)
        r = chat(gw, gw.token(), "gpt-4o")
        log_id = r.headers["cf-aig-log-id"]
        gw.drain_logs()
        while not any(log_id in line for line in out):
            assert proc.poll() is None, "".join(out)
            assert time.monotonic() < deadline, "the new row never appeared:\n" + "".join(out)
            time.sleep(0.05)
        line = next(x for x in out if log_id in x)
        assert "openai" in line and "gpt-4o" in line and "200" in line
    finally:
        proc.terminate()
        proc.wait(10)
