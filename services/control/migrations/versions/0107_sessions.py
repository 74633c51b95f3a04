"""Sessions (docs/sessions.md): the sessions table, and executions that are
calls of a session (executions.session_id). The label that grouped
executions, called session_id until now, is renamed group_id (docs/
decisions.md, "Sessions and groups"); its index follows.

Revision ID: 0107
Revises: 0106
"""

import sqlalchemy as sa
from alembic import op

revision = "0107"
down_revision = "0106"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_executions_tenant_session", table_name="executions")
    with op.batch_alter_table("executions") as batch:
        batch.alter_column(
            "session_id", new_column_name="group_id", existing_type=sa.String(64), existing_nullable=False
        )
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("session_id", sa.String(64), nullable=False, server_default=""))
    op.create_index("ix_executions_tenant_group", "executions", ["tenant", "group_id"])
    op.create_index("ix_executions_tenant_session", "executions", ["tenant", "session_id"])
    op.create_table(
        "sessions",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("language", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("end_reason", sa.String(), nullable=False),
        sa.Column("spawner", sa.String(255), nullable=False),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("cpus", sa.Float(), nullable=False),
        sa.Column("timeout_ms", sa.Integer(), nullable=False),
        sa.Column("idle_seconds", sa.Integer(), nullable=False),
        sa.Column("lifetime_seconds", sa.Integer(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("ended_at_ms", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("tenant", "session_id", name="uq_sessions_tenant_session_id"),
    )
    op.create_index("ix_sessions_tenant_created", "sessions", ["tenant", "created_at_ms", "key"])


def downgrade() -> None:
    op.drop_index("ix_sessions_tenant_created", table_name="sessions")
    op.drop_table("sessions")
    op.drop_index("ix_executions_tenant_session", table_name="executions")
    op.drop_index("ix_executions_tenant_group", table_name="executions")
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("session_id")
    with op.batch_alter_table("executions") as batch:
        batch.alter_column(
            "group_id", new_column_name="session_id", existing_type=sa.String(64), existing_nullable=False
        )
    op.create_index("ix_executions_tenant_session", "executions", ["tenant", "session_id"])
