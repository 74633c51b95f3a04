"""A session's packages, installed at its creation (docs/sessions.md), kept
with its record so that GetSession and ListSessions show them.

Revision ID: 0108
Revises: 0107
"""

import sqlalchemy as sa
from alembic import op

revision = "0108"
down_revision = "0107"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("packages_json", sa.String(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("packages_json")
