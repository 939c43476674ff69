"""The exit codes a pipeline relies on, as real processes see them.

`plan --detailed-exitcode` exits 2 for "changes" and for nothing else; every `--help` lists the codes its
command can return, from the one table in reconciler/errors.py; an apply's exit code says what happened to
the database, even when its standard output is a pipe whose reader went away or Ctrl-C stops it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from conftest import Run
from maeve_sql import snapshot

from reconciler.connect import LIBPQ_VARIABLES
from reconciler.database import ADVISORY_LOCK_KEY, Connection
from reconciler.errors import MEANINGS, ExitCode

# ---------------------------------------------------------------------------------------------- plan


@pytest.mark.parametrize(
    ("args", "environment", "message"),
    [
        (["nowhere"], {}, "nowhere: no such file or directory"),
        (["--bogus"], {}, "No such option '--bogus'"),
        (["--database-url", "postgresql://u@db/maeve?nosuch=1"], {}, "is not a valid connection string"),
        ([], {"OCPI_PARTIES_LOCK_TIMEOUT": "soon"}, "invalid lock timeout 'soon'"),
    ],
    ids=["wrong path", "unknown option", "malformed database URL", "bad lock timeout"],
)
def test_with_detailed_exitcode_an_error_never_exits_2(
    args: list[str],
    environment: dict[str, str],
    message: str,
    *,
    run: Run,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    unreachable = ("--database-url", "postgresql://u@127.0.0.1:1/db")
    code, out, err = run("plan", *unreachable, *args)
    assert code == ExitCode.USAGE and message in err, err
    code, out, err = run("plan", "--detailed-exitcode", *unreachable, *args)
    assert code == ExitCode.INVALID, err
    assert message in err and out == ""


def test_with_detailed_exitcode_a_database_error_exits_1_too(run: Run, workdir: Path) -> None:
    """As in Terraform, every error is 1 under --detailed-exitcode: an unreachable database too."""
    unreachable = ("--database-url", "postgresql://u@127.0.0.1:1/db", "--lock-timeout", "1s")
    code, _, err = run("plan", *unreachable)
    assert code == ExitCode.DATABASE and "cannot connect" in err, err
    code, _, err = run("plan", "--detailed-exitcode", *unreachable)
    assert code == ExitCode.INVALID and "cannot connect" in err, err


def test_with_detailed_exitcode_only_changes_exit_2(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    assert run("plan", "--detailed-exitcode", "--database-url", database_url)[0] == ExitCode.CHANGES
    assert run("apply", "--auto-approve", "--database-url", database_url)[0] == ExitCode.OK
    assert run("plan", "--detailed-exitcode", "--database-url", database_url)[0] == ExitCode.OK


# ---------------------------------------------------------------------------------------------- --help


def _listed(out: str) -> dict[int, list[str]]:
    """The exit codes an epilog lists, each with its lines of meaning."""
    section = out.split("Exit codes:\n", 1)[1]
    listed: dict[int, list[str]] = {}
    for code, meaning in re.findall(r"^ +(\d+) +(\S.*)$", section, re.M):
        listed.setdefault(int(code), []).append(meaning)
    return listed


WITHOUT_DATABASE = {0, 1, 2, 70, 130}
WITH_DATABASE = WITHOUT_DATABASE | {3}


@pytest.mark.parametrize(
    ("command", "codes"),
    [
        ([], {int(code) for code in ExitCode}),
        (["validate"], WITHOUT_DATABASE),
        (["init"], WITHOUT_DATABASE),
        (["schema"], WITHOUT_DATABASE),
        (["plan"], WITH_DATABASE),
        (["apply"], WITH_DATABASE | {4, 5}),
        (["history"], WITH_DATABASE),
        (["history", "show"], WITH_DATABASE),
        (["show"], WITHOUT_DATABASE),
        (["import"], WITH_DATABASE),
        (["db"], WITH_DATABASE),
        (["db", "init"], WITH_DATABASE),
        (["db", "migrate"], WITH_DATABASE),
        (["db", "status"], WITH_DATABASE),
        (["parties"], WITH_DATABASE),
        (["parties", "list"], WITH_DATABASE),
        (["parties", "show"], WITH_DATABASE),
        (["locations"], WITH_DATABASE),
        (["default"], WITH_DATABASE),
    ],
    ids=lambda value: (" ".join(value) or "ocpi-parties") if isinstance(value, list) else "codes",
)
def test_each_help_lists_the_exit_codes_its_command_can_return(
    command: list[str], codes: set[int], run: Run
) -> None:
    code, out, _ = run(*command, "--help")
    assert code == 0
    listed = _listed(out)
    assert set(listed) == codes
    assert listed[2][-1].startswith(("with --detailed-exitcode", "plan --detailed-exitcode")) == (
        command in ([], ["plan"])
    ), "only plan's help (and the list of all codes) gives 2 a second meaning"


def test_every_command_has_an_exit_code_epilog(run: Run) -> None:
    from reconciler.cli import cli

    def commands(group: object, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        found = [path]
        for name, command in getattr(group, "commands", {}).items():
            found += commands(command, (*path, name))
        return found

    for path in commands(cli, ()):
        assert "Exit codes:" in run(*path, "--help")[1], path


def test_the_list_of_all_codes_is_the_table() -> None:
    from reconciler.cli import ALL_EXIT_CODES

    assert len(re.findall(r"^ +\d+ {1,3}\S", ALL_EXIT_CODES, re.M)) == len(MEANINGS)


# ---------------------------------------------------------------------------------------------- processes


def _environment() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if k not in LIBPQ_VARIABLES and not k.startswith(("OCPI_PARTIES_", "GITHUB_"))
    }


def _start(*args: str, cwd: Path, **streams: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=_environment(),
        stderr=subprocess.PIPE,
        **streams,  # type: ignore[call-overload]
    )


def _wait_for_a_lock(connection: Connection, process: subprocess.Popen[bytes]) -> None:
    """Until the process's session waits for a lock the test holds (`connection`: outside a transaction,
    which would see one snapshot of pg_stat_activity)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        waiting = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'ocpi-parties%'"
            " AND wait_event_type = 'Lock'"
        ).fetchone()
        if waiting and waiting[0]:
            return
        time.sleep(0.05)
    raise AssertionError("the apply never waited for the lock")


def _applies(connection: Connection) -> int:
    row = connection.execute(
        "SELECT CASE WHEN to_regclass('reconciler_apply_history') IS NULL THEN 0"
        " ELSE (SELECT count(*) FROM reconciler_apply_history) END"
    ).fetchone()
    return int(row[0]) if row else 0


def test_a_closed_stdout_after_commit_does_not_fail_the_apply(
    live: Connection, database_url: str, workdir: Path
) -> None:
    """`apply --auto-approve | head -2`: the reader leaves mid-apply, which commits all the same."""
    read, write = os.pipe()
    with psycopg.connect(database_url, autocommit=True) as other:
        other.execute("BEGIN")
        other.execute("SELECT 1 FROM locations FOR UPDATE")  # the apply's moves wait here, before COMMIT
        process = _start(
            "apply", "--auto-approve", "--database-url", database_url, "--lock-timeout", "60s",
            cwd=workdir, stdout=write,
        )  # fmt: skip
        os.close(write)
        _wait_for_a_lock(live, process)
        os.close(read)  # the reader has gone: every later write to stdout fails with EPIPE
        other.execute("ROLLBACK")
        _, err = process.communicate(timeout=60)
    assert process.returncode == ExitCode.OK, err.decode()
    assert "warning: the apply was committed, but standard output was closed" in err.decode()
    assert "Traceback" not in err.decode()
    assert _applies(live) == 1


def test_a_closed_stdout_before_commit_applies_nothing(
    live: Connection, database_url: str, workdir: Path
) -> None:
    """The plan apply shows for confirmation hits the closed pipe: nothing was applied, and it says so."""
    before = snapshot(live)
    terminal, keyboard = os.openpty()  # apply asks on a terminal
    read, write = os.pipe()
    os.close(read)
    process = _start("apply", "--database-url", database_url, cwd=workdir, stdin=keyboard, stdout=write)
    os.close(write)
    try:
        _, err = process.communicate(timeout=60)
    finally:
        os.close(terminal)
        os.close(keyboard)
    assert process.returncode == ExitCode.INVALID, err.decode()
    assert (
        "error: standard output was closed before the apply committed: nothing was changed (rolled back)"
        in err.decode()
    )
    assert snapshot(live) == before


def test_ctrl_c_while_apply_waits_changes_nothing_and_exits_130(
    live: Connection, database_url: str, workdir: Path
) -> None:
    before = snapshot(live)
    with psycopg.connect(database_url, autocommit=True) as other:
        other.execute("BEGIN")
        other.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        process = _start(
            "apply", "--auto-approve", "--database-url", database_url, "--lock-timeout", "60s",
            cwd=workdir, stdout=subprocess.PIPE,
        )  # fmt: skip
        _wait_for_a_lock(live, process)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        other.execute("ROLLBACK")
    assert process.returncode == ExitCode.INTERRUPTED, err.decode()
    assert "error: interrupted: nothing was changed (rolled back)" in err.decode()
    assert "Aborted." not in err.decode() and "Traceback" not in err.decode()
    assert snapshot(live) == before
