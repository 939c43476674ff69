"""Sessions on MaEVe's PostgreSQL database: their settings, the checks they make, and error mapping.

Which database a command uses (`--database-url`, `OCPI_PARTIES_DATABASE_URL`, libpq's `PG*` variables or
the embedded PostgreSQL) is decided above this module, in `connect.py`, which also opens the session; this
module holds what every session shares, below both `connect.py` and `embedded.py`: the one `Connection`
type, the settings read from options and the environment, the session settings (`statement_timeout`,
`lock_timeout`), the "does this table exist" check, the checks that the tables are MaEVe's, the advisory
lock, and the one mapper from psycopg errors to messages (`failure`: by SQLSTATE, libpq's or the server's
words on one line with every known password scrubbed). No message shows a password: the database is
named by its `Target.label`, made by `secret.mask_conninfo` from libpq's own reading of the setting.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum, auto
from pathlib import Path
from typing import assert_never
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from reconciler.errors import DatabaseError, ReconcilerError, UsageError
from reconciler.secret import scrub

URL_VARIABLE = "OCPI_PARTIES_DATABASE_URL"
URL_OPTION = "--database-url"
STATEMENT_TIMEOUT_VARIABLE = "OCPI_PARTIES_STATEMENT_TIMEOUT"
LOCK_TIMEOUT_VARIABLE = "OCPI_PARTIES_LOCK_TIMEOUT"
DEFAULT_STATEMENT_TIMEOUT = "60s"
DEFAULT_LOCK_TIMEOUT = "5s"
#: Every session also gets `idle_in_transaction_session_timeout`: how long it may sit idle inside a
#: transaction before the server ends it (rolling it back). The tool never waits for anything outside the
#: database inside a transaction (no output, no prompt), so this only fires when the process itself stalls
#: (stopped, suspended, starved) while it holds its locks: MaEVe's location writes then wait at most this
#: long for it. Its longest pause between two statements, computing a plan for 1,000,000 locations, is
#: about a second.
IDLE_IN_TRANSACTION_TIMEOUT = "30s"

#: The advisory lock that serialises `db migrate` and `apply` on one database: a fixed 64-bit number that
#: other software is unlikely to pick.
ADVISORY_LOCK_KEY = 0x2F6E_9C1B_43A0_7D15

#: Tables of MaEVe that every command except `db init` needs.
MAEVE_TABLES = ("ocpi_parties", "locations")

_TIMEOUT = re.compile(r"^\s*(\d+)\s*(ms|s|min|h)?\s*$")

Notify = Callable[[str], None]
#: A session's connection: every one is opened with psycopg's default rows, tuples.
Connection = psycopg.Connection[TupleRow]


@dataclass(frozen=True)
class Target:
    """Where to connect. `conninfo` is what libpq gets; `label` is what messages show (never a password)."""

    conninfo: str
    label: str
    embedded: bool = False
    #: Passwords that must never appear in a message (from the URL or PGPASSWORD): `failure` scrubs them.
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    """How to reach the database and what every session sets. Built from options and the environment."""

    url: str | None = None
    statement_timeout: str = DEFAULT_STATEMENT_TIMEOUT
    lock_timeout: str = DEFAULT_LOCK_TIMEOUT
    #: Working directory of the embedded database (its data lives in `<workdir>/.ocpi-parties/`).
    workdir: Path = Path()
    #: Where `url` came from, for messages that may show nothing of it: the option or the variable.
    url_source: str = URL_OPTION

    @classmethod
    def from_options(
        cls,
        url: str | None,
        statement_timeout: str | None,
        lock_timeout: str | None,
        environ: Mapping[str, str] | None = None,
        workdir: Path | None = None,
    ) -> Settings:
        env = os.environ if environ is None else environ
        url, url_source = _setting(url, URL_OPTION, URL_VARIABLE, env)
        statement, _ = _setting(statement_timeout, "--statement-timeout", STATEMENT_TIMEOUT_VARIABLE, env)
        lock, _ = _setting(lock_timeout, "--lock-timeout", LOCK_TIMEOUT_VARIABLE, env)
        return cls(
            url=url,
            statement_timeout=parse_timeout(statement or DEFAULT_STATEMENT_TIMEOUT, "statement timeout"),
            lock_timeout=parse_timeout(lock or DEFAULT_LOCK_TIMEOUT, "lock timeout"),
            workdir=workdir or Path.cwd(),
            url_source=url_source,
        )


def _setting(option: str | None, name: str, variable: str, env: Mapping[str, str]) -> tuple[str | None, str]:
    """The option, else the variable, with where it came from; None when neither is given.

    A setting given but empty (`OCPI_PARTIES_DATABASE_URL=` from a CI secret that was never set) is an
    error: taken as "not set", it would silently fall back to another database or the default.
    """
    value, source = (option, name) if option is not None else (env.get(variable), variable)
    if value is not None and not value.strip():
        raise UsageError(
            f"{source} is set but empty: give it a value or unset it (an empty CI secret is not a "
            "missing one)"
        )
    return value, source


def parse_timeout(text: str, what: str) -> str:
    """`30s`, `500ms`, `2min`, `1h` or a number of milliseconds -> PostgreSQL's spelling; 0 disables."""
    match = _TIMEOUT.match(text)
    if match is None:
        raise UsageError(
            f"invalid {what} {text!r}: use milliseconds or a number with ms, s, min or h (e.g. 30s)"
        )
    return f"{match.group(1)}{match.group(2) or 'ms'}"


class Cause(Enum):
    """What went wrong, as the SQLSTATE (or, for a refused login, libpq's words) says."""

    STATEMENT_TIMEOUT = auto()
    LOCK_TIMEOUT = auto()
    IDLE_TIMEOUT = auto()
    LOGIN_REFUSED = auto()
    MISSING_TABLE = auto()
    NO_CONNECTION = auto()
    OTHER = auto()


#: The timeouts, named by their SQLSTATE alone, before the words of the error are read.
_TIMEOUTS = {"57014": Cause.STATEMENT_TIMEOUT, "55P03": Cause.LOCK_TIMEOUT, "25P03": Cause.IDLE_TIMEOUT}
_LOGIN_REFUSED = re.compile(r"authentication|password|pg_hba\.conf|role \".*\" does not exist", re.I)
_SEVERITY = re.compile(r"^(FATAL|ERROR):\s+")


@dataclass(frozen=True)
class Failure:
    """A psycopg error read once: its cause, and libpq's or the server's words on one line (`reason`),
    every known password in them scrubbed."""

    cause: Cause
    reason: str
    sqlstate: str | None


def _words(error: psycopg.Error) -> str:
    """The server's or libpq's own words, on one line, without the `connection to server ...` preamble."""
    diag = getattr(error, "diag", None)
    primary = diag.message_primary if diag is not None else None
    text = primary or str(error)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    # libpq: 'connection to server at "h" (1.2.3.4), port 5432 failed: FATAL:  password authentication ...'
    for line in lines:
        if "failed:" in line:
            tail = line.rsplit("failed:", 1)[1].strip()
            return _SEVERITY.sub("", tail) or line
    return _SEVERITY.sub("", lines[0])


def _cause(error: psycopg.Error, reason: str) -> Cause:
    sqlstate = error.sqlstate or ""
    if sqlstate in _TIMEOUTS:
        return _TIMEOUTS[sqlstate]
    if sqlstate.startswith("28") or _LOGIN_REFUSED.search(reason):
        return Cause.LOGIN_REFUSED
    if sqlstate == "42P01":
        return Cause.MISSING_TABLE
    if isinstance(error, psycopg.OperationalError) or sqlstate.startswith(("08", "57P")):
        return Cause.NO_CONNECTION
    return Cause.OTHER


def failure(error: psycopg.Error, secrets: tuple[str, ...]) -> Failure:
    """The one reading of a psycopg error that every message of this tool is worded from."""
    reason = scrub(_words(error), secrets)
    return Failure(_cause(error, reason), reason, error.sqlstate)


def secrets_of(connection: Connection) -> tuple[str, ...]:
    """The password libpq sent on `connection` (from the setting, PGPASSWORD or a password file), as given
    and as a URL writes it: what `failure` scrubs from the words of an error on an open session."""
    password = connection.info.password
    return (password, quote(password, safe="")) if password else ()


MISSING_TABLES_HINT = "is it MaEVe's database? For a development database run `ocpi-parties db init` first"


def map_error(error: psycopg.Error, target: Target, settings: Settings) -> ReconcilerError:
    """A psycopg error of a session -> a ReconcilerError with one masked line and the documented exit code."""
    found = failure(error, target.secrets)
    where, reason = target.label, found.reason
    match found.cause:
        case Cause.STATEMENT_TIMEOUT:
            message = (
                f"a statement on {where} ran longer than statement_timeout={settings.statement_timeout} "
                f"and was cancelled; raise it with --statement-timeout ({reason})"
            )
        case Cause.LOCK_TIMEOUT:
            message = (
                f"could not lock a table on {where} within lock_timeout={settings.lock_timeout}: another "
                f"transaction holds it; try again or raise --lock-timeout ({reason})"
            )
        case Cause.LOGIN_REFUSED:
            message = f"the database refused the login at {where}: {reason}"
        case Cause.MISSING_TABLE:
            message = f"{where} lacks a table ocpi-parties needs ({reason}); {MISSING_TABLES_HINT}"
        case Cause.NO_CONNECTION:
            message = f"cannot connect to {where}: {reason}"
        case Cause.IDLE_TIMEOUT | Cause.OTHER:
            code = f" [{found.sqlstate}]" if found.sqlstate else ""
            return ReconcilerError(f"database error on {where}{code}: {reason}")
        case _:
            assert_never(found.cause)
    return DatabaseError(message)


def configure(connection: Connection, settings: Settings, *, read_only: bool) -> None:
    """Give a new session its timeouts and, for a read command, read-only transactions."""
    connection.execute(
        "SELECT set_config('statement_timeout', %s, false), set_config('lock_timeout', %s, false),"
        " set_config('idle_in_transaction_session_timeout', %s, false),"
        " set_config('default_transaction_read_only', %s, false)",
        (
            settings.statement_timeout,
            settings.lock_timeout,
            IDLE_IN_TRANSACTION_TIMEOUT,
            "on" if read_only else "off",
        ),
    )


def exists(connection: Connection, table: str, column: str | None = None) -> bool:
    """Whether the search path finds `table` (a table, view or index), and, when `column` is given, whether
    the table has that column: the one check of what a database has, before or after which migration."""
    if column is None:
        row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    else:
        row = connection.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass(%s)"
            " AND attname = %s AND attnum > 0 AND NOT attisdropped)",
            (table, column),
        ).fetchone()
    return bool(row and row[0])


def missing_maeve_tables(connection: Connection) -> list[str]:
    """MaEVe's tables that the current search path does not find."""
    return [table for table in MAEVE_TABLES if not exists(connection, table)]


#: The columns MaEVe's own migrations give its tables (reconciler/sql/maeve_base.sql): a table of that name
#: without them belongs to another application, whose tables ocpi-parties must never alter.
MAEVE_COLUMNS = {
    "ocpi_parties": ("id", "role", "country_code", "party_id", "url", "token", "created_at", "updated_at"),
    "locations": ("id", "country_code", "party_id", "location_data", "created_at", "updated_at"),
}


def foreign_maeve_tables(connection: Connection) -> dict[str, list[str]]:
    """MaEVe's table names that hold another table: each with the MaEVe columns it lacks (one query)."""
    rows = connection.execute(
        "SELECT t.name, a.attname FROM unnest(%s::text[]) AS t(name)"
        " JOIN pg_catalog.pg_attribute AS a ON a.attrelid = to_regclass(t.name)"
        " WHERE a.attnum > 0 AND NOT a.attisdropped",
        (list(MAEVE_COLUMNS),),
    ).fetchall()
    found: dict[str, set[str]] = {table: set() for table in MAEVE_COLUMNS}
    for table, column in rows:
        found[table].add(column)
    return {
        table: [c for c in columns if c not in found[table]]
        for table, columns in MAEVE_COLUMNS.items()
        if found[table] and not set(columns) <= found[table]
    }


def check_maeve_tables(connection: Connection, target: Target) -> None:
    """MaEVe's tables are there and are MaEVe's: checked before any command reads or changes anything."""
    missing = missing_maeve_tables(connection)
    if missing:
        raise DatabaseError(
            f"{target.label} has no MaEVe table {', '.join(missing)}: {MISSING_TABLES_HINT}, or point "
            f"--database-url at MaEVe's database"
        )
    foreign = foreign_maeve_tables(connection)
    if foreign:
        lacking = "; ".join(
            f"{table} has no column {', '.join(columns)}" for table, columns in foreign.items()
        )
        raise DatabaseError(
            f"the tables of {target.label} are not MaEVe's ({lacking}): is it MaEVe's database? Nothing was "
            "changed; point --database-url at MaEVe's database"
        )


@contextmanager
def snapshot(connection: Connection) -> Iterator[None]:
    """A transaction whose statements all read one snapshot (REPEATABLE READ): a page and its count, or the
    parts of `db status`, agree with each other however MaEVe writes meanwhile."""
    with connection.transaction():
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def lock_database(connection: Connection) -> None:
    """Take the transaction's advisory lock shared by `db migrate` and `apply` (waits up to lock_timeout).

    Then open pg_class, so that the session takes in what the run it waited for committed. Waiting for an
    advisory lock does not: a name looked up before (`to_regclass` of a table the other run created) would
    stay unknown to this transaction, and a second apply would plan the migrations the first one ran.
    Opening a relation for the first time in a transaction does.
    """
    connection.execute(sql.SQL("SELECT pg_advisory_xact_lock({})").format(sql.Literal(ADVISORY_LOCK_KEY)))
    connection.execute("SELECT FROM pg_catalog.pg_class WHERE false")
