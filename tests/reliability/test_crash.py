"""Crash safety: `apply` of a large plan, killed with SIGKILL at many moments, leaves the database exactly as
it was before or exactly as a complete apply leaves it, never in between; the next apply then completes.

Each moment is reached deterministically, from outside the process: a lock the test holds that the apply
must wait for (the apply lock, a table a migration alters, a table the state read needs, the table the
location key validation locks), a gate trigger on the row the apply is about to write (see
`reliability.py`), or the move statement seen running in `pg_stat_activity` for a share of its measured
duration. Two before-states: a MaEVe database ocpi-parties never touched (the first apply also migrates) and
one already migrated by `db migrate` (so its history and config tables can be gated too).
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from maeve_sql import snapshot
from psycopg.conninfo import make_conninfo
from reliability import (
    GATE_KEY,
    LONG,
    active_statement,
    arm_gate,
    backends,
    create_database,
    database_copy,
    drop_database,
    holds_apply_lock,
    install_commit_gate,
    install_gates,
    large_plan_files,
    logical_state,
    seed_live,
    spawn,
    wait_for,
    waiting_at_gate,
    waiting_for_advisory,
    waiting_for_table,
)

from reconciler.cli import main
from reconciler.database import ADVISORY_LOCK_KEY, Connection
from reconciler.migrations import migrate

LOCATIONS = 50_000 if LONG else 5_000
MOVE = "UPDATE locations AS l"
ROOT = Path(__file__).parents[2]


@dataclass(frozen=True)
class BeforeState:
    template: str
    #: What a complete apply leaves, from this before-state.
    after: dict[str, Any]
    #: How long the orphan move statement ran in the reference apply, in seconds.
    move_seconds: float


@dataclass(frozen=True)
class Scenario:
    workdir: Path
    first: BeforeState
    migrated: BeforeState


def _apply_args(url: str) -> list[str]:
    return ["apply", "--auto-approve", "--database-url", url, "--actor", "crash-test", "--revision", "r1"]


def _before_state(admin: str, template: str, workdir: Path, *, migrated: bool) -> BeforeState:
    name = create_database(admin, template)
    url = make_conninfo(admin, dbname=name)
    with psycopg.connect(url, autocommit=True) as connection:
        seed_live(connection, LOCATIONS)
        if migrated:
            migrate(connection)
        tables = ("ocpi_parties", "locations")
        if migrated:
            tables += ("system_config", "reconciler_apply_history", "reconciler_managed_parties")
        install_gates(connection, tables, ddl=migrated)
        if migrated:
            install_commit_gate(connection)
        connection.execute("VACUUM ANALYZE")
    with database_copy(admin, name) as reference, psycopg.connect(reference, autocommit=True) as observer:
        process = spawn(_apply_args(reference), workdir)
        move_seconds = 0.0
        while process.poll() is None:
            move_seconds = max(move_seconds, active_statement(observer, MOVE) or 0.0)
            time.sleep(0.002)
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert "Apply complete:" in out
        after = logical_state(observer)
    return BeforeState(name, after, move_seconds)


@pytest.fixture(scope="module")
def scenario(
    postgres_admin: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    workdir = tmp_path_factory.mktemp("crash")
    shutil.copytree(ROOT / "parties", workdir / "parties")
    large_plan_files(workdir)
    first = _before_state(postgres_admin, template_database, workdir, migrated=False)
    try:
        migrated = _before_state(postgres_admin, template_database, workdir, migrated=True)
        try:
            yield Scenario(workdir, first, migrated)
        finally:
            drop_database(postgres_admin, migrated.template)
    finally:
        drop_database(postgres_admin, first.template)


Reached = Callable[[Connection], int | None]


@dataclass(frozen=True)
class Moment:
    name: str
    migrated: bool = False
    #: SQL run in an open transaction of a second session before the apply starts, released after the kill.
    hold: str | None = None
    #: (table, operation, row id or None): the gate to arm.
    gate: tuple[str, str, str | None] | None = None
    #: Polled until it names the apply's backend; None: kill after `delay` seconds from the start.
    reached: Reached | None = None
    delay: float = 0.0
    #: For a kill during the move: the share of the measured move duration to wait once it is seen running.
    move_share: float | None = None
    #: Kill once the process has printed that the apply is complete (after COMMIT).
    after_commit: bool = False
    #: The server has the COMMIT: it completes it even though the client is gone.
    commits: bool = False


def _table(table: str) -> Reached:
    return lambda observer: waiting_for_table(observer, table)


def _gate(table: str, op: str, row: str | None = None, *, migrated: bool = False) -> Moment:
    label = f"gate {op} {table}" + (f" {row}" if row else "")
    return Moment(label, migrated, gate=(table, op, row), reached=waiting_at_gate)


def _moments() -> list[Moment]:
    spread = [1, 1_250, 2_500, 3_750, LOCATIONS] if not LONG else list(range(1, LOCATIONS, 2_500))
    shares = [0.0, 0.1, 0.2, 0.3, 0.4] if not LONG else [n / 40 for n in range(24)]
    return [
        Moment("spawned, not started", delay=0.0),
        Moment("starting up, not connected", delay=0.2),
        Moment(
            "waiting for the apply lock",
            hold=f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY})",
            reached=lambda observer: waiting_for_advisory(observer, ADVISORY_LOCK_KEY),
        ),
        Moment(
            "holding the apply lock, reading the state",
            hold="LOCK TABLE locations IN ACCESS EXCLUSIVE MODE",
            reached=_table("locations"),
        ),
        Moment(
            "migration 0002 (after 0001)",
            hold="LOCK TABLE ocpi_parties IN ACCESS SHARE MODE",
            reached=_table("ocpi_parties"),
        ),
        Moment(
            "migration 0005 (after 0001-0004)",
            hold="LOCK TABLE locations IN ACCESS SHARE MODE",
            reached=_table("locations"),
        ),
        _gate("ocpi_parties", "INSERT"),
        _gate("ocpi_parties", "UPDATE"),
        *(_gate("locations", "UPDATE", f"LOC-{n:06d}") for n in spread),
        _gate("locations", "UPDATE", "LOC-000007"),  # the claimed location: a statement of its own
        _gate("locations", "UPDATE", "LOC-PT-25"),  # the moved_from group
        *(Moment(f"{share:.0%} into the move of all orphans", move_share=share) for share in shares),
        Moment("after COMMIT, before the process exits", after_commit=True),
        _gate("reconciler_apply_history", "INSERT", migrated=True),
        _gate("reconciler_managed_parties", "INSERT", migrated=True),
        _gate("system_config", "INSERT", migrated=True),
        _gate("locations", "UPDATE", "LOC-002500", migrated=True),
        Moment(
            "locking locations against writes",
            migrated=True,
            hold="LOCK TABLE locations IN ROW EXCLUSIVE MODE",  # as an open MaEVe write transaction does
            reached=_table("locations"),
        ),
        # The only DDL of an apply on a migrated database: ALTER TABLE locations VALIDATE CONSTRAINT.
        _gate("ddl", "ALTER TABLE", migrated=True),
        _gate("reconciler_apply_history", "UPDATE", migrated=True),  # the last statement before COMMIT
        Moment(
            "during COMMIT",
            migrated=True,
            gate=("commit", "INSERT", None),
            reached=waiting_at_gate,
            commits=True,
        ),
    ]


MOMENTS = _moments()


def _kill(process: Any, observer: Connection, moment: Moment, before: BeforeState) -> None:
    if moment.after_commit:
        assert process.stdout is not None
        wait_for(lambda: "Apply complete:" in process.stdout.readline(), timeout=120, what="the commit")
    elif moment.move_share is not None:
        share = moment.move_share * before.move_seconds

        def running_long_enough() -> bool:
            assert process.poll() is None, "the apply ended before the moment: make the move longer"
            return (active_statement(observer, MOVE) or -1.0) >= share

        wait_for(running_long_enough, timeout=60, what="the move statement")
    elif moment.reached is not None:
        wait_for(lambda: moment.reached(observer) if moment.reached else None, timeout=60, what=moment.name)
    else:
        time.sleep(moment.delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    # After COMMIT the process may have finished on its own before the signal arrived.
    assert process.returncode == -signal.SIGKILL or (moment.after_commit and process.returncode == 0)


@pytest.mark.parametrize(
    "moment", MOMENTS, ids=[("migrated: " if m.migrated else "first apply: ") + m.name for m in MOMENTS]
)
def test_a_killed_apply_leaves_the_before_or_the_after_state(
    postgres_admin: str, scenario: Scenario, moment: Moment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(scenario.workdir)
    before = scenario.migrated if moment.migrated else scenario.first
    with (
        database_copy(postgres_admin, before.template) as url,
        psycopg.connect(url, autocommit=True) as observer,
        psycopg.connect(url, autocommit=True) as holder,
    ):
        if moment.gate is not None:
            arm_gate(observer, *moment.gate)
        original = snapshot(observer)
        holder.execute("BEGIN")
        holder.execute(moment.hold or f"SELECT pg_advisory_xact_lock({GATE_KEY})")
        process = spawn(_apply_args(url), scenario.workdir)
        try:
            _kill(process, observer, moment, before)
        finally:
            process.kill()
            process.communicate()
        holder.execute("ROLLBACK")
        # The killed client's backend goes once it notices the closed connection; it must roll back.
        wait_for(lambda: not backends(observer), what="the killed apply's backend to end")
        assert not holds_apply_lock(observer)
        if moment.after_commit or moment.commits:
            assert logical_state(observer) == before.after, "COMMIT was sent: exactly the after-state"
        else:
            assert snapshot(observer) == original, "killed before COMMIT: exactly the before-state"
        observer.execute("DELETE FROM reliability_gate")

        with pytest.raises(SystemExit) as following:
            main(_apply_args(url))
        assert following.value.code in (0, None)
        assert logical_state(observer) == before.after
