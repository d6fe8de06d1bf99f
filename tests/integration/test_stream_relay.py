"""A streamed answer reaches the client as the provider sends it: each event is relayed when it
arrives, not when the next one does (the first token is not held back behind the second)."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest
from harness import RunningGateway, StandinServer
from standins.openai import STATE, Pace

# The client waits at most this long for a chunk that the stand-in has already sent; a relay
# that held it back until the next upstream chunk would make the read time out (the stand-in
# sends nothing more until the test has seen the chunk), failing the test rather than hanging.
READ_TIMEOUT = 10.0


def _client(base_url: str, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=token, max_retries=0,
                         timeout=READ_TIMEOUT)


def _stream_in_two_halves(client: openai.OpenAI, model: str, up: StandinServer) -> None:
    state = up.app[STATE]
    state.queue.append(Pace(chunks=2))  # role chunk and the first words, then a pause
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    chunks = iter(stream)
    first = next(chunks)
    second = next(chunks)  # sent by the stand-in before its pause
    assert first.choices[0].delta.role == "assistant"
    assert second.choices[0].delta.content
    assert not state.release.is_set()  # nothing after the pause was sent yet
    state.release.set()
    rest = list(chunks)
    text = "".join(c.choices[0].delta.content or "" for c in [first, second, *rest]
                   if c.choices)
    assert text == "Hello from the stand-in."
    assert rest[-1].usage is not None and rest[-1].usage.completion_tokens == 7


def test_compat_stream_relays_each_chunk_as_it_arrives(gateway: RunningGateway,
                                                       openai_up: StandinServer) -> None:
    _stream_in_two_halves(_client(gateway.compat(), gateway.token()), "openai/gpt-4o-mini",
                          openai_up)
    row = gateway.logs()[0]
    assert (row["status_code"], row["success"], row["tokens_out"]) == (200, True, 7)


def test_native_stream_relays_each_chunk_as_it_arrives(gateway: RunningGateway,
                                                       openai_up: StandinServer) -> None:
    _stream_in_two_halves(_client(gateway.base() + "/openai", gateway.token()), "gpt-4o-mini",
                          openai_up)
    row = gateway.logs()[0]
    assert (row["status_code"], row["success"], row["tokens_out"]) == (200, True, 7)


@pytest.mark.parametrize("surface", ["compat", "native"])
def test_a_stream_that_stalls_mid_answer_is_cut_off_by_the_idle_timeout(
        gateway_factory: Callable[..., RunningGateway], openai_up: StandinServer,
        surface: str) -> None:
    """The provider sends two chunks, then nothing: after ``stream_idle_timeout`` the client
    has what was sent, then an error in the stream, and the log says why."""
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": openai_up.url + "/v1",
                          "CROSSROADS_STREAM_IDLE_TIMEOUT": "0.3"})
    gw.put_key("openai", "sk-stored")
    state = openai_up.app[STATE]
    state.queue.append(Pace(chunks=2))  # never released
    base, model = ((gw.compat(), "openai/gpt-4o-mini") if surface == "compat"
                   else (gw.base() + "/openai", "gpt-4o-mini"))
    received = []
    with pytest.raises(openai.APIError):
        for chunk in _client(base, gw.token()).chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], stream=True):
            received.append(chunk)
    state.release.set()
    assert received and received[0].choices[0].delta.role == "assistant"
    row = gw.logs()[0]
    assert row["success"] is False
    assert "sent nothing for 0.3 s mid-answer" in row["error"]
