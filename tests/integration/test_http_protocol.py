"""The server's HTTP protocol (head and body of a whole answer in one write) over real sockets:
answers with and without a body, several on one keep-alive connection, and the app under
uvicorn's own protocol (no extension offered)."""

from __future__ import annotations

import http.client
from collections.abc import Callable

import openai
import orjson
from harness import RunningGateway, StandinServer


def _connection(gw: RunningGateway) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)


def test_answers_on_one_keep_alive_connection(gateway: RunningGateway) -> None:
    token = gateway.token()
    conn = _connection(gateway)
    body = orjson.dumps({"model": "openai/gpt-4o-mini",
                         "messages": [{"role": "user", "content": "hi"}]})
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    path = gateway.compat().split(str(gateway.port), 1)[1] + "/chat/completions"
    for _ in range(3):  # a JSON answer, an error, a HEAD answer (no body), in turn
        conn.request("POST", path, body, headers)
        resp = conn.getresponse()
        raw = resp.read()
        assert resp.status == 200 and orjson.loads(raw)["choices"][0]["message"]["content"]
        assert resp.getheader("content-length") == str(len(raw))
        conn.request("POST", path, b"{not json", headers)
        resp = conn.getresponse()
        assert resp.status == 400 and b"not valid JSON" in resp.read()
        conn.request("HEAD", "/v1/x")  # not found: an error answer without its body
        resp = conn.getresponse()
        assert resp.status == 404 and resp.read() == b""
        assert int(resp.getheader("content-length") or 0) > 0
    conn.close()


def test_app_without_the_extension(gateway_factory: Callable[..., RunningGateway],
                                   openai_up: StandinServer) -> None:
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": openai_up.url + "/v1"},
                         http="httptools")
    gw.put_key("openai", "sk-stored")
    client = openai.OpenAI(base_url=gw.compat(), api_key=gw.token(), max_retries=0,
                           timeout=10)
    r = client.chat.completions.create(model="openai/gpt-4o-mini",
                                       messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "Hello from the stand-in."
    chunks = list(client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
        stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Hello from the stand-in.")
