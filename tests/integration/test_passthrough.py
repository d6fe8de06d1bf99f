"""Provider-native passthrough: the SDK's own paths, with stored keys and logs."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest
from harness import RunningGateway, StandinServer
from standins import workers_ai
from standins.openai import STATE, Cut


def test_openai_sdk_on_the_native_path(gateway: RunningGateway, openai_up: StandinServer
                                       ) -> None:
    token = gateway.token()
    client = openai.OpenAI(base_url=gateway.base() + "/openai", api_key=token, max_retries=0)
    r = client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "Hello from the stand-in."
    call = openai_up.app[STATE].calls[-1]
    assert call["headers"]["Authorization"] == "Bearer sk-stored-secret-123456"
    assert call["json"]["model"] == "gpt-4o-mini"
    assert not any(k.lower().startswith("cf-aig") for k in call["headers"])
    chunks = list(client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}))
    assert chunks[-1].usage is not None
    rows = gateway.logs()
    assert [(r["provider"], r["model"], r["tokens_in"], r["tokens_out"]) for r in rows] == [
        ("openai", "gpt-4o-mini", 12, 7), ("openai", "gpt-4o-mini", 12, 7)]
    assert all(r["request_type"] == "native" and r["cost"] > 0 for r in rows)


def test_callers_own_key_on_native_path(gateway: RunningGateway, openai_up: StandinServer
                                        ) -> None:
    token = gateway.token()
    client = openai.OpenAI(base_url=gateway.base() + "/openai", api_key="sk-own",
                           default_headers={"cf-aig-authorization": f"Bearer {token}"},
                           max_retries=0)
    client.embeddings.create(model="text-embedding-3-small", input="x")
    call = openai_up.app[STATE].calls[-1]
    assert call["path"] == "/v1/embeddings"
    assert call["headers"]["Authorization"] == "Bearer sk-own"


def test_unknown_provider_and_custom_provider(gateway_factory, openai_up: StandinServer  # type: ignore[no-untyped-def]
                                              ) -> None:
    gw = gateway_factory({"CROSSROADS_UPSTREAM_CUSTOM_OLLAMA": openai_up.url + "/v1"})
    token = gw.token()
    r = httpx.post(gw.base() + "/nope/chat/completions",
                   headers={"cf-aig-authorization": f"Bearer {token}"}, json={})
    assert r.status_code == 400 and "unknown provider 'nope'" in r.json()["error"][0]["message"]
    gw.put_key("custom-ollama", "ollama")
    client = openai.OpenAI(base_url=gw.compat(), api_key=token, max_retries=0)
    out = client.chat.completions.create(model="custom-ollama/llama3.2",
                                         messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].message.content
    assert openai_up.app[STATE].calls[-1]["json"]["model"] == "llama3.2"


def test_native_answers_are_cached_per_callers_key(gateway: RunningGateway,
                                                   openai_up: StandinServer) -> None:
    token = gateway.token()
    client = openai.OpenAI(base_url=gateway.base() + "/openai", api_key=token, max_retries=0,
                           default_headers={"cf-aig-cache-ttl": "600"})
    calls = openai_up.app[STATE].calls
    first = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "cache me"}])
    second = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "cache me"}])
    assert first.headers["cf-aig-cache-status"] == "MISS"
    assert second.headers["cf-aig-cache-status"] == "HIT"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert len(calls) == 1
    streamed = [client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "stream me"}], stream=True)
        for _ in range(2)]
    texts = ["".join(c.choices[0].delta.content or "" for c in s if c.choices) for s in streamed]
    assert texts[0] == texts[1] == "Hello from the stand-in."
    assert len(calls) == 2
    rows = gateway.logs()
    assert [r["cached"] for r in rows] == [False, True, False, True]
    assert rows[1]["cost"] == 0


def test_provider_cookies_are_not_kept_between_callers(gateway_factory,  # type: ignore[no-untyped-def]
                                                       openai_up: StandinServer) -> None:
    """A provider's Set-Cookie (OpenAI's edge sets ``__cf_bm``) reaches the caller that got
    it and is never replayed upstream on a later request, which may be another tenant's."""
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": f"http://localhost:{openai_up.port}/v1"})
    gw.put_key("openai", "sk-stored")
    openai_up.app[STATE].set_cookie = "__cf_bm=tenant-a; Path=/; HttpOnly"
    token = gw.token()
    for base in (gw.compat(), gw.base() + "/openai"):
        r = httpx.post(base + "/chat/completions",
                       headers={"cf-aig-authorization": f"Bearer {token}"},
                       json={"model": "openai/gpt-4o-mini" if base.endswith("compat")
                             else "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200
    calls = openai_up.app[STATE].calls
    assert len(calls) == 2
    assert not any(k.lower() == "cookie" for c in calls for k in c["headers"])
    # the native path relays the provider's header to its caller
    assert r.headers.get("set-cookie") == "__cf_bm=tenant-a; Path=/; HttpOnly"


def test_a_stream_cut_upstream_is_cut_for_the_caller(gateway: RunningGateway,
                                                     openai_up: StandinServer) -> None:
    """The provider drops the connection mid-stream: the caller must not be told the answer
    is complete. Its connection closes without the end of the body (as a proxy does), so
    every HTTP client sees the answer cut short; the gateway keeps serving."""
    openai_up.app[STATE].queue = [Cut(2)]
    token = gateway.token()
    client = openai.OpenAI(base_url=gateway.base() + "/openai", api_key=token, max_retries=0)
    got: list[object] = []
    with pytest.raises(openai.APIConnectionError) as ei:  # the SDK's word for it
        for chunk in client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                stream=True):
            got.append(chunk)
    assert "incomplete chunked read" in str(ei.value.__cause__)  # the body was cut short
    assert len(got) == 2  # what the provider sent before it broke was relayed
    row = gateway.logs()[0]
    assert row["success"] is False and row["status_code"] == 200
    assert "upstream" in row["error"] or "connection" in row["error"]
    again = client.chat.completions.create(model="gpt-4o-mini",
                                           messages=[{"role": "user", "content": "hi"}])
    assert again.choices[0].message.content == "Hello from the stand-in."


def test_responses_api_on_the_native_path_is_logged_with_its_usage(
        gateway: RunningGateway, openai_up: StandinServer) -> None:
    """The Responses API (``client.responses``) names its usage ``input_tokens`` /
    ``output_tokens``, and a stream carries it in its last event (``response.completed``):
    both are read, so neither a whole nor a streamed answer is logged as free."""
    client = openai.OpenAI(base_url=gateway.base() + "/openai", api_key=gateway.token(),
                           max_retries=0)
    whole = client.responses.create(model="gpt-4.1-mini", input="hi")
    assert whole.output_text == "Hello from the stand-in."
    with client.responses.stream(model="gpt-4.1-mini", input="hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == whole.output_text
    assert final.usage is not None and final.usage.input_tokens == 12
    events = [e.type for e in client.responses.create(model="gpt-4.1-mini", input="hi",
                                                      stream=True)]
    assert events[0] == "response.created" and events[-1] == "response.completed"
    rows = gateway.logs()
    assert [(r["model"], r["tokens_in"], r["tokens_out"], r["success"]) for r in rows] == [
        ("gpt-4.1-mini", 12, 7, True)] * 3
    assert all(r["cost"] and r["cost"] > 0 for r in rows)
    assert len({r["cost"] for r in rows}) == 1
    again = client.responses.retrieve(whole.id)  # a stored response read back: not billed
    assert again.usage is not None and again.usage.input_tokens == 12
    row = gateway.logs()[-1]
    assert (row["path"].endswith("/responses/" + whole.id), row["tokens_in"], row["cost"]) == (
        True, 0, None)


def test_a_native_stream_without_include_usage_is_still_billed(
        gateway: RunningGateway, openai_up: StandinServer) -> None:
    """The caller did not ask for usage: the gateway asks for it anyway (so the log and any
    budget see the tokens) and removes the usage-only chunk the caller did not ask for, so
    code reading ``chunk.choices[0]`` keeps working. A caller who asked keeps it."""
    client = openai.OpenAI(base_url=gateway.base() + "/openai", api_key=gateway.token(),
                           max_retries=0)
    chunks = list(client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert chunks and all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == (
        "Hello from the stand-in.")
    sent = openai_up.app[STATE].calls[-1]["json"]
    assert sent["stream_options"] == {"include_usage": True}
    asked = list(client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}))
    assert asked[-1].choices == [] and asked[-1].usage is not None
    rows = gateway.logs()
    assert [(r["tokens_in"], r["tokens_out"]) for r in rows] == [(12, 7), (12, 7)]
    assert all(r["cost"] and r["cost"] > 0 for r in rows)


def test_a_stream_request_answered_with_json_is_passed_on_as_it_came(
        gateway: RunningGateway, openai_up: StandinServer) -> None:
    """The gateway asked for the stream's usage, but the server ignored ``stream`` and
    answered with JSON: that answer reaches the caller unchanged (not cut as a broken
    stream), and its usage is logged."""
    openai_up.app[STATE].ignore_stream = True
    r = httpx.post(gateway.base() + "/openai/chat/completions",
                   headers={"authorization": f"Bearer {gateway.token()}"},
                   json={"model": "gpt-4o-mini", "stream": True,
                         "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json()["choices"][0]["message"]["content"] == "Hello from the stand-in."
    assert gateway.logs()[0]["success"] is True


def test_workers_ai_model_path_runs_under_the_account(
        gateway_factory: Callable[..., RunningGateway],
        standin: Callable[..., StandinServer]) -> None:
    """Cloudflare's ``/workers-ai/@cf/{model}`` goes to Workers AI's ``/accounts/{account}/ai/
    run/@cf/{model}``, the account being the one in the request's URL; the stored key signs."""
    up = standin(workers_ai.create_app())
    gw = gateway_factory({"CROSSROADS_UPSTREAM_WORKERS_AI":
                          up.url + "/client/v4/accounts/{account}/ai"})
    gw.put_key("workers-ai", "cf-workers-token")
    r = httpx.post(gw.base() + "/workers-ai/@cf/meta/llama-3.1-8b-instruct",
                   json={"prompt": "tell me a joke"}, timeout=10,
                   headers={"cf-aig-authorization": f"Bearer {gw.token()}"})
    assert r.status_code == 200 and r.json()["result"]["response"] == workers_ai.ANSWER
    sent = workers_ai.calls(up.app)[-1]
    assert sent["path"] == "/client/v4/accounts/local/ai/run/@cf/meta/llama-3.1-8b-instruct"
    assert sent["headers"]["Authorization"] == "Bearer cf-workers-token"
    assert gw.logs()[0]["provider"] == "workers-ai"
