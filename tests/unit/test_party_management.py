"""docs/party-management.md's examples are real: each party file it shows is valid, and its plan line is the
one plan prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reconciler.validate import validate_path

ROOT = Path(__file__).parents[2]
GUIDE = (ROOT / "docs" / "party-management.md").read_text(encoding="utf-8")
EXAMPLES = re.findall(r"```yaml\n# (parties/[A-Z]{2}-[A-Z0-9]{3}\.yaml)\n(.*?)```", GUIDE, re.S)


def test_the_guide_shows_party_files() -> None:
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize(("name", "text"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_each_party_file_of_the_guide_is_valid(name: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    result = validate_path(path, name)
    assert not result.problems, [str(problem) for problem in result.problems]


def test_the_blocked_deletion_line_is_what_plan_prints() -> None:
    line = re.search(r"^  x GB-OLD CPO will NOT be deleted: .*$", GUIDE, re.M)
    assert line is not None
    golden = (ROOT / "tests" / "golden" / "plan.txt").read_text(encoding="utf-8")
    assert line.group(0).replace("GB-OLD CPO", "GB-OFF CPO") in golden.splitlines()
