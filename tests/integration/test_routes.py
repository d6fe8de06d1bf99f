"""Dynamic routes end to end: the cloudflare SDK manages them, the openai SDK calls them."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from typing import Any

import cloudflare
import httpx
import openai
import pytest
from harness import RunningGateway, StandinServer, free_socket
from standins import openai as oai
from standins.openai import STATE, Cut, Fail, Hang, Reply, Reset


def start(nxt: str) -> dict[str, Any]:
    return {"id": "start", "type": "start", "outputs": {"next": {"elementId": nxt}}}


def model(eid: str, provider: str, name: str, success: str = "end", fallback: str | None = None,
          timeout: int = 10000, retries: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"success": {"elementId": success}}
    if fallback:
        out["fallback"] = {"elementId": fallback}
    return {"id": eid, "type": "model", "properties": {"provider": provider, "model": name,
                                                        "timeout": timeout, "retries": retries},
            "outputs": out}


END = {"id": "end", "type": "end", "outputs": {}}


def cf(gw: RunningGateway) -> cloudflare.Cloudflare:
    return cloudflare.Cloudflare(api_token=gw.admin_token, base_url=gw.api, max_retries=0)


def create(gw: RunningGateway, name: str, elements: list[dict[str, Any]]) -> str:
    r = httpx.post(gw.api + "/accounts/local/ai-gateway/gateways/default/routes",
                   headers={"authorization": f"Bearer {gw.admin_token}"},
                   json={"name": name, "elements": elements})
    assert r.status_code == 200, r.text
    return r.json()["result"]["id"]


@pytest.fixture
def two_ups(standin: Any, gateway_factory: Any) -> tuple[RunningGateway, StandinServer,
                                                         StandinServer]:
    """A gateway with two OpenAI-style upstreams: openai and groq (different stand-ins)."""
    a, b = standin(oai.create_app()), standin(oai.create_app())
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": a.url + "/v1",
                          "CROSSROADS_UPSTREAM_GROQ": b.url + "/v1"}, rng=random.Random(7))
    gw.put_key("openai", "sk-openai")
    gw.put_key("groq", "gsk-groq")
    return gw, a, b


def chat(gw: RunningGateway, token: str, name: str, meta: dict[str, Any] | None = None,
         stream: bool = False) -> httpx.Response:
    headers = {"cf-aig-authorization": f"Bearer {token}"}
    if meta is not None:
        headers["cf-aig-metadata"] = json.dumps(meta)
    return httpx.post(gw.compat() + "/chat/completions", headers=headers, timeout=30,
                      json={"model": f"dynamic/{name}", "stream": stream,
                            "messages": [{"role": "user", "content": "hi"}]})


def test_sdk_creates_versions_deploys_and_openai_calls_it(two_ups: Any) -> None:
    gw, a, b = two_ups
    c = cf(gw)
    created = c.ai_gateway.dynamic_routing.create(
        "default", account_id="local", name="support",
        elements=[start("m"), model("m", "openai", "gpt-4o-mini"), END])
    route_id = created.id
    assert created.name == "support" and created.version.active == "true"
    client = openai.OpenAI(base_url=gw.compat(), api_key=gw.token(), max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="dynamic/support", messages=[{"role": "user", "content": "What is a neuron?"}])
    assert raw.headers["cf-aig-provider"] == "openai"
    assert raw.headers["cf-aig-model"] == "gpt-4o-mini"
    assert raw.headers["cf-aig-route-path"] == "start,m,end"
    assert raw.parse().choices[0].message.content
    # a new version is a draft until deployed
    c.ai_gateway.dynamic_routing.create_version(
        route_id, account_id="local", gateway_id="default",
        elements=[start("g"), model("g", "groq", "llama-3.3-70b-versatile"), END])
    versions = c.ai_gateway.dynamic_routing.list_versions(route_id, account_id="local",
                                                          gateway_id="default")
    assert [v.active for v in versions.data.versions] == ["true", "false"]
    assert client.chat.completions.with_raw_response.create(
        model="dynamic/support", messages=[{"role": "user", "content": "x"}]
    ).headers["cf-aig-provider"] == "openai"
    v2 = versions.data.versions[1].version_id
    c.ai_gateway.dynamic_routing.create_deployment(route_id, account_id="local",
                                                   gateway_id="default", version_id=v2)
    assert client.chat.completions.with_raw_response.create(
        model="dynamic/support", messages=[{"role": "user", "content": "x"}]
    ).headers["cf-aig-provider"] == "groq"
    # rollback = deploy the old version; takes effect at once
    v1 = versions.data.versions[0].version_id
    c.ai_gateway.dynamic_routing.create_deployment(route_id, account_id="local",
                                                   gateway_id="default", version_id=v1)
    assert client.chat.completions.with_raw_response.create(
        model="dynamic/support", messages=[{"role": "user", "content": "x"}]
    ).headers["cf-aig-provider"] == "openai"
    deps = c.ai_gateway.dynamic_routing.list_deployments(route_id, account_id="local",
                                                         gateway_id="default")
    assert [d.version_id for d in deps.data.deployments] == [v1, v2, v1]
    got = c.ai_gateway.dynamic_routing.get_version(v2, account_id="local", gateway_id="default",
                                                   id=route_id)
    assert got.version_id == v2 and got.active == "false"
    listed = c.ai_gateway.dynamic_routing.list("default", account_id="local")
    assert [r.name for r in listed.data.routes] == ["support"]
    c.ai_gateway.dynamic_routing.update(route_id, account_id="local", gateway_id="default",
                                        name="helpdesk")
    assert c.ai_gateway.dynamic_routing.get(route_id, account_id="local",
                                            gateway_id="default").name == "helpdesk"
    c.ai_gateway.dynamic_routing.delete(route_id, account_id="local", gateway_id="default")
    assert chat(gw, gw.token(), "helpdesk").status_code == 404
    rows = gw.logs()
    assert rows[0]["route"] == "support" and rows[0]["route_path"] == "start,m,end"


def test_conditional_on_metadata(two_ups: Any) -> None:
    gw, a, b = two_ups
    create(gw, "tiers", [
        start("c"),
        {"id": "c", "type": "conditional",
         "properties": {"conditions": {"metadata.plan": {"$eq": "paid"}}},
         "outputs": {"true": {"elementId": "big"}, "false": {"elementId": "small"}}},
        model("big", "openai", "gpt-4o"), model("small", "groq", "llama-3.1-8b-instant"), END])
    t = gw.token()
    assert chat(gw, t, "tiers", {"plan": "paid"}).headers["cf-aig-model"] == "gpt-4o"
    assert chat(gw, t, "tiers", {"plan": "free"}).headers["cf-aig-model"] == \
        "llama-3.1-8b-instant"
    assert chat(gw, t, "tiers").headers["cf-aig-route-path"] == "start,c,small,end"


def test_percentage_split_70_30(two_ups: Any) -> None:
    gw, a, b = two_ups
    create(gw, "ab", [
        start("p"),
        {"id": "p", "type": "percentage", "outputs": {"70%": {"elementId": "x"},
                                                      "30%": {"elementId": "y"}}},
        model("x", "openai", "gpt-4o-mini"), model("y", "groq", "llama-3.1-8b-instant"), END])
    t = gw.token()
    n = 2000

    async def run() -> Counter[str]:
        async with httpx.AsyncClient(timeout=30) as client:
            sem = asyncio.Semaphore(16)

            async def one() -> str:
                async with sem:
                    r = await client.post(gw.compat() + "/chat/completions",
                                          headers={"cf-aig-authorization": f"Bearer {t}"},
                                          json={"model": "dynamic/ab", "messages": []})
                    return r.headers["cf-aig-provider"]

            return Counter(await asyncio.gather(*(one() for _ in range(n))))

    counts = asyncio.run(run())
    share = counts["openai"] / n
    assert abs(share - 0.70) < 0.03, counts
    assert counts["openai"] + counts["groq"] == n


def test_sticky_split_keeps_a_user_on_one_branch(two_ups: Any) -> None:
    gw, _, _ = two_ups
    create(gw, "sticky", [
        start("p"),
        {"id": "p", "type": "percentage", "properties": {"sticky": "metadata.user"},
         "outputs": {"50%": {"elementId": "x"}, "50.0%": {"elementId": "y"}}},
        model("x", "openai", "gpt-4o-mini"), model("y", "groq", "llama-3.1-8b-instant"), END])
    t = gw.token()
    for user in ("alice", "bob", "carol"):
        seen = {chat(gw, t, "sticky", {"user": user}).headers["cf-aig-provider"]
                for _ in range(6)}
        assert len(seen) == 1


def test_count_limit_exact_under_concurrency(two_ups: Any) -> None:
    gw, a, _ = two_ups
    create(gw, "limited", [
        start("r"),
        {"id": "r", "type": "rate", "properties": {"limitType": "count", "key": "metadata.user",
                                                   "limit": 10, "window": 3600},
         "outputs": {"success": {"elementId": "m"}}},
        model("m", "openai", "gpt-4o-mini"), END])
    t = gw.token()

    async def run() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as client:
            async def one() -> int:
                r = await client.post(gw.compat() + "/chat/completions", json={
                    "model": "dynamic/limited", "messages": []}, headers={
                    "cf-aig-authorization": f"Bearer {t}", "cf-aig-metadata": '{"user": "u1"}'})
                return r.status_code
            return await asyncio.gather(*(one() for _ in range(50)))

    statuses = asyncio.run(run())
    assert statuses.count(200) == 10 and statuses.count(429) == 40
    assert len(a.app[STATE].calls) == 10
    other = chat(gw, t, "limited", {"user": "u2"})
    assert other.status_code == 200, "another key has its own bucket"
    body = chat(gw, t, "limited", {"user": "u1"}).json()
    assert body["error"][0]["code"] == 2015 and "limit" in body["error"][0]["message"]


def test_cost_limit_stops_at_budget_then_falls_back(two_ups: Any) -> None:
    gw, a, b = two_ups
    # each gpt-4o answer: 12 in * 2.5/1M + 7 out * 10/1M = 0.0001 USD
    create(gw, "budget", [
        start("r"),
        {"id": "r", "type": "rate", "properties": {"limitType": "cost", "key": "metadata.team",
                                                   "limit": 0.00035, "window": 86400},
         "outputs": {"success": {"elementId": "m"}, "fallback": {"elementId": "cheap"}}},
        model("m", "openai", "gpt-4o"), model("cheap", "groq", "llama-3.1-8b-instant"), END])
    t = gw.token()
    providers = []
    for _ in range(6):
        r = chat(gw, t, "budget", {"team": "t1"})
        assert r.status_code == 200
        providers.append(r.headers["cf-aig-provider"])
        gw.drain_logs()  # cost settles after the answer; sequential requests see it
    assert providers == ["openai"] * 4 + ["groq"] * 2


def test_model_failures_fall_back(two_ups: Any) -> None:
    gw, a, b = two_ups
    create(gw, "fb", [start("m"), model("m", "openai", "gpt-4o-mini", fallback="g",
                                        timeout=300, retries=1),
                      model("g", "groq", "llama-3.1-8b-instant"), END])
    t = gw.token()
    a.app[STATE].queue = [Fail(503), Fail(500)]  # both tries fail
    r = chat(gw, t, "fb")
    assert r.status_code == 200 and r.headers["cf-aig-provider"] == "groq"
    assert r.headers["cf-aig-route-path"] == "start,m,g,end"
    a.app[STATE].queue = [Hang(), Hang()]  # timeouts to first byte
    assert chat(gw, t, "fb").headers["cf-aig-provider"] == "groq"
    a.app[STATE].release.set()
    a.app[STATE].queue = [Reset(), Reset()]
    assert chat(gw, t, "fb").headers["cf-aig-provider"] == "groq"


def test_connection_refused_falls_back(standin: Any, gateway_factory: Any) -> None:
    b = standin(oai.create_app())
    sock = free_socket()
    dead = sock.getsockname()[1]
    sock.close()
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": f"http://127.0.0.1:{dead}/v1",
                          "CROSSROADS_UPSTREAM_GROQ": b.url + "/v1"})
    gw.put_key("openai", "sk-a")
    gw.put_key("groq", "gsk-b")
    create(gw, "fb", [start("m"), model("m", "openai", "gpt-4o-mini", fallback="g"),
                      model("g", "groq", "llama-3.1-8b-instant"), END])
    assert chat(gw, gw.token(), "fb").headers["cf-aig-provider"] == "groq"


def test_stream_falls_back_before_first_byte(two_ups: Any) -> None:
    gw, a, b = two_ups
    create(gw, "sfb", [start("m"), model("m", "openai", "gpt-4o-mini", fallback="g"),
                       model("g", "groq", "llama-3.1-8b-instant"), END])
    b.app[STATE].default = Reply(content="from the fallback")
    a.app[STATE].queue = [Cut(0)]
    client = openai.OpenAI(base_url=gw.compat(), api_key=gw.token(), max_retries=0)
    stream = client.chat.completions.with_raw_response.create(
        model="dynamic/sfb", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert stream.headers["cf-aig-provider"] == "groq"
    text = "".join(ch.choices[0].delta.content or "" for ch in stream.parse() if ch.choices)
    assert text == "from the fallback"


def test_every_model_failing_lists_the_attempts(two_ups: Any) -> None:
    gw, a, b = two_ups
    create(gw, "dead", [start("m"), model("m", "openai", "gpt-4o-mini", fallback="g"),
                        model("g", "groq", "llama-3.1-8b-instant"), END])
    a.app[STATE].queue = [Fail(503)]
    b.app[STATE].queue = [Fail(500)]
    r = chat(gw, gw.token(), "dead")
    assert r.status_code == 502
    msg = r.json()["error"][0]["message"]
    assert "model m (openai/gpt-4o-mini) failed: provider answered 503" in msg
    assert "model g (groq/llama-3.1-8b-instant) failed: provider answered 500" in msg


def test_bad_route_requests(two_ups: Any) -> None:
    gw, _, _ = two_ups
    t = gw.token()
    r = chat(gw, t, "missing")
    assert r.status_code == 404 and "missing" in r.json()["error"][0]["message"]
    create(gw, "ok", [start("m"), model("m", "openai", "gpt-4o-mini"), END])
    e = httpx.post(gw.compat() + "/embeddings", headers={"cf-aig-authorization": f"Bearer {t}"},
                   json={"model": "dynamic/ok", "input": "x"})
    assert e.status_code == 400 and "chat-completions" in e.json()["error"][0]["message"]
    bad = httpx.post(gw.api + "/accounts/local/ai-gateway/gateways/default/routes",
                     headers={"authorization": f"Bearer {gw.admin_token}"},
                     json={"name": "broken", "elements": [
                         start("m"), model("m", "openai", "gpt-4o-mini", success="nowhere"),
                         END]})
    assert bad.status_code == 400
    assert 'element "m"' in bad.json()["errors"][0]["message"]
    routes = cf(gw).ai_gateway.dynamic_routing.list("default", account_id="local")
    assert [r.name for r in routes.data.routes] == ["ok"], "nothing saved"


def test_explain_endpoint(two_ups: Any) -> None:
    gw, a, _ = two_ups
    rid = create(gw, "tiers", [
        start("c"),
        {"id": "c", "type": "conditional",
         "properties": {"conditions": {"metadata.plan": "paid"}},
         "outputs": {"true": {"elementId": "big"}, "false": {"elementId": "small"}}},
        model("big", "openai", "gpt-4o"), model("small", "groq", "llama-3.1-8b-instant"), END])
    r = httpx.post(gw.api + f"/accounts/local/ai-gateway/gateways/default/routes/{rid}/explain",
                   headers={"authorization": f"Bearer {gw.admin_token}"},
                   json={"metadata": {"plan": "paid"}})
    res = r.json()["result"]
    assert res["path"] == ["start", "c", "big", "end"]
    assert res["version"] == 1
    assert a.app[STATE].calls == [], "explain calls no provider"


def test_routes_through_the_rest_api_form(two_ups: Any) -> None:
    """Cloudflare's REST form, ``{API}/accounts/{account}/ai/v1/chat/completions`` with the
    gateway in ``cf-aig-gateway-id``: routes are scoped to their gateway, and without the
    header the request resolves against the default gateway (where this route is not: 404,
    as Cloudflare documents)."""
    gw, a, _ = two_ups
    cf(gw).ai_gateway.create(account_id="local", id="support", cache_invalidate_on_update=False,
                             cache_ttl=0, collect_logs=True, rate_limiting_interval=0,
                             rate_limiting_limit=0)
    r = httpx.post(gw.api + "/accounts/local/ai-gateway/gateways/support/routes",
                   headers={"authorization": f"Bearer {gw.admin_token}"},
                   json={"name": "triage", "elements": [start("m"), model(
                       "m", "openai", "gpt-4o-mini"), END]})
    assert r.status_code == 200, r.text
    gw.put_key("openai", "sk-openai", gateway="support")
    token = gw.token(gateway="support")
    rest = openai.OpenAI(base_url=gw.api + "/accounts/local/ai/v1", api_key=token,
                         max_retries=0, default_headers={"cf-aig-gateway-id": "support"})
    out = rest.chat.completions.with_raw_response.create(
        model="dynamic/triage", messages=[{"role": "user", "content": "hi"}])
    assert out.headers["cf-aig-route"] == "triage" and out.headers["cf-aig-model"] == (
        "gpt-4o-mini")
    assert out.parse().choices[0].message.content == "Hello from the stand-in."
    assert gw.logs("support")[-1]["route"] == "triage"
    default = openai.OpenAI(base_url=gw.api + "/accounts/local/ai/v1", api_key=gw.token(),
                            max_retries=0)
    with pytest.raises(openai.NotFoundError) as ei:
        default.chat.completions.create(model="dynamic/triage",
                                        messages=[{"role": "user", "content": "hi"}])
    assert "not found on gateway 'default'" in str(ei.value.body)
    assert default.chat.completions.create(  # the default gateway's own models still answer
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]).choices
    odd = httpx.post(gw.api + "/accounts/local/ai/v1/chat/completions",
                     headers={"authorization": f"Bearer {token}", "cf-aig-gateway-id": "a/b"},
                     json={"model": "dynamic/triage", "messages": []})
    assert odd.status_code == 404 and "a%2Fb" in odd.text
    assert httpx.post(gw.api + "/accounts/local/ai/v1/images/generations",
                      headers={"authorization": f"Bearer {token}"}, json={}).status_code == 404
