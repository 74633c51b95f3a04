"""Alembic environment: control runs migrations programmatically
(services/control/db.py) on a connection it passes in `config.attributes`."""

from __future__ import annotations

from alembic import context

from services.control.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through services.control.db.Database.migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
