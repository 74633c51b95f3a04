"""The migrations and the SQLModel models describe the same schema."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import importlib
import pkgutil

import services.control
from services.control.db import Database, head_revision
from services.control.models import SQLModel


def _import_every_model() -> None:
    # Tables may be defined in any module of the package.
    for module in pkgutil.iter_modules(services.control.__path__):
        if module.name != "__main__":
            importlib.import_module(f"services.control.{module.name}")


def test_models_match_the_migrated_schema(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/c.db")
    _import_every_model()
    db.migrate()
    assert db.revision() == head_revision()
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
