"""One masker for every secret this tool prints: connection strings as libpq reads them, other URLs by part.

The two forms below once slipped through: the plan's rendering hid a URL's password by splitting the URL,
so a `postgresql://` URL whose password is a query parameter, or libpq's key=value settings, came out as
they were. They are checked wherever ocpi-parties prints a URL or a database.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Run
from maeve_sql import save_party

from reconciler import store
from reconciler.changes import FieldChange, PartyRow, Plan, UpdateParty
from reconciler.connect import resolve
from reconciler.database import Connection, Settings
from reconciler.migrations import migrate
from reconciler.model import Identity
from reconciler.output import database as database_output
from reconciler.output.plan import render_json, render_markdown, render_text
from reconciler.secret import hide_secrets, hide_url_secrets, mask_conninfo

SECRET = "secret"
#: A connection string whose password is a URL query parameter, and libpq's key=value form.
URL = f"postgresql://u@h/db?password={SECRET}"
KEY_VALUE = f"password={SECRET}"
FORMS = [URL, KEY_VALUE]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (URL, "host=h dbname=db user=u password=***"),
        (KEY_VALUE, "password=***"),
        ("postgresql:///db?password=p&sslpassword=k", "dbname=db password=*** sslpassword=***"),
        ("postgres://u:p%40ss@h:5432/db", "host=h port=5432 dbname=db user=u password=***"),
        ("host=h port=5432 password='a b' user=u", "host=h port=5432 user=u password=***"),
        # Without a password a connection string is shown as written.
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("host=h dbname=db", "host=h dbname=db"),
        # A parameter libpq does not know makes it no connection string: the URL rule takes it.
        ("postgresql://h/db?token=t", "postgresql://h/db?token=***"),
        # Other URLs keep their form and lose their secrets, as before.
        ("https://user:pw@ocpi.example/versions", "https://user:***@ocpi.example/versions"),
        ("https://ocpi.example/v?format=json&password=pw", "https://ocpi.example/v?format=json&password=***"),
        ("https://ocpi.example/versions", "https://ocpi.example/versions"),
        ("name=Carga Ibérica", "name=Carga Ibérica"),
        ("Carga Ibérica", "Carga Ibérica"),
        ("", ""),
    ],
)
def test_hide_secrets(text: str, shown: str) -> None:
    assert hide_secrets(text) == shown


def test_the_url_rule_alone_missed_a_password_given_as_a_parameter() -> None:
    """What the plan's rendering showed before it used libpq's reading (kept for validate's own rule)."""
    assert SECRET in hide_url_secrets(KEY_VALUE)
    assert SECRET in hide_url_secrets(f"postgresql:///db?password={SECRET}")


def test_a_connection_string_is_shown_as_libpq_reads_it() -> None:
    assert mask_conninfo({"password": SECRET, "user": "u", "host": "h"}) == "host=h user=u password=***"
    assert mask_conninfo({}) == "libpq's defaults"


@pytest.mark.parametrize("text", FORMS)
def test_the_database_a_command_uses_is_named_without_its_password(text: str) -> None:
    target = resolve(Settings(url=text), {})
    assert target is not None
    assert SECRET not in target.label and "password=***" in target.label


@pytest.mark.parametrize("text", FORMS)
def test_the_plan_never_shows_a_password_of_a_connection_string(text: str) -> None:
    row = PartyRow(Identity("BE", "SEC"), "EMSP", text, None, False)
    change = UpdateParty(Identity("BE", "SEC"), "CPO", (FieldChange("url", text, "https://ocpi.example/v"),))
    plan = Plan((change,), (row,))
    for output in (render_text(plan), render_json(plan), render_markdown(plan)):
        assert SECRET not in output
        assert "password=***" in output


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (f"postgresql://u@127.0.0.1:1/db?password={SECRET}", "host=127.0.0.1 port=1 dbname=db user=u"),
        (f"host=127.0.0.1 port=1 dbname=db user=u {KEY_VALUE}", "host=127.0.0.1 port=1 dbname=db user=u"),
    ],
)
def test_a_command_names_the_database_without_its_password(run: Run, text: str, where: str) -> None:
    code, out, err = run("db", "status", "--database-url", text)
    assert (code, out) == (3, "")
    assert err.startswith(f"error: cannot connect to {where} password=***: ")
    assert SECRET not in err


@pytest.mark.parametrize("text", FORMS)
def test_the_read_commands_never_show_a_password_of_a_party_url(
    run: Run, connection: Connection, database_url: str, text: str
) -> None:
    migrate(connection)
    save_party(connection, "EMSP", "BE", "SEC", url=text)
    commands = (["parties", "list"], ["parties", "list", "--format", "json"], ["parties", "show", "BE-SEC"])
    for command in commands:
        code, out, err = run(*command, "--database-url", database_url)
        assert (code, err) == (0, "")
        assert SECRET not in out and "password=***" in out, command
    page = store.party_page(connection)
    for output in (database_output.parties_text(page), database_output.parties_json(page)):
        assert SECRET not in output


@pytest.mark.parametrize("text", FORMS)
def test_plan_never_shows_a_password_of_a_party_url_it_reads(
    run: Run, workdir: Path, connection: Connection, database_url: str, text: str
) -> None:
    migrate(connection)
    save_party(connection, "EMSP", "BE", "SEC", url=text)
    for output_format in ("text", "json", "markdown"):
        code, out, err = run("plan", "--format", output_format, "--database-url", database_url)
        assert code == 0, err
        assert SECRET not in out + err and "password=***" in out, output_format
