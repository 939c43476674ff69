"""The test layout: tests/unit/ stays runnable without PostgreSQL (README: Development)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SERVER_FIXTURES, UNIT, pytest_collection_modifyitems


@dataclass
class _Item:
    nodeid: str
    path: Path
    fixturenames: tuple[str, ...]


@pytest.mark.parametrize("fixture", sorted(SERVER_FIXTURES))
def test_a_unit_test_that_asks_for_a_server_stops_the_run(fixture: str) -> None:
    item = _Item("tests/unit/test_x.py::test_y", UNIT / "test_x.py", ("tmp_path", fixture))
    with pytest.raises(pytest.UsageError, match=f"is a unit test but uses .*{fixture}"):
        pytest_collection_modifyitems([item])  # type: ignore[list-item]


def test_a_database_test_may_ask_for_a_server() -> None:
    db = UNIT.parent / "db" / "test_x.py"
    pytest_collection_modifyitems([_Item("tests/db/test_x.py::test_y", db, ("database_url",))])  # type: ignore[list-item]


def test_the_unit_tests_need_no_server(request: pytest.FixtureRequest) -> None:
    collected = [item for item in request.session.items if item.path.is_relative_to(UNIT)]
    assert all(not SERVER_FIXTURES.intersection(item.fixturenames) for item in collected)  # type: ignore[attr-defined]
