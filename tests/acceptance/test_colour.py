"""Colour as Terraform prints it: only on a terminal (a real pseudo-terminal here), never with NO_COLOR or
--no-color, never in pipes, saved plan files, JSON or Markdown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import terminal
from conftest import Run

from reconciler.database import Connection
from reconciler.output import plan as plan_output

ROOT = Path(__file__).parents[2]
ESCAPE = "\x1b["
#: The SGR codes click writes for the colours of plan_output._COLORS.
GREEN, YELLOW, CYAN, BLUE, BRIGHT_BLACK = "\x1b[32m", "\x1b[33m", "\x1b[36m", "\x1b[34m", "\x1b[90m"


def _environment(extra: dict[str, str]) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "OCPI_PARTIES_DATABASE_URL")}
    return environment | {"PYTHONPATH": str(ROOT)} | extra


def on_terminal(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run the command line with stdout on a pseudo-terminal; what it printed there."""
    return terminal.on_terminal([sys.executable, "-m", "reconciler", *args], cwd, _environment(env or {}))


def in_pipe(args: list[str], cwd: Path) -> str:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=_environment({}),
        check=False,
    ).stdout


def test_every_symbol_has_a_colour_of_its_own() -> None:
    assert set(plan_output._COLORS) == set(plan_output._LEGEND)
    assert len(set(plan_output._COLORS.values())) == len(plan_output._COLORS)
    assert (plan_output._COLORS["+"], plan_output._COLORS["~"], plan_output._COLORS["-"]) == (
        "green",
        "yellow",
        "red",
    )


def test_plan_is_coloured_on_a_terminal_only(live: Connection, database_url: str, workdir: Path) -> None:
    coloured = on_terminal(["plan", "--database-url", database_url], workdir)
    assert f"{GREEN}+{ESCAPE}0m GB-TWK CPO will be created" in coloured
    assert f"{YELLOW}~{ESCAPE}0m default party will change" in coloured
    assert f"{CYAN}*{ESCAPE}0m NL-VLT EMSP will be adopted" in coloured
    assert f"{BLUE}>{ESCAPE}0m 11 locations recorded under no CPO" in coloured
    assert f"{BRIGHT_BLACK}?{ESCAPE}0m DE-EMO CPO is awaiting OCPI registration" in coloured

    for off in (
        on_terminal(["plan", "--database-url", database_url], workdir, {"NO_COLOR": "1"}),
        on_terminal(["--no-color", "plan", "--database-url", database_url], workdir),
        on_terminal(["plan", "--no-color", "--database-url", database_url], workdir),
        on_terminal(["plan", "--database-url", database_url, "--format", "json"], workdir),
        on_terminal(["plan", "--database-url", database_url, "--format", "markdown"], workdir),
        in_pipe(["plan", "--database-url", database_url], workdir),
    ):
        assert off and ESCAPE not in off
    # NO_COLOR counts when it is set to a non-empty value (https://no-color.org); empty, it does not.
    assert ESCAPE in on_terminal(["plan", "--database-url", database_url], workdir, {"NO_COLOR": ""})


def test_a_saved_plan_file_is_never_coloured(live: Connection, database_url: str, workdir: Path) -> None:
    shown = on_terminal(["plan", "--database-url", database_url, "--out", "plan.json"], workdir)
    assert ESCAPE in shown
    assert ESCAPE not in (workdir / "plan.json").read_text()
    assert f"{GREEN}+" in on_terminal(["show", "plan.json"], workdir)
    assert ESCAPE not in on_terminal(["--no-color", "show", "plan.json"], workdir)


def test_apply_prints_its_plan_in_colour_on_a_terminal(
    live: Connection, database_url: str, workdir: Path
) -> None:
    coloured = on_terminal(["apply", "--database-url", database_url, "--auto-approve"], workdir)
    assert f"{GREEN}+{ESCAPE}0m GB-TWK CPO will be created" in coloured
    assert f"{GREEN}+{ESCAPE}0m GB-TWK CPO will be created" in on_terminal(
        ["history", "show", "1", "--database-url", database_url], workdir
    )
    assert ESCAPE not in on_terminal(
        ["--no-color", "history", "show", "1", "--database-url", database_url], workdir
    )


@pytest.mark.parametrize("env", [{}, {"NO_COLOR": "yes"}])
def test_validate_follows_the_same_rule(env: dict[str, str], tmp_path: Path, run: Run) -> None:
    (tmp_path / "parties").mkdir()
    (tmp_path / "parties" / "GB-TWK.yaml").write_text("country_code: gb\n")
    coloured = on_terminal(["validate", "parties"], tmp_path, env)
    assert (ESCAPE in coloured) is (not env)
    assert ESCAPE not in on_terminal(["--no-color", "validate", "parties"], tmp_path, env)
