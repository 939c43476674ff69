"""A database the previous release applied reaches the hosted/partner model in one plan and one apply.

tests/data/previous-release.sql is that database: registration rows (NL-VLT EMSP, BE-PEE CPO) with their
tokens, locations MaEVe and an OCPI JSON writer wrote, then the previous release's apply of its example
party files, which created rows with an empty token for every declared role (DE-EMO CPO and EMSP among
them) and gave every location to the default party GB-TWK.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import Run
from maeve_sql import LIST_OCPI_PARTIES_FOR_ROLE, save_location

from reconciler.database import Connection

DUMP = Path(__file__).parents[1] / "data" / "previous-release.sql"

#: The previous release's example party files, each with the `kind` this release asks for.

PARTIES = {
    "DE-EMO.yaml": (
        "country_code: DE\n"
        "party_id: EMO\n"
        "kind: partner\n"
        "url: https://ocpi.elektromobil.example/versions\n"
        "business_details:\n"
        "  name: Elektromobil GmbH\n"
        "  website: https://www.elektromobil.example\n"
        "  logo:\n"
        "    url: https://www.elektromobil.example/logo.svg\n"
        "    category: OPERATOR\n"
        "    type: svg\n"
        "roles:\n"
        "  - role: CPO\n"
        "  - role: EMSP\n"
        "    business_details:\n"
        "      name: Elektromobil Ladekarte\n"
    ),
    "ES-CPO.yaml": (
        "country_code: ES\n"
        "party_id: CPO\n"
        "kind: hosted\n"
        "url: https://ocpi.cargaiberica.example/ocpi/versions\n"
        "business_details:\n"
        "  name: Carga Ibérica\n"
        "  website: https://www.cargaiberica.example\n"
        "roles:\n"
        "  - role: CPO\n"
    ),
    "GB-TWK.yaml": (
        "country_code: GB\n"
        "party_id: TWK\n"
        "kind: hosted\n"
        "business_details:\n"
        "  name: Thoughtworks EV Charging\n"
        "  website: https://www.thoughtworks.example/ev-charging\n"
        "  logo:\n"
        "    url: https://www.thoughtworks.example/assets/logo.png\n"
        "    thumbnail: https://www.thoughtworks.example/assets/logo-128.png\n"
        "    category: OPERATOR\n"
        "    type: png\n"
        "    width: 512\n"
        "    height: 512\n"
        "roles:\n"
        "  - role: CPO\n"
    ),
    "NL-VLT.yaml": (
        "country_code: NL\n"
        "party_id: VLT\n"
        "kind: partner\n"
        "url: https://api.voltkaart.example/ocpi/versions\n"
        "business_details:\n"
        "  name: Voltkaart\n"
        "  website: https://www.voltkaart.example\n"
        "roles:\n"
        "  - role: EMSP\n"
    ),
    "default-party.yaml": ("default_party: GB-TWK\n"),
}


@pytest.fixture
def previous_release(empty_database_url: str) -> Iterator[Connection]:
    """The database the previous release left, loaded from its dump."""
    with psycopg.connect(empty_database_url, autocommit=True) as connection:
        connection.execute(DUMP.read_text().encode())
        yield connection


def _registered(connection: Connection) -> list[tuple[object, ...]]:
    return connection.execute(
        "SELECT id, role, country_code, party_id, url, token, created_at FROM ocpi_parties"
        " WHERE token <> '' ORDER BY id"
    ).fetchall()


def test_the_previous_release_upgrades_in_one_plan_and_apply(
    run: Run, previous_release: Connection, empty_database_url: str, tmp_path: Path
) -> None:
    connection = previous_release
    folder = tmp_path / "parties"
    folder.mkdir()
    for name, text in PARTIES.items():
        (folder / name).write_text(text)
    registered = _registered(connection)
    locations = connection.execute("SELECT id, location_data FROM locations ORDER BY id").fetchall()
    assert len(locations) == 12
    # Before: the empty-token DE-EMO EMSP row is a push target MaEVe would call, ahead of the real partner.
    emsp = connection.execute(LIST_OCPI_PARTIES_FOR_ROLE, ("EMSP",)).fetchall()
    assert [row[5] == "" for row in emsp] == [True, False]

    started = time.perf_counter()
    code, out, err = run("plan", str(folder), "--database-url", empty_database_url)
    assert code == 0, err
    assert "0006_ownership" in out and "0007_apply_context" in out
    assert out.count("will be deleted: a partner's row without credentials") == 2
    assert "? DE-EMO CPO is awaiting OCPI registration" in out
    assert "? DE-EMO EMSP is awaiting OCPI registration" in out
    assert out.splitlines()[-1] == (
        "Plan: 0 to add, 0 to change, 2 to delete, 0 to adopt; 0 locations to move; "
        "2 awaiting registration; 2 migrations to run."
    )
    code, out, err = run("apply", str(folder), "--auto-approve", "--database-url", empty_database_url)
    assert code == 0, err
    seconds = time.perf_counter() - started
    code, out, _ = run("plan", str(folder), "--database-url", empty_database_url, "--detailed-exitcode")
    assert code == 0, out
    assert out.splitlines()[-1] == (
        "No changes. The database matches the party files; 2 partner roles awaiting OCPI registration."
    )

    # Nothing lost: the registered rows byte for byte, every location with its data and an owner.
    assert _registered(connection) == registered
    assert connection.execute("SELECT id, location_data FROM locations ORDER BY id").fetchall() == locations
    assert connection.execute("SELECT count(*) FROM locations WHERE party_role IS NULL").fetchone() == (0,)
    # MaEVe now pushes to the registered partner only.
    emsp = connection.execute(LIST_OCPI_PARTIES_FOR_ROLE, ("EMSP",)).fetchall()
    assert [(row[2], row[3], row[5] != "") for row in emsp] == [("NL", "VLT", True)]
    # MaEVe's own rows recorded nothing, so they follow the default party; a new write lands there too.
    assert connection.execute(
        "SELECT count(*) FROM locations WHERE recorded_country_code IS NULL"
    ).fetchone() == (9,)
    save_location(connection, "LOC-LDN-0", "GB")
    assert connection.execute(
        "SELECT country_code, party_id, party_role FROM locations WHERE id = 'LOC-LDN-0'"
    ).fetchone() == ("GB", "TWK", "CPO")
    print(f"\nupgrade of the previous release: plan + apply + plan in {seconds:.2f} s")
