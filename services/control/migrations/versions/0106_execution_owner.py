"""Executions record the control replica (and that process's incarnation)
that admitted them, and each replica holds a lease it renews while it lives:
a replica settles at once what a dead one left running
(services/control/executions/ownership.py). Rows from before are left ""
(the watchdog alone settles those).

Revision ID: 0106
Revises: 0105
"""

import sqlalchemy as sa
from alembic import op

revision = "0106"
down_revision = "0105"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("replica", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("incarnation", sa.String(32), nullable=False, server_default=""))
    op.create_table(
        "replica_leases",
        sa.Column("replica", sa.String(64), primary_key=True),
        sa.Column("incarnation", sa.String(32), nullable=False),
        sa.Column("until_ms", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("replica_leases")
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("incarnation")
        batch.drop_column("replica")
