"""The location guard (migration 0006) under MaEVe's runtime statements, verbatim, and other writers.

Every writer's location write goes through the guard. Outside ocpi-parties' own moves it
* records the identity the writer gave, upper-cased, unless it is MaEVe's placeholder party XXX: MaEVe's write
  records nothing and keeps what an earlier writer recorded;
* gives the row its owner: claimed by id (reconciler_location_claims) -> the claimant's CPO row; the recorded
  identity's CPO row (case-insensitive, the lowest id among rows that differ only in case); the CPO row of the
  party a `moved_from` (reconciler_moved_from) names for the recorded identity; the default party; else none,
  and the row keeps what the writer gave, party_role NULL.
MaEVe's SetLocation is an upsert: its ON CONFLICT branch must behave like a fresh write of what MaEVe gave,
not of the owner the INSERT trigger had already put in EXCLUDED. Inside a move (`ocpi_parties.move_locations`
on) the row is taken as written. Standard OCPI location JSON keeps its country_code/party_id keys in step with
the row. MaEVe's own reads and party upserts keep working, with no new grant.
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
from reconciler.sample import SET_LOCATION

GB_TWK = Identity("GB", "TWK")
ES_CPO = Identity("ES", "CPO")


def make_default(connection: Connection, identity: Identity = GB_TWK) -> None:
    save_party(
        connection, "CPO", identity.country_code, identity.party_id, url="https://self/versions", token="own"
    )
    store.set_default_party(connection, identity)


def other_writer(connection: Connection, location_id: str, country_code: str, party_id: str) -> None:
    """Another writer (an OCPI peer's push, an import) storing standard OCPI JSON with MaEVe's own upsert."""
    data = {"id": location_id, "country_code": country_code, "party_id": party_id, "country": "ESP"}
    connection.execute(SET_LOCATION, (location_id, country_code, party_id, json.dumps(data)))


def recorded(connection: Connection, location_id: str) -> tuple[object, ...]:
    row = connection.execute(
        "SELECT recorded_country_code, recorded_party_id FROM locations WHERE id = %s", (location_id,)
    ).fetchone()
    assert row is not None
    return row


def claim(connection: Connection, location_id: str, identity: Identity) -> None:
    """What apply records for a file's `locations:` entry."""
    connection.execute(
        "INSERT INTO reconciler_location_claims (location_id, country_code, party_id) VALUES (%s, %s, %s)",
        (location_id, identity.country_code, identity.party_id),
    )


def move_from(connection: Connection, old: Identity, new: Identity) -> None:
    """What apply records for a hosted party's `moved_from:` entry."""
    connection.execute(
        "INSERT INTO reconciler_moved_from (country_code, party_id, to_country_code, to_party_id)"
        " VALUES (%s, %s, %s, %s)",
        (old.country_code, old.party_id, new.country_code, new.party_id),
    )


# ------------------------------------------------------------------------------------------- MaEVe's writes


def test_location_upsert_before_any_default_party_stays_as_maeve_wrote_it(migrated: Connection) -> None:
    row = save_location(migrated, "LOC-1", "BE")
    assert row[:3] == ("LOC-1", "BE", "XXX")
    assert location_owner(migrated, "LOC-1") == ("BE", "XXX", None)
    assert recorded(migrated, "LOC-1") == (None, None)

    again = save_location(migrated, "LOC-1", "BE", location_data("LOC-1", "BE", Name="Renamed"))
    assert again[:3] == ("LOC-1", "BE", "XXX")
    assert isinstance(again[3], dict)
    assert again[3]["Name"] == "Renamed"
    assert location_owner(migrated, "LOC-1") == ("BE", "XXX", None)

    save_location(migrated, "LOC-2", "XX")
    assert location_owner(migrated, "LOC-2") == ("XX", "XXX", None)
    assert recorded(migrated, "LOC-2") == (None, None)


def test_location_upsert_after_a_default_party_lands_on_it_and_records_nothing(migrated: Connection) -> None:
    make_default(migrated)
    row = save_location(migrated, "LOC-NEW", "BE")
    assert row[:3] == ("LOC-NEW", "GB", "TWK")
    assert location_owner(migrated, "LOC-NEW") == ("GB", "TWK", "CPO")
    assert recorded(migrated, "LOC-NEW") == (None, None)
    save_location(migrated, "LOC-NEW", "BE")
    assert location_owner(migrated, "LOC-NEW") == ("GB", "TWK", "CPO")
    assert recorded(migrated, "LOC-NEW") == (None, None)


def test_unowned_location_saved_again_once_a_default_exists_moves_to_it(migrated: Connection) -> None:
    save_location(migrated, "LOC-OLD", "BE")
    make_default(migrated)
    save_location(migrated, "LOC-OLD", "BE")
    assert location_owner(migrated, "LOC-OLD") == ("GB", "TWK", "CPO")


def test_maeves_write_keeps_the_identity_an_earlier_writer_recorded(migrated: Connection) -> None:
    make_default(migrated)
    other_writer(migrated, "LOC-ES", "es", "cpo")
    # No CPO row for ES-CPO yet: the default party owns it, and the identity is kept, in upper case.
    assert recorded(migrated, "LOC-ES") == ("ES", "CPO")
    assert location_owner(migrated, "LOC-ES") == ("GB", "TWK", "CPO")

    save_location(migrated, "LOC-ES", "ES", location_data("LOC-ES", "ES", Name="New name"))
    assert recorded(migrated, "LOC-ES") == ("ES", "CPO")
    assert location_owner(migrated, "LOC-ES") == ("GB", "TWK", "CPO")

    # ES-CPO registers a CPO row: MaEVe's next save gives the location to it, as a fresh write would.
    save_party(migrated, "CPO", "ES", "CPO", url="https://es/versions", token="es")
    row = save_location(migrated, "LOC-ES", "ES", location_data("LOC-ES", "ES", Name="Newer name"))
    assert row[:3] == ("LOC-ES", "ES", "CPO")
    assert location_owner(migrated, "LOC-ES") == ("ES", "CPO", "CPO")
    assert recorded(migrated, "LOC-ES") == ("ES", "CPO")
    stored = migrated.execute("SELECT location_data->>'Name' FROM locations WHERE id = 'LOC-ES'").fetchone()
    assert stored == ("Newer name",)


def test_a_location_moved_by_hand_goes_back_to_its_owner_at_maeves_next_save(migrated: Connection) -> None:
    """The owner is a function of the claims, the CPO rows, the recorded identity and the default party,
    never of an earlier move: a location kept on another party needs a claim."""
    make_default(migrated)
    save_party(migrated, "CPO", "ES", "CPO", url="https://es/versions", token="es")
    save_location(migrated, "LOC-ES", "ES")
    store.set_location_party(migrated, "LOC-ES", ES_CPO)
    assert location_owner(migrated, "LOC-ES") == ("ES", "CPO", "CPO")
    save_location(migrated, "LOC-ES", "ES")
    assert location_owner(migrated, "LOC-ES") == ("GB", "TWK", "CPO")

    claim(migrated, "LOC-ES", ES_CPO)
    save_location(migrated, "LOC-ES", "ES")
    assert location_owner(migrated, "LOC-ES") == ("ES", "CPO", "CPO")
    assert recorded(migrated, "LOC-ES") == (None, None)


def test_a_claimed_location_stays_with_its_claimant_before_any_default_party(migrated: Connection) -> None:
    save_party(migrated, "CPO", "ES", "CPO")
    claim(migrated, "LOC-ES", ES_CPO)
    save_location(migrated, "LOC-ES", "ES")
    assert location_owner(migrated, "LOC-ES") == ("ES", "CPO", "CPO")
    save_location(migrated, "LOC-ES", "ES")
    assert location_owner(migrated, "LOC-ES") == ("ES", "CPO", "CPO")
    # Once the claim is gone, MaEVe's next save is a fresh write: no owner, the row as MaEVe gave it.
    migrated.execute("DELETE FROM reconciler_location_claims")
    save_location(migrated, "LOC-ES", "ES")
    assert location_owner(migrated, "LOC-ES") == ("ES", "XXX", None)


# ---------------------------------------------------------------------------------------------- the owner


def test_a_claim_comes_before_the_recorded_identity(migrated: Connection) -> None:
    make_default(migrated)
    save_party(migrated, "CPO", "ES", "CPO")
    save_party(migrated, "CPO", "DE", "EMO")
    claim(migrated, "L", Identity("DE", "EMO"))
    other_writer(migrated, "L", "ES", "CPO")
    assert location_owner(migrated, "L") == ("DE", "EMO", "CPO")
    assert recorded(migrated, "L") == ("ES", "CPO")
    # A claim for an identity without a CPO row gives nothing: the next rule decides.
    claim(migrated, "M", Identity("FR", "ABC"))
    other_writer(migrated, "M", "ES", "CPO")
    assert location_owner(migrated, "M") == ("ES", "CPO", "CPO")


def test_the_recorded_identitys_cpo_row_is_found_in_any_case_the_lowest_id_first(
    migrated: Connection,
) -> None:
    make_default(migrated)
    save_party(migrated, "CPO", "es", "cpo", token="first")
    save_party(migrated, "CPO", "ES", "CPO", token="second")
    other_writer(migrated, "L1", "ES", "CPO")
    other_writer(migrated, "L2", "Es", "cPo")
    assert location_owner(migrated, "L1") == ("es", "cpo", "CPO")
    assert location_owner(migrated, "L2") == ("es", "cpo", "CPO")
    assert recorded(migrated, "L2") == ("ES", "CPO")
    # A party that holds only another role owns nothing: the default party does.
    save_party(migrated, "EMSP", "DE", "EMO")
    other_writer(migrated, "L3", "DE", "EMO")
    assert location_owner(migrated, "L3") == ("GB", "TWK", "CPO")
    assert recorded(migrated, "L3") == ("DE", "EMO")


def test_moved_from_gives_the_recorded_identitys_locations_to_the_party_that_lists_it(
    migrated: Connection,
) -> None:
    make_default(migrated)
    save_party(migrated, "CPO", "es", "cpo")
    move_from(migrated, Identity("PT", "CPO"), ES_CPO)
    other_writer(migrated, "L", "pt", "cpo")
    assert location_owner(migrated, "L") == ("es", "cpo", "CPO")
    assert recorded(migrated, "L") == ("PT", "CPO")
    save_location(migrated, "L", "PT")  # MaEVe's save keeps the recorded identity, and so the owner
    assert location_owner(migrated, "L") == ("es", "cpo", "CPO")

    # An identity with a CPO row of its own owns its locations, whatever moved_from says.
    save_party(migrated, "CPO", "PT", "CPO")
    other_writer(migrated, "L", "PT", "CPO")
    assert location_owner(migrated, "L") == ("PT", "CPO", "CPO")
    # A moved_from whose party has no CPO row falls through to the default party.
    move_from(migrated, Identity("FR", "CPO"), Identity("DE", "EMO"))
    other_writer(migrated, "F", "FR", "CPO")
    assert location_owner(migrated, "F") == ("GB", "TWK", "CPO")


def test_the_default_party_is_found_in_any_case(migrated: Connection) -> None:
    save_party(migrated, "CPO", "gb", "twk")
    store.set_default_party(migrated, GB_TWK)
    save_location(migrated, "L", "BE")
    assert location_owner(migrated, "L") == ("gb", "twk", "CPO")


def test_with_no_owner_the_row_keeps_what_the_writer_gave(migrated: Connection) -> None:
    other_writer(migrated, "L", "es", "cpo")
    assert location_owner(migrated, "L") == ("es", "cpo", None)
    assert recorded(migrated, "L") == ("ES", "CPO")
    # A default party that has no CPO row any more gives nothing either.
    migrated.execute("INSERT INTO system_config (key, value) VALUES ('default_party', 'GB-TWK')")
    save_location(migrated, "M", "FR")
    assert location_owner(migrated, "M") == ("FR", "XXX", None)


def test_the_upsert_of_another_writer_records_its_new_identity(migrated: Connection) -> None:
    """The ON CONFLICT branch of SetLocation sees EXCLUDED as the INSERT trigger left it (the owner); the
    guard must still record, and derive the owner from, what the writer gave."""
    make_default(migrated)
    save_party(migrated, "CPO", "ES", "CPO")
    other_writer(migrated, "L", "FR", "ABC")
    assert (recorded(migrated, "L"), location_owner(migrated, "L")) == (("FR", "ABC"), ("GB", "TWK", "CPO"))
    other_writer(migrated, "L", "ES", "CPO")
    assert (recorded(migrated, "L"), location_owner(migrated, "L")) == (("ES", "CPO"), ("ES", "CPO", "CPO"))
    # A writer giving the default party's own identity records it: it is not MaEVe's placeholder.
    other_writer(migrated, "L", "GB", "TWK")
    assert (recorded(migrated, "L"), location_owner(migrated, "L")) == (("GB", "TWK"), ("GB", "TWK", "CPO"))
    save_location(migrated, "L", "BE")
    assert (recorded(migrated, "L"), location_owner(migrated, "L")) == (("GB", "TWK"), ("GB", "TWK", "CPO"))


def test_several_upserts_in_one_transaction_each_behave_like_a_fresh_write(migrated: Connection) -> None:
    make_default(migrated)
    save_party(migrated, "CPO", "ES", "CPO")
    other_writer(migrated, "A", "ES", "CPO")
    with migrated.transaction():
        save_location(migrated, "A", "ES")  # conflict: keeps A's recorded ES-CPO
        save_location(migrated, "B", "BE")  # insert
        other_writer(migrated, "B", "ES", "CPO")  # conflict, in the transaction that inserted B
        save_location(migrated, "A", "ES")
    assert (recorded(migrated, "A"), location_owner(migrated, "A")) == (("ES", "CPO"), ("ES", "CPO", "CPO"))
    assert (recorded(migrated, "B"), location_owner(migrated, "B")) == (("ES", "CPO"), ("ES", "CPO", "CPO"))


def test_an_update_that_leaves_the_identity_alone_keeps_what_was_recorded(migrated: Connection) -> None:
    make_default(migrated)
    save_party(migrated, "CPO", "ES", "CPO")
    other_writer(migrated, "L", "ES", "CPO")
    migrated.execute(
        "UPDATE locations SET location_data = location_data || '{\"name\": \"x\"}' WHERE id = 'L'"
    )
    assert (recorded(migrated, "L"), location_owner(migrated, "L")) == (("ES", "CPO"), ("ES", "CPO", "CPO"))
    # A writer naming the identity in an UPDATE records it.
    migrated.execute("UPDATE locations SET country_code = 'GB', party_id = 'TWK' WHERE id = 'L'")
    assert (recorded(migrated, "L"), location_owner(migrated, "L")) == (("GB", "TWK"), ("GB", "TWK", "CPO"))


def test_party_role_is_kept_right_whatever_a_writer_puts_in_it(migrated: Connection) -> None:
    save_location(migrated, "L", "BE")
    migrated.execute("UPDATE locations SET party_role = 'EMSP' WHERE id = 'L'")
    assert location_owner(migrated, "L") == ("BE", "XXX", None)
    make_default(migrated)
    save_location(migrated, "M", "BE")
    migrated.execute("UPDATE locations SET party_role = NULL WHERE id = 'M'")
    assert location_owner(migrated, "M") == ("GB", "TWK", "CPO")


# ---------------------------------------------------------------------------------------------- move mode


def test_moves_take_the_row_as_written_and_must_name_a_cpo(migrated: Connection) -> None:
    make_default(migrated)
    save_party(migrated, "CPO", "ES", "CPO")
    other_writer(migrated, "L", "FR", "ABC")
    with migrated.transaction():
        migrated.execute("SELECT set_config('ocpi_parties.move_locations', 'on', true)")
        migrated.execute("UPDATE locations SET country_code = 'ES', party_id = 'CPO' WHERE id = 'L'")
    # No claim, no rule: the move stands as written, and the recorded identity is left alone.
    assert location_owner(migrated, "L") == ("ES", "CPO", "CPO")
    assert recorded(migrated, "L") == ("FR", "ABC")

    refused = pytest.raises(psycopg.errors.ForeignKeyViolation, match="locations_party_fk")
    with refused, migrated.transaction():
        migrated.execute("SELECT set_config('ocpi_parties.move_locations', 'on', true)")
        migrated.execute("UPDATE locations SET country_code = 'FR', party_id = 'ABC' WHERE id = 'L'")
    assert location_owner(migrated, "L") == ("ES", "CPO", "CPO")


def test_a_move_may_leave_a_row_unowned_as_written(migrated: Connection) -> None:
    make_default(migrated)
    save_location(migrated, "L", "BE")
    with migrated.transaction():
        migrated.execute("SELECT set_config('ocpi_parties.move_locations', 'on', true)")
        migrated.execute(
            "UPDATE locations SET country_code = 'BE', party_id = 'XXX', party_role = NULL WHERE id = 'L'"
        )
    assert location_owner(migrated, "L") == ("BE", "XXX", None)


# ---------------------------------------------------------------------------------------------- location_data


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

    # Unowned, the keys follow the row as the writer gave it.
    other_writer(migrated, "OCPI-2", "fr", "abc")
    migrated.execute("DELETE FROM system_config")
    other_writer(migrated, "OCPI-3", "fr", "abc")
    assert migrated.execute(
        "SELECT location_data->>'country_code', location_data->>'party_id' FROM locations WHERE id = 'OCPI-3'"
    ).fetchone() == ("fr", "abc")


def test_maeve_location_json_without_those_keys_is_stored_as_written(migrated: Connection) -> None:
    make_default(migrated)
    written = location_data("L1")
    save_location(migrated, "L1", "BE", written)
    stored = migrated.execute("SELECT location_data FROM locations WHERE id = 'L1'").fetchone()
    assert stored == (json.loads(written),)


# ------------------------------------------------------------------------------------------ MaEVe's parties


def test_maeve_party_upsert_works_after_migration(migrated: Connection) -> None:
    created = save_party(migrated, "EMSP", "DE", "EMO", url="https://a/versions", token="t1")
    migrated.execute(
        "UPDATE ocpi_parties SET business_details = %s WHERE id = %s", ('{"name": "Emobility"}', created[0])
    )
    updated = save_party(migrated, "EMSP", "DE", "EMO", url="https://b/versions", token="t2")

    assert updated[0] == created[0]
    assert updated[4:6] == ("https://b/versions", "t2")
    details = migrated.execute(
        "SELECT business_details, holds_credentials FROM ocpi_parties WHERE id = %s", (created[0],)
    ).fetchone()
    assert details == ({"name": "Emobility"}, True)


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
    save_party(migrated, "CPO", "ES", "CPO")
    claim(migrated, "CLAIMED", ES_CPO)
    with psycopg.connect(make_conninfo(database_url, user=maeve_role), autocommit=True) as maeve:
        assert save_location(maeve, "AS-MAEVE", "BE")[:3] == ("AS-MAEVE", "GB", "TWK")
        assert save_location(maeve, "CLAIMED", "BE")[:3] == ("CLAIMED", "ES", "CPO")
        save_party(maeve, "EMSP", "DE", "EMO")
        for table in ("system_config", "reconciler_location_claims", "reconciler_moved_from"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                maeve.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
