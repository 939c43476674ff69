"""Which database a command uses, and a session on it.

Where the database is, first match wins:

1. `--database-url` or `OCPI_PARTIES_DATABASE_URL` (a URL or a libpq key=value string);
2. libpq's own `PG*` environment variables (`PGHOST`, `PGSERVICE`, ...) when any of them is set, which
   also covers service files named by `PGSERVICE`;
3. otherwise the embedded PostgreSQL under `.ocpi-parties/` in the working directory (`embedded.py`).

This module sits above `database.py` (what every session shares) and `embedded.py` (the embedded server),
which import neither it nor each other's callers. Every failure of the database leaves it as a
`ReconcilerError` with a one-line message that shows no password: the database is named by
`secret.mask_conninfo`, from libpq's own reading of the setting, and libpq's or the server's words go
through `database.failure`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict

from reconciler import __version__, embedded
from reconciler.database import (
    Connection,
    Notify,
    Settings,
    Target,
    check_maeve_tables,
    configure,
    map_error,
    secrets_of,
)
from reconciler.errors import UsageError
from reconciler.secret import SECRET_SETTINGS, mask_conninfo

CONNECT_TIMEOUT_SECONDS = 10

#: libpq variables that name a server; any of them set means "use libpq's environment".
LIBPQ_VARIABLES = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE", "PGSERVICEFILE")

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
        # Not `from error`: libpq's words quote the string, password and all, and a traceback shows them.
        raise _invalid(source, reason) from None
    if not all(_PORT.match(port) for port in params.get("port", "").split(",")):
        raise _invalid(source, "its port is not a number")
    return params


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else text.strip()


def _invalid(source: str, reason: str) -> UsageError:
    return UsageError(
        f"{source} is not a valid connection string: {reason} (in a URL, write @ : / % and spaces in a "
        "password as %40 %3A %2F %25 %20, or keep the password out of it)"
    )


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
    target = resolve(settings) or embedded.start(settings.workdir, notify)
    try:
        connection = psycopg.connect(
            target.conninfo,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name=f"ocpi-parties {__version__}",
        )
    except psycopg.Error as error:
        raise map_error(error, target, settings) from error
    # The password libpq sent may come from a password or service file, which the target does not know of.
    target = replace(target, secrets=(*target.secrets, *secrets_of(connection)))
    try:
        with connection:
            configure(connection, settings, read_only=read_only)
            if require_maeve:
                check_maeve_tables(connection, target)
            yield Session(connection, target, settings)
    except psycopg.Error as error:
        raise map_error(error, target, settings) from error
