"""Runs of artifacts and the files each run started.

Revision ID: 0101
Revises: 0100
"""

import sqlalchemy as sa
from alembic import op

revision = "0101"
down_revision = "0100"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("artifact_id", sa.String(64), sa.ForeignKey("artifacts.id"), nullable=False),
        sa.Column("execution_key", sa.String(64), sa.ForeignKey("executions.key"), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("steps_json", sa.String(), nullable=False),
        sa.Column("inputs_from_run_id", sa.String(64), nullable=False),
        sa.Column("prestaged_files", sa.Integer(), nullable=False),
        sa.Column("prestaged_bytes", sa.BigInteger(), nullable=False),
        sa.Column("prestage_notice", sa.String(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("execution_key"),
    )
    op.create_index("ix_runs_artifact_created", "runs", ["artifact_id", "created_at_ms", "id"])
    op.create_table(
        "run_paths",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("path", sa.String(), primary_key=True),
        sa.Column("artifact_id", sa.String(64), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_run_paths_artifact_path_created", "run_paths", ["artifact_id", "path", "created_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_run_paths_artifact_path_created", table_name="run_paths")
    op.drop_table("run_paths")
    op.drop_index("ix_runs_artifact_created", table_name="runs")
    op.drop_table("runs")
