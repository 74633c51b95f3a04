"""Alembic environment: control runs migrations programmatically
(services/control/db.py) on a connection it passes in `config.attributes`."""

from __future__ import annotations

from alembic import context

from services.control.models import SQLModel
import services.control.artifact_models  # noqa: F401,E402 - registers the artifact tables

target_metadata = SQLModel.metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through services.control.db.migrate()")

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
