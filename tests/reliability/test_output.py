"""apply never holds MaEVe's writes hostage: no output is written while a lock is held.

A real `ocpi-parties apply --auto-approve` that moves locations writes its stdout into a pipe whose buffer the
test has filled and nobody reads (a stalled log pipe, a pager, a FIFO nobody opens for reading): its first
write blocks. Meanwhile MaEVe saves a location (its SetLocation, verbatim) from another connection, with a
statement timeout of its own: the save completes, because the apply computed and committed before it wrote
anything. Then the reader reads, and the apply finishes with its plan and "Apply complete".

Should the process itself stall inside its transaction (stopped, suspended, starved), the server ends its
session after `idle_in_transaction_session_timeout`, which every session of the tool sets: MaEVe waits no
longer than that, and the apply changes nothing.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest
from conftest import Run
from maeve_sql import location_owner, save_location, snapshot
from psycopg.pq import TransactionStatus
from reliability import cli_environment, command, seed_live, wait_for

from reconciler import apply as apply_module
from reconciler import database
from reconciler.changes import Plan
from reconciler.connect import session
from reconciler.database import Connection, Settings
from reconciler.errors import ExitCode
from reconciler.migrations import migrate
from reconciler.model import DesiredState
from reconciler.state import plan_against

#: MaEVe's own patience for one statement in this test.
MAEVE_STATEMENT_TIMEOUT = "5s"


def _filled_pipe() -> tuple[int, int]:
    """A pipe whose buffer is full: the next write to its write end blocks until the read end is read."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        while True:
            os.write(write_end, b"." * 65_536)
    except BlockingIOError:
        pass
    os.set_blocking(write_end, True)
    return read_end, write_end


def _blocked_or_done(observer: Connection) -> bool:
    """The apply holds a lock on `locations` while its session is idle (blocked outside the database), or
    it has committed."""
    held = observer.execute(
        "SELECT count(*) FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid"
        " WHERE l.granted AND l.locktype = 'relation' AND l.relation = 'locations'::regclass"
        "   AND a.application_name LIKE 'ocpi-parties%%' AND a.state = 'idle in transaction'"
    ).fetchone()
    committed = observer.execute("SELECT count(*) FROM reconciler_apply_history").fetchone()
    return bool(held and held[0]) or bool(committed and committed[0])


def _drain(read_end: int, into: bytearray) -> None:
    with os.fdopen(read_end, "rb") as reader:
        while chunk := reader.read(65_536):
            into.extend(chunk)


def test_a_stalled_stdout_does_not_hold_maeve_location_writes(
    database_url: str, workdir: Path, tmp_path: Path
) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        seed_live(connection, 2_000)
        migrate(connection)
    read_end, write_end = _filled_pipe()
    stderr = (tmp_path / "stderr").open("w+")
    process = subprocess.Popen(
        command("apply", "--auto-approve", "--database-url", database_url),
        cwd=workdir,
        env=cli_environment(),
        stdout=write_end,
        stderr=stderr,
    )
    os.close(write_end)
    output = bytearray()
    reader = threading.Thread(target=_drain, args=(read_end, output))
    try:
        with (
            psycopg.connect(database_url, autocommit=True) as observer,
            psycopg.connect(database_url, autocommit=True) as maeve,
        ):
            wait_for(lambda: _blocked_or_done(observer), timeout=60, what="the apply to block on its output")
            maeve.execute("SELECT set_config('statement_timeout', %s, false)", (MAEVE_STATEMENT_TIMEOUT,))
            try:
                save_location(maeve, "MAEVE-DURING-APPLY", "XX")
            except psycopg.errors.QueryCanceled as error:
                raise AssertionError(
                    f"MaEVe's location write waited longer than {MAEVE_STATEMENT_TIMEOUT} behind an apply "
                    f"whose stdout nobody reads: {error}"
                ) from None
            # The apply is still stuck on its output, so the write above really ran while it was.
            assert process.poll() is None
            reader.start()
            assert process.wait(timeout=60) == 0, stderr.seek(0) or stderr.read()
            reader.join(timeout=60)
            text = output.decode()
            assert "Apply complete:" in text
            assert text.index("Apply complete:") > text.index("locations")
            # Saved during the apply, after its moves: the default party it set owns it.
            assert location_owner(observer, "MAEVE-DURING-APPLY")[2] == "CPO"
    finally:
        if reader.ident is None:
            reader.start()
        process.wait(timeout=120)
        reader.join(timeout=60)
        stderr.close()


def test_every_session_ends_itself_when_idle_inside_a_transaction(database_url: str) -> None:
    with session(Settings(url=database_url)) as opened:
        shown = opened.connection.execute("SELECT current_setting('idle_in_transaction_session_timeout')")
        assert shown.fetchone() == (database.IDLE_IN_TRANSACTION_TIMEOUT,)


def test_an_apply_stalled_inside_its_transaction_is_ended_and_changes_nothing(
    run: Run, live: Connection, database_url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "IDLE_IN_TRANSACTION_TIMEOUT", "300ms")
    monkeypatch.setattr(apply_module, "IDLE_IN_TRANSACTION_TIMEOUT", "300ms")

    def stalling(connection: Connection, desired: DesiredState, *, allow_delete: bool) -> tuple[Plan, str]:
        planned = plan_against(connection, desired, allow_delete=allow_delete)
        if connection.info.transaction_status == TransactionStatus.INTRANS:
            time.sleep(1)  # the process stalls while it holds apply's locks
        return planned

    monkeypatch.setattr(apply_module, "plan_against", stalling)
    before = snapshot(live)
    code, _, err = run("apply", "--auto-approve", "--database-url", database_url)
    assert code == ExitCode.DATABASE, err
    assert "idle_in_transaction_session_timeout=300ms" in err
    assert "nothing was changed (rolled back)" in err
    assert snapshot(live) == before
