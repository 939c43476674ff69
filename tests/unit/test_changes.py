"""Every change type is counted, rendered, written and read back, and executed: none is forgotten.

mypy reports a `match` over `Change` that misses a type (each ends in `assert_never`); these tests check the
same at run time, for each type of the `Change` union, so a type added without a place in one of them fails
here too.
"""

from __future__ import annotations

from typing import Any, get_args

import pytest
from render_cases import every_change

from reconciler.apply import _Work
from reconciler.changes import Change, Counts, DeleteParty, Plan, RunMigrations, count_changes
from reconciler.output.plan import _change_lines
from reconciler.plan_document import change_document, change_of


def _samples() -> list[Change]:
    """One change of each type at least: every change of the golden plan, and migrations to run."""
    return [RunMigrations(("0001_system_config",)), *every_change().changes]


def test_the_samples_hold_every_change_type() -> None:
    assert {type(change) for change in _samples()} == set(get_args(Change))


@pytest.mark.parametrize("change", _samples(), ids=lambda change: type(change).__name__)
def test_each_change_is_counted(change: Change) -> None:
    assert count_changes([change]) != Counts()


@pytest.mark.parametrize("change", _samples(), ids=lambda change: type(change).__name__)
def test_each_change_is_rendered(change: Change) -> None:
    assert _change_lines(change, None)


@pytest.mark.parametrize("change", _samples(), ids=lambda change: type(change).__name__)
def test_each_change_reads_back_from_its_document(change: Change) -> None:
    again = change_of(change_document(change))
    assert again == change
    assert change_document(again) == change_document(change)


@pytest.mark.parametrize("change", _samples(), ids=lambda change: type(change).__name__)
def test_each_change_is_executed_by_apply(change: Change) -> None:
    """apply sorts each change to the statement that executes it (RunMigrations: the migrations it runs
    first); a blocked deletion is shown, never applied."""
    work = _Work.of(Plan((change,)))
    assert (work == _Work()) is (isinstance(change, DeleteParty) and change.blocked)


def _not_a_change() -> Any:
    return object()


@pytest.mark.parametrize(
    "dispatch",
    [
        lambda change: _change_lines(change, None),
        change_document,
        lambda change: count_changes([change]),
        lambda change: _Work.of(Plan((change,))),
    ],
    ids=["render", "document", "count", "apply"],
)
def test_an_unknown_change_type_is_refused_not_skipped(dispatch: Any) -> None:
    """Each dispatch ends in `assert_never`: a value of no known change type stops it."""
    with pytest.raises(AssertionError):
        dispatch(_not_a_change())
