"""Measure the database layer on a MaEVe database of production size (10,000 parties, 1,000,000 locations).

Usage: .venv/bin/python scripts/measure_database.py postgresql://postgres@127.0.0.1:5432/postgres [LOCATIONS]

Creates (and drops afterwards) a database `ocpi_parties_measure` on that server, fills MaEVe's tables with
peer parties and MaEVe-written locations (party XXX), then times: `db migrate`, the orphan count, the count
per identity, MaEVe's location upsert before and after migration, and moving 10% of the locations with
the guard trigger against the same UPDATE with the trigger disabled.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from reconciler import migrations, store
from reconciler.model import Identity

NAME = "ocpi_parties_measure"
UPSERT = (
    "INSERT INTO locations (id, country_code, party_id, location_data) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (id) DO UPDATE SET country_code = EXCLUDED.country_code, party_id = EXCLUDED.party_id,"
    " location_data = EXCLUDED.location_data, updated_at = NOW()"
)


def timed(label: str, action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    print(f"{label:<58} {seconds:8.3f} s")
    return seconds


def upserts(connection: psycopg.Connection[tuple[object, ...]], count: int = 2000) -> None:
    for number in range(count):
        location = f"LOC-{number * 37 % 1000:07d}"
        connection.execute(UPSERT, (location, "BE", "XXX", '{"Name": "again", "Country": "BEL"}'))


def main(admin: str, locations: int) -> None:
    with psycopg.connect(admin, autocommit=True) as server:
        server.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(NAME)))
        server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(NAME)))
    try:
        with psycopg.connect(make_conninfo(admin, dbname=NAME), autocommit=True) as connection:
            run(connection, locations)
    finally:
        with psycopg.connect(admin, autocommit=True) as server:
            server.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(NAME)))


def run(connection: psycopg.Connection[tuple[object, ...]], locations: int) -> None:
    version = connection.execute("SHOW server_version").fetchone()
    print(f"PostgreSQL {version[0] if version else '?'}, {locations:,} locations, 10,000 parties")
    migrations.create_maeve_base(connection)
    connection.execute(
        "INSERT INTO ocpi_parties (role, country_code, party_id, url, token)"
        " SELECT 'CPO', 'Q' || chr(65 + n / 1000), lpad((n % 1000)::text, 3, '0'),"
        " 'https://peer/versions', 'token' FROM generate_series(0, 9999) AS n"
    )
    connection.execute(
        "INSERT INTO locations (id, country_code, party_id, location_data)"
        " SELECT 'LOC-' || lpad(n::text, 7, '0'), 'BE', 'XXX',"
        " jsonb_build_object('Id', n, 'Name', 'Site ' || n, 'Country', 'BEL', 'City', 'Brussels')"
        " FROM generate_series(0, %s - 1) AS n",
        (locations,),
    )
    connection.execute("VACUUM ANALYZE")
    timed("MaEVe location upsert x2000, before migration", lambda: upserts(connection))
    timed("db migrate (all steps) on that database", lambda: migrations.migrate(connection))
    timed("orphan count (store.count_orphans)", lambda: store.count_orphans(connection))
    timed("count per identity (store.count_locations)", lambda: store.count_locations(connection))
    connection.execute(
        "INSERT INTO ocpi_parties (role, country_code, party_id, url, token) VALUES"
        " ('CPO', 'GB', 'TWK', 'https://self/versions', 'own'),"
        " ('CPO', 'ES', 'CPO', 'https://es/versions', 'es')"
    )
    store.set_default_party(connection, Identity("GB", "TWK"))
    timed("MaEVe location upsert x2000, after migration (default set)", lambda: upserts(connection))
    tenth = locations // 10

    def move(trigger: bool, target: tuple[str, str]) -> None:
        with connection.transaction():
            if not trigger:
                connection.execute("ALTER TABLE locations DISABLE TRIGGER locations_owner_guard")
            connection.execute("SELECT set_config('ocpi_parties.move_locations', 'on', true)")
            connection.execute(
                "UPDATE locations"
                " SET country_code = %s, party_id = %s, party_role = 'CPO', updated_at = now()"
                " WHERE id >= 'LOC-' || lpad(%s::text, 7, '0') AND id < 'LOC-' || lpad(%s::text, 7, '0')",
                (*target, locations - tenth, locations),
            )
            if not trigger:
                connection.execute("ALTER TABLE locations ENABLE TRIGGER locations_owner_guard")

    connection.execute("VACUUM ANALYZE locations")
    plain = timed(f"move {tenth:,} locations, guard trigger disabled", lambda: move(False, ("ES", "CPO")))
    connection.execute("VACUUM ANALYZE locations")
    guarded = timed(
        f"move {tenth:,} locations back, guard trigger enabled", lambda: move(True, ("GB", "TWK"))
    )
    print(f"{'ratio guarded / plain':<58} {guarded / plain:8.2f}")
    connection.execute("UPDATE locations SET location_data = location_data WHERE party_role IS NULL")
    timed("validate the location key (no orphan left)", lambda: store.validate_location_key(connection))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000)
