"""`ocpi-parties show PLANFILE` re-renders a saved plan without a database; `history show N` shows one apply's
changes as the plan showed them, with its revision, pull request, actor and time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Run

from reconciler.database import Connection
from reconciler.errors import ExitCode


@pytest.mark.parametrize("output_format", ["text", "json", "markdown"])
def test_show_prints_what_plan_printed_when_it_saved_the_file(
    run: Run, live: Connection, database_url: str, workdir: Path, output_format: str
) -> None:
    code, printed, err = run(
        "plan", "--database-url", database_url, "--out", "plan.json", "--format", output_format
    )
    assert code == 0, err
    live.execute("DROP TABLE locations CASCADE")  # no database is read: what it holds now does not matter
    code, shown, err = run("show", "plan.json", "--format", output_format, "--database-url", "x")
    assert code == ExitCode.USAGE and "No such option" in err  # show has no database options
    code, shown, err = run("show", "plan.json", "--format", output_format)
    assert (code, err) == (0, "")
    assert shown == printed


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "error: cannot read the plan file plan.json"),
        ("{}", "error: plan.json is not a plan file written by `ocpi-parties plan --out`"),
        ('{"plan_file_version": 1}', "error: plan.json was made by ocpi-parties ? (plan file version 1)"),
    ],
)
def test_show_of_a_file_that_is_no_plan_file_exits_1(
    run: Run, workdir: Path, content: str | None, message: str
) -> None:
    if content is not None:
        (workdir / "plan.json").write_text(content)
    code, out, err = run("show", "plan.json")
    assert (code, out) == (ExitCode.INVALID, "")
    assert err.startswith(message)


def test_show_of_a_plan_file_whose_plan_is_unreadable_exits_1(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    assert run("plan", "--database-url", database_url, "--out", "plan.json")[0] == 0
    document = json.loads((workdir / "plan.json").read_text())
    document["plan"]["changes"][0]["action"] = "explode"
    (workdir / "plan.json").write_text(json.dumps(document))
    code, _, err = run("show", "plan.json")
    assert code == ExitCode.INVALID
    assert (
        "error: plan.json holds a plan that cannot be read (unknown action 'explode'): run plan again" in err
    )
    document.pop("plan")
    (workdir / "plan.json").write_text(json.dumps(document))
    code, _, err = run("show", "plan.json")
    assert code == ExitCode.INVALID and "error: plan.json holds no plan to show: run plan again" in err


def test_show_help_lists_no_database_exit_code(run: Run) -> None:
    out = run("show", "--help")[1]
    assert "Exit codes:" in out and "\n    3 " not in out and "\n    5 " not in out


def test_history_show_gives_the_apply_its_pull_request_and_the_changes_as_planned(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    url = "https://github.com/example/parties/pull/17"
    code, applied, err = run(
        "apply", "--auto-approve", "--database-url", database_url, "--revision", "c0ffee",
        "--actor", "deploy-bot", "--pull-request", "17", "--pull-request-url", url,
    )  # fmt: skip
    assert code == 0, err
    code, listed, err = run("history", "--database-url", database_url)
    assert code == 0, err
    assert listed.splitlines()[0].endswith(f"  c0ffee  pull request #17 ({url})  deploy-bot")

    code, out, err = run("history", "show", "1", "--database-url", database_url)
    assert code == 0, err
    head, _, changes = out.partition("\n\n")
    lines = head.splitlines()
    assert lines[0] == "Apply #1"
    assert lines[1].startswith("  applied at:   20")
    assert lines[2:] == [
        "  revision:     c0ffee",
        f"  pull request: #17 ({url})",
        "  actor:        deploy-bot",
        lines[5],
    ]
    assert lines[5].startswith("  tool version: ")
    # The changes in the very lines the apply printed, in the order it applied them.
    planned = applied.split("Declared partners without a row")[0]
    assert planned.startswith("ocpi-parties will make these changes, in this order:")
    assert changes[: len(planned)] == planned
    assert changes.rstrip().splitlines()[-1] == (
        "Plan: 2 to add, 1 to change, 0 to delete, 1 to adopt; 11 locations to move; 7 migrations to run."
    )

    code, out, err = run("history", "show", "1", "--format", "json", "--database-url", database_url)
    assert code == 0, err
    entry = json.loads(out)
    assert (entry["id"], entry["revision"], entry["actor"]) == (1, "c0ffee", "deploy-bot")
    assert (entry["pull_request_number"], entry["pull_request_url"]) == (17, url)
    assert entry["changes"][0]["action"] == "run_migrations"


def test_history_show_of_an_unknown_apply_exits_1(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    assert run("apply", "--auto-approve", "--database-url", database_url)[0] == 0
    code, out, err = run("history", "show", "2", "--database-url", database_url)
    assert (code, out) == (ExitCode.INVALID, "")
    assert err.startswith("error: no apply #2 in the history of ")
    code, listed, _ = run("history", "--database-url", database_url)
    assert "pull request" not in listed  # none was recorded
