"""Alembic environment: runs on the connection taskhold hands over (see ``store.db.migrate``)."""

from __future__ import annotations

from alembic import context

from taskhold.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through taskhold.store.db.migrate()")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
