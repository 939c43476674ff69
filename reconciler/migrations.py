"""MaEVe's base tables for development databases, and the reconciler's own schema migrations.

Migrations are the SQL files in `reconciler/sql/migrations/`, `NNNN_name.up.sql` with a `NNNN_name.down.sql`
that undoes it. Which ones are applied is kept in this project's table `reconciler_migrations`, never in
MaEVe's `schema_migrations` (golang-migrate's). Each step runs in its own transaction under the advisory
lock that `apply` also takes, and re-checks the bookkeeping inside it, so concurrent runs apply each step
once. `migrate(connection, to=N)` goes up or down to version N; N = 0 removes everything the reconciler
added (the data in its tables and columns included).

`PROVIDES` lists, per migration, the database objects it adds. MaEVe's own migrations may drop and create
its tables again (its 000005 down drops `ocpi_parties` and `locations`, with every column, constraint,
index and trigger of ours on them): `missing` finds what an applied migration provides but the database
lacks, `pending` counts such a migration (and every applied one after it) as one to run again, and
`migrate` runs their ups again, which are idempotent, without touching the bookkeeping.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources

from psycopg import sql

from reconciler.database import Connection, exists, lock_database
from reconciler.errors import DatabaseError, UsageError

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
class DatabaseObject:
    """A database object a migration adds: `kind` is table, column, constraint, trigger, function or index.

    A column is named `table.column`; a constraint or trigger by its name, with the table it is on.
    """

    kind: str
    name: str
    on: str | None = None

    def __str__(self) -> str:
        return f"{self.kind} {self.name}" + (f" on {self.on}" if self.on else "")

    @property
    def relation(self) -> str:
        """The table the object is, or is on, or the index; the function's name for a function."""
        if self.kind == "column":
            return self.name.split(".", 1)[0]
        return self.on or self.name

    @property
    def member(self) -> str:
        """The column, constraint or trigger name within its table; empty for the others."""
        if self.kind == "column":
            return self.name.split(".", 1)[1]
        return self.name if self.on else ""


def _objects(*specs: str) -> tuple[DatabaseObject, ...]:
    """'kind name' or 'kind name on table', one per argument."""
    found = []
    for spec in specs:
        kind, name, *rest = spec.split()
        found.append(DatabaseObject(kind, name, rest[1] if rest else None))
    return tuple(found)


#: What each migration adds, by version: what `missing` checks and the tests compare with the catalog.
PROVIDES: dict[int, tuple[DatabaseObject, ...]] = {
    1: _objects("table system_config"),
    2: _objects("column ocpi_parties.business_details"),
    3: _objects("table reconciler_apply_history"),
    4: _objects("table reconciler_managed_parties"),
    5: _objects(
        "column locations.party_role",
        "constraint locations_party_fk on locations",
        "trigger locations_owner_guard on locations",
        "function reconciler_location_owner_guard",
    ),
    6: _objects(
        "column ocpi_parties.holds_credentials",
        "index ocpi_parties_cpo_identity",
        "column reconciler_managed_parties.row_created_at",
        "column locations.recorded_country_code",
        "column locations.recorded_party_id",
        "index locations_recorded_owner",
        "table reconciler_location_claims",
        "table reconciler_moved_from",
        "function reconciler_location_owner",
    ),
    7: _objects(
        "column reconciler_apply_history.pull_request_number",
        "column reconciler_apply_history.pull_request_url",
    ),
}


@dataclass(frozen=True)
class Applied:
    """A row of the bookkeeping table."""

    version: int
    name: str
    checksum: str
    applied_at: datetime


@dataclass(frozen=True)
class Step:
    """One migration run by `migrate`: `direction` is "up", "down" or "restore" (the up of an applied
    migration run again because objects it provides are missing); `seconds` its duration."""

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
        absent = [table for table in tables if not exists(connection, table)]
        if absent:  # never even try to CREATE on a complete database: the role may not be allowed to
            connection.execute(script.encode())
    return absent


def applied(connection: Connection) -> dict[int, Applied]:
    """The migrations recorded as applied; empty when the bookkeeping table does not exist yet."""
    if not exists(connection, BOOKKEEPING):
        return {}
    query = sql.SQL("SELECT version, name, checksum, applied_at FROM {} ORDER BY version").format(
        sql.Identifier(BOOKKEEPING)
    )
    rows = connection.execute(query).fetchall()
    return {version: Applied(version, name, checksum, at) for version, name, checksum, at in rows}


# Each object is looked up as the migrations name it, unqualified: through the search_path.
_ABSENT = """
SELECT o.i
  FROM unnest(%(kinds)s::text[], %(relations)s::text[], %(members)s::text[]) WITH ORDINALITY
       AS o(kind, relation, member, i)
 WHERE NOT CASE o.kind
       WHEN 'table' THEN EXISTS (
            SELECT 1 FROM pg_class AS c WHERE c.oid = to_regclass(o.relation) AND c.relkind IN ('r', 'p'))
       WHEN 'index' THEN EXISTS (
            SELECT 1 FROM pg_class AS c WHERE c.oid = to_regclass(o.relation) AND c.relkind = 'i')
       WHEN 'column' THEN EXISTS (
            SELECT 1 FROM pg_attribute AS a
             WHERE a.attrelid = to_regclass(o.relation) AND a.attname = o.member AND NOT a.attisdropped)
       WHEN 'constraint' THEN EXISTS (
            SELECT 1 FROM pg_constraint AS k
             WHERE k.conrelid = to_regclass(o.relation) AND k.conname = o.member)
       WHEN 'trigger' THEN EXISTS (
            SELECT 1 FROM pg_trigger AS t WHERE t.tgrelid = to_regclass(o.relation) AND t.tgname = o.member)
       WHEN 'function' THEN to_regproc(o.relation) IS NOT NULL
       END
 ORDER BY o.i
"""


def absent(connection: Connection, objects: Sequence[DatabaseObject]) -> list[DatabaseObject]:
    """Those of `objects` that the database lacks, in the order given; one catalog query."""
    if not objects:
        return []
    rows = connection.execute(
        _ABSENT,
        {
            "kinds": [o.kind for o in objects],
            "relations": [o.relation for o in objects],
            "members": [o.member for o in objects],
        },
    ).fetchall()
    return [objects[row[0] - 1] for row in rows]


def _missing(connection: Connection, done: Mapping[int, Applied]) -> dict[int, tuple[DatabaseObject, ...]]:
    objects = [o for m in available() if m.version in done for o in PROVIDES.get(m.version, ())]
    lacking = set(absent(connection, objects))
    found = {}
    for migration in available():
        if migration.version in done:
            gone = tuple(o for o in PROVIDES.get(migration.version, ()) if o in lacking)
            if gone:
                found[migration.version] = gone
    return found


def missing(connection: Connection) -> list[tuple[Migration, tuple[DatabaseObject, ...]]]:
    """The applied migrations whose objects the database lacks (MaEVe's migrations may have dropped its
    tables and created them again), with the objects missing; empty when everything is there."""
    gone = _missing(connection, applied(connection))
    return [(m, gone[m.version]) for m in available() if m.version in gone]


def _to_restore(connection: Connection, done: Mapping[int, Applied], goal: int) -> list[Migration]:
    """The applied migrations up to `goal` to run again: the first one with missing objects and every
    applied one after it (a later migration may change what an earlier one made, a function say)."""
    gone = _missing(connection, done)
    if not gone:
        return []
    first = min(gone)
    return [m for m in available() if first <= m.version <= goal and m.version in done]


def pending(connection: Connection) -> list[Migration]:
    """The migrations `migrate` would run, in order: those to run again because objects they provide are
    missing (see `missing`), then those not applied yet."""
    done = applied(connection)
    again = _to_restore(connection, done, latest_version())
    return again + [m for m in available() if m.version not in done]


def unknown(connection: Connection) -> list[int]:
    """Versions recorded as applied that this ocpi-parties does not ship: a newer one applied them."""
    shipped = {m.version for m in available()}
    return [version for version in applied(connection) if version not in shipped]


def refuse_newer(connection: Connection, label: str) -> None:
    newer = unknown(connection)
    if newer:
        raise DatabaseError(
            f"{label} was migrated by a newer ocpi-parties (migrations {', '.join(map(str, newer))} are "
            "unknown to this one): upgrade ocpi-parties"
        )


def require_current(connection: Connection, label: str) -> None:
    """Fail (exit code 3) unless every migration of this version, and no other, is applied."""
    refuse_newer(connection, label)
    done = applied(connection)
    waiting = [m for m in available() if m.version not in done]
    if waiting:
        names = ", ".join(m.label for m in waiting)
        raise DatabaseError(
            f"{label} is not migrated for ocpi-parties (pending: {names}): run `ocpi-parties db migrate`"
        )
    gone = _missing(connection, done)
    if gone:
        raise DatabaseError(
            f"{label} lacks objects that ocpi-parties' applied migrations provide "
            f"({describe_missing(gone)}); MaEVe's own migrations may have dropped and created its tables "
            "again: run `ocpi-parties db migrate` to restore them"
        )


def describe_missing(gone: Mapping[int, Sequence[DatabaseObject]]) -> str:
    """'0005_location_owner: missing column locations.party_role, ...; 0006_...: ...'."""
    labels = {m.version: m.label for m in available()}
    return "; ".join(
        f"{labels[version]}: missing {', '.join(map(str, objects))}"
        for version, objects in sorted(gone.items())
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


#: What reverting each migration removes from the database, for the confirmation of `db migrate --to`.
REVERT_REMOVES = {
    1: "the default party setting",
    2: "the business details of every party row",
    3: "the apply history",
    4: "the records of which party rows ocpi-parties manages",
    5: "the location owner key and its guard (locations keep their identities)",
    6: "the recorded identities of locations and which party rows hold OCPI credentials",
    7: "the pull requests recorded in the apply history",
}


def _goal(to: int | None) -> int:
    versions = [m.version for m in available()]
    goal = versions[-1] if to is None else to
    if goal != 0 and goal not in versions:
        known = ", ".join(str(v) for v in versions)
        raise UsageError(f"no migration {goal}: use 0 or one of {known}")
    return goal


def to_revert(connection: Connection, to: int | None) -> list[Migration]:
    """The applied migrations that `migrate(to=...)` reverts, newest first (none when it only goes up)."""
    goal = _goal(to)
    done = applied(connection)
    return [m for m in reversed(available()) if m.version > goal and m.version in done]


def migrate(connection: Connection, to: int | None = None, label: str = "the database") -> list[Step]:
    """Apply (or, with a lower `to`, revert) migrations; return the steps run, none when up to date.

    Refuses a database that a newer ocpi-parties migrated: this one cannot know how to undo those steps.
    """
    goal = _goal(to)
    refuse_newer(connection, label)
    _ensure_bookkeeping(connection)
    steps = _restore(connection, goal)
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


def _restore(connection: Connection, goal: int) -> list[Step]:
    """Run again, in one transaction and in order, the ups of the applied migrations up to `goal` from the
    first one whose objects are missing; the bookkeeping stays as it is (they are applied already)."""
    steps = []
    with connection.transaction():
        lock_database(connection)
        for migration in _to_restore(connection, applied(connection), goal):
            started = time.perf_counter()
            connection.execute(migration.up.encode())
            steps.append(Step(migration, "restore", time.perf_counter() - started))
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
