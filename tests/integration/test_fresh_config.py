"""A change made a moment ago by another process (the CLI, another replica) is seen by the next
request that needs it, without waiting for the config poll: a new token, a stored key, a route.

The gateway's poll is set to an hour, and the changes are written to the store the way the CLI
does (no reload of the running process), so only the on-demand refresh can make these pass."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from harness import RunningGateway, StandinServer

from crossroads import tokens

BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
ROUTE = [
    {"id": "start", "type": "start", "outputs": {"next": {"elementId": "m"}}},
    {"id": "m", "type": "model",
     "properties": {"provider": "openai", "model": "gpt-4o-mini", "timeout": 10000,
                    "retries": 0},
     "outputs": {"success": {"elementId": "end"}, "fallback": {"elementId": "end"}}},
    {"id": "end", "type": "end", "outputs": {}},
]


def make(gateway_factory: Callable[..., RunningGateway], up: StandinServer,
         **kw: object) -> RunningGateway:
    return gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": up.url + "/v1",
                            "CROSSROADS_CONFIG_POLL_INTERVAL": "3600"}, **kw)


def chat(gw: RunningGateway, token: str, model: str = "openai/gpt-4o-mini") -> httpx.Response:
    return httpx.post(gw.compat() + "/chat/completions", json=dict(BODY, model=model),
                      headers={"cf-aig-authorization": f"Bearer {token}"})


def test_a_token_created_elsewhere_works_at_once(
        gateway_factory: Callable[..., RunningGateway], openai_up: StandinServer) -> None:
    gw = make(gateway_factory, openai_up)
    gw.put_key("openai", "sk-x")
    value = tokens.new_token()
    gw.thread.run(gw.rt.store.create_token("local", "default", "cli", tokens.digest(value)))
    r = chat(gw, value)
    assert r.status_code == 200, r.text


def test_an_unknown_token_is_still_refused(
        gateway_factory: Callable[..., RunningGateway], openai_up: StandinServer) -> None:
    gw = make(gateway_factory, openai_up)
    gw.put_key("openai", "sk-x")
    r = chat(gw, tokens.new_token())
    assert r.status_code == 401
    assert r.json()["error"][0]["code"] == 2009


def test_a_key_stored_elsewhere_is_used_at_once(
        gateway_factory: Callable[..., RunningGateway], openai_up: StandinServer) -> None:
    gw = make(gateway_factory, openai_up)
    token = gw.token()
    gw.thread.run(gw.rt.put_key("local", "default", "openai", "default", "sk-from-cli"))
    r = chat(gw, token)
    assert r.status_code == 200, r.text


def test_a_route_deployed_elsewhere_answers_at_once(
        gateway_factory: Callable[..., RunningGateway], openai_up: StandinServer) -> None:
    gw = make(gateway_factory, openai_up)
    gw.put_key("openai", "sk-x")
    token = gw.token()
    other = make(gateway_factory, openai_up, data_dir=gw.settings.data_dir)  # a 2nd worker
    other.create_route("fresh", ROUTE)
    r = chat(gw, token, "dynamic/fresh")
    assert r.status_code == 200, r.text
    assert r.headers["cf-aig-route"] == "fresh"


def test_the_configuration_s_names_are_its_own_objects_and_a_url_adds_none(
        gateway_factory: Callable[..., RunningGateway], openai_up: StandinServer) -> None:
    """The data plane reads a request's account and gateway through the configuration's own
    name table (its lookups then find the names identical); a URL's names are never added to
    it (the table holds what is configured, however many names requests make up)."""
    gw = make(gateway_factory, openai_up)
    gw.put_key("openai", "sk-x")
    token = gw.token()
    assert chat(gw, token).status_code == 200
    snap = gw.rt.snapshot
    for account, gateway_id in snap.gateways:
        assert snap.names[account] is account and snap.names[gateway_id] is gateway_id
    for (account, gateway_id, _, _) in snap.keys:
        assert snap.names[account] is account and snap.names[gateway_id] is gateway_id
    known = dict(snap.names)
    for i in range(3):
        r = httpx.post(f"{gw.url}/v1/local/no-such-gateway-{i}/compat/chat/completions",
                       json=BODY, headers={"cf-aig-authorization": f"Bearer {token}"})
        assert r.status_code == 404
    assert gw.rt.snapshot.names == known
