"""The store operations on a real, migrated MaEVe database."""

from __future__ import annotations

import psycopg
import pytest
from maeve_sql import location_owner, save_location, save_party

from reconciler import migrations, state, store
from reconciler.database import Connection
from reconciler.errors import StoreError
from reconciler.migrations import migrate
from reconciler.model import Identity

GB_TWK = Identity("GB", "TWK")
ES_CPO = Identity("ES", "CPO")
DE_EMO = Identity("DE", "EMO")


def create_own(
    connection: Connection, role: str, country_code: str, party_id: str, url: str = ""
) -> tuple[object, ...]:
    """A row as apply creates it for a hosted role: no token, and a record that ocpi-parties created it."""
    row = connection.execute(
        "INSERT INTO ocpi_parties (role, country_code, party_id, url, token) VALUES (%s, %s, %s, %s, '')"
        " RETURNING id, created_at",
        (role, country_code, party_id, url),
    ).fetchone()
    assert row is not None
    record(connection, row, "created")
    return row


def record(connection: Connection, row: tuple[object, ...], how: str) -> None:
    """What apply records of a row it manages: its id and creation time, and how it came to manage it."""
    connection.execute(
        "INSERT INTO reconciler_managed_parties (party_row_id, row_created_at, how)"
        " SELECT id, created_at, %s FROM ocpi_parties WHERE id = %s",
        (how, row[0]),
    )


@pytest.fixture
def seeded(migrated: Connection) -> Connection:
    """GB-TWK (CPO, default, created by ocpi-parties), registered ES-CPO, DE-EMO (EMSP and CPO) and NL-VLT
    (EMSP), locations."""
    own = create_own(migrated, "CPO", "GB", "TWK", url="https://twk/versions")
    migrated.execute(
        'UPDATE ocpi_parties SET business_details = \'{"name": "The Wallbox Co"}\' WHERE id = %s', (own[0],)
    )
    save_party(migrated, "CPO", "ES", "CPO")
    save_party(migrated, "EMSP", "DE", "EMO")
    save_party(migrated, "CPO", "DE", "EMO")
    save_party(migrated, "EMSP", "NL", "VLT")
    for number in range(5):
        save_location(migrated, f"ORPHAN-{number}", "BE")
    store.set_default_party(migrated, GB_TWK)
    for number in range(3):
        save_location(migrated, f"TWK-{number}", "GB")
    store.set_location_party(migrated, "TWK-2", ES_CPO)
    return migrated


def test_default_party_is_none_until_set(migrated: Connection) -> None:
    assert state.get_default_party(migrated) is None
    save_party(migrated, "CPO", "GB", "TWK")
    store.set_default_party(migrated, GB_TWK)
    assert state.get_default_party(migrated) == GB_TWK
    assert migrated.execute("SELECT value FROM system_config WHERE key = 'default_party'").fetchone() == (
        "GB-TWK",
    )


def test_changing_the_default_party_updates_the_one_row(seeded: Connection) -> None:
    store.set_default_party(seeded, ES_CPO)
    assert state.get_default_party(seeded) == ES_CPO
    assert seeded.execute("SELECT count(*) FROM system_config").fetchone() == (1,)


@pytest.mark.parametrize(
    "identity", [Identity("FR", "ABC"), Identity("NL", "VLT")], ids=["unknown", "emsp-only"]
)
def test_the_default_party_must_hold_the_cpo_role(seeded: Connection, identity: Identity) -> None:
    with pytest.raises(StoreError, match=f"{identity} cannot be the default party: it has no CPO role"):
        store.set_default_party(seeded, identity)
    assert state.get_default_party(seeded) == GB_TWK


def test_list_parties_orders_by_identity_then_role(seeded: Connection) -> None:
    rows = store.list_parties(seeded)
    assert [(str(r.identity), r.role) for r in rows] == [
        ("DE-EMO", "CPO"),
        ("DE-EMO", "EMSP"),
        ("ES-CPO", "CPO"),
        ("GB-TWK", "CPO"),
        ("NL-VLT", "EMSP"),
    ]
    own = rows[3]
    assert own.how == "created"
    assert own.credentials is False
    assert own.business_details == {"name": "The Wallbox Co"}
    assert own.url == "https://twk/versions"
    assert all(r.how is None and r.credentials for r in rows if r is not own)
    assert not hasattr(own, "token")


def test_list_parties_filters_by_role_and_pages(seeded: Connection) -> None:
    assert [str(r.identity) for r in store.list_parties(seeded, role="emsp")] == ["DE-EMO", "NL-VLT"]
    assert [str(r.identity) for r in store.list_parties(seeded, role="CPO", offset=1, limit=2)] == [
        "ES-CPO",
        "GB-TWK",
    ]
    assert store.list_parties(seeded, offset=10) == []


@pytest.mark.parametrize(("offset", "limit"), [(-1, 10), (0, 0)])
def test_bad_pages_are_refused(seeded: Connection, offset: int, limit: int) -> None:
    with pytest.raises(StoreError, match="offset must be 0 or more"):
        store.list_parties(seeded, offset=offset, limit=limit)
    with pytest.raises(StoreError, match="offset must be 0 or more"):
        store.list_locations(seeded, GB_TWK, offset=offset, limit=limit)


def test_get_party_returns_every_role_and_the_location_count(seeded: Connection) -> None:
    details = store.get_party(seeded, DE_EMO)
    assert details is not None
    assert [r.role for r in details.roles] == ["CPO", "EMSP"]
    assert details.locations == 0
    assert details.is_default is False

    own = store.get_party(seeded, GB_TWK)
    assert own is not None
    assert own.is_default is True
    assert own.locations == 2
    assert store.get_party(seeded, Identity("FR", "ABC")) is None


def test_set_location_party_moves_one_location(seeded: Connection) -> None:
    store.set_location_party(seeded, "TWK-0", ES_CPO)
    assert location_owner(seeded, "TWK-0") == ("ES", "CPO", "CPO")
    store.set_location_party(seeded, "TWK-0", GB_TWK)
    assert location_owner(seeded, "TWK-0") == ("GB", "TWK", "CPO")


def test_set_location_party_refuses_a_party_without_the_cpo_role(seeded: Connection) -> None:
    with pytest.raises(StoreError, match="cannot belong to NL-VLT: it has no CPO role"):
        store.set_location_party(seeded, "TWK-0", Identity("NL", "VLT"))
    with pytest.raises(StoreError, match="cannot belong to FR-ABC: it has no CPO role"):
        store.set_location_party(seeded, "TWK-0", Identity("FR", "ABC"))
    assert location_owner(seeded, "TWK-0") == ("GB", "TWK", "CPO")


def test_set_location_party_refuses_an_unknown_location(seeded: Connection) -> None:
    with pytest.raises(StoreError, match="no location NOPE"):
        store.set_location_party(seeded, "NOPE", ES_CPO)


def test_list_locations_pages_newest_first(migrated: Connection) -> None:
    for number in range(5):
        save_location(migrated, f"ORPHAN-{number}", "BE")
    # Before any default party exists, so these rewrites leave the locations unowned.
    migrated.execute("UPDATE locations SET created_at = now() - make_interval(secs => right(id, 1)::int)")
    orphans = Identity("BE", "XXX")
    first = store.list_locations(migrated, orphans, limit=2)
    rest = store.list_locations(migrated, orphans, offset=2, limit=100)
    assert [r.id for r in first] == ["ORPHAN-0", "ORPHAN-1"]
    assert [r.id for r in rest] == ["ORPHAN-2", "ORPHAN-3", "ORPHAN-4"]
    sample = first[0]
    assert (sample.owned, sample.name, sample.city, sample.country) == (
        False,
        "Site ORPHAN-0",
        "Brussels",
        "BE",
    )


def test_list_locations_of_a_party(seeded: Connection) -> None:
    rows = store.list_locations(seeded, GB_TWK)
    assert sorted(r.id for r in rows) == ["TWK-0", "TWK-1"]
    assert all(r.owned and r.identity == GB_TWK for r in rows)
    assert [r.id for r in store.list_locations(seeded, ES_CPO)] == ["TWK-2"]


def test_counts_per_identity_and_orphans_come_from_sql(migrated: Connection) -> None:
    save_party(migrated, "CPO", "ES", "CPO")
    for number in range(4):
        save_location(migrated, f"BE-{number}", "BE")
    save_location(migrated, "XX-0", "XX")
    migrated.execute(
        "INSERT INTO locations (id, country_code, party_id, location_data) VALUES ('ES-0', 'ES', 'CPO', '{}')"
    )
    counts = store.count_locations(migrated)
    assert dict(counts.by_identity) == {Identity("BE", "XXX"): 4, Identity("XX", "XXX"): 1, ES_CPO: 1}
    assert counts.orphans == 5
    assert counts.orphan_identities == {Identity("BE", "XXX"), Identity("XX", "XXX")}
    assert counts.total == 6
    assert store.count_orphans(migrated) == 5


def test_the_location_key_is_validated_once_no_orphan_remains(seeded: Connection) -> None:
    # The seed's first five locations were written before the default party existed: unowned.
    assert store.validate_location_key(seeded) is False
    assert store.location_key_state(seeded) == "not valid"
    seeded.execute("UPDATE locations SET location_data = location_data WHERE party_role IS NULL")
    assert store.count_orphans(seeded) == 0
    assert store.validate_location_key(seeded) is True
    assert store.location_key_state(seeded) == "valid"


def test_status_counts_managed_and_unmanaged_parties(seeded: Connection) -> None:
    status = store.status(seeded)
    assert status.pending == ()
    assert (status.parties, status.managed, status.unmanaged) == (5, 1, 4)
    assert status.locations == 8
    assert status.orphans == 5
    assert status.default_party == GB_TWK
    assert status.default_is_cpo is True
    assert status.location_key == "not valid"


def test_status_of_an_unmigrated_database(connection: Connection) -> None:
    save_location(connection, "L", "BE")
    status = store.status(connection)
    assert len(status.pending) == len(migrations.available())
    assert (status.parties, status.managed, status.locations, status.orphans) == (0, 0, 1, 1)
    assert status.default_party is None
    assert status.location_key == "absent"
    migrate(connection)
    assert store.status(connection).pending == ()


# ---------------------------------------------------------------------------------------------- ownership


def test_managed_says_created_for_a_row_without_credentials_and_adopted_for_a_registered_one(
    migrated: Connection,
) -> None:
    create_own(migrated, "CPO", "GB", "TWK")
    registered = save_party(migrated, "EMSP", "NL", "VLT", token="vlt-token")
    record(migrated, registered, "adopted")
    save_party(migrated, "CPO", "BE", "PEE", token="pee-token")
    managed = {(str(r.identity), r.role): (r.how, r.credentials) for r in store.list_parties(migrated)}
    assert managed == {
        ("GB-TWK", "CPO"): ("created", False),
        ("NL-VLT", "EMSP"): ("adopted", True),
        ("BE-PEE", "CPO"): (None, True),
    }


def test_created_or_adopted_follows_the_credentials_not_the_record(migrated: Connection) -> None:
    """Registration always gives a token, so a row without one was created by ocpi-parties, whatever the
    record says (it may have been written again after `db migrate --to 0`); a row that registration took over
    holds credentials and is registration's."""
    own = create_own(migrated, "CPO", "GB", "TWK")
    migrated.execute(
        "UPDATE reconciler_managed_parties SET how = 'adopted' WHERE party_row_id = %s", (own[0],)
    )
    taken = create_own(migrated, "CPO", "ES", "CPO")
    save_party(migrated, "CPO", "ES", "CPO", token="registered-later")  # SetOcpiParty's upsert: same row
    rows = {str(r.identity): r for r in store.list_parties(migrated)}
    assert (rows["GB-TWK"].how, rows["GB-TWK"].credentials) == ("created", False)
    assert (rows["ES-CPO"].how, rows["ES-CPO"].credentials) == ("adopted", True)
    details = store.get_party(migrated, ES_CPO)
    assert details is not None and [(r.how, r.credentials) for r in details.roles] == [("adopted", True)]
    assert taken[0] == details.roles[0].id


def test_a_record_of_an_earlier_row_with_the_same_id_manages_nothing(migrated: Connection) -> None:
    """MaEVe's down and up migrations drop and create ocpi_parties again: ids start over, so a record matches
    its row by id and creation time."""
    own = create_own(migrated, "CPO", "GB", "TWK")
    migrated.execute(
        "UPDATE reconciler_managed_parties SET row_created_at = row_created_at - interval '1 day'"
        " WHERE party_row_id = %s",
        (own[0],),
    )
    assert [r.how for r in store.list_parties(migrated)] == [None]
    details = store.get_party(migrated, GB_TWK)
    assert details is not None and details.roles[0].how is None
    assert store.status(migrated).managed == 0


def test_reads_match_an_identity_in_any_case(migrated: Connection) -> None:
    """OCPI registration may spell an identity es/cpo; `parties show` and `locations` find it as ES-CPO."""
    save_party(migrated, "CPO", "es", "cpo", token="es-token")
    save_party(migrated, "EMSP", "Es", "Cpo", token="es-token")
    save_party(migrated, "CPO", "ES", "CPX", token="other")
    store.set_default_party(migrated, ES_CPO)
    for number in range(3):
        save_location(migrated, f"ES-{number}", "ES")
    assert location_owner(migrated, "ES-0") == ("es", "cpo", "CPO")

    for asked in (ES_CPO, Identity("es", "cpo"), Identity("eS", "cPo")):
        details = store.get_party(migrated, asked)
        assert details is not None, asked
        assert [(str(r.identity), r.role) for r in details.roles] == [("es-cpo", "CPO"), ("Es-Cpo", "EMSP")]
        assert details.locations == 3
        assert details.is_default is True, asked
        listed = store.list_locations(migrated, asked)
        assert sorted(r.id for r in listed) == ["ES-0", "ES-1", "ES-2"]
        assert all(r.owned and r.identity == Identity("es", "cpo") for r in listed)
    assert store.list_locations(migrated, Identity("ES", "CPX")) == []
    status = store.status(migrated)
    assert (status.default_party, status.default_is_cpo, status.orphans) == (ES_CPO, True, 0)


def test_set_location_party_gives_the_location_to_the_cpo_row_as_it_is_spelled(migrated: Connection) -> None:
    save_party(migrated, "CPO", "es", "cpo", token="es-token")
    save_location(migrated, "L", "BE")
    store.set_location_party(migrated, "L", ES_CPO)
    assert location_owner(migrated, "L") == ("es", "cpo", "CPO")


@pytest.mark.parametrize("page", ["parties", "status"])
def test_a_page_and_its_count_read_one_snapshot(
    connection: Connection, database_url: str, monkeypatch: pytest.MonkeyPatch, page: str
) -> None:
    """MaEVe registers a partner between the page's rows and its count: both still describe one moment."""
    migrate(connection)
    real = store.list_parties if page == "parties" else store.applied
    name = "list_parties" if page == "parties" else "applied"

    def and_meanwhile(*args: object, **kwargs: object) -> object:
        found = real(*args, **kwargs)  # type: ignore[operator]
        with psycopg.connect(database_url, autocommit=True) as maeve:
            save_party(maeve, "EMSP", "DE", "NEW", url="https://new.example/versions", token="t")
        return found

    monkeypatch.setattr(store, name, and_meanwhile)
    if page == "parties":
        listed = store.party_page(connection)
        assert listed.total == len(listed.rows) == 0
    else:
        assert store.status(connection).parties == 0
