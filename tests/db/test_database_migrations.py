"""The migrations on real PostgreSQL: empty and populated MaEVe databases, idempotence, the way back."""

from __future__ import annotations

import threading

import psycopg
import pytest
from maeve_sql import location_owner, save_location, save_party

from reconciler import migrations, store
from reconciler.database import Connection
from reconciler.errors import ExitCode, ReconcilerError
from reconciler.store import count_orphans, location_key_state, validate_location_key

OUR_TABLES = (
    "system_config",
    "reconciler_apply_history",
    "reconciler_managed_parties",
    "reconciler_migrations",
)


VERSIONS = [m.version for m in migrations.available()]


def catalog(connection: Connection) -> list[tuple[object, ...]]:
    """Columns, constraints, indexes and triggers of the public schema: what migrations may change."""
    columns = connection.execute(
        "SELECT table_name, column_name, data_type, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2"
    ).fetchall()
    constraints = connection.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"
    ).fetchall()
    indexes = connection.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
    ).fetchall()
    triggers = connection.execute(
        "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1"
    ).fetchall()
    return [*columns, *constraints, *indexes, *triggers]


def table_exists(connection: Connection, name: str) -> bool:
    row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def test_migrate_on_an_empty_maeve_database_adds_every_step(connection: Connection) -> None:
    steps = migrations.migrate(connection)

    assert [s.migration.version for s in steps] == [m.version for m in migrations.available()]
    assert all(s.direction == "up" for s in steps)
    for table in OUR_TABLES:
        assert table_exists(connection, table)
    recorded = migrations.applied(connection)
    assert sorted(recorded) == VERSIONS
    assert all(recorded[m.version].checksum == m.checksum for m in migrations.available())
    assert migrations.pending(connection) == []
    # Nothing to own yet, so the key is validated at once.
    assert validate_location_key(connection) is True
    assert location_key_state(connection) == "valid"


def test_system_config_has_exactly_the_designed_columns(migrated: Connection) -> None:
    rows = migrated.execute(
        "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns"
        " WHERE table_name = 'system_config' ORDER BY ordinal_position"
    ).fetchall()
    assert rows == [
        ("key", "character varying", "NO", None),
        ("value", "text", "NO", None),
        ("updated_at", "timestamp without time zone", "NO", "now()"),
    ]


def test_migrate_keeps_existing_maeve_rows_as_they_were(connection: Connection) -> None:
    peers = [
        save_party(connection, "EMSP", "DE", "EMO", url="https://emo.example/versions", token="token-emo"),
        save_party(connection, "CPO", "NL", "VLT", url="https://vlt.example/versions", token="token-vlt"),
    ]
    save_location(connection, "LOC-BE-1", "BE")
    save_location(connection, "LOC-XX-1", "XX")
    locations_before = connection.execute("SELECT * FROM locations ORDER BY id").fetchall()

    migrations.migrate(connection)

    parties_after = connection.execute(
        "SELECT id, role, country_code, party_id, url, token, created_at, updated_at"
        " FROM ocpi_parties ORDER BY id"
    ).fetchall()
    assert parties_after == sorted(peers, key=lambda row: int(str(row[0])))
    assert connection.execute(
        "SELECT count(*) FROM ocpi_parties WHERE business_details IS NULL"
    ).fetchone() == (2,)
    locations_after = connection.execute(
        "SELECT id, country_code, party_id, location_data, created_at, updated_at FROM locations ORDER BY id"
    ).fetchall()
    assert locations_after == locations_before
    assert location_owner(connection, "LOC-BE-1") == ("BE", "XXX", None)
    assert count_orphans(connection) == 2
    # Orphans remain: the key stays NOT VALID until they are moved.
    assert validate_location_key(connection) is False
    assert location_key_state(connection) == "not valid"


def test_migrate_gives_existing_locations_of_a_cpo_party_their_owner(connection: Connection) -> None:
    save_party(connection, "CPO", "NL", "VLT")
    connection.execute(
        "INSERT INTO locations (id, country_code, party_id, location_data) VALUES ('L1', 'NL', 'VLT', '{}')"
    )
    migrations.migrate(connection)
    assert location_owner(connection, "L1") == ("NL", "VLT", "CPO")
    assert validate_location_key(connection) is True


def test_migrate_twice_changes_nothing_the_second_time(connection: Connection) -> None:
    migrations.migrate(connection)
    before = catalog(connection)
    recorded = migrations.applied(connection)

    assert migrations.migrate(connection) == []

    assert catalog(connection) == before
    assert migrations.applied(connection) == recorded


def test_migrate_never_touches_maeves_schema_migrations(connection: Connection) -> None:
    connection.execute(
        "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)"
    )
    connection.execute("INSERT INTO schema_migrations VALUES (30, false)")
    migrations.migrate(connection)
    migrations.migrate(connection, to=0)
    assert connection.execute("SELECT * FROM schema_migrations").fetchall() == [(30, False)]


def test_migrating_down_to_zero_restores_maeves_schema_and_up_again_works(connection: Connection) -> None:
    before = catalog(connection)
    migrations.migrate(connection)

    steps = migrations.migrate(connection, to=0)

    assert [s.migration.version for s in steps] == VERSIONS[::-1]
    assert all(s.direction == "down" for s in steps)
    assert catalog(connection) == before
    assert not table_exists(connection, "reconciler_migrations")
    assert len(migrations.migrate(connection)) == len(VERSIONS)


def test_migrating_down_to_a_version_reverts_only_later_steps(migrated: Connection) -> None:
    steps = migrations.migrate(migrated, to=3)
    assert [s.migration.version for s in steps] == [v for v in VERSIONS[::-1] if v > 3]
    assert sorted(migrations.applied(migrated)) == [1, 2, 3]
    assert not table_exists(migrated, "reconciler_managed_parties")
    assert location_key_state(migrated) == "absent"
    assert [s.migration.version for s in migrations.migrate(migrated)] == [v for v in VERSIONS if v > 3]


def test_migrate_to_an_unknown_version_is_a_usage_error(connection: Connection) -> None:
    with pytest.raises(ReconcilerError) as raised:
        migrations.migrate(connection, to=99)
    assert raised.value.exit_code == ExitCode.USAGE
    assert "no migration 99" in raised.value.message


def test_concurrent_migrations_apply_each_step_once(database_url: str) -> None:
    results: list[list[migrations.Step]] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(database_url, autocommit=True) as own:
                results.append(migrations.migrate(own))
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    applied_versions = sorted(s.migration.version for steps in results for s in steps)
    assert applied_versions == VERSIONS


def test_a_failing_step_leaves_no_trace_of_itself(connection: Connection) -> None:
    migrations.migrate(connection, to=4)
    # A column in the way makes step 5 fail half-way (its FK needs party_role to be a varchar).
    connection.execute("ALTER TABLE locations ADD COLUMN party_role integer")
    with pytest.raises(psycopg.Error):
        migrations.migrate(connection)
    assert sorted(migrations.applied(connection)) == [1, 2, 3, 4]
    assert location_key_state(connection) == "absent"
    assert connection.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgname = 'locations_owner_guard'"
    ).fetchone() == (0,)


def test_create_maeve_base_only_creates_what_is_absent(empty_database_url: str) -> None:
    with psycopg.connect(empty_database_url, autocommit=True) as connection:
        assert migrations.create_maeve_base(connection) == ["ocpi_registrations", "ocpi_parties", "locations"]
        save_location(connection, "KEEP")
        assert migrations.create_maeve_base(connection) == []
        assert connection.execute("SELECT id FROM locations").fetchall() == [("KEEP",)]
        assert not table_exists(connection, "schema_migrations")


def test_a_database_migrated_by_a_newer_version_is_refused(migrated: Connection) -> None:
    migrated.execute(
        "INSERT INTO reconciler_migrations (version, name, checksum) VALUES (9999, 'from_the_future', 'x')"
    )
    for action in (lambda: migrations.migrate(migrated), lambda: migrations.require_current(migrated, "db")):
        with pytest.raises(ReconcilerError, match="migrated by a newer ocpi-parties") as raised:
            action()
        assert raised.value.exit_code == ExitCode.DATABASE
    assert store.status(migrated).unknown_migrations == (9999,)


def _schema_objects(connection: Connection) -> dict[str, str | None]:
    """Tables, columns, constraints, triggers, functions and indexes of the current schema, named as
    `migrations.DatabaseObject` names them, each with the table it belongs to (None for a function)."""
    rows = connection.execute(
        """
        SELECT 'table ' || c.relname, c.relname FROM pg_class AS c
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
        UNION ALL
        SELECT 'column ' || c.relname || '.' || a.attname, c.relname
          FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
           AND a.attnum > 0 AND NOT a.attisdropped
        UNION ALL
        SELECT 'constraint ' || k.conname || ' on ' || c.relname, c.relname
          FROM pg_constraint AS k JOIN pg_class AS c ON c.oid = k.conrelid
         WHERE c.relnamespace = current_schema()::regnamespace AND k.contype <> 'n'
        UNION ALL
        SELECT 'trigger ' || t.tgname || ' on ' || c.relname, c.relname
          FROM pg_trigger AS t JOIN pg_class AS c ON c.oid = t.tgrelid
         WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal
        UNION ALL
        SELECT 'function ' || p.proname, NULL FROM pg_proc AS p
         WHERE p.pronamespace = current_schema()::regnamespace
        UNION ALL
        SELECT 'index ' || i.relname, c.relname
          FROM pg_index AS x
          JOIN pg_class AS i ON i.oid = x.indexrelid
          JOIN pg_class AS c ON c.oid = x.indrelid
         WHERE c.relnamespace = current_schema()::regnamespace
        """
    ).fetchall()
    return {str(name): None if table is None else str(table) for name, table in rows}


def test_provides_lists_exactly_what_each_migration_adds(connection: Connection) -> None:
    """Each up adds the objects PROVIDES lists for it and nothing else (what a new table holds aside)."""
    assert sorted(migrations.PROVIDES) == VERSIONS
    migrations.migrate(connection, to=0)
    for migration in migrations.available():
        before = _schema_objects(connection)
        migrations.migrate(connection, to=migration.version)
        after = _schema_objects(connection)
        new_tables = {
            name.removeprefix("table ") for name in after.keys() - before.keys() if name[:6] == "table "
        }
        new_tables.discard(migrations.BOOKKEEPING)  # made by `migrate` itself, with the first step
        added = {
            name
            for name in after.keys() - before.keys()
            if after[name] != migrations.BOOKKEEPING
            and (name.startswith("table ") or after[name] not in new_tables)
        }
        assert added == {str(o) for o in migrations.PROVIDES[migration.version]}, migration.label
    assert migrations.missing(connection) == []
    every = [o for m in migrations.available() for o in migrations.PROVIDES[m.version]]
    assert migrations.absent(connection, every) == []


def test_each_down_removes_what_its_migration_provides(migrated: Connection) -> None:
    for migration in reversed(migrations.available()):
        provided = migrations.PROVIDES[migration.version]
        assert migrations.absent(migrated, provided) == []
        migrations.migrate(migrated, to=migration.version - 1)
        assert migrations.absent(migrated, provided) == list(provided), migration.label
        earlier = [o for v in VERSIONS if v < migration.version for o in migrations.PROVIDES[v]]
        assert migrations.absent(migrated, earlier) == []
        assert migrations.missing(migrated) == []


def test_missing_names_what_an_applied_migration_lacks(migrated: Connection) -> None:
    migrated.execute("ALTER TABLE ocpi_parties DROP COLUMN business_details")
    migrated.execute("DROP TRIGGER locations_owner_guard ON locations")
    by_label = {m.label: [str(o) for o in objects] for m, objects in migrations.missing(migrated)}
    assert by_label == {
        "0002_business_details": ["column ocpi_parties.business_details"],
        "0005_location_owner": ["trigger locations_owner_guard on locations"],
    }
    # Run again: the first migration with missing objects and every applied one after it, then nothing.
    assert [m.version for m in migrations.pending(migrated)] == [v for v in VERSIONS if v >= 2]
    with pytest.raises(ReconcilerError, match="lacks objects that ocpi-parties' applied") as raised:
        migrations.require_current(migrated, "db")
    assert raised.value.exit_code == ExitCode.DATABASE
    assert "0005_location_owner: missing trigger locations_owner_guard on locations" in raised.value.message
    recorded = migrations.applied(migrated)

    steps = migrations.migrate(migrated)

    assert [(s.migration.version, s.direction) for s in steps] == [(v, "restore") for v in VERSIONS if v >= 2]
    assert migrations.missing(migrated) == []
    assert migrations.pending(migrated) == []
    assert migrations.applied(migrated) == recorded
    migrations.require_current(migrated, "db")
    assert migrations.migrate(migrated) == []
