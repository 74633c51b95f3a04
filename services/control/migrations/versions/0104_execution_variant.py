"""Executions record the image variant they asked for ("" for the
language's standard image, "datascience"); existing rows ran in the
standard image.

Revision ID: 0104
Revises: 0103
"""

import sqlalchemy as sa
from alembic import op

revision = "0104"
down_revision = "0103"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("variant", sa.String(32), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("variant")
