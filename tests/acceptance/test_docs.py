"""The README stays true to the code: its set-up commands, problem codes and CI script agree."""

from __future__ import annotations

import json
import re
from pathlib import Path

from reconciler.errors import ExitCode
from reconciler.model import PROBLEM_CODES

ROOT = Path(__file__).parents[2]
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


def test_readme_shows_the_figures_of_the_latest_full_benchmark() -> None:
    latest = json.loads((ROOT / "benchmarks" / "latest-full.json").read_text(encoding="utf-8"))
    medians, ratios = latest["medians_s"], latest["ratios"]
    assert latest["scale"]["name"] == "full" and latest["scale"]["locations"] == 1_000_000
    assert f"| validate, 10,000 files | {medians['validate']:.2f} s |" in README
    assert f"| plan (text) | {medians['plan_text']:.2f} s |" in README
    assert (
        f"| {medians['apply_moves']:.3f} s | hand-written UPDATE: {medians['location_update']:.3f} s"
        in README
    )
    assert f"| {ratios['apply_moves']['value']:.2f} | <= 1.3x:" in README


def _readme_party_files() -> list[tuple[str, str]]:
    """The party files the README's "A party file" section shows, with the file name each is shown as."""
    section = README.split("\n## A party file\n", 1)[1].split("\n## ", 1)[0]
    found = [
        (
            "DE-EMO.yaml",
            re.findall(r"```yaml\n(# yaml-language-server: \$schema=\.\./schema/party.*?)```", section, re.S)[
                0
            ],
        )
    ]
    found += re.findall(r"```yaml\n# parties/([A-Z]{2}-[A-Z0-9]{3}\.yaml)[:\n](.*?)```", section, re.S)
    return found


def test_the_party_files_of_the_readme_are_valid(tmp_path: Path) -> None:
    from reconciler.validate import validate_path

    shown = _readme_party_files()
    assert [name for name, _ in shown] == ["DE-EMO.yaml", "ES-CPO.yaml", "GB-OLD.yaml"]
    for name, text in shown:
        path = tmp_path / name
        path.write_text(text.split("\n", 1)[1] if name == "GB-OLD.yaml" else text, encoding="utf-8")
        assert validate_path(path, name).problems == (), name
    assert "\nkind: partner " in shown[0][1] and "\nkind: hosted\n" in shown[1][1]
    assert "kind" not in shown[2][1]  # a tombstone needs none


def test_license_file_is_the_apache_license_pyproject_declares() -> None:
    """pyproject.toml says Apache-2.0; the LICENSE file beside it holds that licence's text."""
    import tomllib

    root = Path(__file__).parents[2]
    declared = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["license"]
    text = (root / "LICENSE").read_text(encoding="utf-8")
    assert declared == "Apache-2.0"
    assert "Apache License\n" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert text.rstrip().endswith("END OF TERMS AND CONDITIONS")


def test_the_documented_completion_command_prints_a_completion_script() -> None:
    """The README's `_OCPI_PARTIES_COMPLETE=bash_source ocpi-parties` prints a bash script that completes."""
    import os
    import subprocess
    import sys

    root = Path(__file__).parents[2]
    assert 'eval "$(_OCPI_PARTIES_COMPLETE=bash_source ocpi-parties)"' in (root / "README.md").read_text()
    program = "from reconciler.cli import main; main()"  # the console script's entry point
    environment = {**os.environ, "_OCPI_PARTIES_COMPLETE": "bash_source", "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", program], env=environment, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert "_ocpi_parties_completion()" in done.stdout
    assert "complete -o nosort -F _ocpi_parties_completion ocpi-parties" in done.stdout
