"""The pooled HTTP client to providers. Transport failures become ``crossroads.errors``.

``open`` returns once the answer has *started*: status and headers received and, for a
success, the first body bytes read. That is the moment a route commits to a model, so a
stream can still fall back if its upstream dies before any byte reached the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from importlib import metadata
from typing import Any

import aiohttp

from crossroads.errors import (
    ProviderHTTPError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from crossroads.providers.base import UpstreamRequest


def _version() -> str:
    try:
        return metadata.version("crossroads")
    except metadata.PackageNotFoundError:  # run from a source tree without installing
        return "dev"


_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                  "content-encoding", "proxy-authenticate", "proxy-authorization", "te",
                  "trailer", "upgrade"})
_ERROR_BODY_CAP = 1024 * 1024
# sent to providers unless the caller's own (native passthrough) is forwarded. Set here rather
# than skipped through aiohttp's ``skip_auto_headers``, which costs a header multidict built
# and copied on every request.
USER_AGENT = f"crossroads/{_version()}"


class UpstreamResponse:
    __slots__ = ("status", "headers", "first", "_resp", "_idle", "_eof")

    def __init__(self, resp: aiohttp.ClientResponse, first: bytes, idle: float) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers = resp.headers
        self.first = first
        self._idle = idle
        self._eof = not first

    def forward_headers(self) -> list[tuple[bytes, bytes]]:
        return [(k.lower().encode(), v.encode()) for k, v in self.headers.items()
                if k.lower() not in _HOP]

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body after ``first``, as it arrives. Each socket read is bounded by the idle
        timeout (aiohttp's ``sock_read``: one timer per connection, not one per chunk)."""
        content = self._resp.content
        try:
            while True:
                data = await content.readany()
                if not data:
                    return
                yield data
        except aiohttp.ServerTimeoutError:
            raise UpstreamTimeout(f"provider sent nothing for {self._idle:g} s mid-answer"
                                  ) from None
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError,
                aiohttp.ClientOSError) as exc:
            raise UpstreamProtocolError(f"provider connection broke mid-answer: "
                                        f"{type(exc).__name__}") from None

    @property
    def complete(self) -> bool:
        """True when ``first`` is the whole body (nothing more will arrive)."""
        return self._resp.content.at_eof()

    async def read_rest(self) -> bytes:
        if self.complete:
            return self.first
        parts = [self.first]
        async for chunk in self.chunks():
            parts.append(chunk)
        return b"".join(parts)

    def release(self) -> None:
        self._resp.release()

    def close(self) -> None:
        self._resp.close()


class UpstreamClient:
    def __init__(self, connect_timeout: float, idle_timeout: float) -> None:
        self._connect_timeout = connect_timeout
        self._idle = idle_timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=30)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout,
                                          sock_read=self._idle),
            auto_decompress=True,
            # the session is shared by every caller: a provider's Set-Cookie (OpenAI's edge
            # sets ``__cf_bm``) must not be replayed on the next caller's request. Cookies
            # still pass through to the caller in the answer's headers.
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "UpstreamClient.start() was not awaited"
        return self._session

    def open(self, req: UpstreamRequest, timeout: float | None
             ) -> Coroutine[Any, Any, UpstreamResponse]:
        """Send ``req``; the answer once it has started (status, headers, first bytes). Raises
        ProviderHTTPError for an error status (body read), or an UpstreamError for transport
        failures. ``timeout`` bounds the time to first byte; without one, the idle timeout
        (``stream_idle_timeout``) does. Returns the coroutine to await (no wrapper
        coroutine on this path, which every upstream call takes)."""
        if timeout is None:
            return self._open(req)
        return self._open_within(req, timeout)

    async def _open_within(self, req: UpstreamRequest, timeout: float) -> UpstreamResponse:
        """``_open`` with a deadline: what ``asyncio.timeout`` does (one timer that cancels
        the task, that cancellation reported as a timeout unless another cancel request came
        too), without its object and two coroutines per call; a route's model step with a
        timeout runs this on every request."""
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        handle = task.get_loop().call_later(timeout, expire)
        try:
            return await self._open(req)
        except asyncio.CancelledError:
            # the timer fires only while the task waits inside _open, so a cancellation
            # seen here after it fired is ours, unless another cancel request came too
            if expired and task.uncancel() <= cancelling:
                raise UpstreamTimeout(f"no answer from provider within {timeout:g} s"
                                      ) from None
            raise
        finally:
            handle.cancel()

    async def _open(self, req: UpstreamRequest) -> UpstreamResponse:
        headers = req.headers  # built for this request: the user agent is added in place
        if "user-agent" not in headers and "User-Agent" not in headers:
            headers["user-agent"] = USER_AGENT
        try:
            resp = await self.session.request(req.method, req.url, headers=headers,
                                              data=req.body, allow_redirects=False)
            try:
                if resp.status >= 400:
                    body = await resp.content.read(_ERROR_BODY_CAP)
                else:
                    first = await resp.content.readany()
            except BaseException:  # timed out, cancelled or broken after the status: drop it
                resp.close()
                raise
        except aiohttp.ConnectionTimeoutError:  # the session's connect timeout
            raise UpstreamTimeout(f"cannot connect to provider within "
                                  f"{self._connect_timeout:g} s") from None
        except aiohttp.ServerTimeoutError:  # the session's idle timeout
            raise UpstreamTimeout(f"provider sent nothing for {self._idle:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamUnavailable(f"cannot connect to provider at {exc.host}:{exc.port}"
                                      ) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                aiohttp.ClientPayloadError) as exc:
            raise UpstreamUnavailable(f"provider connection failed: {type(exc).__name__}"
                                      ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"provider request failed: {type(exc).__name__}") from None
        if resp.status >= 400:
            error_headers = {k.lower(): v for k, v in resp.headers.items()}
            resp.release()  # the body was read: the connection goes back to the pool
            raise ProviderHTTPError(resp.status, body, error_headers)
        if not first and req.stream:
            resp.close()
            raise UpstreamProtocolError("provider ended the stream before sending anything")
        return UpstreamResponse(resp, first, self._idle)
