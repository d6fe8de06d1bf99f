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


# settings kept only so that the SDK's full-replace updates round-trip (nothing here acts on
# them) whose ``authorization`` is a credential: only its preview is kept, never the secret
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
