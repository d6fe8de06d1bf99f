"""Every translating provider end to end: the official openai SDK calls the running gateway's
``/compat`` endpoint, which translates for the stand-in provider server over loopback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from harness import RunningGateway, StandinServer
from standins import anthropic, bedrock, cohere, google
from standins.fixtures import STANDIN

from providers.sdk_view import AWS, KINDS, MODEL, SLUG, WEATHER_TOOL

FACTORIES = {"anthropic": anthropic.create_app, "google-ai-studio": google.create_app,
             "google-vertex-ai": google.create_app, "vertex-claude": google.create_app,
             "aws-bedrock": bedrock.create_app, "cohere": cohere.create_app}
ASK = [{"role": "user", "content": "What is the weather in Paris and London?"}]

pytestmark = pytest.mark.parametrize("kind", KINDS)


def stored_key(kind: str, up: StandinServer) -> str:
    if kind == "aws-bedrock":
        return orjson.dumps(AWS).decode()
    if SLUG[kind] == "google-vertex-ai":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        return orjson.dumps({"type": "service_account", "project_id": "proj",
                             "region": "us-east5", "private_key": pem,
                             "client_email": "gw@proj.iam", "token_uri": up.url + "/token"}
                            ).decode()
    return "provider-key-123"


@pytest.fixture
def setup(kind: str, standin: Callable[..., StandinServer],
          gateway_factory: Callable[..., RunningGateway]) -> tuple[Any, openai.OpenAI]:
    up = standin(FACTORIES[kind]("parallel_tools", chunk_size=5))
    env = "CROSSROADS_UPSTREAM_" + SLUG[kind].upper().replace("-", "_")
    gw = gateway_factory({env: up.url})
    gw.put_key(SLUG[kind], stored_key(kind, up))
    client = openai.OpenAI(base_url=gw.compat(), api_key=gw.token(), max_retries=0)
    return up, client


def test_tool_calls_json_and_stream(kind: str, setup: tuple[Any, openai.OpenAI]) -> None:
    up, client = setup
    model = f"{SLUG[kind]}/{MODEL[kind]}"
    answer = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER_TOOL])
    calls = answer.choices[0].message.tool_calls
    assert [orjson.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "London"]
    assert answer.choices[0].finish_reason == "tool_calls"
    assert answer.usage is not None and answer.usage.prompt_tokens == 62
    with client.chat.completions.stream(model=model, messages=ASK, tools=[WEATHER_TOOL],
                                        stream_options={"include_usage": True}) as stream:
        final = stream.get_final_completion()
    streamed = final.choices[0].message.tool_calls
    assert [c.function.parsed_arguments or orjson.loads(c.function.arguments)
            for c in streamed] == [{"city": "Paris"}, {"city": "London"}]
    assert final.usage == answer.usage
    received = [r for r in up.app[STANDIN].requests if r.path != "/token"]
    assert len(received) == 2
    assert {"x-api-key", "x-goog-api-key", "authorization"} & set(received[0].headers)
