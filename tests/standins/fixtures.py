"""What every stand-in shares: fixture loading, the scripted state, request recording and
streaming the answer in awkwardly split pieces.

A test scripts a stand-in through its ``StandIn`` state (``app[STANDIN]``): ``scenario`` names
the fixture to serve (``plain``, ``tool_call``, ``parallel_tools``, ``length``, ...;
``error_<status>`` answers with that status and ``error_<status>.json``), ``chunk_size`` /
``split_at`` split the streamed bytes, ``truncate`` cuts the stream short, and ``requests``
records what arrived.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from crossroads.providers.aws_eventstream import encode_event, encode_message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "providers"


@dataclass(slots=True)
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    json: Any


@dataclass(slots=True)
class StandIn:
    provider: str  # the fixture folder
    scenario: str = "plain"
    chunk_size: int | None = None
    split_at: list[int] | None = None
    truncate: int | None = None
    require_auth: bool = True
    requests: list[Recorded] = field(default_factory=list)

    def script(self, scenario: str, **options: Any) -> StandIn:
        self.scenario = scenario
        for key, value in options.items():
            setattr(self, key, value)
        return self


STANDIN = web.AppKey("standin", StandIn)


def fixture_path(provider: str, name: str) -> Path:
    return FIXTURES / provider / name


def load_bytes(provider: str, name: str) -> bytes:
    return fixture_path(provider, name).read_bytes()


def load_stream(provider: str, scenario: str) -> bytes:
    """The stream fixture's raw bytes: ``<scenario>.sse`` as is, or ``<scenario>.events.json``
    encoded as AWS event-stream messages (``!exception:<type>`` entries become exceptions)."""
    sse = fixture_path(provider, scenario + ".sse")
    if sse.exists():
        return sse.read_bytes()
    events = orjson.loads(load_bytes(provider, scenario + ".events.json"))
    out = []
    for kind, payload in events:
        raw = orjson.dumps(payload)
        if kind.startswith("!exception:"):
            out.append(encode_message({":exception-type": kind.split(":", 1)[1],
                                       ":content-type": "application/json",
                                       ":message-type": "exception"}, raw))
        else:
            out.append(encode_event(kind, raw))
    return b"".join(out)


def pieces(data: bytes, chunk_size: int | None, split_at: list[int] | None) -> list[bytes]:
    if split_at:
        cuts = sorted({c for c in split_at if 0 < c < len(data)})
        bounds = [0, *cuts, len(data)]
        return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    if chunk_size:
        return [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    return [data]


def error_status(scenario: str) -> int | None:
    if scenario.startswith("error_"):
        return int(scenario.split("_", 1)[1])
    return None


async def record(request: web.Request, state: StandIn) -> Recorded:
    body = await request.read()
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    rec = Recorded(request.method, request.path, request.query_string,
                   {k.lower(): v for k, v in request.headers.items()}, body, parsed)
    state.requests.append(rec)
    return rec


def json_response(data: bytes, status: int = 200) -> web.Response:
    return web.Response(body=data, status=status, content_type="application/json")


async def stream_response(request: web.Request, state: StandIn, data: bytes,
                          content_type: str) -> web.StreamResponse:
    if state.truncate is not None:
        data = data[: state.truncate]
    resp = web.StreamResponse(headers={"content-type": content_type})
    await resp.prepare(request)
    for piece in pieces(data, state.chunk_size, state.split_at):
        await resp.write(piece)
        await asyncio.sleep(0)
    await resp.write_eof()
    return resp


async def answer(request: web.Request, state: StandIn, stream: bool,
                 stream_type: str = "text/event-stream") -> web.StreamResponse:
    """Serve the scripted scenario: an error, a JSON answer or a split stream."""
    status = error_status(state.scenario)
    if status is not None:
        return json_response(load_bytes(state.provider, state.scenario + ".json"), status)
    if stream:
        return await stream_response(request, state, load_stream(state.provider, state.scenario),
                                     stream_type)
    return json_response(load_bytes(state.provider, state.scenario + ".json"))
