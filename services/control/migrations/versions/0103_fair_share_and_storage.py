"""Slot time, the fair share and storage quotas: the tenant's quota row
gains its daily slot-time debit and its storage counters (filled from what
is stored now), executions their slot-time pre-debit and the moment they
took a slot; indexes for admission's counts and the retention sweeper.

Revision ID: 0103
Revises: 0102
"""

import sqlalchemy as sa
from alembic import op

revision = "0103"
down_revision = "0102"
branch_labels = None
depends_on = None

ZERO = sa.text("0")
QUOTA_COLUMNS = (
    ("slot_seconds_debited", sa.Float()),
    ("stored_executions", sa.BigInteger()),
    ("stored_output_bytes", sa.BigInteger()),
    ("stored_artifacts", sa.BigInteger()),
    ("stored_artifact_bytes", sa.BigInteger()),
)
EXECUTION_COLUMNS = (
    ("slot_debit", sa.Float()),
    ("slot_at_ms", sa.BigInteger()),
)
INDEXES = (
    ("ix_executions_tenant_status", ["tenant", "status"]),
    ("ix_executions_finished", ["finished_at_ms"]),
)

# Every tenant with something stored gets a quota row, then each row counts
# what its tenant stores. Plain SQL both engines run alike.
ADD_MISSING_ROWS = """
INSERT INTO tenant_quotas (tenant, day, cpu_seconds_debited, slot_seconds_debited, stored_executions,
                           stored_output_bytes, stored_artifacts, stored_artifact_bytes)
SELECT owners.tenant, '', 0, 0, 0, 0, 0, 0
FROM (SELECT tenant FROM executions UNION SELECT tenant FROM artifacts) AS owners
WHERE owners.tenant NOT IN (SELECT tenant FROM tenant_quotas)
"""
COUNT_STORED = """
UPDATE tenant_quotas SET
  stored_executions = (SELECT count(*) FROM executions e WHERE e.tenant = tenant_quotas.tenant),
  stored_output_bytes = (
    SELECT coalesce(sum(f.size), 0) FROM output_files f JOIN executions e ON e.key = f.execution_key
    WHERE e.tenant = tenant_quotas.tenant),
  stored_artifacts = (SELECT count(*) FROM artifacts a WHERE a.tenant = tenant_quotas.tenant),
  stored_artifact_bytes = (
    SELECT coalesce(sum(af.size), 0) FROM artifact_files af JOIN artifacts a ON a.id = af.artifact_id
    WHERE a.tenant = tenant_quotas.tenant)
"""


def upgrade() -> None:
    with op.batch_alter_table("tenant_quotas") as batch:
        for name, kind in QUOTA_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=False, server_default=ZERO))
    with op.batch_alter_table("executions") as batch:
        for name, kind in EXECUTION_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=False, server_default=ZERO))
    for name, columns in INDEXES:
        op.create_index(name, "executions", columns)
    op.execute(ADD_MISSING_ROWS)
    op.execute(COUNT_STORED)


def downgrade() -> None:
    for name, _ in INDEXES:
        op.drop_index(name, table_name="executions")
    with op.batch_alter_table("executions") as batch:
        for name, _ in EXECUTION_COLUMNS:
            batch.drop_column(name)
    with op.batch_alter_table("tenant_quotas") as batch:
        for name, _ in QUOTA_COLUMNS:
            batch.drop_column(name)
