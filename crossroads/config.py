"""Settings, validated once at start-up.

Sources, lowest to highest precedence: defaults, the TOML config file (``--config`` or
``CROSSROADS_CONFIG``), environment variables ``CROSSROADS_*``, command-line flags.
Unknown keys in the config file are rejected.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crossroads.errors import BadRequest
from crossroads.providers.catalog import BUILTIN, env_var_for

_ENV_PREFIX = "CROSSROADS_"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    data_dir: Path = Path("./data")
    account_id: str = "local"
    database_url: str | None = None  # default: sqlite in data_dir
    redis_url: str | None = None
    admin_token: str | None = None
    master_key: str | None = None  # base64 of 32 bytes; default: data_dir/master.key
    max_body_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    log_body_cap: int = Field(64 * 1024, ge=0)  # bytes of request/response body kept per log
    log_queue_size: int = Field(50_000, ge=100)
    log_batch_size: int = Field(500, ge=1)
    log_flush_interval: float = Field(0.2, gt=0)
    connect_timeout: float = Field(10.0, gt=0)  # seconds, to open a connection upstream
    stream_idle_timeout: float = Field(300.0, gt=0)  # seconds between two upstream chunks
    config_poll_interval: float = Field(0.5, gt=0)  # seconds between checks for changes
    cache_max_entries: int = Field(10_000, ge=0)
    cache_max_bytes: int = Field(256 * 1024 * 1024, ge=0)
    store_timeout: float = Field(1.0, gt=0)  # seconds, for Redis calls on the request path
    limits_on_store_failure: Literal["open", "closed"] = "open"
    upstreams: dict[str, str] = Field(default_factory=dict)

    @field_validator("upstreams")
    @classmethod
    def _strip(cls, v: dict[str, str]) -> dict[str, str]:
        return {k: u.rstrip("/") for k, u in v.items()}

    @property
    def sqlalchemy_url(self) -> str:
        url = self.database_url or f"sqlite+aiosqlite:///{self.data_dir.resolve()}/crossroads.db"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+asyncpg://" + url.split("://", 1)[1]
        elif url.startswith("sqlite:///"):
            url = "sqlite+aiosqlite:///" + url[len("sqlite:///"):]
        return url

    def upstream_base(self, slug: str) -> str | None:
        if slug in self.upstreams:
            return self.upstreams[slug]
        spec = BUILTIN.get(slug)
        return spec.base_url if spec else None


_ENV_FIELDS = {
    "host": "HOST", "port": "PORT", "workers": "WORKERS", "data_dir": "DATA_DIR",
    "account_id": "ACCOUNT_ID", "database_url": "DATABASE_URL", "redis_url": "REDIS_URL",
    "admin_token": "ADMIN_TOKEN", "master_key": "MASTER_KEY", "max_body_bytes": "MAX_BODY_BYTES",
    "log_body_cap": "LOG_BODY_CAP", "stream_idle_timeout": "STREAM_IDLE_TIMEOUT",
    "connect_timeout": "CONNECT_TIMEOUT", "config_poll_interval": "CONFIG_POLL_INTERVAL",
    "limits_on_store_failure": "LIMITS_ON_STORE_FAILURE", "store_timeout": "STORE_TIMEOUT",
    "cache_max_entries": "CACHE_MAX_ENTRIES", "cache_max_bytes": "CACHE_MAX_BYTES",
    "log_queue_size": "LOG_QUEUE_SIZE", "log_batch_size": "LOG_BATCH_SIZE",
    "log_flush_interval": "LOG_FLUSH_INTERVAL",
}


def load_settings(config_file: Path | None = None, env: dict[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Build the settings from file, environment and explicit overrides (None = not given)."""
    env = dict(os.environ) if env is None else env
    values: dict[str, Any] = {}
    path = config_file or (Path(env[_ENV_PREFIX + "CONFIG"]) if env.get(_ENV_PREFIX + "CONFIG")
                           else None)
    if path is not None:
        try:
            values.update(tomllib.loads(path.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise BadRequest(f"cannot read config file {path}: {exc}") from exc
    for field, suffix in _ENV_FIELDS.items():
        if _ENV_PREFIX + suffix in env:
            values[field] = env[_ENV_PREFIX + suffix]
    upstreams = dict(values.get("upstreams", {}))
    for slug in BUILTIN:
        if env.get(env_var_for(slug)):
            upstreams[slug] = env[env_var_for(slug)]
    for key, value in env.items():  # custom-* providers can be pointed at by env too
        if key.startswith(_ENV_PREFIX + "UPSTREAM_CUSTOM_") and value:
            upstreams["custom-" + key[len(_ENV_PREFIX + "UPSTREAM_CUSTOM_"):].lower()
                      .replace("_", "-")] = value
    values["upstreams"] = upstreams
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise BadRequest(f"invalid configuration: {exc}") from exc
