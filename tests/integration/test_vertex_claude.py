"""Claude on Vertex AI through the gateway: the official ``anthropic`` SDK's Vertex client on
the native path, the ``openai`` SDK on ``/compat`` (``google-vertex-ai/anthropic/...``), and
every answer, streamed or whole, logged with its tokens and cost."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import httpx
import openai
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from harness import RunningGateway, StandinServer
from standins import google
from standins.fixtures import STANDIN

from crossroads.providers.base import Usage
from crossroads.providers.pricing import cost_of

MODEL = "claude-sonnet-4-5@20250929"
ASK = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def vertex(standin: Callable[..., StandinServer],
           gateway_factory: Callable[..., RunningGateway]) -> tuple[StandinServer,
                                                                   RunningGateway]:
    up = standin(google.create_app("plain"))
    gw = gateway_factory({"CROSSROADS_UPSTREAM_GOOGLE_VERTEX_AI": up.url})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    gw.put_key("google-vertex-ai", orjson.dumps({
        "type": "service_account", "project_id": "proj", "region": "us-east5",
        "private_key": pem, "client_email": "gw@proj.iam", "token_uri": up.url + "/token"}
    ).decode())
    return up, gw


def expected_cost() -> float:
    cost = cost_of("anthropic", "claude-sonnet-4-5", Usage(14, 8))
    assert cost is not None and cost > 0
    return cost


def test_anthropic_vertex_sdk_on_the_native_path(vertex: tuple[StandinServer, RunningGateway]
                                                 ) -> None:
    """The caller's own access token goes upstream; the answer and the stream are Anthropic's
    own, and both are logged with usage and cost (a streamed answer is not logged as free)."""
    up, gw = vertex
    client = anthropic.AnthropicVertex(
        region="us-east5", project_id="proj", access_token="ya29.caller-token",
        base_url=gw.base() + "/google-vertex-ai/v1", max_retries=0,
        default_headers={"cf-aig-authorization": f"Bearer {gw.token()}"})
    msg = client.messages.create(model=MODEL, max_tokens=100, messages=ASK)  # type: ignore[arg-type]
    assert msg.content[0].type == "text" and msg.content[0].text
    with client.messages.stream(model=MODEL, max_tokens=100, messages=ASK) as stream:  # type: ignore[arg-type]
        text = stream.get_final_text()
    assert text == msg.content[0].text
    sent = [r for r in up.app[STANDIN].requests if r.path != "/token"]
    assert [r.path.rsplit(":", 1)[1] for r in sent] == ["rawPredict", "streamRawPredict"]
    assert all(r.headers["authorization"] == "Bearer ya29.caller-token" for r in sent)
    assert all(isinstance(r.json["anthropic_version"], str) and "model" not in r.json
               for r in sent)  # the SDK's body, passed through as it sent it
    rows = gw.logs()
    assert [(r["provider"], r["tokens_in"], r["tokens_out"], r["success"]) for r in rows] == [
        ("google-vertex-ai", 14, 8, True)] * 2
    assert [r["cost"] for r in rows] == [pytest.approx(expected_cost())] * 2


def test_stored_service_account_on_the_native_path(vertex: tuple[StandinServer,
                                                                 RunningGateway]) -> None:
    """No Authorization from the caller: the gateway mints a token from the stored service
    account and sends it."""
    up, gw = vertex
    path = (f"/google-vertex-ai/v1/projects/proj/locations/us-east5/publishers/anthropic/"
            f"models/{MODEL}:rawPredict")
    r = httpx.post(gw.base() + path, headers={"cf-aig-authorization": f"Bearer {gw.token()}"},
                   json={"anthropic_version": "vertex-2023-10-16", "max_tokens": 100,
                         "messages": ASK})
    assert r.status_code == 200 and r.json()["type"] == "message"
    sent = up.app[STANDIN].requests
    assert [s.path for s in sent][0] == "/token"
    assert sent[-1].headers["authorization"].startswith("Bearer ")
    assert sent[-1].headers["authorization"] != "Bearer "
    assert gw.logs()[0]["cost"] == pytest.approx(expected_cost())


def test_openai_sdk_on_compat(vertex: tuple[StandinServer, RunningGateway]) -> None:
    up, gw = vertex
    client = openai.OpenAI(base_url=gw.compat(), api_key=gw.token(), max_retries=0)
    model = f"google-vertex-ai/anthropic/{MODEL}"
    answer = client.chat.completions.create(model=model, messages=ASK)  # type: ignore[arg-type]
    content = answer.choices[0].message.content
    assert content and answer.usage is not None and answer.usage.prompt_tokens == 14
    chunks = list(client.chat.completions.create(
        model=model, messages=ASK, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8
    sent = [r for r in up.app[STANDIN].requests if r.path != "/token"]
    assert all("/publishers/anthropic/models/" + MODEL in r.path for r in sent)
    assert all("model" not in r.json and r.json["anthropic_version"] == "vertex-2023-10-16"
               for r in sent)
    rows = gw.logs()
    assert [(r["model"], r["tokens_in"], r["tokens_out"]) for r in rows] == [
        (f"anthropic/{MODEL}", 14, 8)] * 2
    assert [r["cost"] for r in rows] == [pytest.approx(expected_cost())] * 2
    with pytest.raises(openai.BadRequestError) as ei:  # a publisher Vertex has no adapter for
        client.chat.completions.create(model="google-vertex-ai/meta/llama-3.3-70b",
                                       messages=ASK)  # type: ignore[arg-type]
    assert "publisher 'meta'" in str(ei.value.body)
