"""Values read from the database are data: an odd one is reported or shown, never a crash (exit 70) and
never a terminal control sequence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Run
from maeve_sql import PEER_TOKEN, save_location, save_party

from reconciler.database import Connection

ODD_DETAILS = {'"Voltkaart B.V."': "a string", '["x"]': "an array", "42": "a number"}


def _odd(connection: Connection, identity: str, role: str, value: str) -> int:
    country_code, party_id = identity.split("-")
    row = connection.execute(
        "UPDATE ocpi_parties SET business_details = %s::jsonb"
        " WHERE country_code = %s AND party_id = %s AND role = %s RETURNING id",
        (value, country_code, party_id, role),
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("value", ODD_DETAILS)
def test_an_unmanaged_row_with_odd_details_is_reported_not_a_crash(
    run: Run, live: Connection, migrated: Connection, database_url: str, *, workdir: Path, value: str
) -> None:
    """BE-PEE is declared by no file; NL-VLT is a declared partner, adopted by the plan."""
    pee = _odd(live, "BE-PEE", "CPO", value)
    vlt = _odd(live, "NL-VLT", "EMSP", value)
    url = ("--database-url", database_url)
    code, out, err = run("plan", *url)
    assert code == 0, err
    assert f'~ business_details = {json.dumps(json.loads(value))} -> {{"name": "Voltkaart"' in out
    assert run("plan", "--format", "json", *url)[0] == 0
    assert run("plan", "--format", "markdown", *url)[0] == 0

    for command in (("parties", "list"), ("parties", "show", "BE-PEE")):
        code, out, err = run(*command, *url)
        assert code == 0, err
        assert (
            f"note: BE-PEE CPO (row id {pee}): business_details is {ODD_DETAILS[value]}, not an object as "
            "OCPI's BusinessDetails"
        ) in out
    code, out, _ = run("parties", "list", "--format", "json", *url)
    assert code == 0
    assert {p["party"]: p["business_details"] for p in json.loads(out)["parties"]}["BE-PEE"] == json.loads(
        value
    )

    code, out, err = run("import", "--out", "imported", *url)
    assert code == 1  # nothing else to import
    assert f"warning: BE-PEE is not imported: its CPO row (id {pee}) holds" in err
    assert f"warning: NL-VLT is not imported: its EMSP row (id {vlt}) holds" in err

    code, out, err = run("apply", "--auto-approve", *url)
    assert code == 0, err
    stored = live.execute(
        "SELECT country_code, business_details FROM ocpi_parties WHERE role <> 'CPO' OR party_id = 'PEE'"
    ).fetchall()
    assert dict(stored) == {
        "BE": json.loads(value),
        "NL": {"name": "Voltkaart", "website": "https://www.voltkaart.example"},
    }


ESCAPE = "\x1b[2J\x1b[H"


def test_database_values_are_escaped_in_text_and_raw_in_json(
    run: Run, connection: Connection, migrated: Connection, database_url: str, workdir: Path
) -> None:
    save_party(connection, "CPO", "BE", "ESC", url=f"https://peer.example/{ESCAPE}versions", token=PEER_TOKEN)
    connection.execute(
        "UPDATE ocpi_parties SET business_details = %s::jsonb WHERE party_id = 'ESC'",
        (json.dumps({"name": f"Evil{ESCAPE}", "website": f"https://w.example/{ESCAPE}"}),),
    )
    save_location(connection, f"LOC{ESCAPE}", "BE", None, "ESC")
    url = ("--database-url", database_url)
    for command in (("parties", "list"), ("parties", "show", "BE-ESC"), ("locations", "BE-ESC")):
        code, out, err = run(*command, *url)
        assert code == 0, err
        assert "\x1b" not in out and "\\u001b[2J\\u001b[H" in out, command
    code, out, _ = run("parties", "show", "BE-ESC", "--format", "json", *url)
    assert json.loads(out)["roles"][0]["url"] == f"https://peer.example/{ESCAPE}versions"
