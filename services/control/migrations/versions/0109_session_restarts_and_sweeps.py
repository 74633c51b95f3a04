"""Sessions count their fresh interpreters (restarts), and are found by
status and end time: the session sweeper looks for open ones, the
retention sweeper for long-ended ones (docs/sessions.md).

Revision ID: 0109
Revises: 0108
"""

import sqlalchemy as sa
from alembic import op

revision = "0109"
down_revision = "0108"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("restarts", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_sessions_status_ended", "sessions", ["status", "ended_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_sessions_status_ended", table_name="sessions")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("restarts")
