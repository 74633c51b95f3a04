"""A run's rows go with its execution: ON DELETE CASCADE from runs to
executions and from run_paths to runs.

The execution store deletes an execution the spawner refused before
anything started; the database now deletes the run's rows with it, so the
execution store need not know the run tables.

Revision ID: 0102
Revises: 0101
"""

from alembic import op

revision = "0102"
down_revision = "0101"
branch_labels = None
depends_on = None

# (table, column, referred table, referred column)
FOREIGN_KEYS = (
    ("runs", "execution_key", "executions", "key"),
    ("run_paths", "run_id", "runs", "id"),
)
# PostgreSQL's own name for an unnamed foreign key; SQLite's batch mode
# gives the reflected (unnamed) ones the same name, so one drop fits both.
NAMING = {"fk": "%(table_name)s_%(column_0_name)s_fkey"}


def _replace_foreign_keys(ondelete: str | None) -> None:
    # SQLite rebuilds each table (copy, drop, rename); db.Database.migrate
    # turns foreign keys off for that and checks them afterwards.
    for table, column, referred, referred_column in FOREIGN_KEYS:
        name = f"{table}_{column}_fkey"
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            batch.drop_constraint(name, type_="foreignkey")
            batch.create_foreign_key(name, referred, [column], [referred_column], ondelete=ondelete)


def upgrade() -> None:
    _replace_foreign_keys("CASCADE")


def downgrade() -> None:
    _replace_foreign_keys(None)
