"""MaEVe's base tables for development databases, and the reconciler's own schema migrations.

Migrations are the SQL files in `reconciler/sql/migrations/`, `NNNN_name.up.sql` with a `NNNN_name.down.sql`
that undoes it. Which ones are applied is kept in this project's table `reconciler_migrations`, never in
MaEVe's `schema_migrations` (golang-migrate's). Each step runs in its own transaction under the advisory
lock that `apply` also takes, and re-checks the bookkeeping inside it, so concurrent runs apply each step
once. `migrate(connection, to=N)` goes up or down to version N; N = 0 removes everything the reconciler
added (the data in its tables and columns included).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources

from psycopg import sql

from reconciler.database import Connection, lock_database
from reconciler.errors import ExitCode, ReconcilerError

BOOKKEEPING = "reconciler_migrations"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.up\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up: str
    down: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.up.encode()).hexdigest()


@dataclass(frozen=True)
class Applied:
    """A row of the bookkeeping table."""

    version: int
    name: str
    checksum: str
    applied_at: datetime


@dataclass(frozen=True)
class Step:
    """One migration run by `migrate`: `direction` is "up" or "down"; `seconds` its duration."""

    migration: Migration
    direction: str
    seconds: float


def _sql_files() -> resources.abc.Traversable:
    return resources.files("reconciler") / "sql"


@cache
def available() -> tuple[Migration, ...]:
    """Every migration shipped with this version, in order."""
    folder = _sql_files() / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match is None:
            continue
        down = folder / entry.name.replace(".up.sql", ".down.sql")
        found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(), down.read_text()))
    return tuple(sorted(found, key=lambda m: m.version))


def latest_version() -> int:
    return available()[-1].version


def create_maeve_base(connection: Connection) -> list[str]:
    """Create MaEVe's tables that are absent (never `schema_migrations`); return the names created."""
    script = (_sql_files() / "maeve_base.sql").read_text()
    tables = ("ocpi_registrations", "ocpi_parties", "locations")
    with connection.transaction():
        absent = [table for table in tables if not _exists(connection, table)]
        if absent:  # never even try to CREATE on a complete database: the role may not be allowed to
            connection.execute(script.encode())
    return absent


def _exists(connection: Connection, table: str) -> bool:
    row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def applied(connection: Connection) -> dict[int, Applied]:
    """The migrations recorded as applied; empty when the bookkeeping table does not exist yet."""
    if not _exists(connection, BOOKKEEPING):
        return {}
    query = sql.SQL("SELECT version, name, checksum, applied_at FROM {} ORDER BY version").format(
        sql.Identifier(BOOKKEEPING)
    )
    rows = connection.execute(query).fetchall()
    return {
        int(str(v)): Applied(int(str(v)), str(n), str(c), a)  # type: ignore[arg-type]
        for v, n, c, a in rows
    }


def pending(connection: Connection) -> list[Migration]:
    done = applied(connection)
    return [m for m in available() if m.version not in done]


def unknown(connection: Connection) -> list[int]:
    """Versions recorded as applied that this ocpi-parties does not ship: a newer one applied them."""
    shipped = {m.version for m in available()}
    return [version for version in applied(connection) if version not in shipped]


def refuse_newer(connection: Connection, label: str) -> None:
    newer = unknown(connection)
    if newer:
        raise ReconcilerError(
            f"{label} was migrated by a newer ocpi-parties (migrations {', '.join(map(str, newer))} are "
            "unknown to this one): upgrade ocpi-parties",
            exit_code=ExitCode.DATABASE,
        )


def require_current(connection: Connection, label: str) -> None:
    """Fail (exit code 3) unless every migration of this version, and no other, is applied."""
    refuse_newer(connection, label)
    missing = pending(connection)
    if missing:
        names = ", ".join(m.label for m in missing)
        raise ReconcilerError(
            f"{label} is not migrated for ocpi-parties (pending: {names}): run `ocpi-parties db migrate`",
            exit_code=ExitCode.DATABASE,
        )


def _ensure_bookkeeping(connection: Connection) -> None:
    with connection.transaction():
        lock_database(connection)
        connection.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " version integer PRIMARY KEY,"
                " name text NOT NULL,"
                " checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now(),"
                " applied_by text NOT NULL DEFAULT current_user)"
            ).format(sql.Identifier(BOOKKEEPING))
        )


def migrate(connection: Connection, to: int | None = None, label: str = "the database") -> list[Step]:
    """Apply (or, with a lower `to`, revert) migrations; return the steps run, none when up to date.

    Refuses a database that a newer ocpi-parties migrated: this one cannot know how to undo those steps.
    """
    versions = [m.version for m in available()]
    goal = versions[-1] if to is None else to
    if goal != 0 and goal not in versions:
        known = ", ".join(str(v) for v in versions)
        raise ReconcilerError(f"no migration {goal}: use 0 or one of {known}", exit_code=ExitCode.USAGE)
    refuse_newer(connection, label)
    _ensure_bookkeeping(connection)
    steps = []
    for migration in available():
        if migration.version <= goal:
            step = _run(connection, migration, "up")
            if step is not None:
                steps.append(step)
    for migration in reversed(available()):
        if migration.version > goal:
            step = _run(connection, migration, "down")
            if step is not None:
                steps.append(step)
    if goal == 0:
        with connection.transaction():
            lock_database(connection)
            connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(BOOKKEEPING)))
    return steps


def _run(connection: Connection, migration: Migration, direction: str) -> Step | None:
    """Run one step in its own transaction, unless another run did it already (checked under the lock)."""
    started = time.perf_counter()
    table = sql.Identifier(BOOKKEEPING)
    with connection.transaction():
        lock_database(connection)
        row = connection.execute(
            sql.SQL("SELECT 1 FROM {} WHERE version = %s").format(table), (migration.version,)
        ).fetchone()
        if (row is not None) == (direction == "up"):
            return None
        if direction == "up":
            connection.execute(migration.up.encode())
            connection.execute(
                sql.SQL("INSERT INTO {} (version, name, checksum) VALUES (%s, %s, %s)").format(table),
                (migration.version, migration.name, migration.checksum),
            )
        else:
            connection.execute(migration.down.encode())
            connection.execute(
                sql.SQL("DELETE FROM {} WHERE version = %s").format(table), (migration.version,)
            )
    return Step(migration, direction, time.perf_counter() - started)
