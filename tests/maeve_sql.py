"""MaEVe's own runtime statements, verbatim from its PostgreSQL store (sqlc queries, $n -> %s), and seeding.

The two writes, SET_LOCATION and SET_OCPI_PARTY, live in `reconciler.sample`, which writes sample data
with them.

The tests run exactly these to prove that ocpi-parties' schema additions leave MaEVe working.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.database import Connection
from reconciler.sample import SET_LOCATION, SET_OCPI_PARTY

#: The token OCPI registration gave the peers seeded by the tests: it must never appear in any output.
PEER_TOKEN = "peer-secret-token-5f1c"

GET_OCPI_PARTY = """SELECT id, role, country_code, party_id, url, token, created_at, updated_at FROM ocpi_parties
WHERE role = %s AND country_code = %s AND party_id = %s
LIMIT 1
"""

LIST_OCPI_PARTIES_FOR_ROLE = """SELECT id, role, country_code, party_id, url, token, created_at, updated_at
FROM ocpi_parties
WHERE role = %s
ORDER BY created_at DESC
"""

GET_LOCATION = """SELECT id, country_code, party_id, location_data, created_at, updated_at FROM locations
WHERE id = %s
LIMIT 1
"""

LIST_ALL_LOCATIONS = """SELECT id, country_code, party_id, location_data, created_at, updated_at FROM locations
ORDER BY created_at DESC
LIMIT %s OFFSET %s
"""

#: MaEVe's down migration 000005, verbatim: evorada/maeve-csms,
#: manager/store/postgres/migrations/000005_create_ocpi_locations.down.sql. golang-migrate runs the file as one
#: multi-statement exec (one implicit transaction). Its up creates the three tables as
#: reconciler/sql/maeve_base.sql does; none of MaEVe's other migrations touch them.
MIGRATION_000005_DOWN = """DROP TABLE IF EXISTS locations;
DROP TABLE IF EXISTS ocpi_parties;
DROP TABLE IF EXISTS ocpi_registrations;
"""

LIST_LOCATIONS = """SELECT id, country_code, party_id, location_data, created_at, updated_at FROM locations
WHERE country_code = %s AND party_id = %s
ORDER BY created_at DESC
LIMIT %s OFFSET %s
"""


def location_data(location_id: str, country: str = "BE", **extra: Any) -> str:
    """A location as MaEVe stores it (Go field names), plus any extra keys.

    MaEVe's SetLocation copies `Country` into country_code varchar(2) (`XX` when empty), so a location MaEVe
    wrote has a `Country` of two letters or none: the alpha-3 form OCPI prescribes (`BEL`) fails there with
    SQLSTATE 22001. Pass an alpha-3 `country` only for a location another writer stored.
    """
    data = {
        "Id": location_id,
        "Name": f"Site {location_id}",
        "Address": "Rue de la Loi 16",
        "City": "Brussels",
        "PostalCode": "1000",
        "Country": country,
        "Coordinates": {"Latitude": "50.8466", "Longitude": "4.3528"},
        "ParkingType": "ON_STREET",
        "Evses": [],
        "LastUpdated": "2026-01-01T00:00:00Z",
    }
    data.update(extra)
    return json.dumps(data)


def save_location(
    connection: Connection,
    location_id: str,
    country_code: str = "BE",
    data: str | None = None,
    party_id: str = "XXX",
) -> tuple[object, ...]:
    """MaEVe's SetLocation: country_code is the location's own country (or XX), party_id always XXX.

    Another writer of the same statement passes the identity it records (`party_id`) and OCPI JSON.
    Without `data`, the location MaEVe would have written for that country_code: `Country` is country_code,
    or empty for XX.
    """
    if data is None:
        data = location_data(location_id, "" if country_code == "XX" else country_code)
    row = connection.execute(SET_LOCATION, (location_id, country_code, party_id, data)).fetchone()
    assert row is not None
    return row


def ocpi_location(location_id: str, country_code: str, party_id: str, country: str) -> str:
    """A location in standard OCPI 2.2.1 JSON, as a writer other than MaEVe stores it."""
    return json.dumps(
        {
            "country_code": country_code,
            "party_id": party_id,
            "id": location_id,
            "name": f"Site {location_id}",
            "city": "Lisboa",
            "country": country,
            "last_updated": "2026-01-01T00:00:00Z",
        }
    )


def save_party(
    connection: Connection,
    role: str,
    country_code: str,
    party_id: str,
    *,
    url: str = "https://peer.example/ocpi/versions",
    token: str = "peer-token",
) -> tuple[object, ...]:
    """MaEVe's SetOcpiParty: what OCPI credentials registration writes, once per role."""
    row = connection.execute(SET_OCPI_PARTY, (role, country_code, party_id, url, token)).fetchone()
    assert row is not None
    return row


def location_owner(connection: Connection, location_id: str) -> tuple[object, ...]:
    row = connection.execute(
        "SELECT country_code, party_id, party_role FROM locations WHERE id = %s", (location_id,)
    ).fetchone()
    assert row is not None
    return row


def snapshot(connection: Connection) -> list[object]:
    """Everything in the current schema, for "nothing was changed": tables, columns, constraints, triggers, rows."""
    tables = connection.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1"
    ).fetchall()
    rows: list[object] = [
        tables,
        connection.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY 1, 2"
        ).fetchall(),
        connection.execute("SELECT conname, convalidated FROM pg_constraint ORDER BY 1").fetchall(),
        connection.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1").fetchall(),
    ]
    for (table,) in tables:
        rows.append(connection.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall())
    return rows
