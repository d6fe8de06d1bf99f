"""The server's HTTP protocol (head and body of a whole answer in one write) over real sockets:
answers with and without a body, several on one keep-alive connection, and the app under
uvicorn's own protocol (no extension offered), an answer cut short."""

from __future__ import annotations

import http.client
import logging
from collections.abc import Callable

import openai
import orjson
import pytest
from harness import RunningGateway, StandinServer
from standins.openai import STATE, Cut


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


def test_expect_100_continue(gateway: RunningGateway) -> None:
    """A client that waits for ``100 Continue`` before sending its body (curl does for bodies
    over 1 KiB): the interim answer, then the whole answer, on one connection."""
    import socket

    token = gateway.token()
    body = orjson.dumps({"model": "openai/gpt-4o-mini",
                         "messages": [{"role": "user", "content": "x" * 2000}]})
    path = gateway.compat().split(str(gateway.port), 1)[1] + "/chat/completions"
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        s.sendall(head)
        interim = s.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(body)
        answer = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        while b"\r\n\r\n" not in answer:  # the head
            answer += s.recv(65536)
        length = int(answer.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        while len(answer.partition(b"\r\n\r\n")[2]) < length:  # the body
            answer += s.recv(65536)
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 200 OK"
    headers, _, payload = rest.partition(b"\r\n\r\n")
    assert orjson.loads(payload)["choices"][0]["message"]["content"]
    assert f"content-length: {len(payload)}".encode() in headers.lower()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("protocol", ["ours", "httptools"])
def test_an_answer_cut_upstream_is_cut_on_the_wire(
        protocol: str, gateway_factory: Callable[..., RunningGateway],
        openai_up: StandinServer) -> None:
    """A relayed body the provider broke off: the connection closes without the last chunk
    (``0\\r\\n\\r\\n``), with the server's ABORT extension and without it (the app raises,
    the server closes). With the extension, the server logs no error for it."""
    kwargs = {} if protocol == "ours" else {"http": "httptools"}
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": openai_up.url + "/v1"}, **kwargs)
    gw.put_key("openai", "sk-stored")
    openai_up.app[STATE].queue = [Cut(2)]
    records = _Records()
    logging.getLogger("uvicorn.error").addHandler(records)
    try:
        conn = _connection(gw)
        path = gw.base().split(str(gw.port), 1)[1] + "/openai/chat/completions"
        conn.request("POST", path, orjson.dumps({
            "model": "gpt-4o-mini", "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}),
            {"content-type": "application/json", "cf-aig-authorization": f"Bearer {gw.token()}"})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("transfer-encoding") == "chunked"
        with pytest.raises(http.client.IncompleteRead) as ei:
            resp.read()
        assert ei.value.partial.count(b"data: ") == 2  # what came before the break
        conn.close()
    finally:
        logging.getLogger("uvicorn.error").removeHandler(records)
    errors = [r for r in records.records if r.levelno >= logging.ERROR]
    assert (errors == []) if protocol == "ours" else (len(errors) == 1)
    assert gw.logs()[0]["success"] is False
