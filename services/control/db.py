"""Engine, transactions and migrations for SQLite and PostgreSQL.

Writes on SQLite run in `BEGIN IMMEDIATE` transactions: the write lock is
taken up front, so two writers queue on the busy timeout instead of one
failing on a stale snapshot. On PostgreSQL writers that must serialise lock
the rows they depend on (`SELECT ... FOR UPDATE`).
"""

from __future__ import annotations

import contextlib
import pathlib
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import Session

MIGRATIONS = pathlib.Path(__file__).resolve().parent / "migrations"
# How long a SQLite writer waits for the write lock before it fails.
SQLITE_BUSY_TIMEOUT_SECONDS = 30
# Connections kept open, and how many more may be opened under load: enough
# for the gRPC worker threads, the relays and the background threads.
POOL_SIZE = 16
POOL_OVERFLOW = 16


def create_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        path = sa.make_url(url).database
        if path and path != ":memory:":
            pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={
                "timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                "check_same_thread": False,
                "isolation_level": None,
            },
            pool_size=POOL_SIZE,
            max_overflow=POOL_OVERFLOW,
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(connection):
            # The driver runs in autocommit mode; transactions are ours.
            immediate = connection.get_execution_options().get("sqlite_immediate", False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return sa.create_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW, pool_pre_ping=True)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations under {MIGRATIONS}")
    return head


def rows_changed(session: Session, statement: sa.Update | sa.Delete) -> int:
    """Executes an UPDATE or DELETE; the number of rows it matched."""
    # SQLModel's Session.execute is typed as returning a plain Result; for DML
    # SQLAlchemy returns a CursorResult, which carries the rowcount.
    result = cast(sa.CursorResult[Any], session.execute(statement))
    return result.rowcount


def _sqlite_foreign_keys(connection: sa.Connection, *, enabled: bool) -> None:
    # Straight to the driver (in autocommit mode), outside any transaction.
    driver = connection.connection.driver_connection
    if driver is None:
        raise RuntimeError("the connection is closed")
    driver.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")


def _check_foreign_keys(connection: sa.Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"the migration left rows with broken references: {broken[:5]}")


# What `on_transaction` is told: the kind ("read" or "write") and the seconds
# from asking for a connection to commit or rollback.
TransactionTimer = Callable[[str, float], None]


def _untimed(kind: str, seconds: float) -> None:
    pass


class Database:
    def __init__(self, url: str, on_transaction: TransactionTimer = _untimed):
        self.url = url
        self.engine = create_engine(url)
        self.dialect = self.engine.dialect.name
        # Every store's every call goes through write() or read(): the one
        # place where the database's latency is measured (metrics.py).
        self.on_transaction = on_transaction

    @contextlib.contextmanager
    def _timed(self, kind: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.on_transaction(kind, time.monotonic() - started)

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that writes: committed on success, rolled back on error."""
        with self._timed("write"), self.engine.connect() as connection:
            if self.dialect == "sqlite":
                connection.execution_options(sqlite_immediate=True)
            with Session(bind=connection, expire_on_commit=False) as session, session.begin():
                yield session

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with (
            self._timed("read"),
            self.engine.connect() as connection,
            Session(bind=connection, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    def migrate(self, revision: str = "head") -> None:
        """Creates or upgrades the schema to `revision`, in one transaction.

        On SQLite a migration that changes a table rebuilds it (copy, drop,
        rename); with foreign keys enforced, dropping a table that others
        reference would fail or cascade. So foreign keys are off while
        migrations run, and every reference is checked before the commit.
        SQLite ignores that pragma inside a transaction: it is set on the
        driver's connection before the migration's transaction begins."""
        config = alembic_config()
        with self.engine.connect() as connection:
            if self.dialect == "sqlite":
                _sqlite_foreign_keys(connection, enabled=False)
            try:
                with connection.begin():
                    config.attributes["connection"] = connection
                    command.upgrade(config, revision)
                    if self.dialect == "sqlite":
                        _check_foreign_keys(connection)
            finally:
                if self.dialect == "sqlite":
                    _sqlite_foreign_keys(connection, enabled=True)

    def revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def dispose(self) -> None:
        self.engine.dispose()
