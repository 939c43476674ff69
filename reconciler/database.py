"""Connections to MaEVe's PostgreSQL database: where to connect, session settings, and error mapping.

Where the database is, first match wins:

1. `--database-url` or `OCPI_PARTIES_DATABASE_URL` (a URL or a libpq key=value string);
2. libpq's own `PG*` environment variables (`PGHOST`, `PGSERVICE`, ...) when any of them is set, which
   also covers service files named by `PGSERVICE`;
3. otherwise the embedded PostgreSQL under `.ocpi-parties/` in the working directory (`embedded.py`).

Every session gets `statement_timeout` and `lock_timeout`. Every failure of the database leaves this
module as a `ReconcilerError` with a one-line message that shows no password: the database is named by
`mask_conninfo`, from libpq's own reading of the setting, and libpq's or the server's words go through
`scrub`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from reconciler import __version__
from reconciler.errors import DatabaseError, ReconcilerError, UsageError
from reconciler.secret import MASK

URL_VARIABLE = "OCPI_PARTIES_DATABASE_URL"
URL_OPTION = "--database-url"
STATEMENT_TIMEOUT_VARIABLE = "OCPI_PARTIES_STATEMENT_TIMEOUT"
LOCK_TIMEOUT_VARIABLE = "OCPI_PARTIES_LOCK_TIMEOUT"
DEFAULT_STATEMENT_TIMEOUT = "60s"
DEFAULT_LOCK_TIMEOUT = "5s"
CONNECT_TIMEOUT_SECONDS = 10
#: Every session also gets `idle_in_transaction_session_timeout`: how long it may sit idle inside a
#: transaction before the server ends it (rolling it back). The tool never waits for anything outside the
#: database inside a transaction (no output, no prompt), so this only fires when the process itself stalls
#: (stopped, suspended, starved) while it holds its locks: MaEVe's location writes then wait at most this
#: long for it. Its longest pause between two statements, computing a plan for 1,000,000 locations, is
#: about a second.
IDLE_IN_TRANSACTION_TIMEOUT = "30s"

#: libpq variables that name a server; any of them set means "use libpq's environment".
LIBPQ_VARIABLES = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE", "PGSERVICEFILE")

#: The advisory lock that serialises `db migrate` and `apply` on one database: a fixed 64-bit number that
#: other software is unlikely to pick.
ADVISORY_LOCK_KEY = 0x2F6E_9C1B_43A0_7D15

#: Tables of MaEVe that every command except `db init` needs.
MAEVE_TABLES = ("ocpi_parties", "locations")

_TIMEOUT = re.compile(r"^\s*(\d+)\s*(ms|s|min|h)?\s*$")

Notify = Callable[[str], None]
Connection = psycopg.Connection[tuple[object, ...]]


@dataclass(frozen=True)
class Target:
    """Where to connect. `conninfo` is what libpq gets; `label` is what messages show (never a password)."""

    conninfo: str
    label: str
    embedded: bool = False
    #: Passwords that must never appear in a message (from the URL or PGPASSWORD).
    secrets: tuple[str, ...] = ()

    def scrub(self, text: str) -> str:
        """`text` (words of libpq or the server) with every known password, standing alone, as `***`."""
        return scrub(text, self.secrets)


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


#: Settings of libpq that hold a secret.
SECRET_SETTINGS = ("password", "sslpassword")
#: The settings that name the server, shown first.
_FIRST_SETTINGS = ("host", "hostaddr", "port", "dbname", "user")
_QUOTED = re.compile(r'"[^"]*"')
_PORT = re.compile(r"^\s*\d*\s*$")


def parse_conninfo(conninfo: str, source: str) -> dict[str, str]:
    """A URL or key=value string -> libpq's settings, as libpq itself reads them.

    A string libpq cannot read, or whose port is not a number (`postgresql://u:p@ss:w/rd@host/db`: an
    unescaped `@` in a password moves the rest of it into host, port and database name), is a usage error
    that shows no part of the string, only `source` (`--database-url` or the variable) and libpq's reason
    with every quoted piece of the string left out.
    """
    try:
        params = {key: str(value) for key, value in conninfo_to_dict(conninfo).items() if value is not None}
    except psycopg.ProgrammingError as error:
        reason = _QUOTED.sub('"..."', _first_line(str(error)))
        raise _invalid(source, reason) from None
    if not all(_PORT.match(port) for port in params.get("port", "").split(",")):
        raise _invalid(source, "its port is not a number")
    return params


def _invalid(source: str, reason: str) -> UsageError:
    return UsageError(
        f"{source} is not a valid connection string: {reason} (in a URL, write @ : / % and spaces in a "
        "password as %40 %3A %2F %25 %20, or keep the password out of it)"
    )


def mask_conninfo(params: Mapping[str, str]) -> str:
    """libpq's settings as a key=value string that names the database and shows every secret as `***`.

    The one way this tool shows a database it was given: built from libpq's own reading of the string
    (`parse_conninfo`), never by searching the text, so no part of a password can be left over.
    """
    ordered = sorted(params, key=lambda key: (*_FIRST_SETTINGS, key).index(key))
    shown = {key: MASK if key in SECRET_SETTINGS else params[key] for key in ordered}
    return make_conninfo(**shown) if shown else "libpq's defaults"


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with each known secret that stands alone (not inside a longer word) replaced by `***`.

    For words of libpq and the server, which do not quote a password but might: a secret inside an ordinary
    word is a coincidence of letters, not the secret, and is left alone.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", MASK, text)
    return text


def resolve(settings: Settings, environ: Mapping[str, str] | None = None) -> Target | None:
    """The configured database, or None when none is: then the embedded database is used."""
    env = os.environ if environ is None else environ
    password = env.get("PGPASSWORD", "")
    if settings.url is not None:
        params = parse_conninfo(settings.url, settings.url_source)
        given = [params[key] for key in SECRET_SETTINGS if params.get(key)]
        secrets = (*given, *(quote(secret, safe="") for secret in given), password)
        return Target(settings.url, mask_conninfo(params), secrets=secrets)
    named = [name for name in LIBPQ_VARIABLES if env.get(name)]
    if named:
        shown = " ".join(f"{name}={env[name]}" for name in named)
        return Target("", f"the database of libpq's environment ({shown})", secrets=(password,))
    return None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else text.strip()


def _reason(error: psycopg.Error) -> str:
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
            return re.sub(r"^(FATAL|ERROR):\s+", "", tail) or line
    return re.sub(r"^(FATAL|ERROR):\s+", "", lines[0])


_LOGIN_REFUSED = re.compile(r"authentication|password|pg_hba\.conf|role \".*\" does not exist", re.I)


def map_error(error: psycopg.Error, target: Target, settings: Settings) -> ReconcilerError:
    """A psycopg error -> a ReconcilerError with one masked line and the documented exit code."""
    reason = target.scrub(_reason(error))
    sqlstate = error.sqlstate or ""
    where = target.label
    if isinstance(error, errors.QueryCanceled):
        message = (
            f"a statement on {where} ran longer than statement_timeout={settings.statement_timeout} "
            f"and was cancelled; raise it with --statement-timeout ({reason})"
        )
    elif isinstance(error, errors.LockNotAvailable):
        message = (
            f"could not lock a table on {where} within lock_timeout={settings.lock_timeout}: another "
            f"transaction holds it; try again or raise --lock-timeout ({reason})"
        )
    elif sqlstate.startswith("28") or _LOGIN_REFUSED.search(reason):
        message = f"the database refused the login at {where}: {reason}"
    elif isinstance(error, errors.UndefinedTable):
        message = f"{where} lacks a table ocpi-parties needs ({reason}); {MISSING_TABLES_HINT}"
    elif isinstance(error, psycopg.OperationalError) or sqlstate.startswith(("08", "57P")):
        message = f"cannot connect to {where}: {reason}"
    else:
        code = f" [{sqlstate}]" if sqlstate else ""
        return ReconcilerError(f"database error on {where}{code}: {reason}")
    return DatabaseError(message)


MISSING_TABLES_HINT = "is it MaEVe's database? For a development database run `ocpi-parties db init` first"


@dataclass
class Session:
    """An open connection with the settings it was opened with; `target` labels it in messages."""

    connection: Connection
    target: Target
    settings: Settings


def _notify_nothing(message: str) -> None:
    return None


@contextmanager
def session(
    settings: Settings,
    *,
    read_only: bool = True,
    require_maeve: bool = True,
    notify: Notify = _notify_nothing,
) -> Iterator[Session]:
    """Open a session on the configured (or embedded) database; map every psycopg error on the way.

    `read_only` makes every transaction read-only, so a read command cannot change anything even by
    mistake. `require_maeve` checks MaEVe's tables first and fails with exit code 3 when they are absent.
    The connection is in autocommit mode: units of work use `connection.transaction()`.
    """
    target = resolve(settings)
    if target is None:
        from reconciler import embedded

        target = embedded.start(settings.workdir, notify)
    try:
        connection = psycopg.connect(
            target.conninfo,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name=f"ocpi-parties {__version__}",
        )
    except psycopg.Error as error:
        raise map_error(error, target, settings) from None
    try:
        with connection:
            _configure(connection, settings, read_only=read_only)
            if require_maeve:
                check_maeve_tables(connection, target)
            yield Session(connection, target, settings)
    except psycopg.Error as error:
        raise map_error(error, target, settings) from None


def _configure(connection: Connection, settings: Settings, *, read_only: bool) -> None:
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


def missing_maeve_tables(connection: Connection) -> list[str]:
    """MaEVe's tables that the current search path does not find."""
    missing = []
    for table in MAEVE_TABLES:
        row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        if row is None or not row[0]:
            missing.append(table)
    return missing


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
        found[str(table)].add(str(column))
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


def lock_database(connection: Connection) -> None:
    """Take the transaction's advisory lock shared by `db migrate` and `apply` (waits up to lock_timeout).

    Then open pg_class, so that the session takes in what the run it waited for committed. Waiting for an
    advisory lock does not: a name looked up before (`to_regclass` of a table the other run created) would
    stay unknown to this transaction, and a second apply would plan the migrations the first one ran.
    Opening a relation for the first time in a transaction does.
    """
    connection.execute(sql.SQL("SELECT pg_advisory_xact_lock({})").format(sql.Literal(ADVISORY_LOCK_KEY)))
    connection.execute("SELECT FROM pg_catalog.pg_class WHERE false")
