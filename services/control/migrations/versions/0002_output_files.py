"""Output files (content-addressed blobs) and stdout/stderr previews.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # An empty binary literal in each dialect's syntax.
    empty = sa.text("X''" if op.get_bind().dialect.name == "sqlite" else "''::bytea")
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("stdout_preview", sa.LargeBinary(), nullable=False, server_default=empty))
        batch.add_column(sa.Column("stderr_preview", sa.LargeBinary(), nullable=False, server_default=empty))
        batch.add_column(sa.Column("stdout_truncated", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("stderr_truncated", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "output_files",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("execution_key", sa.String(64), sa.ForeignKey("executions.key"), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.UniqueConstraint("execution_key", "path", name="uq_output_files_execution_path"),
    )
    op.create_index("ix_output_files_execution_key", "output_files", ["execution_key"])
    op.create_index("ix_output_files_sha256", "output_files", ["sha256"])


def downgrade() -> None:
    op.drop_table("output_files")
    with op.batch_alter_table("executions") as batch:
        for column in ("stderr_truncated", "stdout_truncated", "stderr_preview", "stdout_preview"):
            batch.drop_column(column)
