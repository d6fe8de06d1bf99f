"""The floor: the least a Python LLM proxy has to do, to compare the gateway against.

Raw ASGI on uvicorn (uvloop + httptools, access log off) and one aiohttp
ClientSession. Per request: read the body, orjson-parse it, strip the
"provider/" prefix from `model`, POST it upstream, then either parse and return
the JSON answer, or relay the SSE stream event by event (split on blank lines).
No auth, no logging, no routing: a lower bound on per-request cost.

    python bench/floor_proxy.py --port 8001 --upstream http://127.0.0.1:8080/json/v1 \
        --stream-upstream http://127.0.0.1:8080/sse/v1
"""

from __future__ import annotations

import argparse

import aiohttp
import orjson
import uvicorn


class FloorProxy:
    def __init__(self, upstream: str, stream_upstream: str, api_key: str) -> None:
        self.url = upstream.rstrip("/") + "/chat/completions"
        self.stream_url = stream_upstream.rstrip("/") + "/chat/completions"
        self.upstream_headers = {
            "content-type": "application/json",
            "authorization": f"Bearer {api_key}",
        }
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            request = orjson.loads(body)
            model = request["model"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self.answer(send, 400, b'{"error":{"message":"bad request"}}')
            return
        request["model"] = model.split("/", 1)[-1]
        stream = bool(request.get("stream"))
        url = self.stream_url if stream else self.url
        assert self.session is not None
        async with self.session.post(
            url, data=orjson.dumps(request), headers=self.upstream_headers
        ) as resp:
            if stream and resp.status == 200:
                await self.relay_sse(resp, send)
                return
            data = await resp.read()
            if resp.status == 200:
                data = orjson.dumps(orjson.loads(data))
            await self.answer(send, resp.status, data)

    async def answer(self, send, status: int, data: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def relay_sse(self, resp: aiohttp.ClientResponse, send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        buffer = b""
        async for chunk in resp.content.iter_any():
            buffer += chunk
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                if event:
                    await send(
                        {"type": "http.response.body", "body": event + b"\n\n", "more_body": True}
                    )
        await send({"type": "http.response.body", "body": buffer, "more_body": False})

    async def lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
                self.session = aiohttp.ClientSession(connector=connector)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="OpenAI base URL for JSON answers")
    ap.add_argument("--stream-upstream", help="OpenAI base URL for streams (default: --upstream)")
    ap.add_argument("--api-key", default="sk-bench")
    args = ap.parse_args()
    app = FloorProxy(args.upstream, args.stream_upstream or args.upstream, args.api_key)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
