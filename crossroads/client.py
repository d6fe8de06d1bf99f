"""A Python binding that mirrors the Workers AI Gateway binding (``env.AI.gateway(id)``).

    gw = crossroads.Gateway("http://127.0.0.1:8787", "local", "default", token="cxr_...")
    resp = gw.run([{"provider": "openai", "endpoint": "chat/completions",
                    "headers": {}, "query": {"model": "gpt-4o-mini", "messages": [...]}}])
    resp.status, resp.headers["cf-aig-step"], resp.json(), gw.last_log_id

``run`` (sync, urllib) and ``arun`` (async, aiohttp) post a list of steps to the universal
endpoint; a single step with ``provider: "compat"`` goes to ``/compat/<endpoint>`` instead
(``chat/completion``, the spelling in Cloudflare's docs, is accepted). Like the Workers binding,
an error status is returned as a response, not raised. When the step asks for a stream
(``query.stream`` true) the body is not read up front: iterate ``iter_sse()`` / ``aiter_sse()``.

``get_log`` / ``patch_log`` (and ``aget_log`` / ``apatch_log``) use the management API and need
``admin_token``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

Step = Mapping[str, Any]
_COMPAT_ENDPOINTS = {"chat/completion": "chat/completions"}
_CONFIG_HEADERS = {"requestTimeout": "cf-aig-request-timeout",
                   "maxAttempts": "cf-aig-max-attempts", "retryDelay": "cf-aig-retry-delay",
                   "backoff": "cf-aig-backoff"}


class GatewayAPIError(Exception):
    """The management API answered with an error."""

    def __init__(self, status: int, body: Any) -> None:
        self.status, self.body = status, body
        msg = body
        if isinstance(body, dict) and body.get("errors"):
            msg = body["errors"][0].get("message", body)
        super().__init__(f"{status}: {msg}")


def gateway_option_headers(options: Mapping[str, Any] | None) -> dict[str, str]:
    """The Workers binding's ``GatewayOptions`` as ``cf-aig-*`` headers."""
    if not options:
        return {}
    h: dict[str, str] = {}

    def b(v: Any) -> str:
        return "true" if v else "false"

    if options.get("cacheKey") is not None:
        h["cf-aig-cache-key"] = str(options["cacheKey"])
    if options.get("cacheTtl") is not None:
        h["cf-aig-cache-ttl"] = str(int(options["cacheTtl"]))
    if options.get("skipCache") is not None:
        h["cf-aig-skip-cache"] = b(options["skipCache"])
    if options.get("metadata") is not None:
        h["cf-aig-metadata"] = json.dumps(options["metadata"])
    if options.get("collectLog") is not None:
        h["cf-aig-collect-log"] = b(options["collectLog"])
    if options.get("eventId") is not None:
        h["cf-aig-event-id"] = str(options["eventId"])
    if options.get("requestTimeoutMs") is not None:
        h["cf-aig-request-timeout"] = str(int(options["requestTimeoutMs"]))
    retries = options.get("retries") or {}
    if retries.get("maxAttempts") is not None:
        h["cf-aig-max-attempts"] = str(int(retries["maxAttempts"]))
    if retries.get("retryDelayMs") is not None:
        h["cf-aig-retry-delay"] = str(int(retries["retryDelayMs"]))
    if retries.get("backoff") is not None:
        h["cf-aig-backoff"] = str(retries["backoff"])
    return h


def _parse_sse(lines: Iterable[str], state: dict[str, list[str]]) -> Iterator[Any]:
    """Feed decoded lines; yield each event's data (JSON-decoded when it is JSON)."""
    for line in lines:
        line = line.rstrip("\r\n")
        if line == "":
            data = state["data"]
            state["data"] = []
            if not data:
                continue
            text = "\n".join(data)
            if text == "[DONE]":
                state["done"] = ["1"]
                return
            try:
                yield json.loads(text)
            except ValueError:
                yield text
        elif line.startswith("data:"):
            state["data"].append(line[5:].lstrip(" ") if line[5:6] == " " else line[5:])


class _BaseResponse:
    status: int
    headers: dict[str, str]
    streaming: bool

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def log_id(self) -> str | None:
        return self.headers.get("cf-aig-log-id")

    @property
    def step(self) -> int | None:
        v = self.headers.get("cf-aig-step")
        return int(v) if v is not None else None

    @property
    def cache_status(self) -> str | None:
        return self.headers.get("cf-aig-cache-status")


class Response(_BaseResponse):
    """A synchronous answer. Headers are a dict with lower-cased names."""

    def __init__(self, raw: Any, streaming: bool) -> None:
        self._raw = raw
        self.status = int(getattr(raw, "status", None) or raw.code)
        self.headers = {k.lower(): v for k, v in raw.headers.items()}
        self.streaming = streaming
        self._content: bytes | None = None
        if not streaming:
            self.read()

    def read(self) -> bytes:
        if self._content is None:
            try:
                self._content = self._raw.read()
            finally:
                self._raw.close()
        return self._content

    @property
    def content(self) -> bytes:
        return self.read()

    @property
    def text(self) -> str:
        return self.read().decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.read())

    def iter_sse(self) -> Iterator[Any]:
        """The data of each server-sent event (dicts for JSON), up to ``[DONE]``."""
        state: dict[str, list[str]] = {"data": []}
        if self._content is not None:
            yield from _parse_sse(self._content.decode("utf-8").splitlines() + [""], state)
            return
        kept: list[bytes] = []
        try:
            def lines() -> Iterator[str]:
                for raw_line in self._raw:
                    kept.append(raw_line)
                    yield raw_line.decode("utf-8")
                yield ""

            yield from _parse_sse(lines(), state)
        finally:
            self._content = b"".join(kept)
            self._raw.close()

    def __iter__(self) -> Iterator[Any]:
        return self.iter_sse()

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncResponse(_BaseResponse):
    """An asynchronous answer (aiohttp underneath)."""

    def __init__(self, resp: Any, session: Any, streaming: bool) -> None:
        self._resp, self._session = resp, session
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.headers.items()}
        self.streaming = streaming
        self._content: bytes | None = None

    async def read(self) -> bytes:
        if self._content is None:
            try:
                self._content = await self._resp.read()
            finally:
                await self.aclose()
        return self._content

    async def text(self) -> str:
        return (await self.read()).decode("utf-8", "replace")

    async def json(self) -> Any:
        return json.loads(await self.read())

    async def aiter_sse(self) -> AsyncIterator[Any]:
        state: dict[str, list[str]] = {"data": []}
        if self._content is not None:
            for ev in _parse_sse(self._content.decode("utf-8").splitlines() + [""], state):
                yield ev
            return
        kept: list[bytes] = []
        try:
            async for raw_line in self._resp.content:
                kept.append(raw_line)
                for ev in _parse_sse([raw_line.decode("utf-8")], state):
                    yield ev
                if state.get("done"):
                    return
            for ev in _parse_sse([""], state):
                yield ev
        finally:
            self._content = b"".join(kept)
            await self.aclose()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.aiter_sse()

    async def aclose(self) -> None:
        self._resp.release()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AsyncResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Gateway:
    """``env.AI.gateway(gateway_id)`` for Python: ``run``/``arun``, ``last_log_id``,
    ``get_log``/``patch_log``."""

    def __init__(self, url: str, account_id: str = "local", gateway_id: str = "default",
                 token: str | None = None, *, admin_token: str | None = None,
                 timeout: float = 120.0, api_url: str | None = None) -> None:
        url = url.rstrip("/")
        if url.endswith("/v1"):
            url = url[:-3]
        self.url, self.account_id, self.gateway_id = url, account_id, gateway_id
        self.token, self.admin_token, self.timeout = token, admin_token, timeout
        self.api_url = (api_url or f"{url}/client/v4").rstrip("/")
        self.last_log_id: str | None = None

    # -- building the request --------------------------------------------------------------
    @property
    def base(self) -> str:
        return f"{self.url}/v1/{self.account_id}/{self.gateway_id}"

    def _prepare(self, data: Step | list[Step], options: Mapping[str, Any] | None,
                 extra_headers: Mapping[str, str] | None) -> tuple[str, bytes, dict[str, str],
                                                                   bool]:
        headers = {"content-type": "application/json"}
        if self.token:
            headers["cf-aig-authorization"] = f"Bearer {self.token}"
        headers.update(gateway_option_headers(options))
        steps = [data] if isinstance(data, Mapping) else list(data)
        if not steps:
            raise ValueError("run() needs a step or a non-empty list of steps")
        streaming = any(bool((s.get("query") or {}).get("stream")) for s in steps)
        if isinstance(data, Mapping) and data.get("provider") == "compat":
            endpoint = str(data.get("endpoint", "chat/completions")).strip("/")
            endpoint = _COMPAT_ENDPOINTS.get(endpoint, endpoint)
            for k, v in (data.get("headers") or {}).items():
                headers[k.lower()] = str(v)
            for k, v in (data.get("config") or {}).items():
                if k in _CONFIG_HEADERS and v is not None:
                    headers[_CONFIG_HEADERS[k]] = str(v)
            url = f"{self.base}/compat/{endpoint}"
            body = json.dumps(data.get("query") or {}).encode()
        else:
            url = self.base
            body = json.dumps(steps).encode()
        if extra_headers:
            headers.update({k.lower(): str(v) for k, v in extra_headers.items()})
        return url, body, headers, streaming

    def _api(self, log_id: str) -> tuple[str, dict[str, str]]:
        if not self.admin_token:
            raise ValueError("get_log/patch_log need admin_token (the management API token)")
        url = (f"{self.api_url}/accounts/{self.account_id}/ai-gateway/gateways/"
               f"{self.gateway_id}/logs/{log_id}")
        return url, {"authorization": f"Bearer {self.admin_token}",
                     "content-type": "application/json"}

    @staticmethod
    def _patch_body(feedback: float | None, score: float | None,
                    metadata: Mapping[str, Any] | None) -> bytes:
        body: dict[str, Any] = {}
        if feedback is not None:
            body["feedback"] = feedback
        if score is not None:
            body["score"] = score
        if metadata is not None:
            body["metadata"] = dict(metadata)
        return json.dumps(body).encode()

    # -- sync ------------------------------------------------------------------------------
    def run(self, data: Step | list[Step], options: Mapping[str, Any] | None = None, *,
            extra_headers: Mapping[str, str] | None = None) -> Response:
        """Run a step or a list of steps; ``options`` is the binding's ``GatewayOptions``
        (cacheKey, cacheTtl, skipCache, metadata, collectLog, eventId, requestTimeoutMs,
        retries{maxAttempts, retryDelayMs, backoff})."""
        url, body, headers, streaming = self._prepare(data, options, extra_headers)
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            raw = urllib.request.urlopen(req, timeout=self.timeout)  # noqa: S310
        except urllib.error.HTTPError as err:
            raw = err
        resp = Response(raw, streaming and 200 <= int(raw.status or 0) < 300)
        self.last_log_id = resp.log_id
        return resp

    def _api_call(self, method: str, log_id: str, body: bytes | None = None) -> Any:
        url, headers = self._api(log_id)
        req = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as raw:  # noqa: S310
                payload = json.loads(raw.read() or b"null")
        except urllib.error.HTTPError as err:
            text = err.read()
            try:
                parsed: Any = json.loads(text)
            except ValueError:
                parsed = text.decode("utf-8", "replace")
            raise GatewayAPIError(err.code, parsed) from None
        return payload.get("result") if isinstance(payload, dict) else payload

    def get_log(self, log_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._api_call("GET", log_id)
        return result

    def patch_log(self, log_id: str, *, feedback: float | None = None,
                  score: float | None = None, metadata: Mapping[str, Any] | None = None
                  ) -> None:
        self._api_call("PATCH", log_id, self._patch_body(feedback, score, metadata))

    # -- async -----------------------------------------------------------------------------
    async def arun(self, data: Step | list[Step], options: Mapping[str, Any] | None = None, *,
                   extra_headers: Mapping[str, str] | None = None) -> AsyncResponse:
        import aiohttp

        url, body, headers, streaming = self._prepare(data, options, extra_headers)
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeout, sock_read=self.timeout))
        try:
            raw = await session.post(url, data=body, headers=headers)
        except BaseException:
            await session.close()
            raise
        resp = AsyncResponse(raw, session, streaming and 200 <= raw.status < 300)
        self.last_log_id = resp.log_id
        if not resp.streaming:
            await resp.read()
        return resp

    async def _aapi_call(self, method: str, log_id: str, body: bytes | None = None) -> Any:
        import aiohttp

        url, headers = self._api(log_id)
        async with aiohttp.ClientSession() as session, session.request(
                method, url, data=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout)) as raw:
            text = await raw.read()
            try:
                payload: Any = json.loads(text or b"null")
            except ValueError:
                payload = text.decode("utf-8", "replace")
            if raw.status >= 400:
                raise GatewayAPIError(raw.status, payload)
        return payload.get("result") if isinstance(payload, dict) else payload

    async def aget_log(self, log_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._aapi_call("GET", log_id)
        return result

    async def apatch_log(self, log_id: str, *, feedback: float | None = None,
                         score: float | None = None,
                         metadata: Mapping[str, Any] | None = None) -> None:
        await self._aapi_call("PATCH", log_id, self._patch_body(feedback, score, metadata))


__all__ = ["AsyncResponse", "Gateway", "GatewayAPIError", "Response",
           "gateway_option_headers"]
