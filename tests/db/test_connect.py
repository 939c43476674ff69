"""connect.py: which database a command uses and the session on it, above database.py and embedded.py.

Also the shape that module gives the package: no module imports one that imports it back, counting the
imports inside functions, which Python resolves as late as the call but which still tie the two together.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import psycopg
import pytest

from reconciler import connect, embedded
from reconciler.connect import resolve, session
from reconciler.database import Notify, Settings, Target
from reconciler.errors import ExitCode, ReconcilerError

PACKAGE = Path(connect.__file__).parent


def _imports(path: Path) -> set[str]:
    """The modules of the package that `path` imports anywhere in it (functions and TYPE_CHECKING too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name.split(".")[1] for name in names if name.startswith("reconciler.")}
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    return (found & modules) - {path.stem}


def _graph() -> dict[str, set[str]]:
    return {path.stem: _imports(path) for path in PACKAGE.glob("*.py")}


def test_the_package_has_no_import_cycle() -> None:
    graph = _graph()
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")
    assert set(order) >= set(graph)


def test_the_cycle_check_sees_imports_inside_functions() -> None:
    graph = _graph()
    assert "migrations" in graph["embedded"]  # imported at the top
    assert "connect" in graph["cli"]  # imported inside the commands only


def test_the_session_layer_runs_one_way() -> None:
    graph = _graph()
    assert graph["database"] <= {"errors", "secret"}
    assert "connect" not in graph["embedded"] | graph["migrations"] | graph["database"]
    assert {"database", "embedded"} <= graph["connect"]


def test_a_session_without_a_configured_database_starts_the_embedded_one(
    monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path
) -> None:
    """resolve() names no database, so the embedded one is started and its target used; notify reaches it."""
    started: list[Path] = []
    told: list[str] = []

    def start(workdir: Path, notify: Notify) -> Target:
        started.append(workdir)
        notify("embedded")
        return Target(database_url, "the test database", embedded=True)

    monkeypatch.setattr(embedded, "start", start)
    settings = Settings(workdir=tmp_path)
    assert resolve(settings, {}) is None
    for variable in (*connect.LIBPQ_VARIABLES, "PGPASSWORD"):
        monkeypatch.delenv(variable, raising=False)
    with session(settings, notify=told.append) as opened:
        row = opened.connection.execute("SHOW default_transaction_read_only").fetchone()
    assert started == [tmp_path] and told == ["embedded"]
    assert opened.target.label == "the test database" and row == ("on",)


def test_a_configured_database_never_starts_the_embedded_one(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    def start(workdir: Path, notify: Notify) -> Target:
        raise AssertionError("the embedded database was started")

    monkeypatch.setattr(embedded, "start", start)
    settings = Settings(url=database_url, statement_timeout="7s", lock_timeout="300ms")
    with session(settings, read_only=False) as opened:
        shown = opened.connection.execute(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),"
            " current_setting('default_transaction_read_only')"
        ).fetchone()
    assert shown == ("7s", "300ms", "off")


def test_an_unreadable_setting_is_a_usage_error_that_keeps_no_cause() -> None:
    """libpq's words about the string quote it, password and all: a traceback must not show them."""
    with pytest.raises(ReconcilerError) as raised:
        resolve(Settings(url="host=h password=pw' nonsense"), {})
    assert raised.value.exit_code == ExitCode.USAGE
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_an_error_never_shows_a_password_libpq_read_from_a_password_file(
    monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path
) -> None:
    """The URL names no password; libpq takes one from PGPASSFILE (the server here trusts the login, so it
    is never checked). A session's error that quotes it shows *** instead."""
    secret = "pw-from-a-password-file"
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"*:*:*:*:{secret}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))

    def failing(connection: object, target: Target) -> None:
        raise psycopg.errors.RaiseException(f"the server quoted {secret} back")

    monkeypatch.setattr(connect, "check_maeve_tables", failing)
    with pytest.raises(ReconcilerError) as raised, session(Settings(url=database_url)):
        pass
    assert secret not in raised.value.message and "the server quoted *** back" in raised.value.message
