"""Runnable artifacts and their files.

Revision ID: 0100
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0100"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("language", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("entry", sa.String(), nullable=False),
        sa.Column("packages_json", sa.String(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_artifacts_tenant_created", "artifacts", ["tenant", "created_at_ms", "id"])
    op.create_table(
        "artifact_files",
        sa.Column("artifact_id", sa.String(64), sa.ForeignKey("artifacts.id"), primary_key=True),
        sa.Column("path", sa.String(), primary_key=True),
        sa.Column("path_key", sa.String(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("modified_revision", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("artifact_id", "path_key", name="uq_artifact_files_artifact_path_key"),
    )


def downgrade() -> None:
    op.drop_table("artifact_files")
    op.drop_index("ix_artifacts_tenant_created", table_name="artifacts")
    op.drop_table("artifacts")
