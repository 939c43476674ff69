"""`db migrate` changes only MaEVe's database, and reverts (which removes data) only when confirmed."""

from __future__ import annotations

import io

import psycopg
import pytest
from conftest import Run

from reconciler import migrations


def _tables(url: str) -> dict[str, list[str]]:
    with psycopg.connect(url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
            " ORDER BY table_name, ordinal_position"
        ).fetchall()
    tables: dict[str, list[str]] = {}
    for table, column in rows:
        tables.setdefault(table, []).append(column)
    return tables


def test_tables_named_like_maeves_but_not_maeves_are_left_alone(run: Run, empty_database_url: str) -> None:
    with psycopg.connect(empty_database_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE ocpi_parties (id integer PRIMARY KEY, name text)")
        connection.execute("CREATE TABLE locations (id integer PRIMARY KEY, place text)")
    before = _tables(empty_database_url)
    for command in (("db", "migrate"), ("apply", "--auto-approve"), ("plan",), ("parties", "list")):
        code, _, err = run(*command, "--database-url", empty_database_url)
        assert code == 3, (command, err)
        assert "are not MaEVe's (ocpi_parties has no column role, country_code, party_id, url, token" in err
        assert "locations has no column country_code, party_id, location_data" in err
        assert "Nothing was changed" in err
    assert _tables(empty_database_url) == before


def test_migrate_down_without_a_terminal_needs_yes(
    run: Run, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("db", "migrate", "--database-url", database_url)[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, out, err = run("db", "migrate", "--to", "0", "--database-url", database_url)
    assert code == 1 and out == ""
    assert "error: db migrate --to 0 removes data and stdin is not a terminal" in err
    assert "run it with --yes" in err
    with psycopg.connect(database_url, autocommit=True) as connection:
        assert not migrations.pending(connection)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "reverted"), [("n\n", False), ("yes\n", True)])
def test_migrate_down_on_a_terminal_lists_what_goes_and_asks(
    run: Run, database_url: str, monkeypatch: pytest.MonkeyPatch, answer: str, reverted: bool
) -> None:
    assert run("db", "migrate", "--database-url", database_url)[0] == 0
    monkeypatch.setattr("sys.stdin", _Terminal(answer))
    code, out, err = run("db", "migrate", "--to", "2", "--database-url", database_url)
    assert "db migrate --to 2 reverts on " in out
    assert "  0003_apply_history: removes the apply history" in out
    assert "0002_business_details" not in out
    assert "Revert these migrations? [y/N]" in out
    with psycopg.connect(database_url, autocommit=True) as connection:
        left = {m.version for m in migrations.available()} - {
            m.version for m in migrations.pending(connection)
        }
    if reverted:
        assert code == 0 and "reverted 0003_apply_history" in out
        assert left == {1, 2}
    else:
        assert code == 1 and "error: not reverted: it was not confirmed; nothing was changed" in err
        assert left == {m.version for m in migrations.available()}


def test_migrate_down_with_yes_does_not_ask(
    run: Run, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("db", "migrate", "--database-url", database_url)[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, out, _ = run("db", "migrate", "--to", "0", "--yes", "--database-url", database_url)
    assert code == 0 and out.startswith("reverted ")
