"""The README stays true to the code: its set-up commands, problem codes and CI script agree."""

from __future__ import annotations

import re
from pathlib import Path

from reconciler.errors import ExitCode
from reconciler.model import PROBLEM_CODES

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_starts_with_the_two_set_up_commands_that_ci_runs() -> None:
    block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert block is not None and README.index(block.group(0)) < 40
    install, test = block.group(1).strip().splitlines()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert install in ci
    assert test in ci


def test_readme_lists_every_problem_code() -> None:
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", README, re.M))
    assert listed == set(PROBLEM_CODES)


def test_readme_lists_the_exit_codes_of_help() -> None:
    rows = {int(code) for code in re.findall(r"^\| (\d+) \|", README, re.M)}
    assert rows == {int(code) for code in ExitCode}
