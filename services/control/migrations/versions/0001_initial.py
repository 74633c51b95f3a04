"""Initial schema: tenants' quota rows and executions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_quotas",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("cpu_seconds_debited", sa.Float(), nullable=False),
    )
    op.create_table(
        "executions",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("language", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(32), nullable=False),
        sa.Column("error_message", sa.String(), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=False),
        sa.Column("timeout_ms", sa.Integer(), nullable=False),
        sa.Column("cpu_debit", sa.Float(), nullable=False),
        sa.Column("debit_day", sa.String(10), nullable=False),
        sa.Column("spawner", sa.String(255), nullable=False),
        sa.Column("usage_json", sa.String(), nullable=False),
        sa.Column("steps_json", sa.String(), nullable=False),
        sa.Column("dropped_json", sa.String(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("started_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("finished_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat_at_ms", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("tenant", "execution_id", name="uq_executions_tenant_execution_id"),
    )
    op.create_index("ix_executions_tenant_created", "executions", ["tenant", "created_at_ms", "key"])
    op.create_index("ix_executions_tenant_session", "executions", ["tenant", "session_id"])
    op.create_index("ix_executions_status_heartbeat", "executions", ["status", "heartbeat_at_ms"])


def downgrade() -> None:
    op.drop_table("executions")
    op.drop_table("tenant_quotas")
