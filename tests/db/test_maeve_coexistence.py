"""Beside MaEVe's own migrations (golang-migrate): its down chain and up again on a database that ocpi-parties
migrated and applied, `db status` and `db migrate` afterwards, `db migrate --to 0` removing only what
ocpi-parties made, and PostgreSQL's own dependency records. Real PostgreSQL; MaEVe's statements verbatim.

The state an apply leaves is built with `migrate()` and SQL that writes what apply writes (a hosted CPO row
without credentials, a registered partner adopted, the default party, claims, moves, locations moved): these
tests concern the schema, not how apply decides.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import Run
from maeve_sql import (
    GET_LOCATION,
    LIST_OCPI_PARTIES_FOR_ROLE,
    MIGRATION_000005_DOWN,
    PEER_TOKEN,
    save_location,
    save_party,
    snapshot,
)

from reconciler import apply as apply_module
from reconciler import migrations, store
from reconciler.database import Connection
from reconciler.errors import ExitCode, ReconcilerError
from reconciler.model import Identity
from reconciler.validate import validate_path

ROOT = Path(__file__).parents[2]
#: MaEVe's 000005 up creates its three tables as this file does (see its header).
MAEVE_000005_UP = (ROOT / "reconciler" / "sql" / "maeve_base.sql").read_text()
MAEVE_LATEST = 30
#: The tables of ocpi-parties that live outside MaEVe's tables.
OUR_TABLES = (
    "system_config",
    "reconciler_migrations",
    "reconciler_apply_history",
    "reconciler_managed_parties",
    "reconciler_location_claims",
    "reconciler_moved_from",
)


@pytest.fixture(autouse=True)
def _nothing_from_the_environment(no_configured_database: None) -> None:
    """Each test names its database itself."""


def as_applied(connection: Connection) -> None:
    """`db migrate`, then what an apply of the example parties leaves: GB-TWK's hosted CPO row (created,
    no credentials), NL-VLT's registered EMSP row adopted, GB-TWK the default party, a claim, a move, and
    every location that had no owner moved to its owner."""
    migrations.migrate(connection)
    with connection.transaction():
        history = connection.execute(
            "INSERT INTO reconciler_apply_history (actor, tool_version, summary)"
            " VALUES ('deploy-bot', 'test', '1 added, 1 adopted') RETURNING id"
        ).fetchone()
        assert history is not None
        created = connection.execute(
            "INSERT INTO ocpi_parties (role, country_code, party_id, url, token, business_details)"
            " VALUES ('CPO', 'GB', 'TWK', '', '', %s) RETURNING id, created_at",
            (json.dumps({"name": "The Wallbox Company"}),),
        ).fetchone()
        adopted = connection.execute(
            "UPDATE ocpi_parties SET business_details = %s"
            " WHERE (role, country_code, party_id) = ('EMSP', 'NL', 'VLT') RETURNING id, created_at",
            (json.dumps({"name": "Voltkaart"}),),
        ).fetchone()
        assert created is not None and adopted is not None
        for how, (row_id, created_at) in (("created", created), ("adopted", adopted)):
            connection.execute(
                "INSERT INTO reconciler_managed_parties (party_row_id, how, row_created_at, apply_id)"
                " VALUES (%s, %s, %s, %s)",
                (row_id, how, created_at, history[0]),
            )
        store.set_default_party(connection, Identity("GB", "TWK"))
        connection.execute("INSERT INTO reconciler_location_claims VALUES ('LOC-BE-0', 'GB', 'TWK')")
        connection.execute("INSERT INTO reconciler_moved_from VALUES ('PT', 'CPO', 'GB', 'TWK')")
        connection.execute("SELECT set_config(%s, 'on', true)", (store.MOVE_SETTING,))
        connection.execute(
            "UPDATE locations SET country_code = 'GB', party_id = 'TWK', party_role = 'CPO'"
            " WHERE party_role IS NULL"
        )
        connection.execute("SELECT set_config(%s, 'off', true)", (store.MOVE_SETTING,))
    assert store.validate_location_key(connection) is True
    assert migrations.missing(connection) == []


def maeve_works(connection: Connection, tag: str) -> None:
    """MaEVe's statements, verbatim: a registration, the push-target list, a location stored and read."""
    saved = save_party(connection, "EMSP", "FR", tag[:3].upper(), token=PEER_TOKEN)
    listed = connection.execute(LIST_OCPI_PARTIES_FOR_ROLE, ("EMSP",)).fetchall()
    assert saved in listed
    location = save_location(connection, f"NEW-{tag}", "BE")
    assert connection.execute(GET_LOCATION, (f"NEW-{tag}",)).fetchone() == location
    again = save_location(connection, f"NEW-{tag}", "FR")  # SetLocation's ON CONFLICT path
    assert connection.execute(GET_LOCATION, (f"NEW-{tag}",)).fetchone() == again


def set_version(connection: Connection, version: int, dirty: bool) -> None:
    """golang-migrate's SetVersion: one row in schema_migrations (the test plays MaEVe here)."""
    with connection.transaction():
        connection.execute("DELETE FROM schema_migrations")
        if version > 0:
            connection.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (version, dirty))


def maeve_migrate(connection: Connection, version: int, script: str, direction: str) -> None:
    """One migration as golang-migrate runs it: marked dirty, the file sent as one multi-statement exec
    (one implicit transaction on this autocommit connection), then marked clean at the new version."""
    target = version - 1 if direction == "down" else version
    set_version(connection, target, dirty=True)
    if script:
        connection.execute(script.encode())
    set_version(connection, target, dirty=False)


def schema_migrations(connection: Connection) -> list[tuple[object, ...]]:
    return connection.execute("SELECT version, dirty FROM schema_migrations").fetchall()


def exists(connection: Connection, name: str) -> bool:
    row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def test_maeves_down_chain_and_up_again_then_db_migrate_restores_what_is_missing(
    run: Run, live: Connection, database_url: str
) -> None:
    connection = live
    as_applied(connection)
    maeve_works(connection, "before")
    connection.execute(
        "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)"
    )
    set_version(connection, MAEVE_LATEST, dirty=False)
    recorded = migrations.applied(connection)

    # MaEVe all the way down past 000005: its other migrations do not touch these tables (no-ops here).
    for version in range(MAEVE_LATEST, 5, -1):
        maeve_migrate(connection, version, "", "down")
    maeve_migrate(connection, 5, MIGRATION_000005_DOWN, "down")

    assert schema_migrations(connection) == [(4, False)]  # not dirty: nothing of ours was in the way
    for table in ("locations", "ocpi_parties", "ocpi_registrations"):
        assert not exists(connection, table)
    for table in OUR_TABLES:
        assert exists(connection, table), table

    for version in range(5, MAEVE_LATEST + 1):
        maeve_migrate(connection, version, MAEVE_000005_UP if version == 5 else "", "up")
    assert schema_migrations(connection) == [(MAEVE_LATEST, False)]
    maeve_works(connection, "bare")

    code, out, err = run("db", "status", "--database-url", database_url)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert "  up to date" not in lines
    start = lines.index(
        "  Missing (applied, but gone from the database: MaEVe's own migrations may have dropped and "
        "created its tables again):"
    )
    assert lines[start + 1 : start + 5] == [
        "    0002_business_details: missing column ocpi_parties.business_details",
        "    0005_location_owner: missing column locations.party_role, constraint locations_party_fk on "
        "locations, trigger locations_owner_guard on locations",
        "    0006_ownership: missing column ocpi_parties.holds_credentials, index ocpi_parties_cpo_identity, "
        "column locations.recorded_country_code, column locations.recorded_party_id, "
        "index locations_recorded_owner",
        "  run `ocpi-parties db migrate` to restore what is missing",
    ]
    # The management records name rows that are gone: the new row that reuses NL-VLT's id is not managed.
    assert connection.execute(
        "SELECT m.how FROM reconciler_managed_parties AS m JOIN ocpi_parties AS p ON p.id = m.party_row_id"
    ).fetchall() == [("adopted",)]
    assert "Parties: 1 rows, 0 managed, 1 not managed" in lines
    # The read commands read what is there, as plan does; history, which needs its table, refuses.
    code, out, err = run("parties", "list", "--database-url", database_url)
    assert (code, err) == (0, "")
    assert "Business details: (not recorded yet: run `ocpi-parties db migrate`)." in out.splitlines()
    code, _, err = run("history", "--database-url", database_url)
    assert code == ExitCode.DATABASE
    assert "lacks objects that ocpi-parties' applied migrations provide (0002_business_details:" in err
    # plan and apply run these (state.read_actual_state takes its migrations from pending()).
    assert [m.label for m in migrations.pending(connection)] == [
        m.label for m in migrations.available() if m.version >= 2
    ]

    code, out, err = run("db", "migrate", "--database-url", database_url)

    assert (code, err) == (0, "")
    assert [re.sub(r" \(\d+\.\d\d s\)$", "", line) for line in out.splitlines()] == [
        *(f"restored {m.label}" for m in migrations.available() if m.version >= 2),
        "Location owner key: not valid yet (orphan locations remain; apply moves them).",
    ]
    assert migrations.missing(connection) == []
    assert migrations.applied(connection) == recorded  # nothing new in the bookkeeping
    assert schema_migrations(connection) == [(MAEVE_LATEST, False)]  # MaEVe's, never written
    code, out, _ = run("db", "status", "--database-url", database_url)
    assert (code, "  up to date" in out.splitlines()) == (0, True)
    assert run("parties", "list", "--database-url", database_url)[0] == 0
    assert run("db", "migrate", "--database-url", database_url)[1].startswith("Nothing to do")

    maeve_works(connection, "after")
    # The guard is back: a writer naming a CPO row is owned by it, with the identity it gave recorded.
    save_party(connection, "CPO", "BE", "PEE", token=PEER_TOKEN)
    connection.execute(
        "INSERT INTO locations (id, country_code, party_id, location_data)"
        " VALUES ('PEE-2', 'be', 'pee', '{}')"
    )
    assert connection.execute(
        "SELECT country_code, party_id, party_role, recorded_country_code, recorded_party_id"
        " FROM locations WHERE id = 'PEE-2'"
    ).fetchone() == ("BE", "PEE", "CPO", "BE", "PEE")


def test_migrations_ups_are_idempotent_on_an_applied_database(live: Connection) -> None:
    """`db migrate` runs them again after MaEVe's reset: a second run of each changes nothing."""
    as_applied(live)

    def everything() -> list[object]:
        functions = live.execute(
            "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc AS p"
            " WHERE p.pronamespace = current_schema()::regnamespace ORDER BY 1"
        ).fetchall()
        indexes = live.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1"
        ).fetchall()
        comments = live.execute(
            "SELECT objoid::regclass::text, objsubid, description FROM pg_description"
            " WHERE classoid = 'pg_class'::regclass AND objoid IN"
            " (SELECT oid FROM pg_class WHERE relnamespace = current_schema()::regnamespace) ORDER BY 1, 2"
        ).fetchall()
        return [*snapshot(live), functions, indexes, comments]

    before = everything()
    for migration in migrations.available():
        with live.transaction():
            live.execute(migration.up.encode())
            live.execute(migration.up.encode())
        assert migrations.missing(live) == [], migration.label
    assert everything() == before


def _system_config(connection: Connection) -> list[tuple[object, ...]]:
    return connection.execute("SELECT key, value FROM system_config ORDER BY key").fetchall()


def test_migrate_to_zero_keeps_a_system_config_that_was_there_before(
    run: Run, connection: Connection, database_url: str
) -> None:
    connection.execute(
        "CREATE TABLE system_config (key varchar(50) PRIMARY KEY, value text NOT NULL,"
        " updated_at timestamp NOT NULL DEFAULT now())"
    )
    connection.execute("INSERT INTO system_config (key, value) VALUES ('maintenance_mode', 'off')")
    assert run("db", "migrate", "--database-url", database_url)[0] == 0
    save_party(connection, "CPO", "GB", "TWK", token="")
    store.set_default_party(connection, Identity("GB", "TWK"))
    assert _system_config(connection) == [("default_party", "GB-TWK"), ("maintenance_mode", "off")]

    code, _, err = run("db", "migrate", "--to", "0", "--yes", "--database-url", database_url)

    assert (code, err) == (0, "")
    assert _system_config(connection) == [("maintenance_mode", "off")]


def test_migrate_to_zero_drops_the_system_config_that_ocpi_parties_created(
    run: Run, connection: Connection, database_url: str
) -> None:
    assert run("db", "migrate", "--database-url", database_url)[0] == 0
    save_party(connection, "CPO", "GB", "TWK", token="")
    store.set_default_party(connection, Identity("GB", "TWK"))

    assert run("db", "migrate", "--to", "0", "--yes", "--database-url", database_url)[0] == 0

    assert not exists(connection, "system_config")


def test_migrate_to_zero_keeps_rows_another_tool_added_to_the_system_config_ocpi_parties_created(
    run: Run, migrated: Connection, database_url: str
) -> None:
    migrated.execute("INSERT INTO system_config (key, value) VALUES ('maintenance_mode', 'on')")

    assert run("db", "migrate", "--to", "0", "--yes", "--database-url", database_url)[0] == 0

    assert _system_config(migrated) == [("maintenance_mode", "on")]


def test_migrate_to_zero_leaves_nothing_of_ocpi_parties(
    run: Run, live: Connection, database_url: str
) -> None:
    before = snapshot(live)
    functions_before = live.execute(
        "SELECT proname FROM pg_proc WHERE pronamespace = current_schema()::regnamespace ORDER BY 1"
    ).fetchall()
    indexes_before = live.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1"
    ).fetchall()
    as_applied(live)

    code, _, err = run("db", "migrate", "--to", "0", "--yes", "--database-url", database_url)

    assert (code, err) == (0, "")
    after = snapshot(live)
    tables, columns, constraints, triggers = before[:4]
    assert after[:4] == [tables, columns, constraints, triggers]  # schema: exactly MaEVe's again
    assert (
        live.execute(
            "SELECT proname FROM pg_proc WHERE pronamespace = current_schema()::regnamespace ORDER BY 1"
        ).fetchall()
        == functions_before
    )
    assert (
        live.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1"
        ).fetchall()
        == indexes_before
    )
    # MaEVe's rows: what apply did to them stays (the hosted row it created, the locations it moved); the
    # rows registration wrote are as they were, and no location was lost or rewritten.
    assert isinstance(tables, list)
    rows = {str(table[0]): (before[4 + i], after[4 + i]) for i, table in enumerate(tables)}
    parties_before, parties_after = rows["ocpi_parties"]
    assert isinstance(parties_before, list) and isinstance(parties_after, list)
    registered = {row[0] for row in parties_before}
    assert [row for row in parties_after if row[0] in registered] == parties_before
    assert [row[1:6] for row in parties_after if row[0] not in registered] == [("CPO", "GB", "TWK", "", "")]
    locations_before, locations_after = rows["locations"]
    assert isinstance(locations_before, list) and isinstance(locations_after, list)

    # id, location_data, created_at: only the owner is apply's to change, in the columns and in the OCPI
    # `country_code`/`party_id` keys of location_data, which follow the row.
    def kept(row: Any) -> tuple[object, ...]:
        data = {k: v for k, v in row[3].items() if k not in ("country_code", "party_id")}
        return (row[0], data, row[4])

    assert [kept(row) for row in locations_after] == [kept(row) for row in locations_before]


_FOREIGN_DEPENDENTS = """
WITH maeve AS (
    SELECT oid FROM pg_class WHERE oid IN (to_regclass('ocpi_parties'), to_regclass('locations'))
    UNION
    SELECT indexrelid FROM pg_index
     WHERE indrelid IN (to_regclass('ocpi_parties'), to_regclass('locations'))
)
SELECT pg_describe_object(d.classid, d.objid, d.objsubid)
  FROM pg_depend AS d
 WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid IN (SELECT oid FROM maeve)
   AND d.deptype = 'n'  -- what DROP TABLE (RESTRICT) refuses to drop along
   AND coalesce(
         CASE d.classid
         WHEN 'pg_constraint'::regclass THEN (SELECT conrelid FROM pg_constraint WHERE oid = d.objid)
         WHEN 'pg_trigger'::regclass THEN (SELECT tgrelid FROM pg_trigger WHERE oid = d.objid)
         WHEN 'pg_attrdef'::regclass THEN (SELECT adrelid FROM pg_attrdef WHERE oid = d.objid)
         WHEN 'pg_rewrite'::regclass THEN (SELECT ev_class FROM pg_rewrite WHERE oid = d.objid)
         WHEN 'pg_class'::regclass THEN
              (SELECT coalesce(i.indrelid, d.objid) FROM pg_class AS c LEFT JOIN pg_index AS i
                   ON i.indexrelid = c.oid WHERE c.oid = d.objid)
         END, 0) NOT IN (SELECT oid FROM maeve)
 ORDER BY 1
"""


def _foreign_dependents(connection: Connection) -> list[str]:
    """Objects outside ocpi_parties and locations that depend on them: a foreign key from another table,
    a view. Each would make MaEVe's 000005 down fail."""
    return sorted({str(name) for (name,) in connection.execute(_FOREIGN_DEPENDENTS)})


def test_nothing_of_ocpi_parties_depends_on_maeves_tables_from_outside(live: Connection) -> None:
    as_applied(live)

    assert _foreign_dependents(live) == []

    # The query sees what would block MaEVe: a view, and the foreign key 0004 had before 0006 removed it.
    with pytest.raises(psycopg.errors.DependentObjectsStillExist), live.transaction():
        live.execute("CREATE VIEW party_names AS SELECT id FROM ocpi_parties")
        assert _foreign_dependents(live) == ["rule _RETURN on view party_names"]
        live.execute(MIGRATION_000005_DOWN.encode())
    migrations.migrate(live, to=5)
    assert [d.split(" on ")[1] for d in _foreign_dependents(live)] == ["table reconciler_managed_parties"]


def test_apply_refuses_a_database_migrated_by_a_newer_ocpi_parties(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    migrations.migrate(live)
    live.execute(
        "INSERT INTO reconciler_migrations (version, name, checksum) VALUES (9999, 'from_the_future', 'x')"
    )
    before = snapshot(live)

    code, out, err = run("apply", "--auto-approve", "--database-url", database_url)

    assert (code, out) == (ExitCode.DATABASE, "")
    assert "was migrated by a newer ocpi-parties (migrations 9999 are unknown to this one)" in err
    assert snapshot(live) == before

    # The library path refuses under apply's lock as well, before planning anything.
    desired = validate_path(workdir / "parties", "parties").state
    assert desired is not None
    with pytest.raises(ReconcilerError, match="migrated by a newer ocpi-parties") as raised:
        apply_module.apply(
            live, desired, label="db", allow_delete=False, reviewed_fingerprint=None, revision=None, actor="t"
        )
    assert raised.value.exit_code == ExitCode.DATABASE
    assert snapshot(live) == before


def test_migrate_to_zero_after_maeves_reset_removes_what_is_left_of_ocpi_parties(
    run: Run, live: Connection, database_url: str
) -> None:
    before = snapshot(live)
    as_applied(live)
    live.execute(MIGRATION_000005_DOWN.encode())
    live.execute(MAEVE_000005_UP.encode())

    code, _, err = run("db", "migrate", "--to", "0", "--yes", "--database-url", database_url)

    assert (code, err) == (0, "")
    assert snapshot(live)[:4] == before[:4]
    assert (
        live.execute(
            "SELECT proname FROM pg_proc WHERE pronamespace = current_schema()::regnamespace"
            " AND proname LIKE 'reconciler%'"
        ).fetchall()
        == []
    )
