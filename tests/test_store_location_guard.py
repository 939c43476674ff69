"""MaEVe's runtime statements after migration, verbatim, before and after a default party exists.

The location guard (migration 0005) must let MaEVe's location upsert (party XXX) and party upsert work
unchanged, put new locations on the default party once there is one, and keep the owner of a location that
already belongs to a real CPO when MaEVe saves it again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from maeve_sql import (
    GET_LOCATION,
    GET_OCPI_PARTY,
    LIST_ALL_LOCATIONS,
    LIST_LOCATIONS,
    LIST_OCPI_PARTIES_FOR_ROLE,
    location_data,
    location_owner,
    save_location,
    save_party,
)
from psycopg import sql
from psycopg.conninfo import make_conninfo

from reconciler import store
from reconciler.database import Connection
from reconciler.model import Identity

GB_TWK = Identity("GB", "TWK")
ES_CPO = Identity("ES", "CPO")


def make_default(connection: Connection, identity: Identity = GB_TWK) -> None:
    save_party(
        connection, "CPO", identity.country_code, identity.party_id, url="https://self/versions", token="own"
    )
    store.set_default_party(connection, identity)


def test_location_upsert_before_any_default_party_stays_unowned(migrated: Connection) -> None:
    row = save_location(migrated, "LOC-1", "BE")
    assert row[:3] == ("LOC-1", "BE", "XXX")
    assert location_owner(migrated, "LOC-1") == ("BE", "XXX", None)

    again = save_location(migrated, "LOC-1", "BE", location_data("LOC-1", Name="Renamed"))
    assert again[:3] == ("LOC-1", "BE", "XXX")
    assert isinstance(again[3], dict)
    assert again[3]["Name"] == "Renamed"
    assert location_owner(migrated, "LOC-1") == ("BE", "XXX", None)

    save_location(migrated, "LOC-2", "XX")
    assert location_owner(migrated, "LOC-2") == ("XX", "XXX", None)


def test_location_upsert_after_a_default_party_lands_on_it(migrated: Connection) -> None:
    make_default(migrated)
    row = save_location(migrated, "LOC-NEW", "BE")
    assert row[:3] == ("LOC-NEW", "GB", "TWK")
    assert location_owner(migrated, "LOC-NEW") == ("GB", "TWK", "CPO")
    # Saving it again changes nothing about its owner.
    save_location(migrated, "LOC-NEW", "BE")
    assert location_owner(migrated, "LOC-NEW") == ("GB", "TWK", "CPO")


def test_unowned_location_saved_again_once_a_default_exists_moves_to_it(migrated: Connection) -> None:
    save_location(migrated, "LOC-OLD", "BE")
    make_default(migrated)
    save_location(migrated, "LOC-OLD", "BE")
    assert location_owner(migrated, "LOC-OLD") == ("GB", "TWK", "CPO")


def test_location_of_a_real_cpo_keeps_its_owner_when_maeve_saves_it_again(migrated: Connection) -> None:
    make_default(migrated)
    save_party(migrated, "CPO", "ES", "CPO", url="https://es/versions", token="es")
    save_location(migrated, "LOC-ES", "PT")
    store.set_location_party(migrated, "LOC-ES", ES_CPO)
    assert location_owner(migrated, "LOC-ES") == ("ES", "CPO", "CPO")

    row = save_location(migrated, "LOC-ES", "PT", location_data("LOC-ES", "PRT", Name="New name"))

    assert row[:3] == ("LOC-ES", "ES", "CPO")
    assert location_owner(migrated, "LOC-ES") == ("ES", "CPO", "CPO")
    stored = migrated.execute("SELECT location_data->>'Name' FROM locations WHERE id = 'LOC-ES'").fetchone()
    assert stored == ("New name",)


def test_location_of_a_real_cpo_keeps_its_owner_before_any_default_party(migrated: Connection) -> None:
    save_party(migrated, "CPO", "ES", "CPO")
    save_location(migrated, "LOC-ES", "ES")
    store.set_location_party(migrated, "LOC-ES", ES_CPO)
    save_location(migrated, "LOC-ES", "ES")
    assert location_owner(migrated, "LOC-ES") == ("ES", "CPO", "CPO")


def test_a_writer_naming_a_known_cpo_sets_that_owner(migrated: Connection) -> None:
    make_default(migrated)
    save_party(migrated, "CPO", "ES", "CPO")
    save_location(migrated, "L", "BE")
    migrated.execute("UPDATE locations SET country_code = 'ES', party_id = 'CPO' WHERE id = 'L'")
    assert location_owner(migrated, "L") == ("ES", "CPO", "CPO")
    # A party that holds only another role is not an owner: the location keeps its CPO.
    save_party(migrated, "EMSP", "DE", "EMO")
    migrated.execute("UPDATE locations SET country_code = 'DE', party_id = 'EMO' WHERE id = 'L'")
    assert location_owner(migrated, "L") == ("ES", "CPO", "CPO")


def test_party_role_is_kept_right_whatever_a_writer_puts_in_it(migrated: Connection) -> None:
    save_location(migrated, "L", "BE")
    migrated.execute("UPDATE locations SET party_role = 'EMSP' WHERE id = 'L'")
    assert location_owner(migrated, "L") == ("BE", "XXX", None)


def test_ocpi_json_keys_follow_the_row(migrated: Connection) -> None:
    make_default(migrated)
    save_party(migrated, "CPO", "ES", "CPO")
    ocpi = json.dumps({"id": "OCPI-1", "country_code": "XX", "party_id": "XXX", "name": "Standard OCPI"})
    save_location(migrated, "OCPI-1", "BE", ocpi)
    assert migrated.execute(
        "SELECT location_data->>'country_code', location_data->>'party_id' FROM locations WHERE id = 'OCPI-1'"
    ).fetchone() == ("GB", "TWK")

    store.set_location_party(migrated, "OCPI-1", ES_CPO)
    data = migrated.execute("SELECT location_data FROM locations WHERE id = 'OCPI-1'").fetchone()
    assert data is not None
    assert data[0] == {"id": "OCPI-1", "country_code": "ES", "party_id": "CPO", "name": "Standard OCPI"}


def test_maeve_location_json_without_those_keys_is_stored_as_written(migrated: Connection) -> None:
    make_default(migrated)
    written = location_data("L1")
    save_location(migrated, "L1", "BE", written)
    stored = migrated.execute("SELECT location_data FROM locations WHERE id = 'L1'").fetchone()
    assert stored == (json.loads(written),)


def test_maeve_party_upsert_works_after_migration(migrated: Connection) -> None:
    created = save_party(migrated, "EMSP", "DE", "EMO", url="https://a/versions", token="t1")
    migrated.execute(
        "UPDATE ocpi_parties SET business_details = %s WHERE id = %s", ('{"name": "Emobility"}', created[0])
    )
    updated = save_party(migrated, "EMSP", "DE", "EMO", url="https://b/versions", token="t2")

    assert updated[0] == created[0]
    assert updated[4:6] == ("https://b/versions", "t2")
    details = migrated.execute(
        "SELECT business_details FROM ocpi_parties WHERE id = %s", (created[0],)
    ).fetchone()
    assert details == ({"name": "Emobility"},)


def test_maeve_party_upsert_of_the_default_cpo_keeps_its_locations(migrated: Connection) -> None:
    make_default(migrated)
    save_location(migrated, "L", "BE")
    save_party(migrated, "CPO", "GB", "TWK", url="https://new/versions", token="rotated")
    assert location_owner(migrated, "L") == ("GB", "TWK", "CPO")


def test_maeve_reads_work_after_migration(migrated: Connection) -> None:
    make_default(migrated)
    save_party(migrated, "EMSP", "DE", "EMO")
    save_location(migrated, "L1", "BE")
    save_location(migrated, "L2", "XX")

    assert migrated.execute(GET_OCPI_PARTY, ("EMSP", "DE", "EMO")).fetchone() is not None
    assert len(migrated.execute(LIST_OCPI_PARTIES_FOR_ROLE, ("CPO",)).fetchall()) == 1
    assert migrated.execute(GET_LOCATION, ("L1",)).fetchone() is not None
    assert {row[0] for row in migrated.execute(LIST_ALL_LOCATIONS, (10, 0))} == {"L1", "L2"}
    assert len(migrated.execute(LIST_LOCATIONS, ("GB", "TWK", 10, 0)).fetchall()) == 2


def test_a_cpo_that_still_owns_locations_cannot_be_deleted(migrated: Connection) -> None:
    make_default(migrated)
    save_location(migrated, "L", "BE")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        migrated.execute("DELETE FROM ocpi_parties WHERE role = 'CPO' AND country_code = 'GB'")
    assert location_owner(migrated, "L") == ("GB", "TWK", "CPO")


def test_a_cpo_without_locations_can_be_deleted_and_writes_fall_back_to_unowned(migrated: Connection) -> None:
    make_default(migrated)
    migrated.execute("DELETE FROM ocpi_parties WHERE role = 'CPO' AND country_code = 'GB'")
    save_location(migrated, "L", "BE")
    assert location_owner(migrated, "L") == ("BE", "XXX", None)


def test_moves_inside_move_mode_must_name_a_cpo(migrated: Connection) -> None:
    save_location(migrated, "L", "BE")
    refused = pytest.raises(psycopg.errors.ForeignKeyViolation, match="locations_party_fk")
    with refused, migrated.transaction():
        migrated.execute("SELECT set_config('ocpi_parties.move_locations', 'on', true)")
        migrated.execute("UPDATE locations SET country_code = 'FR', party_id = 'ABC' WHERE id = 'L'")


@pytest.fixture
def maeve_role(postgres_admin: str, database_url: str) -> Iterator[str]:
    """A role with only the rights MaEVe's own role had before migration: it owns nothing."""
    name = f"maeve_app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_admin, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    with psycopg.connect(database_url, autocommit=True) as owner:
        owner.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON locations, ocpi_parties TO {}").format(
                sql.Identifier(name)
            )
        )
        owner.execute(
            sql.SQL("GRANT USAGE ON SEQUENCE ocpi_parties_id_seq TO {}").format(sql.Identifier(name))
        )
    try:
        yield name
    finally:
        with psycopg.connect(database_url, autocommit=True) as owner:
            owner.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        with psycopg.connect(postgres_admin, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_maeves_role_needs_no_new_grant_after_migration(
    migrated: Connection, database_url: str, maeve_role: str
) -> None:
    make_default(migrated)
    with psycopg.connect(make_conninfo(database_url, user=maeve_role), autocommit=True) as maeve:
        assert save_location(maeve, "AS-MAEVE", "BE")[:3] == ("AS-MAEVE", "GB", "TWK")
        save_party(maeve, "EMSP", "DE", "EMO")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            maeve.execute("SELECT * FROM system_config")
