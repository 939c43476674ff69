"""The benchmark's data: party files in a folder, and a MaEVe database that those files partly change.

Party `n` of a scale is one identity with one to three roles. The database holds what a deployment looks
like between two applies: most declared rows are managed and already match their file; the last
`changes` single-role CPO parties are the party changes of the plan, split into rows to create (absent),
rows to adopt (written by OCPI registration, unmanaged) and rows to update (managed, an older name);
a few hundred OCPI peers no file declares; `locations` locations, of which every `locations / orphans`-th
is an orphan written by MaEVe (party `XXX`, which records no identity, and a `Country` its SetLocation can
store), and the others belong to the existing CPO rows, whose own writers recorded their identity: the owner
the guard and the plan derive for them is the row they are stored under, so apply moves the orphans only.

Everything is streamed to PostgreSQL with COPY; no table is ever held whole in Python memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from reconciler import migrations

#: Where the declared parties are registered (ISO 3166-1 alpha-2).
COUNTRIES = (
    "GB", "DE", "FR", "ES", "PT", "NL", "BE", "IT", "AT", "CH",
    "DK", "SE", "NO", "FI", "PL", "CZ", "IE", "LU", "HU", "SI",
)  # fmt: skip
#: MaEVe stores an orphan under the location's own `Country` and party XXX (XX when it has no country). Its
#: SetLocation copies `Country` into country_code varchar(2): what it wrote has two letters or none.
ORPHAN_IDENTITIES = (("GB", "GB"), ("BE", "BE"), ("NL", "NL"), ("DE", "DE"), ("FR", "FR"), ("XX", ""))
DEFAULT_PARTY = ("GB", "TWK")
#: Roles by party number modulo 4: three quarters hold the CPO role, a quarter is an eMSP only.
ROLE_SETS = (("CPO",), ("CPO", "EMSP"), ("CPO", "EMSP", "NSP"), ("EMSP",))
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Scale:
    name: str
    parties: int
    locations: int
    orphans: int
    #: Party rows the plan creates, adopts or updates (each a single-role CPO party).
    changes: int
    #: Unmanaged OCPI peers that no file declares.
    peers: int
    #: The smaller database that peak memory is compared at.
    memory_locations: int
    #: Locations moved one statement at a time by the per-row baseline.
    per_row_sample: int

    @property
    def every(self) -> int:
        """Every `every`-th location is an orphan."""
        return self.locations // self.orphans


SCALES = {
    "full": Scale("full", 10_000, 1_000_000, 100_000, 1_000, 500, 100_000, 5_000),
    "small": Scale("small", 200, 10_000, 1_000, 40, 20, 1_000, 500),
}


def identity(number: int) -> tuple[str, str]:
    """Party `number`'s (country_code, party_id); party 0 is the default party."""
    if number == 0:
        return DEFAULT_PARTY
    rest, country = divmod(number, len(COUNTRIES))
    return COUNTRIES[country], "P" + _DIGITS[rest // 36 % 36] + _DIGITS[rest % 36]


def roles(number: int) -> tuple[str, ...]:
    return ROLE_SETS[number % len(ROLE_SETS)]


def change_kind(scale: Scale, number: int) -> str | None:
    """'create', 'adopt' or 'update' for the parties the plan changes, None for the others.

    The changed parties are the last `changes` parties that hold the CPO role only: one row each.
    """
    if roles(number) != ("CPO",):
        return None
    rank = (scale.parties - 1 - number) // len(ROLE_SETS)
    if rank >= scale.changes or number == 0:
        return None
    share = scale.changes * 2 // 5
    if rank < share:
        return "create"
    return "adopt" if rank < share + (scale.changes - share) // 2 else "update"


def name(number: int) -> str:
    return f"Charge Network {number:05d} Ltd"


def url(number: int) -> str:
    country_code, party_id = identity(number)
    return f"https://ocpi.{party_id.lower()}-{country_code.lower()}.example/ocpi/versions"


def business_details(number: int, role: str) -> dict[str, Any]:
    """The business details a file declares for one role, as ocpi-parties stores them (OCPI JSON)."""
    country_code, party_id = identity(number)
    details: dict[str, Any] = {
        "name": name(number) if role != "EMSP" else f"{name(number)} Cards",
        "website": f"https://www.{party_id.lower()}-{country_code.lower()}.example",
    }
    if number % 3 == 0:
        details["logo"] = {
            "url": f"https://www.{party_id.lower()}-{country_code.lower()}.example/logo.png",
            "category": "OPERATOR",
            "type": "png",
            "width": 512,
            "height": 512,
        }
    return details


def party_file(number: int) -> str:
    """The YAML file of party `number`: shared details, and an own name for the EMSP role.

    A party that holds the CPO role only is hosted; one with other roles is a partner (only a CPO can be
    hosted).
    """
    country_code, party_id = identity(number)
    shared = business_details(number, "CPO")
    lines = [
        "# yaml-language-server: $schema=../schema/party.schema.json",
        f"country_code: {country_code}",
        f"party_id: {party_id}",
        f"kind: {'hosted' if roles(number) == ('CPO',) else 'partner'}",
        f"url: {url(number)}",
        "business_details:",
        f"  name: {shared['name']}",
        f"  website: {shared['website']}",
    ]
    if "logo" in shared:
        lines.append("  logo:")
        lines.extend(f"    {key}: {value}" for key, value in shared["logo"].items())
    lines.append("roles:")
    for role in roles(number):
        lines.append(f"  - role: {role}")
        if role == "EMSP":
            lines.extend(["    business_details:", f"      name: {business_details(number, role)['name']}"])
    return "\n".join(lines) + "\n"


def write_party_files(scale: Scale, folder: Path) -> Path:
    """Write one file per party and default-party.yaml into `folder`/parties; return that directory."""
    parties = folder / "parties"
    parties.mkdir(parents=True)
    for number in range(scale.parties):
        country_code, party_id = identity(number)
        (parties / f"{country_code}-{party_id}.yaml").write_text(party_file(number), encoding="utf-8")
    (parties / "default-party.yaml").write_text("default_party: {}-{}\n".format(*DEFAULT_PARTY))
    return parties


def _party_rows(scale: Scale) -> Iterator[tuple[Any, ...]]:
    """(id, role, country_code, party_id, url, token, business_details, managed) for ocpi_parties."""
    row_id = 0
    for number in range(scale.parties):
        kind = change_kind(scale, number)
        if kind == "create":
            continue
        country_code, party_id = identity(number)
        for role in roles(number):
            row_id += 1
            if kind == "adopt":  # as OCPI registration writes it: a token, no business details
                yield (row_id, role, country_code, party_id, url(number), f"tok-{row_id}", None, False)
                continue
            details = business_details(number, role)
            if kind == "update":
                details = {**details, "name": f"{details['name']} (old name)"}
            # A hosted party's row, which ocpi-parties created, holds no token; a partner's rows are
            # registration's (a token), adopted by an earlier apply.
            token = "" if roles(number) == ("CPO",) else f"tok-{row_id}"
            yield (row_id, role, country_code, party_id, url(number), token, json.dumps(details), True)
    for peer in range(scale.peers):  # registered over OCPI, declared by no file
        row_id += 1
        country_code, party_id = COUNTRIES[peer % len(COUNTRIES)], "Q" + _DIGITS[peer // 36 % 36]
        party_id += _DIGITS[peer % 36]
        peer_url = f"https://peer-{peer}.example/ocpi/versions"
        yield (row_id, "EMSP", country_code, party_id, peer_url, f"tok-{row_id}", None, False)


def owner_identities(scale: Scale) -> list[tuple[str, str]]:
    """The CPO rows that exist before the apply: the owners of the locations that are not orphans."""
    return [
        identity(number)
        for number in range(scale.parties)
        if "CPO" in roles(number) and change_kind(scale, number) != "create"
    ]


_STREET = ("Rue de la Loi", "High Street", "Hauptstraße", "Calle Mayor", "Keizersgracht", "Avenue Louise")
_CITY = ("Brussels", "London", "Berlin", "Madrid", "Amsterdam", "Lisbon", "Paris", "Vienna")


def _connectors(number: int, evse: int, ocpi: bool) -> list[dict[str, Any]]:
    standards = ("IEC_62196_T2", "IEC_62196_T2_COMBO", "CHADEMO")
    count = 1 + (number + evse) % 2
    if ocpi:
        return [
            {
                "id": str(c + 1),
                "standard": standards[(number + c) % 3],
                "format": "SOCKET" if c == 0 else "CABLE",
                "power_type": "AC_3_PHASE" if c == 0 else "DC",
                "max_voltage": 400,
                "max_amperage": 32 if c == 0 else 125,
                "max_electric_power": 22000 if c == 0 else 50000,
                "tariff_ids": [f"TARIFF-{number % 7}"],
                "last_updated": "2026-01-01T00:00:00Z",
            }
            for c in range(count)
        ]
    return [
        {
            "Id": str(c + 1),
            "Standard": standards[(number + c) % 3],
            "Format": "SOCKET" if c == 0 else "CABLE",
            "PowerType": "AC_3_PHASE" if c == 0 else "DC",
            "MaxVoltage": 400,
            "MaxAmperage": 32 if c == 0 else 125,
            "LastUpdated": "2026-01-01T00:00:00Z",
        }
        for c in range(count)
    ]


def location_data(location_id: str, number: int, owner: tuple[str, str], country: str) -> str:
    """About 1.5 KB of Location JSON: MaEVe's Go field names, or (every fourth) standard OCPI JSON."""
    city = _CITY[number % len(_CITY)]
    street = f"{_STREET[number % len(_STREET)]} {number % 200 + 1}"
    latitude, longitude = f"{50 + number % 1000 / 1000:.6f}", f"{4 + number % 997 / 1000:.6f}"
    if number % 4 == 3:
        data: dict[str, Any] = {
            "country_code": owner[0],
            "party_id": owner[1],
            "id": location_id,
            "publish": True,
            "name": f"{city} charging hub {number}",
            "address": street,
            "city": city,
            "postal_code": f"{1000 + number % 9000}",
            "country": country or "BEL",
            "coordinates": {"latitude": latitude, "longitude": longitude},
            "parking_type": "ON_STREET",
            "evses": [
                {
                    "uid": f"{location_id}-E{e}",
                    "evse_id": f"BE*TWK*E{number}*{e}",
                    "status": "AVAILABLE",
                    "capabilities": ["RFID_READER", "REMOTE_START_STOP_CAPABLE"],
                    "connectors": _connectors(number, e, ocpi=True),
                    "last_updated": "2026-01-01T00:00:00Z",
                }
                for e in range(2)
            ],
            "time_zone": "Europe/Brussels",
            "last_updated": "2026-01-01T00:00:00Z",
        }
    else:
        data = {
            "Id": location_id,
            "Name": f"{city} charging hub {number}",
            "Address": street,
            "City": city,
            "PostalCode": f"{1000 + number % 9000}",
            "Country": country,
            "Coordinates": {"Latitude": latitude, "Longitude": longitude},
            "ParkingType": "ON_STREET",
            "Evses": [
                {
                    "Uid": f"{location_id}-E{e}",
                    "EvseId": f"BE*TWK*E{number}*{e}",
                    "Status": "AVAILABLE",
                    "Capabilities": ["RFID_READER", "REMOTE_START_STOP_CAPABLE"],
                    "Connectors": _connectors(number, e, ocpi=False),
                    "LastUpdated": "2026-01-01T00:00:00Z",
                }
                for e in range(3)
            ],
            "OpeningTimes": {"Twentyfourseven": True},
            "LastUpdated": "2026-01-01T00:00:00Z",
        }
    return json.dumps(data, separators=(", ", ": "))


def location_id(number: int) -> str:
    return f"LOC-{number:07d}"


LocationRow = tuple[str, str, str, str | None, str | None, str | None, str]


def _location_rows(scale: Scale, locations: int) -> Iterator[LocationRow]:
    """(id, country_code, party_id, party_role, recorded_country_code, recorded_party_id, location_data)."""
    owners = owner_identities(scale)
    for number in range(locations):
        recorded: tuple[str | None, str | None]
        if number % scale.every == 0:
            country_code, country = ORPHAN_IDENTITIES[number // scale.every % len(ORPHAN_IDENTITIES)]
            owner, role, recorded = (country_code, "XXX"), None, (None, None)
        else:
            # Standard OCPI JSON holds the alpha-3 country; MaEVe's Go field names the two letters it stores.
            owner, role = owners[number % len(owners)], "CPO"
            recorded, country = owner, "BEL" if number % 4 == 3 else "BE"
        data = location_data(location_id(number), number, owner, country)
        yield (location_id(number), *owner, role, *recorded, data)


def build(connection: psycopg.Connection[Any], scale: Scale, locations: int) -> None:
    """Fill an empty database: MaEVe's tables, ocpi-parties' migrations, then the rows, by COPY."""
    migrations.create_maeve_base(connection)
    migrations.migrate(connection)
    with connection.transaction():
        # Rows made consistent by construction: load them without row triggers and key checks, as a restore
        # does. The location key stays NOT VALID while orphans exist, as on a real database.
        connection.execute("SET LOCAL session_replication_role = replica")
        connection.execute(
            "INSERT INTO reconciler_apply_history (id, actor, tool_version, summary)"
            " VALUES (1, 'benchmark', '0', 'the previous apply')"
        )
        managed: list[int] = []
        with connection.cursor().copy(
            "COPY ocpi_parties (id, role, country_code, party_id, url, token, business_details) FROM STDIN"
        ) as copy:
            for *row, is_managed in _party_rows(scale):
                copy.write_row(row)
                if is_managed:
                    managed.append(int(row[0]))
        # A record matches its row by id and creation time (migration 0006).
        connection.execute(
            "INSERT INTO reconciler_managed_parties (party_row_id, row_created_at, how, apply_id)"
            " SELECT id, created_at, CASE WHEN token = '' THEN 'created' ELSE 'adopted' END, 1"
            " FROM ocpi_parties WHERE id = ANY(%s)",
            (managed,),
        )
        connection.execute("SELECT setval('ocpi_parties_id_seq', (SELECT max(id) FROM ocpi_parties))")
        connection.execute("SELECT setval('reconciler_apply_history_id_seq', 1)")
        connection.execute(
            "UPDATE reconciler_apply_history SET state = (SELECT jsonb_build_object('rows', jsonb_agg("
            " jsonb_build_object('identity', p.country_code || '-' || p.party_id, 'role', p.role,"
            " 'url', p.url, 'business_details', p.business_details)"
            " ORDER BY p.country_code, p.party_id, p.role))"
            " FROM ocpi_parties AS p JOIN reconciler_managed_parties AS m ON m.party_row_id = p.id)"
        )
        connection.execute(
            "INSERT INTO system_config (key, value) VALUES ('default_party', %s)",
            ("{}-{}".format(*DEFAULT_PARTY),),
        )
        with connection.cursor().copy(
            "COPY locations (id, country_code, party_id, party_role, recorded_country_code,"
            " recorded_party_id, location_data) FROM STDIN"
        ) as copy:
            for row in _location_rows(scale, locations):
                copy.write_row(row)
    connection.execute("VACUUM (FREEZE, ANALYZE)")


def create_database(admin: str, database: str, template: str | None = None) -> None:
    """Create `database`, empty or as a file copy of `template` (the same pages, so the same state)."""
    with psycopg.connect(admin, autocommit=True) as server:
        server.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        if template is None:
            server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        else:
            server.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                    sql.Identifier(database), sql.Identifier(template)
                )
            )


def drop_database(admin: str, database: str) -> None:
    with psycopg.connect(admin, autocommit=True) as server:
        server.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
