"""Provider-native passthrough end to end: the providers' own SDKs call the gateway, which
forwards the caller's key and reads usage from the untouched answer (streamed and not)."""

from __future__ import annotations

from collections.abc import Callable

import anthropic as anthropic_sdk
import pytest
from google import genai
from harness import RunningGateway, StandinServer
from standins import anthropic, google
from standins.fixtures import STANDIN


@pytest.fixture
def anthropic_up(standin: Callable[..., StandinServer]) -> StandinServer:
    return standin(anthropic.create_app("cached_thinking", chunk_size=11))


def test_anthropic_sdk_with_its_own_key(anthropic_up: StandinServer,
                                        gateway_factory: Callable[..., RunningGateway]) -> None:
    gw = gateway_factory({"CROSSROADS_UPSTREAM_ANTHROPIC": anthropic_up.url})
    token = gw.token()
    client = anthropic_sdk.Anthropic(base_url=gw.base() + "/anthropic", api_key="sk-ant-own",
                                     max_retries=0,
                                     default_headers={"cf-aig-authorization": f"Bearer {token}"})
    with client.messages.stream(model="claude-sonnet-4-20250514", max_tokens=100,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        final = stream.get_final_message()
    assert final.content[-1].text == "The capital of France is Paris. Café ☕"
    assert final.usage.cache_read_input_tokens == 1800
    seen = anthropic_up.app[STANDIN].requests[-1]
    assert seen.path == "/v1/messages" and seen.json["stream"] is True
    assert seen.headers["x-api-key"] == "sk-ant-own"
    assert seen.headers["anthropic-version"]
    gw.drain_logs()
    row = gw.logs()[-1]
    assert (row["tokens_in"], row["tokens_out"]) == (2010, 40)


def test_google_genai_sdk_passthrough(standin: Callable[..., StandinServer],
                                      gateway_factory: Callable[..., RunningGateway]) -> None:
    up = standin(google.create_app("plain", chunk_size=13))
    gw = gateway_factory({"CROSSROADS_UPSTREAM_GOOGLE_AI_STUDIO": up.url})
    token = gw.token()
    client = genai.Client(api_key="AIza-callers-own", http_options={
        "base_url": gw.base() + "/google-ai-studio",
        "headers": {"cf-aig-authorization": f"Bearer {token}"}})
    text = "".join(chunk.text or "" for chunk in client.models.generate_content_stream(
        model="gemini-2.0-flash", contents="What is the capital of France?"))
    assert text == "The capital of France is Paris."
    answer = client.models.generate_content(model="gemini-2.0-flash", contents="Again?")
    assert answer.text == "The capital of France is Paris."
    seen = up.app[STANDIN].requests
    assert seen[0].path in ("/v1beta/models/gemini-2.0-flash:streamGenerateContent",
                            "/v1/models/gemini-2.0-flash:streamGenerateContent")
    assert all(r.headers["x-goog-api-key"] == "AIza-callers-own" for r in seen)
    gw.drain_logs()
    assert [(r["tokens_in"], r["tokens_out"]) for r in gw.logs()] == [(14, 8), (14, 8)]
