"""Alembic environment: always run programmatically by ``crossroads.store.migrations``.

The caller opens the connection (and, on PostgreSQL, holds the advisory lock) and passes it in
``config.attributes["connection"]``; there is no offline (SQL script) mode.
"""

from __future__ import annotations

from alembic import context

from crossroads.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite",
                  transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
