"""The management API in Cloudflare's shapes, under ``/client/v4/accounts/{account_id}/ai-gateway``.

FastAPI gives the OpenAPI document (``/client/v4/openapi.json``) and request validation; the
data plane does not go through it. Every route needs the admin token as ``Authorization:
Bearer``. Writes go to the store and then reload this process's snapshot at once; other
processes and replicas pick the change up through the change epoch.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crossroads import tokens
from crossroads.errors import BadRequest, GatewayError, NotFound, Unauthorized
from crossroads.gateway_settings import GatewaySettings, public_settings, seal_otel
from crossroads.runtime import Runtime
from crossroads.server.otel_export import otel_context
from crossroads.server.respond import api_error_envelope
from crossroads.store import logs as logstore

PREFIX = "/client/v4/accounts/{account_id}/ai-gateway"


def _default(o: Any) -> Any:
    if isinstance(o, dt.datetime):
        return o.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(o, bytes):
        return o.decode("utf-8", "replace")
    raise TypeError


def ok(result: Any, status: int = 200, **extra: Any) -> Response:
    body = {"success": True, "errors": [], "messages": [], "result": result, **extra}
    return Response(orjson.dumps(body, default=_default, option=orjson.OPT_NON_STR_KEYS), status,
                    media_type="application/json")


def data(payload: dict[str, Any]) -> Response:
    """Dynamic-routing list calls answer ``{"success": true, "data": {...}}``."""
    return Response(orjson.dumps({"success": True, "data": payload}, default=_default,
                                option=orjson.OPT_NON_STR_KEYS),
                    media_type="application/json")


class ProviderConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alias: str = Field("default", min_length=1, max_length=100)
    default_config: bool = False
    provider_slug: str = Field(min_length=1, max_length=100)
    secret: str = Field(min_length=1)
    secret_id: str | None = None
    rate_limit: float | None = None
    rate_limit_period: float | None = None


class LogPatch(BaseModel):
    feedback: float | None = None
    score: float | None = None
    metadata: dict[str, str | float | bool] | None = None


class TokenIn(BaseModel):
    name: str = Field("token", min_length=1, max_length=200)


def build_management(rt: Runtime) -> FastAPI:
    app = FastAPI(title="Crossroads management API", version="1",
                  description="Cloudflare AI Gateway-compatible management API",
                  openapi_url="/client/v4/openapi.json", docs_url="/client/v4/docs",
                  redoc_url=None)

    @app.exception_handler(GatewayError)
    async def _gateway_error(_req: Request, exc: GatewayError) -> Response:
        return Response(api_error_envelope(exc), exc.status, media_type="application/json",
                        headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> Response:
        msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                         for e in exc.errors())
        return await _gateway_error(_req, BadRequest(msgs))

    async def admin(request: Request) -> None:
        token = tokens.bearer(request.headers.get("authorization"))
        if token is None or tokens.digest(token) != rt.snapshot.admin_digest:
            raise Unauthorized("management API needs the admin token as Authorization: Bearer")

    r = APIRouter(prefix=PREFIX, dependencies=[Depends(admin)])
    _gateway_routes(r, rt)
    _key_routes(r, rt)
    _log_routes(r, rt)
    from crossroads.server.management_routes import route_routes

    route_routes(r, rt)
    app.include_router(r)
    return app


def _gateway_routes(r: APIRouter, rt: Runtime) -> None:
    def out(account: str, gw: dict[str, Any]) -> dict[str, Any]:
        return dict(public_settings(gw), account_id=account, is_default=gw["id"] == "default")

    def sealed(account: str, gateway_id: str, body: dict[str, Any],
               previous: dict[str, Any] | None) -> dict[str, Any]:
        seal_otel(body, lambda value, i: rt.vault.encrypt(
            value, otel_context(account, gateway_id, i)), previous)
        return body

    @r.get("/gateways")
    async def list_gateways(account_id: str, page: int = 1, per_page: int = 20,
                            search: str | None = None) -> Response:
        gws = [g for g in await rt.store.list_gateways(account_id)
               if not search or search in g["id"]]
        items = gws[(page - 1) * per_page: page * per_page]
        return ok([out(account_id, g) for g in items],
                  result_info={"page": page, "per_page": per_page, "count": len(items),
                               "total_count": len(gws)})

    @r.post("/gateways")
    async def create_gateway(account_id: str, request: Request) -> Response:
        body = await _json(request)
        settings = _settings(sealed(account_id, str(body.get("id")), body, None))
        gw = await rt.store.create_gateway(account_id, settings.id, settings.stored())
        await rt.changed()
        return ok(out(account_id, gw))

    @r.get("/gateways/{gateway_id}")
    async def get_gateway(account_id: str, gateway_id: str) -> Response:
        return ok(out(account_id, await rt.store.get_gateway(account_id, gateway_id)))

    @r.put("/gateways/{gateway_id}")
    async def update_gateway(account_id: str, gateway_id: str, request: Request) -> Response:
        body = await _json(request)
        body["id"] = gateway_id
        previous = await rt.store.get_gateway(account_id, gateway_id)
        settings = _settings(sealed(account_id, gateway_id, body, previous))
        gw = await rt.store.update_gateway(account_id, gateway_id, settings.stored())
        await rt.changed()
        return ok(out(account_id, gw))

    @r.delete("/gateways/{gateway_id}")
    async def delete_gateway(account_id: str, gateway_id: str) -> Response:
        gw = await rt.store.delete_gateway(account_id, gateway_id)
        await rt.changed()
        return ok(out(account_id, gw))

    @r.get("/gateways/{gateway_id}/url/{provider}")
    async def provider_url(account_id: str, gateway_id: str, provider: str,
                           request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return ok(f"{base}/v1/{account_id}/{gateway_id}/{provider}")

    @r.post("/gateways/{gateway_id}/tokens")
    async def create_token(account_id: str, gateway_id: str, body: TokenIn) -> Response:
        """Crossroads extension: a gateway token (shown once; stored as a digest)."""
        await rt.store.get_gateway(account_id, gateway_id)
        token = tokens.new_token()
        row = await rt.store.create_token(account_id, gateway_id, body.name,
                                          tokens.digest(token))
        await rt.changed()
        return ok(dict(row, token=token))

    @r.get("/gateways/{gateway_id}/tokens")
    async def list_tokens(account_id: str, gateway_id: str) -> Response:
        return ok(await rt.store.list_tokens(account_id, gateway_id))

    @r.delete("/gateways/{gateway_id}/tokens/{token_id}")
    async def delete_token(account_id: str, gateway_id: str, token_id: str) -> Response:
        await rt.store.delete_token(account_id, token_id)
        await rt.changed()
        return ok({"id": token_id})


def _key_routes(r: APIRouter, rt: Runtime) -> None:
    def out(row: dict[str, Any]) -> dict[str, Any]:
        return {"id": row["id"], "alias": row["alias"], "default_config": row["default_config"],
                "gateway_id": row["gateway_id"], "modified_at": row["modified_at"],
                "provider_slug": row["provider"], "secret_id": row["id"],
                "secret_preview": row["preview"], "rate_limit": row.get("rate_limit"),
                "rate_limit_period": row.get("rate_limit_period")}

    @r.get("/gateways/{gateway_id}/provider_configs")
    async def list_keys(account_id: str, gateway_id: str, page: int = 1,
                        per_page: int = 20) -> Response:
        rows = await rt.store.list_keys(account_id, gateway_id)
        items = rows[(page - 1) * per_page: page * per_page]
        return ok([out(x) for x in items], result_info={
            "page": page, "per_page": per_page, "count": len(items), "total_count": len(rows)})

    @r.post("/gateways/{gateway_id}/provider_configs")
    async def create_key(account_id: str, gateway_id: str, body: ProviderConfigIn) -> Response:
        await rt.store.get_gateway(account_id, gateway_id)
        if not rt.providers.known(body.provider_slug):
            raise BadRequest(f"unknown provider '{body.provider_slug}'")
        row = await rt.put_key(account_id, gateway_id, body.provider_slug, body.alias,
                               body.secret, default_config=body.default_config,
                               rate_limit=body.rate_limit,
                               rate_limit_period=body.rate_limit_period)
        await rt.changed()
        return ok(out(row))

    @r.delete("/gateways/{gateway_id}/provider_configs/{config_id}")
    async def delete_key(account_id: str, gateway_id: str, config_id: str) -> Response:
        await rt.store.delete_key(account_id, gateway_id, config_id)
        await rt.changed()
        return ok({"id": config_id})


def _log_out(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in ("account_id", "request_body",
                                                      "response_body", "gateway_id")}
    out["tokens_in"] = out.get("tokens_in")
    out["duration"] = out.get("duration") or 0
    return out


def _query(account: str, gateway: str, request: Request) -> logstore.LogQuery:
    qp = request.query_params
    keys, ops, vals = (qp.getlist("filters.key"), qp.getlist("filters.operator"),
                       qp.getlist("filters.value"))
    filters: list[logstore.Filter] = []
    if keys:
        if len(keys) != len(ops):
            raise BadRequest("each filters.key needs a filters.operator")
        for k, o, v in zip(keys, ops, _pair_values(keys, ops, vals), strict=True):
            filters.append(logstore.Filter(k, o, [_value(k, x) for x in v]))
    simple = {k: qp.get(k) for k in ("cached", "success", "provider", "model", "model_type",
                                     "feedback", "min_cost", "max_cost", "min_duration",
                                     "max_duration", "min_tokens_in", "max_tokens_in",
                                     "min_tokens_out", "max_tokens_out", "min_total_tokens",
                                     "max_total_tokens", "start_date", "end_date",
                                     "request_content_type", "response_content_type")}
    try:
        page = max(int(qp.get("page", 1)), 1)
        per_page = min(max(int(qp.get("per_page", 20)), 1), 1000)
    except ValueError:
        raise BadRequest("page and per_page must be integers") from None
    direction = qp.get("direction") or qp.get("order_by_direction") or "desc"
    if direction not in ("asc", "desc"):
        raise BadRequest("direction must be asc or desc")
    return logstore.LogQuery(account, gateway, filters, qp.get("order_by", "created_at"),
                             direction, page, per_page, qp.get("search"), simple)


_NUMERIC_FILTERS = frozenset({"cost", "tokens", "tokens_in", "tokens_out", "duration",
                              "feedback", "status_code"})
_BOOLEAN_FILTERS = frozenset({"success", "cached"})
_STRING_FILTERS = frozenset({"id", "provider", "model", "model_type", "event_id",
                             "request_type", "request_content_type", "response_content_type",
                             "metadata.key", "route", "path"})


def _fits(key: str, raw: str) -> bool:
    if key in _NUMERIC_FILTERS:
        try:
            float(raw)
        except ValueError:
            return False
        return True
    if key in _BOOLEAN_FILTERS:
        return raw.lower() in ("true", "false", "1", "0")
    return True


def _pair_values(keys: list[str], ops: list[str], vals: list[str]) -> list[list[str]]:
    """Give each filter its values. The SDK flattens ``filters=[{key, operator, value:[...]}]``
    into repeated ``filters.key`` / ``filters.operator`` / ``filters.value`` params, so with
    several values per filter the split is not on the wire: find the first split (fewest values
    to the earlier filters) where every filter has at least one value, ``lt``/``gt`` exactly
    one, and each value fits its key's type (a number for cost/tokens/..., a boolean for
    success/cached)."""
    n, m = len(keys), len(vals)
    if n > 50 or m > 500:
        raise BadRequest("too many filters or filter values")
    if m == 0:
        return [[] for _ in keys]  # the store answers "needs a value"
    seen: set[tuple[int, int]] = set()

    def place(i: int, j: int) -> list[int] | None:
        """Counts for filters i.. using values j..; None if impossible."""
        if i == n:
            return [] if j == m else None
        if (i, j) in seen:
            return None
        most = 1 if ops[i] in ("lt", "gt") else m - j - (n - i - 1)
        for take in range(1, most + 1):
            if not _fits(keys[i], vals[j + take - 1]):
                break
            rest = place(i + 1, j + take)
            if rest is not None:
                return [take] + rest
        seen.add((i, j))
        return None

    counts = place(0, 0)
    if counts is None:
        raise BadRequest("cannot pair filters.value with filters.key: each filter needs at "
                         "least one value of its key's type (lt/gt exactly one)")
    out, j = [], 0
    for c in counts:
        out.append(vals[j:j + c])
        j += c
    return out


def _value(key: str, raw: str) -> Any:
    """A filter value from the query string: text for text keys, else JSON (numbers,
    booleans), falling back to the text."""
    if key in _STRING_FILTERS:
        return raw
    return _scalar(raw)


def _scalar(v: str) -> Any:
    try:
        return orjson.loads(v)
    except orjson.JSONDecodeError:
        return v


def _log_routes(r: APIRouter, rt: Runtime) -> None:
    @r.get("/gateways/{gateway_id}/logs")
    async def list_logs(account_id: str, gateway_id: str, request: Request) -> Response:
        rows, info = await logstore.list_logs(rt.store, _query(account_id, gateway_id, request))
        return ok([_log_out(x) for x in rows], result_info=info)

    @r.delete("/gateways/{gateway_id}/logs")
    async def delete_logs(account_id: str, gateway_id: str, request: Request) -> Response:
        q = _query(account_id, gateway_id, request)
        limit = request.query_params.get("limit")
        n = await logstore.delete_logs(rt.store, q, int(limit) if limit else None)
        return ok({"deleted": n})

    @r.get("/gateways/{gateway_id}/logs/{log_id}")
    async def get_log(account_id: str, gateway_id: str, log_id: str) -> Response:
        return ok(_log_out(await logstore.get_log(rt.store, account_id, gateway_id, log_id)))

    @r.patch("/gateways/{gateway_id}/logs/{log_id}")
    async def patch_log(account_id: str, gateway_id: str, log_id: str,
                        body: LogPatch) -> Response:
        values: dict[str, Any] = {}
        if body.feedback is not None:
            if body.feedback not in (-1, 0, 1):
                raise BadRequest("feedback must be -1, 0 or 1")
            values["feedback"] = int(body.feedback)
        if body.score is not None:
            if not 0 <= body.score <= 100:
                raise BadRequest("score must be between 0 and 100")
            values["score"] = body.score
        if body.metadata is not None:
            if len(body.metadata) > 5:
                raise BadRequest("metadata holds at most 5 entries")
            values["metadata"] = orjson.dumps(body.metadata).decode()
        if values:
            await logstore.patch_log(rt.store, account_id, gateway_id, log_id, values)
        return ok({})

    async def body_of(account_id: str, gateway_id: str, log_id: str, which: str) -> Response:
        row = await logstore.get_log(rt.store, account_id, gateway_id, log_id)
        raw = row[which]
        if raw is None:
            raise NotFound(f"log '{log_id}' has no stored {which.split('_')[0]} body")
        try:
            value: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = raw.decode("utf-8", "replace")
        return ok(value)

    @r.get("/gateways/{gateway_id}/logs/{log_id}/request")
    async def log_request(account_id: str, gateway_id: str, log_id: str) -> Response:
        return await body_of(account_id, gateway_id, log_id, "request_body")

    @r.get("/gateways/{gateway_id}/logs/{log_id}/response")
    async def log_response(account_id: str, gateway_id: str, log_id: str) -> Response:
        return await body_of(account_id, gateway_id, log_id, "response_body")


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise BadRequest("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def _settings(body: dict[str, Any]) -> GatewaySettings:
    try:
        return GatewaySettings(**body)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                         for e in exc.errors())
        raise BadRequest(msgs) from None
