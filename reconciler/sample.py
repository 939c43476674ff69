"""Sample rows for trying ocpi-parties on a development database, written the way a running MaEVe writes them.

`ocpi-parties db init --sample-data` fills an empty database with what a MaEVe deployment holds before
ocpi-parties: peer parties that OCPI credentials registration created (with a token), locations saved by
MaEVe under party `XXX` with their own country as `country_code`, and locations another writer recorded
under the identity of the site's country (`PT-CPO`, `FR-CPO`) in standard OCPI Location JSON. It refuses a
database that already holds parties or locations, so it never mixes invented rows into real ones.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from psycopg import sql

from reconciler.database import Connection
from reconciler.errors import ReconcilerError

#: MaEVe's SetLocation (its sqlc query, $n -> %s), verbatim.
SET_LOCATION = """INSERT INTO locations (
    id,
    country_code,
    party_id,
    location_data
) VALUES (%s, %s, %s, %s)
ON CONFLICT (id) DO UPDATE
SET country_code = EXCLUDED.country_code,
    party_id = EXCLUDED.party_id,
    location_data = EXCLUDED.location_data,
    updated_at = NOW()
RETURNING id, country_code, party_id, location_data, created_at, updated_at
"""

#: MaEVe's SetOcpiParty: what OCPI credentials registration writes, once per role, verbatim.
SET_OCPI_PARTY = """INSERT INTO ocpi_parties (role, country_code, party_id, url, token)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (role, country_code, party_id) DO UPDATE
SET url = EXCLUDED.url,
    token = EXCLUDED.token,
    updated_at = NOW()
RETURNING id, role, country_code, party_id, url, token, created_at, updated_at
"""

#: Peers as OCPI registration leaves them: NL-VLT is declared in the example parties/, BE-PEE is not.
PEERS = (
    ("EMSP", "NL", "VLT", "https://api.voltkaart.example/ocpi/versions"),
    ("CPO", "BE", "PEE", "https://ocpi.peer-charging.example/versions"),
)

#: (id prefix, city, the location's Country, MaEVe's country_code column, how many). MaEVe's SetLocation
#: copies Country into country_code, varchar(2) ("XX" when empty), so the Country of a location MaEVe could
#: store is two letters or empty: an OCPI alpha-3 code ("GBR") fails its INSERT.
MAEVE_SITES = (
    ("LOC-LDN", "London", "GB", "GB", 4),
    ("LOC-BRU", "Brussels", "BE", "BE", 3),
    ("LOC-NEW", "", "", "XX", 2),
)

#: Sites of the Spanish CPO in Portugal and France, recorded by another writer under the site's country.
OCPI_SITES = (
    ("LOC-LIS", "Lisbon", "PRT", "PT", "CPO", 2),
    ("LOC-PAR", "Paris", "FRA", "FR", "CPO", 1),
)


@dataclass(frozen=True)
class Written:
    parties: int
    locations: int


def maeve_location(location_id: str, city: str, country: str) -> str:
    """A location as MaEVe stores it: Go field names."""
    return json.dumps(
        {
            "Id": location_id,
            "Name": f"{city or 'New site'} {location_id[-1]}",
            "Address": "1 High Street",
            "City": city,
            "PostalCode": "0000",
            "Country": country,
            "Coordinates": {"Latitude": "51.5072", "Longitude": "-0.1276"},
            "ParkingType": "ON_STREET",
            "Evses": [],
            "LastUpdated": "2026-01-01T00:00:00Z",
        }
    )


def ocpi_location(location_id: str, city: str, country: str, country_code: str, party_id: str) -> str:
    """A location in standard OCPI 2.2.1 JSON, whose country_code/party_id keys name its owner."""
    return json.dumps(
        {
            "country_code": country_code,
            "party_id": party_id,
            "id": location_id,
            "publish": True,
            "name": f"{city} {location_id[-1]}",
            "address": "Rua Augusta 1",
            "city": city,
            "country": country,
            "coordinates": {"latitude": "38.7223", "longitude": "-9.1393"},
            "time_zone": "Europe/Lisbon",
            "last_updated": "2026-01-01T00:00:00Z",
        }
    )


def _count(connection: Connection, table: str) -> int:
    row = connection.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


def write(connection: Connection, label: str) -> Written:
    """Write the sample rows in one transaction; refuse a database that already holds parties or locations."""
    with connection.transaction():
        held = {table: _count(connection, table) for table in ("ocpi_parties", "locations")}
        if any(held.values()):
            raise ReconcilerError(
                f"{label} already holds {held['ocpi_parties']:,} parties and {held['locations']:,} "
                "locations: sample data goes only into an empty database, so it never mixes with real rows"
            )
        tokens = [(*peer[:3], peer[3], secrets.token_urlsafe(24)) for peer in PEERS]
        rows = [
            (f"{prefix}-{n}", code, "XXX", maeve_location(f"{prefix}-{n}", city, country))
            for prefix, city, country, code, count in MAEVE_SITES
            for n in range(1, count + 1)
        ] + [
            (f"{prefix}-{n}", code, party, ocpi_location(f"{prefix}-{n}", city, country, code, party))
            for prefix, city, country, code, party, count in OCPI_SITES
            for n in range(1, count + 1)
        ]
        with connection.cursor() as cursor:
            cursor.executemany(SET_OCPI_PARTY, tokens)
            cursor.executemany(SET_LOCATION, rows)
    return Written(len(tokens), len(rows))
