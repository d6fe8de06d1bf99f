"""Gateway spend limits set with the official ``cloudflare`` SDK and enforced on calls made
with the ``openai`` SDK: a spent budget is a 429 before the provider is called, other models
and other partitions still answer, a route's model step over budget takes its fallback, and
a cached answer is neither checked nor charged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cloudflare
import httpx
import openai
import pytest
from harness import RunningGateway, StandinServer
from standins.openai import STATE

from crossroads.providers.base import Usage
from crossroads.providers.pricing import cost_of

ASK = [{"role": "user", "content": "hi"}]
ONE_CALL = cost_of("openai", "gpt-4o", Usage(12, 7))  # what the stand-in's answer costs
assert ONE_CALL


def set_limits(gw: RunningGateway, rules: list[dict[str, Any]], **settings: Any) -> None:
    cf = cloudflare.Cloudflare(api_token=gw.admin_token, base_url=gw.api, max_retries=0)
    cf.ai_gateway.update("default", account_id="local", cache_invalidate_on_update=False,
                         cache_ttl=None, collect_logs=True, rate_limiting_interval=0,
                         rate_limiting_limit=0, spend_limits={"rules": rules},  # type: ignore
                         **settings)
    got = cf.ai_gateway.get("default", account_id="local")
    assert got.spend_limits is not None and len(got.spend_limits.rules or []) == len(rules)


@pytest.fixture
def gw(gateway: RunningGateway) -> RunningGateway:
    return gateway


def client(gw: RunningGateway, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.compat(), api_key=gw.token(), max_retries=0,
                         default_headers=headers)


def test_a_spent_budget_refuses_only_what_it_covers(gw: RunningGateway,
                                                    openai_up: StandinServer) -> None:
    set_limits(gw, [{"id": "gpt-4o-daily", "limit": ONE_CALL * 1.5, "limitType": "cost",
                     "window": 86400, "model": {"mode": "filter", "values": ["gpt-4o"]}}])
    c = client(gw)
    for _ in range(2):  # spent 0, then 1 call's cost: both under the limit
        assert c.chat.completions.create(model="openai/gpt-4o", messages=ASK).choices
    calls = len(openai_up.app[STATE].calls)
    with pytest.raises(openai.RateLimitError) as ei:
        c.chat.completions.create(model="openai/gpt-4o", messages=ASK)
    assert "spend limit 'gpt-4o-daily' exceeded" in str(ei.value.body)
    assert int(ei.value.response.headers["retry-after"]) >= 1
    assert len(openai_up.app[STATE].calls) == calls  # the provider was not called
    assert c.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK).choices
    native = httpx.post(gw.base() + "/openai/chat/completions",
                        headers={"authorization": f"Bearer {gw.token()}"},
                        json={"model": "gpt-4o", "messages": ASK})
    assert native.status_code == 429  # the native path counts against the same budget
    rows = gw.logs()
    assert [r["status_code"] for r in rows] == [200, 200, 429, 200, 429]


def test_partitions_keep_one_users_spend_from_blocking_another(
        gw: RunningGateway, openai_up: StandinServer) -> None:
    set_limits(gw, [{"limit": ONE_CALL * 0.5, "limitType": "cost", "window": 3600,
                     "technique": "sliding", "metadata": {"user": {"mode": "partition"}}}])
    alice = client(gw, **{"cf-aig-metadata": '{"user": "alice"}'})
    bob = client(gw, **{"cf-aig-metadata": '{"user": "bob"}'})
    assert alice.chat.completions.create(model="openai/gpt-4o", messages=ASK).choices
    with pytest.raises(openai.RateLimitError):
        alice.chat.completions.create(model="openai/gpt-4o", messages=ASK)
    assert bob.chat.completions.create(model="openai/gpt-4o", messages=ASK).choices


def test_a_route_model_over_budget_takes_its_fallback(gw: RunningGateway,
                                                      openai_up: StandinServer) -> None:
    """Cloudflare: "When the primary model's budget is exceeded, AI Gateway automatically
    routes requests to the fallback model instead of blocking them"."""
    set_limits(gw, [{"id": "primary", "limit": ONE_CALL * 0.5, "limitType": "cost",
                     "window": 3600, "model": {"mode": "filter", "values": ["gpt-4o"]}}])
    gw.create_route("budgeted", [
        {"id": "start", "type": "start", "outputs": {"next": {"elementId": "big"}}},
        {"id": "big", "type": "model", "properties": {"provider": "openai", "model": "gpt-4o",
                                                      "timeout": 10000, "retries": 0},
         "outputs": {"success": {"elementId": "end"}, "fallback": {"elementId": "small"}}},
        {"id": "small", "type": "model",
         "properties": {"provider": "openai", "model": "gpt-4o-mini", "timeout": 10000,
                        "retries": 0}, "outputs": {"success": {"elementId": "end"}}},
        {"id": "end", "type": "end", "outputs": {}}])
    c = client(gw)
    models = []
    for _ in range(3):
        r = c.chat.completions.with_raw_response.create(model="dynamic/budgeted", messages=ASK)
        models.append(r.headers["cf-aig-model"])
    assert models == ["gpt-4o", "gpt-4o-mini", "gpt-4o-mini"]
    sent = [call["json"]["model"] for call in openai_up.app[STATE].calls]
    assert sent == models  # the primary was not called once its budget was spent


def test_a_cached_answer_is_neither_checked_nor_charged(gw: RunningGateway,
                                                        openai_up: StandinServer) -> None:
    set_limits(gw, [{"limit": ONE_CALL * 0.5, "limitType": "cost", "window": 3600}])
    c = client(gw, **{"cf-aig-cache-ttl": "600"})
    for _ in range(3):  # one miss (which spends the budget), then hits
        assert c.chat.completions.create(model="openai/gpt-4o", messages=ASK).choices
    assert len(openai_up.app[STATE].calls) == 1
    with pytest.raises(openai.RateLimitError):  # not cached: checked, and spent
        client(gw).chat.completions.create(model="openai/gpt-4o", messages=ASK)


def test_no_rules_no_checks(gateway_factory: Callable[..., RunningGateway],
                            openai_up: StandinServer) -> None:
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": openai_up.url + "/v1"})
    gw.put_key("openai", "sk-x")
    set_limits(gw, [{"limit": 0, "limitType": "cost", "window": 60}], )
    with pytest.raises(openai.RateLimitError):  # a zero budget refuses everything
        client(gw).chat.completions.create(model="openai/gpt-4o", messages=ASK)
    set_limits(gw, [])
    assert client(gw).chat.completions.create(model="openai/gpt-4o", messages=ASK).choices


def test_a_universal_step_over_budget_falls_through_to_the_next(
        gw: RunningGateway, openai_up: StandinServer) -> None:
    set_limits(gw, [{"id": "gpt-4o", "limit": 0, "limitType": "cost", "window": 60,
                     "model": {"mode": "filter", "values": ["gpt-4o"]}}])

    def step(model: str) -> dict[str, Any]:
        return {"provider": "openai", "endpoint": "chat/completions",
                "headers": {"Content-Type": "application/json"},
                "query": {"model": model, "messages": ASK}}

    r = httpx.post(gw.base(), json=[step("gpt-4o"), step("gpt-4o-mini")], timeout=20,
                   headers={"cf-aig-authorization": f"Bearer {gw.token()}"})
    assert r.status_code == 200 and r.headers["cf-aig-step"] == "1"
    assert [c["json"]["model"] for c in openai_up.app[STATE].calls] == ["gpt-4o-mini"]
    only = httpx.post(gw.base(), json=[step("gpt-4o")], timeout=20,
                      headers={"cf-aig-authorization": f"Bearer {gw.token()}"})
    assert only.status_code == 429 and "spend limit 'gpt-4o'" in only.text


def test_a_realtime_session_counts_against_the_budget(gw: RunningGateway,
                                                      openai_up: StandinServer) -> None:
    """Its usage (``response.done``) is charged when it ends; a spent budget refuses the next
    handshake."""
    set_limits(gw, [{"limit": 1e-9, "limitType": "cost", "window": 3600}])
    client = openai.OpenAI(base_url=gw.base() + "/openai", api_key=gw.token(), max_retries=0)
    with client.realtime.connect(model="gpt-4o-realtime-preview") as conn:
        conn.recv()
        conn.response.create()
        assert [conn.recv().type for _ in range(2)][-1] == "response.done"
    row = gw.logs_once(1)[0]  # the session has ended on the gateway's side too
    assert row["cost"] and row["cost"] > 0
    with pytest.raises(Exception, match="403"):  # the handshake is refused
        with client.realtime.connect(model="gpt-4o-realtime-preview") as conn:
            conn.recv()


def test_a_rule_without_id_keeps_its_spend_when_a_rule_is_put_before_it(
        gw: RunningGateway, openai_up: StandinServer) -> None:
    """Rules written without ids (the SDK sends them back as they were): the budget of a
    spent rule stays spent when another rule is inserted before it and its limit is raised a
    little, rather than starting again from the other rule's place."""
    spent = {"limit": ONE_CALL * 1.5, "limitType": "cost", "window": 86400,
             "model": {"mode": "filter", "values": ["gpt-4o"]}}
    set_limits(gw, [spent])
    c = client(gw)
    for _ in range(2):
        assert c.chat.completions.create(model="openai/gpt-4o", messages=ASK).choices
    other = {"limit": 100, "limitType": "cost", "window": 60,
             "provider": {"mode": "filter", "values": ["anthropic"]}}
    set_limits(gw, [other, {**spent, "limit": ONE_CALL * 1.9}])
    with pytest.raises(openai.RateLimitError) as ei:
        c.chat.completions.create(model="openai/gpt-4o", messages=ASK)
    assert "spend limit 'rule-1' exceeded" in str(ei.value.body)  # shown by its place
