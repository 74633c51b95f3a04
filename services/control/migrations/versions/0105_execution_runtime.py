"""Executions record the sandbox runtime they were given ("runc",
"gvisor"); rows from before are left "" (their spawner's default then,
which could only be runc).

Revision ID: 0105
Revises: 0104
"""

import sqlalchemy as sa
from alembic import op

revision = "0105"
down_revision = "0104"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("runtime", sa.String(16), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("runtime")
