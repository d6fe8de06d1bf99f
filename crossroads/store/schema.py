"""The relational schema, one definition for SQLite and PostgreSQL."""

from __future__ import annotations

import sys

import sqlalchemy as sa

metadata = sa.MetaData()

TS = sa.DateTime(timezone=True)

meta = sa.Table(
    "meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

gateways = sa.Table(
    "gateways", metadata,
    sa.Column("account_id", sa.String(64), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("modified_at", TS, nullable=False),
)

tokens = sa.Table(
    "tokens", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", sa.String(64), nullable=False),
    sa.Column("gateway_id", sa.String(64), nullable=True),  # None: every gateway
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", TS, nullable=False),
)

provider_keys = sa.Table(
    "provider_keys", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", sa.String(64), nullable=False),
    sa.Column("gateway_id", sa.String(64), nullable=False),
    sa.Column("provider", sa.String(100), nullable=False),
    sa.Column("alias", sa.String(100), nullable=False),
    sa.Column("secret", sa.Text, nullable=False),  # AES-GCM ciphertext (crossroads.vault)
    sa.Column("preview", sa.String(32), nullable=False),
    sa.Column("default_config", sa.Boolean, nullable=False, default=False),
    sa.Column("rate_limit", sa.Float, nullable=True),
    sa.Column("rate_limit_period", sa.Float, nullable=True),
    sa.Column("modified_at", TS, nullable=False),
    sa.UniqueConstraint("account_id", "gateway_id", "provider", "alias", name="uq_key_alias"),
)

custom_providers = sa.Table(
    "custom_providers", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", sa.String(64), nullable=False),
    sa.Column("slug", sa.String(100), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("modified_at", TS, nullable=False),
    sa.UniqueConstraint("account_id", "slug", name="uq_custom_provider_slug"),
)

routes = sa.Table(
    "routes", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", sa.String(64), nullable=False),
    sa.Column("gateway_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("deployed_version_id", sa.String(36), nullable=True),
    sa.Column("deployment_id", sa.String(36), nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("modified_at", TS, nullable=False),
    sa.UniqueConstraint("account_id", "gateway_id", "name", name="uq_route_name"),
)

route_versions = sa.Table(
    "route_versions", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("route_id", sa.String(36), nullable=False, index=True),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("elements", sa.JSON, nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("route_id", "number", name="uq_route_version_number"),
)

route_deployments = sa.Table(
    "route_deployments", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("route_id", sa.String(36), nullable=False, index=True),
    sa.Column("version_id", sa.String(36), nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("created_at", TS, nullable=False),
)

logs = sa.Table(
    "logs", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", sa.String(64), nullable=False),
    sa.Column("gateway_id", sa.String(64), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("provider", sa.String(100), nullable=False, default=""),
    sa.Column("model", sa.String(200), nullable=False, default=""),
    sa.Column("model_type", sa.String(50), nullable=True),
    sa.Column("path", sa.String(500), nullable=False, default=""),
    sa.Column("request_type", sa.String(50), nullable=True),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("success", sa.Boolean, nullable=False),
    sa.Column("cached", sa.Boolean, nullable=False, default=False),
    sa.Column("tokens_in", sa.Integer, nullable=True),
    sa.Column("tokens_out", sa.Integer, nullable=True),
    sa.Column("cached_tokens", sa.Integer, nullable=True),
    sa.Column("cost", sa.Float, nullable=True),
    sa.Column("custom_cost", sa.Boolean, nullable=False, default=False),
    sa.Column("duration", sa.Integer, nullable=False, default=0),  # ms
    sa.Column("metadata", sa.Text, nullable=True),  # JSON text, as Cloudflare returns it
    sa.Column("event_id", sa.String(200), nullable=True),
    sa.Column("step", sa.Integer, nullable=True),
    sa.Column("route", sa.String(200), nullable=True),
    sa.Column("route_version", sa.String(36), nullable=True),
    sa.Column("route_path", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("feedback", sa.Integer, nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("request_content_type", sa.String(100), nullable=True),
    sa.Column("response_content_type", sa.String(100), nullable=True),
    sa.Column("request_size", sa.Integer, nullable=True),
    sa.Column("response_size", sa.Integer, nullable=True),
    sa.Column("request_body", sa.LargeBinary, nullable=True),
    sa.Column("response_body", sa.LargeBinary, nullable=True),
    sa.Column("request_head_complete", sa.Boolean, nullable=True),
    sa.Column("response_head_complete", sa.Boolean, nullable=True),
    sa.Index("ix_logs_gateway_created", "account_id", "gateway_id", "created_at"),
    sa.Index("ix_logs_gateway_provider", "gateway_id", "provider"),
    sa.Index("ix_logs_gateway_model", "gateway_id", "model"),
    sa.Index("ix_logs_event", "event_id"),
)
# the log table's column names as plain interned ``str`` (SQLAlchemy's are ``quoted_name``, a
# ``str`` subclass, which as dict keys send every lookup of the dict down CPython's generic
# path): a request's log record is keyed by these very objects, and the SQLite writer reads it
# by them, so each key is found by identity
LOG_COLUMNS = tuple(sys.intern(str(c.name)) for c in logs.c)

# Shared counters in the database: used for limits when several processes share one database
# and no Redis is configured (crossroads.store.sql_counters).
counters = sa.Table(
    "counters", metadata,
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)
