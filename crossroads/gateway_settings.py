"""A gateway's settings object, in Cloudflare's shape (``ai_gateway.create/update``)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crossroads.spend_limits import MAX_RULES
from crossroads.vault import preview

GATEWAY_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$")


class SpendFilter(BaseModel):
    mode: Literal["filter"]
    values: list[str] = Field(min_length=1)


class SpendMetadata(BaseModel):
    mode: Literal["filter", "partition"]
    values: list[str] | None = None

    @model_validator(mode="after")
    def _values(self) -> SpendMetadata:
        if self.mode == "filter" and not self.values:
            raise ValueError("a metadata filter needs values")
        return self


class SpendRule(BaseModel):
    """One budget of ``spend_limits`` (see ``crossroads.spend_limits``)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str | None = None
    enabled: bool = True
    limit: float = Field(ge=0)
    limit_type: Literal["cost"] = Field("cost", alias="limitType")
    window: int = Field(gt=0, le=366 * 24 * 3600)
    technique: Literal["fixed", "sliding"] = "fixed"
    model: SpendFilter | None = None
    provider: SpendFilter | None = None
    metadata: dict[str, SpendMetadata] | None = None


class SpendLimits(BaseModel):
    model_config = ConfigDict(extra="allow")

    enabled: bool = True
    rules: list[SpendRule] = Field(default_factory=list, max_length=MAX_RULES)


class OtelExporter(BaseModel):
    """An OTLP/HTTP collector of the gateway's spans (``crossroads.otel``). ``authorization``
    is the header value it wants; the API seals it with the vault (only a preview is shown)."""

    model_config = ConfigDict(extra="allow")

    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    authorization: str | None = None
    content_type: Literal["json", "protobuf"] = "json"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("an otel exporter's url must be http:// or https://")
        return v

    @field_validator("content_type")
    @classmethod
    def _json_only(cls, v: str) -> str:
        if v != "json":
            raise ValueError("otel exporters send OTLP/JSON only (as Cloudflare): "
                             "content_type must be 'json'")
        return v


class GatewaySettings(BaseModel):
    """Unknown fields are kept (Cloudflare adds settings often; a full-replace update from a
    newer SDK must not fail), known ones are checked against Cloudflare's bounds."""

    model_config = ConfigDict(extra="allow")

    id: str
    cache_invalidate_on_update: bool = False
    cache_ttl: int | None = Field(default=None, ge=0, le=30 * 24 * 3600)
    collect_logs: bool = True
    rate_limiting_interval: int | None = Field(default=None, ge=0)
    rate_limiting_limit: int | None = Field(default=None, ge=0)
    rate_limiting_technique: Literal["fixed", "sliding"] | None = "fixed"
    authentication: bool = True
    byok_only: bool = False
    log_management: int | None = Field(default=None, ge=10_000, le=10_000_000)
    log_management_strategy: Literal["STOP_INSERTING", "DELETE_OLDEST"] | None = None
    logpush: bool = False
    logpush_public_key: str | None = None
    retry_backoff: Literal["constant", "linear", "exponential"] | None = None
    retry_delay: int | None = Field(default=None, ge=0, le=5000)
    retry_max_attempts: int | None = Field(default=None, ge=1, le=5)
    zdr: bool = False
    # Crossroads extension: when Redis is down, do limits admit (open) or refuse (closed)?
    limits_on_store_failure: Literal["open", "closed"] | None = None
    spend_limits: SpendLimits | None = None
    otel: list[OtelExporter] | None = Field(default=None, max_length=10)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not GATEWAY_ID.match(v):
            raise ValueError("gateway id must be 1-64 letters, digits, '-' or '_'")
        return v

    def stored(self) -> dict[str, Any]:
        out = self.model_dump(mode="json", by_alias=True)
        out.pop("id", None)
        _forget_unused_secrets(out)
        return out


# settings whose ``authorization`` is a credential: only its preview is kept in the settings
# (the management API seals an ``otel`` exporter's first, see ``seal_otel``; ``stripe`` is
# kept for the SDK's full-replace updates only, nothing here acts on it)
_UNUSED_WITH_SECRETS = ("otel", "stripe")


def _forget_unused_secrets(settings: dict[str, Any]) -> None:
    for name in _UNUSED_WITH_SECRETS:
        value = settings.get(name)
        for entry in value if isinstance(value, list) else [value]:
            if isinstance(entry, dict) and isinstance(entry.get("authorization"), str):
                secret = entry["authorization"]
                if "…" not in secret and set(secret) != {"*"}:  # not a preview already
                    entry["authorization"] = preview(secret)


def default_gateway_settings(gateway_id: str = "default") -> GatewaySettings:
    """The gateway that exists from the first start: authentication and logs on, caching and
    rate limiting off (as Cloudflare's auto-created ``default``)."""
    return GatewaySettings(id=gateway_id, authentication=True, collect_logs=True,
                           cache_ttl=None, rate_limiting_interval=None, rate_limiting_limit=None)


def seal_otel(body: dict[str, Any], seal: Any, previous: dict[str, Any] | None) -> None:
    """Before a gateway's settings are stored: each ``otel`` exporter's ``authorization``
    sealed (``seal(value, index)``) into ``authorization_sealed`` and replaced by its preview.
    A preview sent back unchanged (the SDK's full-replace update) keeps the sealed value of
    the exporter at that position."""
    exporters = body.get("otel")
    if not isinstance(exporters, list):
        return
    before = (previous or {}).get("otel") or []
    for i, exp in enumerate(exporters):
        if not isinstance(exp, dict):
            continue
        exp.pop("authorization_sealed", None)  # never taken from a caller
        value = exp.get("authorization")
        if not isinstance(value, str) or not value:
            continue
        old = before[i] if i < len(before) and isinstance(before[i], dict) else {}
        if value == old.get("authorization") and old.get("authorization_sealed"):
            exp["authorization_sealed"] = old["authorization_sealed"]
        else:
            exp["authorization_sealed"] = seal(value, i)
            exp["authorization"] = preview(value)


def public_settings(gw: dict[str, Any]) -> dict[str, Any]:
    """A gateway as the API shows it: sealed values left out."""
    exporters = gw.get("otel")
    if not isinstance(exporters, list):
        return gw
    shown = [{k: v for k, v in e.items() if k != "authorization_sealed"}
             if isinstance(e, dict) else e for e in exporters]
    return {**gw, "otel": shown}
