"""Each directory under tests/examples/{valid,invalid}/ is one case: a parties/ folder and its exact output.

`expected.txt` holds what `ocpi-parties validate parties` prints in that directory, then `exit: N`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.model import PROBLEM_CODES

EXAMPLES = Path(__file__).parents[1] / "examples"


def _cases(kind: str) -> list[Path]:
    return sorted(path for path in (EXAMPLES / kind).iterdir() if path.is_dir())


def _run(case: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[str, int]:
    monkeypatch.chdir(case)
    result = CliRunner().invoke(cli, ["validate", "parties", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.stdout, result.exit_code


@pytest.mark.parametrize("case", _cases("invalid"), ids=lambda path: path.name)
def test_invalid_example_gives_its_message(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output, code = _run(case, monkeypatch)
    assert f"{output}exit: {code}\n" == (case / "expected.txt").read_text(encoding="utf-8")
    assert code == 1


@pytest.mark.parametrize("case", _cases("valid"), ids=lambda path: path.name)
def test_valid_example_passes(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output, code = _run(case, monkeypatch)
    assert f"{output}exit: {code}\n" == (case / "expected.txt").read_text(encoding="utf-8")
    assert code == 0


def test_there_are_at_least_30_invalid_cases() -> None:
    assert len(_cases("invalid")) >= 30


def test_every_problem_code_has_an_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """The examples cover every rule; codes that need a generated file are covered in test_load.py."""
    seen: set[str] = set()
    for case in _cases("invalid") + _cases("valid"):
        output, _ = _run(case, monkeypatch, "--format", "json")
        seen.update(problem["code"] for problem in json.loads(output)["problems"])
    assert seen <= set(PROBLEM_CODES)
    assert set(PROBLEM_CODES) - seen == {"unreadable"}


def test_the_shipped_example_repository_is_one_of_the_valid_cases() -> None:
    shipped = Path(__file__).parents[2] / "parties"
    copy = EXAMPLES / "valid" / "example-repository" / "parties"
    assert sorted(p.name for p in shipped.iterdir()) == sorted(p.name for p in copy.iterdir())
    for path in shipped.iterdir():
        assert (copy / path.name).read_text(encoding="utf-8") == path.read_text(encoding="utf-8")
