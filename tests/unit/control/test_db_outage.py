"""What control's database layer calls an outage, and how it retries one."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from services.control import db
from services.control.db import Database, DatabaseUnavailable, lost_connection


def operational(invalidated: bool = False) -> sa.exc.OperationalError:
    return sa.exc.OperationalError(
        "SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=invalidated
    )


def test_a_broken_postgresql_connection_is_an_outage():
    assert lost_connection(operational(), "postgresql")
    assert lost_connection(sa.exc.InterfaceError("SELECT 1", {}, Exception("closed")), "postgresql")


def test_a_locked_sqlite_file_is_not_but_an_invalidated_connection_is():
    assert not lost_connection(operational(), "sqlite")
    assert lost_connection(operational(invalidated=True), "sqlite")


def test_conflicts_and_bugs_are_not_outages():
    assert not lost_connection(sa.exc.IntegrityError("INSERT", {}, Exception("duplicate key")), "postgresql")
    assert not lost_connection(ValueError("no"), "postgresql")


def test_retrying_runs_the_transaction_again_until_it_goes_through(monkeypatch, tmp_path):
    monkeypatch.setattr(db, "RETRY_PAUSE_SECONDS", 0.01)
    database = Database(f"sqlite:///{tmp_path}/x.db")
    tries = []

    def transaction():
        tries.append(1)
        if len(tries) < 3:
            raise DatabaseUnavailable("OperationalError")
        return "done"

    assert database.retrying(transaction) == "done"
    assert len(tries) == 3
    database.dispose()


def test_retrying_gives_up_after_its_time_and_leaves_other_errors_alone(monkeypatch, tmp_path):
    monkeypatch.setattr(db, "RETRY_PAUSE_SECONDS", 0.01)
    database = Database(f"sqlite:///{tmp_path}/x.db")

    def never():
        raise DatabaseUnavailable("OperationalError")

    with pytest.raises(DatabaseUnavailable):
        database.retrying(never, seconds=0.05)
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("a bug is not retried")

    with pytest.raises(ValueError):
        database.retrying(broken)
    assert calls == [1]
    database.dispose()


def test_a_broken_transaction_becomes_database_unavailable(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(DatabaseUnavailable, match="nothing was changed"), database.write():
        raise operational(invalidated=True)
    database.dispose()
