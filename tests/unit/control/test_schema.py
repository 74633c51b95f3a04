"""The migrations and the SQLModel models describe the same schema."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from services.control.db import HEAD, Database
from services.control.models import SQLModel


def test_models_match_the_migrated_schema(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/c.db")
    db.migrate()
    assert db.revision() == HEAD
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    db.dispose()
    assert diff == []


def test_sqlite_uses_wal(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/c.db")
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    db.dispose()
