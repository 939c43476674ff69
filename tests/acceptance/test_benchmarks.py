"""The benchmark script works: a small-scale run measures everything and leaves the database as the files say.

This checks that `python -m benchmarks` runs from the README and reports every figure, not the timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

MEDIANS = (
    "validate",
    "load_files",
    "load_files_plan",
    "plan_text",
    "plan_json",
    "orphan_count",
    "party_rows",
    "apply",
    "apply_moves",
    "apply_party_writes",
    "apply_key_validation",
    "party_insert",
    "party_update",
    "location_update",
    "per_row_sample",
    "per_row",
)
RATIOS = (
    "apply_moves",
    "plan_text",
    "plan_json",
    "apply",
    "apply_party_writes",
    "per_row",
    "validate",
    "memory_plan",
    "memory_plan_text",
    "memory_apply",
)


@pytest.fixture(scope="module")
def small_run(postgres_admin: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], str]:
    out = tmp_path_factory.mktemp("benchmark") / "small.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--scale", "small", "--repeat", "1", "--json", str(out),
         "--database-url", postgres_admin],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text()), done.stdout


def test_every_measurement_is_a_positive_number(small_run: tuple[dict[str, object], str]) -> None:
    document, _ = small_run
    medians = document["medians_s"]
    assert isinstance(medians, dict)
    for name in MEDIANS:
        assert medians[name] > 0, name
    ratios = document["ratios"]
    assert isinstance(ratios, dict)
    for name in RATIOS:
        assert ratios[name]["value"] > 0, name
    peak = document["peak_rss_bytes"]
    assert isinstance(peak, dict)
    commands = ("plan_text", "plan_json", "apply")
    assert sorted(peak) == sorted(f"{command}_{size}" for command in commands for size in (1000, 10000))
    assert all(value > 10 * 2**20 for value in peak.values())


def test_the_database_matches_the_files_after_apply(small_run: tuple[dict[str, object], str]) -> None:
    document, _ = small_run
    assert document["check"] == {
        "plan_after_apply_exit_code": 0,
        "orphans_after_apply": 0,
        "locations_moved_by_hand_written_sql": 1000,
        "same_end_state": True,
    }


def test_the_table_shows_every_figure_and_target(small_run: tuple[dict[str, object], str]) -> None:
    _, table = small_run
    assert "| validate, 200 files |" in table
    assert table.count("| peak RSS,") == 3
    for verdict in ("< 10 s:", "<= 2.0x:", "<= 1.3x:", "within 10%:"):
        assert verdict in table
