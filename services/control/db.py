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
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import Session

T = TypeVar("T")
MIGRATIONS = pathlib.Path(__file__).resolve().parent / "migrations"
# How long a SQLite writer waits for the write lock before it fails.
SQLITE_BUSY_TIMEOUT_SECONDS = 30
# Connections kept open, and how many more may be opened under load: enough
# for the gRPC worker threads, the relays and the background threads.
POOL_SIZE = 16
POOL_OVERFLOW = 16
# A PostgreSQL server that does not answer (hung, or its host gone) fails a
# call after this long instead of holding it: the caller gets UNAVAILABLE.
CONNECT_TIMEOUT_SECONDS = 5
# How long a write that must not be lost (a verdict) is retried while the
# database is unreachable, and the pause between tries.
RETRY_SECONDS = 60.0
RETRY_PAUSE_SECONDS = 0.5


class DatabaseUnavailable(Exception):
    """The database cannot be reached or the connection broke; nothing of the
    transaction was applied (it was rolled back, or never began)."""

    def __init__(self, detail: str):
        super().__init__(f"the database is unavailable ({detail}); nothing was changed, retry shortly")


def lost_connection(exc: BaseException, dialect: str) -> bool:
    """Whether a database error means the server or the connection to it is
    gone, rather than a bad statement or a conflict."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    # On PostgreSQL an OperationalError is a broken connection, a refused
    # one or a server shutting down; SQLite's (a locked file) is not.
    return dialect != "sqlite" and isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError))


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
            # Statement journals and temporary tables in memory, not in files
            # under TMPDIR: control runs on a read-only root (compose), where
            # a statement journal past 64 KiB (an update writing a full output
            # preview) failed with "disk I/O error" and its verdict was never
            # recorded.
            cursor.execute("PRAGMA temp_store=MEMORY")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(connection):
            # The driver runs in autocommit mode; transactions are ours.
            immediate = connection.get_execution_options().get("sqlite_immediate", False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    # pool_pre_ping: a pooled connection the server dropped (restart,
    # pg_terminate_backend, idle timeout) is replaced before use.
    return sa.create_engine(
        url,
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )


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
        except sa.exc.DBAPIError as exc:
            if lost_connection(exc, self.dialect):
                raise DatabaseUnavailable(type(exc.orig).__name__ if exc.orig else type(exc).__name__) from exc
            raise
        finally:
            self.on_transaction(kind, time.monotonic() - started)

    def retrying(self, transaction: Callable[[], T], seconds: float = RETRY_SECONDS) -> T:
        """Runs `transaction` (which opens its own write or read) again while
        the database is unavailable, up to `seconds`: each try is a whole
        transaction, so a broken one left nothing behind."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                return transaction()
            except DatabaseUnavailable:
                if time.monotonic() + RETRY_PAUSE_SECONDS > deadline:
                    raise
                time.sleep(RETRY_PAUSE_SECONDS)

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
