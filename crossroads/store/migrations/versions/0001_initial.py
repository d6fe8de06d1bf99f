"""Initial schema (what ``create_all`` made before migrations were versioned).

Frozen: the statements it runs never change (later schema changes go in new revisions); only
their layout in functions was changed, not what they create or in which order.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # one function per group of tables; the statements and their order are those of the
    # released revision
    _providers_and_gateways()
    _logs()
    _meta_and_keys()
    _routes()
    _tokens_and_epoch()


def _providers_and_gateways() -> None:
    """Custom providers and gateway settings."""
    op.create_table(
        "custom_providers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("modified_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "slug", name="uq_custom_provider_slug"),
    )
    op.create_table(
        "gateways",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("modified_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "id"),
    )


def _logs() -> None:
    """The request log and its indexes."""
    op.create_table(
        "logs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("provider", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("model_type", sa.String(length=50), nullable=True),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("request_type", sa.String(length=50), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("tokens_in", sa.Integer(), nullable=True),
        sa.Column("tokens_out", sa.Integer(), nullable=True),
        sa.Column("cached_tokens", sa.Integer(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("custom_cost", sa.Boolean(), nullable=False),
        sa.Column("duration", sa.Integer(), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=True),
        sa.Column("event_id", sa.String(length=200), nullable=True),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("route", sa.String(length=200), nullable=True),
        sa.Column("route_version", sa.String(length=36), nullable=True),
        sa.Column("route_path", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("feedback", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("request_content_type", sa.String(length=100), nullable=True),
        sa.Column("response_content_type", sa.String(length=100), nullable=True),
        sa.Column("request_size", sa.Integer(), nullable=True),
        sa.Column("response_size", sa.Integer(), nullable=True),
        sa.Column("request_body", sa.LargeBinary(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("request_head_complete", sa.Boolean(), nullable=True),
        sa.Column("response_head_complete", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_logs_event", "logs", ["event_id"], unique=False)
    op.create_index(
        "ix_logs_gateway_created", "logs", ["account_id", "gateway_id", "created_at"], unique=False
    )
    op.create_index("ix_logs_gateway_model", "logs", ["gateway_id", "model"], unique=False)
    op.create_index("ix_logs_gateway_provider", "logs", ["gateway_id", "provider"], unique=False)


def _meta_and_keys() -> None:
    """The meta table and stored provider keys."""
    op.create_table(
        "meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "provider_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=100), nullable=False),
        sa.Column("alias", sa.String(length=100), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("preview", sa.String(length=32), nullable=False),
        sa.Column("default_config", sa.Boolean(), nullable=False),
        sa.Column("rate_limit", sa.Float(), nullable=True),
        sa.Column("rate_limit_period", sa.Float(), nullable=True),
        sa.Column("modified_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "gateway_id", "provider", "alias", name="uq_key_alias"),
    )


def _routes() -> None:
    """Dynamic routes, their versions and deployments."""
    op.create_table(
        "route_deployments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("route_id", sa.String(length=36), nullable=False),
        sa.Column("version_id", sa.String(length=36), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_route_deployments_route_id"), "route_deployments", ["route_id"], unique=False
    )
    op.create_table(
        "route_versions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("route_id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("elements", sa.JSON(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("route_id", "number", name="uq_route_version_number"),
    )
    op.create_index(
        op.f("ix_route_versions_route_id"), "route_versions", ["route_id"], unique=False
    )
    op.create_table(
        "routes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("deployed_version_id", sa.String(length=36), nullable=True),
        sa.Column("deployment_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("modified_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "gateway_id", "name", name="uq_route_name"),
    )


def _tokens_and_epoch() -> None:
    """Gateway tokens, and the configuration epoch's first value."""
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
    )
    meta = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.Text))
    op.bulk_insert(meta, [{"key": "epoch", "value": "0"}])


def downgrade() -> None:
    for name in (
        "tokens",
        "routes",
        "route_versions",
        "route_deployments",
        "provider_keys",
        "meta",
        "logs",
        "gateways",
        "custom_providers",
    ):
        op.drop_table(name)
