"""The migrations and the SQLModel models describe the same schema, and the
model registry (services/control/models.py) knows every table."""

import importlib
import json
import pkgutil
import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import services.control
from services.control.db import Database, head_revision
from services.control.models import metadata


def _import_every_module() -> None:
    for module in pkgutil.walk_packages(services.control.__path__, prefix="services.control."):
        if not module.name.endswith("__main__") and ".migrations" not in module.name:
            importlib.import_module(module.name)


def test_the_registry_alone_knows_every_table():
    _import_every_module()
    script = "import json, services.control.models as m; print(json.dumps(sorted(m.metadata.tables)))"
    alone = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(alone.stdout) == sorted(metadata.tables)


def test_models_match_the_migrated_schema(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/c.db")
    db.migrate()
    assert db.revision() == head_revision()
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    db.dispose()
    assert diff == []


def test_sqlite_uses_wal(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/c.db")
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        # 2: in memory. Control's root is read-only under compose, and a
        # statement journal spilled into a file there was a "disk I/O error"
        # on recording a verdict (a large preview rewritten).
        assert connection.exec_driver_sql("PRAGMA temp_store").scalar() == 2
    db.dispose()
