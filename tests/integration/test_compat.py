"""The OpenAI-compatible endpoint, driven by the official openai SDK over loopback."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest
from harness import RunningGateway, StandinServer
from standins.openai import STATE, Cut, Fail, Hang, Reply, Reset

from crossroads.upstream import USER_AGENT


def client(gw: RunningGateway, token: str, **kw: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.compat(), api_key=token, max_retries=0, **kw)  # type: ignore[arg-type]


def test_gateway_token_as_api_key_uses_stored_key(gateway: RunningGateway,
                                                  openai_up: StandinServer) -> None:
    token = gateway.token()
    r = client(gateway, token).chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "Hello from the stand-in."
    assert r.usage is not None and r.usage.prompt_tokens == 12
    call = openai_up.app[STATE].calls[-1]
    assert call["headers"]["Authorization"] == "Bearer sk-stored-secret-123456"
    assert call["json"]["model"] == "gpt-4o-mini"
    rows = gateway.logs()
    assert len(rows) == 1
    row = rows[0]
    assert (row["provider"], row["model"], row["status_code"], row["success"]) == (
        "openai", "gpt-4o-mini", 200, True)
    assert (row["tokens_in"], row["tokens_out"]) == (12, 7)
    assert row["cost"] == pytest.approx((12 * 0.15 + 7 * 0.6) / 1e6)


def test_cf_aig_authorization_header_and_response_headers(gateway: RunningGateway) -> None:
    token = gateway.token()
    c = openai.OpenAI(base_url=gateway.compat(), api_key="unused-placeholder", max_retries=0,
                      default_headers={"cf-aig-authorization": f"Bearer {token}"})
    raw = c.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"cf-aig-event-id": "evt-1"})
    log_id = raw.headers["cf-aig-log-id"]
    assert raw.headers["cf-aig-request-id"] == log_id
    assert raw.headers["cf-aig-event-id"] == "evt-1"
    assert raw.parse().choices[0].message.content
    row = gateway.logs()[0]
    assert row["id"] == log_id and row["event_id"] == "evt-1"


def test_a_non_ascii_event_id_is_logged_and_echoed_as_sent(gateway: RunningGateway) -> None:
    """Clients send non-ASCII header text as UTF-8 bytes: it is logged as that text and the
    answer's ``cf-aig-event-id`` carries the same bytes back (not read as latin-1 and
    encoded a second time)."""
    token = gateway.token()
    sent = "commande-café-✓".encode()
    r = httpx.post(gateway.compat() + "/chat/completions",
                   json={"model": "openai/gpt-4o-mini",
                         "messages": [{"role": "user", "content": "hi"}]},
                   headers=[(b"cf-aig-authorization", f"Bearer {token}".encode()),
                            (b"cf-aig-event-id", sent)])
    assert r.status_code == 200, r.text
    assert dict(r.headers.raw)[b"cf-aig-event-id"] == sent
    row = gateway.logs_once(1)[0]
    assert row["id"] == r.headers["cf-aig-log-id"] and row["event_id"] == "commande-café-✓"


def test_callers_own_provider_key_is_forwarded(gateway: RunningGateway,
                                               openai_up: StandinServer) -> None:
    token = gateway.token()
    c = openai.OpenAI(base_url=gateway.compat(), api_key="sk-callers-own", max_retries=0,
                      default_headers={"cf-aig-authorization": f"Bearer {token}"})
    c.chat.completions.create(model="openai/gpt-4o-mini",
                              messages=[{"role": "user", "content": "hi"}])
    assert openai_up.app[STATE].calls[-1]["headers"]["Authorization"] == "Bearer sk-callers-own"
    # providers see the gateway's user agent, not aiohttp's
    sent = openai_up.app[STATE].calls[-1]["headers"]
    assert sent["User-Agent"] == USER_AGENT and USER_AGENT.startswith("crossroads/")


def test_stream_with_usage(gateway: RunningGateway) -> None:
    token = gateway.token()
    stream = client(gateway, token).chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the stand-in."
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 7
    row = gateway.logs()[0]
    assert (row["tokens_in"], row["tokens_out"]) == (12, 7)


def test_stream_usage_recorded_even_when_client_did_not_ask(gateway: RunningGateway,
                                                            openai_up: StandinServer) -> None:
    token = gateway.token()
    chunks = list(client(gateway, token).chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert all(c.choices for c in chunks), "the usage-only chunk must not reach this client"
    assert openai_up.app[STATE].calls[-1]["json"]["stream_options"] == {"include_usage": True}
    row = gateway.logs()[0]
    assert (row["tokens_in"], row["tokens_out"]) == (12, 7)
    assert row["cost"] > 0


def test_tool_calls_stream_through(gateway: RunningGateway, openai_up: StandinServer) -> None:
    tc = [{"id": "call_1", "type": "function",
           "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]
    openai_up.app[STATE].queue = [Reply(tool_calls=tc), Reply(tool_calls=tc)]
    c = client(gateway, gateway.token())
    r = c.chat.completions.create(model="openai/gpt-4o-mini",
                                  messages=[{"role": "user", "content": "weather?"}],
                                  tools=[{"type": "function", "function": {
                                      "name": "get_weather", "parameters": {"type": "object"}}}])
    assert r.choices[0].message.tool_calls[0].function.arguments == '{"city":"Paris"}'
    args = ""
    for ch in c.chat.completions.create(model="openai/gpt-4o-mini", stream=True,
                                        messages=[{"role": "user", "content": "weather?"}]):
        for d in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
            args += d.function.arguments or ""
    assert args == '{"city":"Paris"}'


def test_embeddings(gateway: RunningGateway) -> None:
    r = client(gateway, gateway.token()).embeddings.create(
        model="openai/text-embedding-3-small", input=["a", "b"])
    assert len(r.data) == 2 and r.data[0].embedding == [0.1, 0.2, 0.3]
    assert gateway.logs()[0]["tokens_in"] == 8


@pytest.mark.parametrize("headers,code", [
    ({}, 2009),
    ({"cf-aig-authorization": "Bearer cxr_wrong"}, 2009),
])
def test_authentication_required(gateway: RunningGateway, headers: dict[str, str],
                                 code: int) -> None:
    r = httpx.post(gateway.compat() + "/chat/completions", headers=headers,
                   json={"model": "openai/gpt-4o-mini", "messages": []})
    assert r.status_code == 401
    assert r.json() == {"success": False, "result": [], "messages": [],
                        "error": [{"code": code, "message": r.json()["error"][0]["message"]}]}


@pytest.mark.parametrize("body,headers,status,needle", [
    (b"{not json", {}, 400, "not valid JSON"),
    (b'{"messages": []}', {}, 400, "'model' is required"),
    (b'{"model": "nope/x", "messages": []}', {}, 400, "unknown provider 'nope'"),
    (b'{"model": "gpt-4o", "messages": []}', {}, 400, "{provider}/{model}"),
    (b'{"model": "openai/gpt-4o"}', {}, 400, "'messages'"),
    (b'{"model": "openai/gpt-4o", "messages": []}', {"cf-aig-metadata": "[1]"}, 400,
     "cf-aig-metadata"),
    (b'{"model": "openai/gpt-4o", "messages": []}', {"cf-aig-metadata": '{"a": {"b": 1}}'},
     400, "flat"),
    (b'{"model": "openai/gpt-4o", "messages": []}', {"cf-aig-byok-alias": "other"}, 400,
     "alias 'other'"),
    (b'{"model": "openai/gpt-4o", "messages": []}', {"cf-aig-max-attempts": "9"}, 400,
     "between 1 and 5"),
])
def test_bad_input_gets_clear_errors(gateway: RunningGateway, body: bytes,
                                     headers: dict[str, str], status: int, needle: str) -> None:
    token = gateway.token()
    r = httpx.post(gateway.compat() + "/chat/completions", content=body,
                   headers={"cf-aig-authorization": f"Bearer {token}", **headers})
    assert r.status_code == status, r.text
    assert needle in r.json()["error"][0]["message"]
    assert r.headers["cf-aig-error-source"] == "gateway"
    ok = httpx.post(gateway.compat() + "/chat/completions",
                    json={"model": "openai/gpt-4o-mini", "messages": []},
                    headers={"cf-aig-authorization": f"Bearer {token}"})
    assert ok.status_code == 200  # and the gateway keeps serving


def test_body_too_large(gateway_factory, openai_up: StandinServer) -> None:  # type: ignore[no-untyped-def]
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": openai_up.url + "/v1",
                          "CROSSROADS_MAX_BODY_BYTES": "2048"})
    token = gw.token()
    r = httpx.post(gw.compat() + "/chat/completions",
                   headers={"cf-aig-authorization": f"Bearer {token}"},
                   json={"model": "openai/gpt-4o-mini",
                         "messages": [{"role": "user", "content": "x" * 5000}]})
    assert r.status_code == 413
    assert r.json()["error"][0]["code"] == 2014


def test_provider_error_passes_through(gateway: RunningGateway, openai_up: StandinServer) -> None:
    openai_up.app[STATE].queue = [Fail(400, "bad temperature")]
    with pytest.raises(openai.BadRequestError) as ei:
        client(gateway, gateway.token()).chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert ei.value.response.headers["cf-aig-error-source"] == "provider"
    assert ei.value.body["message"] == "bad temperature"  # type: ignore[index]
    row = gateway.logs()[0]
    assert row["status_code"] == 400 and row["success"] is False


def test_connection_refused_is_a_gateway_502(gateway_factory) -> None:  # type: ignore[no-untyped-def]
    from harness import free_socket

    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": f"http://127.0.0.1:{port}/v1"})
    gw.put_key("openai", "sk-x")
    r = httpx.post(gw.compat() + "/chat/completions",
                   headers={"cf-aig-authorization": f"Bearer {gw.token()}"},
                   json={"model": "openai/gpt-4o-mini", "messages": []})
    assert r.status_code == 502
    assert r.json()["error"][0]["code"] == 2005
    row = gw.logs()[0]
    assert row["success"] is False and "cannot connect" in row["error"]


def test_reset_before_answer_and_cut_mid_stream(gateway: RunningGateway,
                                                openai_up: StandinServer) -> None:
    openai_up.app[STATE].queue = [Reset(), Cut(2)]
    c = client(gateway, gateway.token())
    with pytest.raises(openai.APIStatusError) as ei:
        c.chat.completions.create(model="openai/gpt-4o-mini",
                                  messages=[{"role": "user", "content": "hi"}])
    assert ei.value.status_code == 502
    with pytest.raises(openai.APIError):
        for _ in c.chat.completions.create(model="openai/gpt-4o-mini", stream=True,
                                           messages=[{"role": "user", "content": "hi"}]):
            pass
    rows = gateway.logs()
    assert [r["success"] for r in rows] == [False, False]
    assert c.chat.completions.create(model="openai/gpt-4o-mini",
                                     messages=[{"role": "user", "content": "hi"}]).choices


def test_idle_timeout_before_the_first_byte(gateway_factory, openai_up: StandinServer  # type: ignore[no-untyped-def]
                                            ) -> None:
    """No request timeout set: a provider that sends nothing is cut off by the idle timeout
    (``CROSSROADS_STREAM_IDLE_TIMEOUT``), answered as a 504 that says so."""
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": openai_up.url + "/v1",
                          "CROSSROADS_STREAM_IDLE_TIMEOUT": "0.2"})
    gw.put_key("openai", "sk-stored")
    openai_up.app[STATE].queue = [Hang()]
    r = httpx.post(gw.compat() + "/chat/completions",
                   headers={"cf-aig-authorization": f"Bearer {gw.token()}"},
                   json={"model": "openai/gpt-4o-mini", "messages": []})
    openai_up.app[STATE].release.set()
    assert r.status_code == 504, r.text
    error = r.json()["error"][0]
    assert error["code"] == 2007 and "0.2 s" in error["message"]
    assert gw.logs()[0]["status_code"] == 504


def test_an_unexpected_error_is_answered_and_logged(gateway: RunningGateway,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the gateway (here: the answer's parser raising) still gets the gateway's error
    format, the log id, and a log row; the gateway keeps serving."""
    from crossroads.providers.openai_compat import OpenAICompatProvider

    def broken(self, raw: bytes, model: str) -> None:  # type: ignore[no-untyped-def]
        raise RuntimeError("parser bug")

    token = gateway.token()
    with monkeypatch.context() as m:
        m.setattr(OpenAICompatProvider, "chat_response", broken)
        r = httpx.post(gateway.compat() + "/chat/completions",
                       headers={"cf-aig-authorization": f"Bearer {token}"},
                       json={"model": "openai/gpt-4o-mini", "messages": []})
    assert r.status_code == 500
    body = r.json()
    assert body["success"] is False and body["error"][0]["code"] == 2000
    assert "parser bug" not in r.text  # details go to the gateway's log, not the caller
    row = gateway.logs()[0]
    assert row["status_code"] == 500 and r.headers["cf-aig-log-id"] == row["id"]
    ok = httpx.post(gateway.compat() + "/chat/completions",
                    headers={"cf-aig-authorization": f"Bearer {token}"},
                    json={"model": "openai/gpt-4o-mini", "messages": []})
    assert ok.status_code == 200


def test_timeout_to_first_byte(gateway: RunningGateway, openai_up: StandinServer) -> None:
    state = openai_up.app[STATE]
    state.queue = [Hang()]
    r = httpx.post(gateway.compat() + "/chat/completions",
                   headers={"cf-aig-authorization": f"Bearer {gateway.token()}",
                            "cf-aig-request-timeout": "150"},
                   json={"model": "openai/gpt-4o-mini", "messages": []})
    assert r.status_code == 504
    assert r.json()["error"][0]["code"] == 2007


@pytest.mark.parametrize("deadline", [{}, {"cf-aig-request-timeout": "10000"}],
                         ids=["no-deadline", "first-byte-deadline"])
def test_client_disconnect_cancels_upstream(gateway: RunningGateway,
                                            openai_up: StandinServer,
                                            deadline: dict[str, str]) -> None:
    """Also while a first-byte deadline is pending: the cancellation is the client's, so it is
    not mistaken for the deadline (a 504)."""
    state = openai_up.app[STATE]
    state.queue = [Hang()]
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.compat() + "/chat/completions", timeout=0.3,
                   headers={"cf-aig-authorization": f"Bearer {gateway.token()}", **deadline},
                   json={"model": "openai/gpt-4o-mini", "messages": []})
    import time

    for _ in range(300):  # the stand-in notices the dropped upstream connection
        if state.upstream_disconnects:
            break
        time.sleep(0.01)
    assert state.upstream_disconnects == 1
    rows = gateway.logs()
    assert rows[0]["status_code"] == 499


def test_collect_log_false_skips_the_log(gateway: RunningGateway) -> None:
    client(gateway, gateway.token()).chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"cf-aig-collect-log": "false"})
    assert gateway.logs() == []


def test_metadata_is_logged_flat_and_capped(gateway: RunningGateway) -> None:
    import json

    meta = {"a": 1, "b": "x", "cf.user": "reserved", "c": True, "d": 2.5, "e": "5", "f": "6"}
    client(gateway, gateway.token()).chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"cf-aig-metadata": json.dumps(meta)})
    logged = json.loads(gateway.logs()[0]["metadata"])
    assert logged == {"a": 1, "b": "x", "c": True, "d": 2.5, "e": "5"}


def test_stored_key_never_leaks(gateway: RunningGateway, openai_up: StandinServer) -> None:
    openai_up.app[STATE].queue = [Fail(401, "Incorrect API key provided: sk-sto***456")]
    c = client(gateway, gateway.token())
    with pytest.raises(openai.AuthenticationError):
        c.chat.completions.create(model="openai/gpt-4o-mini",
                                  messages=[{"role": "user", "content": "hi"}])
    c.chat.completions.create(model="openai/gpt-4o-mini",
                              messages=[{"role": "user", "content": "hi"}])
    for row in gateway.logs():
        flat = repr(row)
        assert "sk-stored-secret-123456" not in flat
    raw = gateway.rt.store.url.split("///")[-1]
    with open(raw, "rb") as f:
        assert b"sk-stored-secret-123456" not in f.read()


def test_server_timing_separates_gateway_and_upstream_time(gateway: RunningGateway) -> None:
    import re

    raw = client(gateway, gateway.token()).chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    m = re.fullmatch(r"upstream;dur=([\d.]+), gateway;dur=([\d.]+)", raw.headers["server-timing"])
    assert m is not None
    assert float(m.group(1)) > 0 and float(m.group(2)) >= 0


def test_refused_headers_and_bodies_are_logged(gateway_factory, openai_up: StandinServer  # type: ignore[no-untyped-def]
                                               ) -> None:
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": openai_up.url + "/v1",
                          "CROSSROADS_MAX_BODY_BYTES": "2048"})
    token = gw.token()
    h = {"cf-aig-authorization": f"Bearer {token}"}
    bad_meta = httpx.post(gw.compat() + "/chat/completions", json={"model": "openai/x"},
                          headers={**h, "cf-aig-metadata": "[]"})
    too_big = httpx.post(gw.compat() + "/chat/completions", headers=h,
                         content=b'{"model": "openai/x", "pad": "' + b"x" * 4000 + b'"}')
    assert (bad_meta.status_code, too_big.status_code) == (400, 413)
    rows = gw.logs()
    assert [(r["status_code"], r["success"]) for r in rows] == [(400, False), (413, False)]
    assert "cf-aig-metadata" in rows[0]["error"] and "limit" in rows[1]["error"]


def test_revoked_token_is_refused_on_its_next_request(gateway: RunningGateway) -> None:
    """The digest of a presented token is remembered; whether it is valid is not."""
    admin = {"Authorization": f"Bearer {gateway.admin_token}"}
    base = f"{gateway.api}/accounts/{gateway.settings.account_id}/ai-gateway/gateways/default"
    made = httpx.post(f"{base}/tokens", json={"name": "short-lived"}, headers=admin).json()
    c = client(gateway, made["result"]["token"])
    r = c.chat.completions.create(model="openai/gpt-4o-mini",
                                  messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content
    gone = httpx.delete(f"{base}/tokens/{made['result']['id']}", headers=admin)
    assert gone.status_code == 200
    with pytest.raises(openai.AuthenticationError):
        c.chat.completions.create(model="openai/gpt-4o-mini",
                                  messages=[{"role": "user", "content": "hi"}])


def test_responses_api_on_compat(gateway_factory: Callable[..., RunningGateway],
                                 openai_up: StandinServer) -> None:
    """``client.responses`` with the compat base URL: ``{provider}/{model}`` for OpenAI-style
    providers, sent to their ``/responses`` with the stored key, streamed or not, logged with
    its usage; refused with a 400 that says where to go for the others."""
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": openai_up.url + "/v1",
                          "CROSSROADS_UPSTREAM_ANTHROPIC": openai_up.url})
    gw.put_key("openai", "sk-stored")
    c = client(gw, gw.token())
    r = c.responses.create(model="openai/gpt-4.1-mini", input="hi")
    assert r.output_text == "Hello from the stand-in." and r.model == "gpt-4.1-mini"
    with c.responses.stream(model="openai/gpt-4.1-mini", input="hi") as stream:
        assert stream.get_final_response().output_text == r.output_text
    sent = openai_up.app[STATE].calls
    assert [(s["path"], s["json"]["model"]) for s in sent] == [
        ("/v1/responses", "gpt-4.1-mini")] * 2
    assert sent[0]["headers"]["Authorization"] == "Bearer sk-stored"
    rows = gw.logs()
    assert [(x["request_type"], x["provider"], x["tokens_in"], x["tokens_out"]) for x in rows
            ] == [("responses", "openai", 12, 7)] * 2
    assert all(x["cost"] and x["cost"] > 0 for x in rows)
    for model, words in (("anthropic/claude-sonnet-4-5", "use /compat/chat/completions"),
                         ("dynamic/any", "chat-completions format")):
        with pytest.raises(openai.BadRequestError) as ei:
            c.responses.create(model=model, input="hi")
        assert words in str(ei.value.body)
    assert len(sent) == 2
    with pytest.raises(openai.APIStatusError) as ei:  # no key stored for groq
        c.responses.create(model="groq/llama-3.3-70b-versatile", input="hi")
    assert "no provider key for 'groq'" in str(ei.value.body)
    row = gw.logs()[-1]
    assert (row["request_type"], row["provider"], row["model"], row["success"]) == (
        "responses", "groq", "llama-3.3-70b-versatile", False)
