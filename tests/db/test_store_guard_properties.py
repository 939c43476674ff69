"""Any interleaving of MaEVe's location writes, another writer's, registrations, default changes, and the
claims and moves apply records leaves each written location with the owner `plan.location_owner` computes in
Python from the same data: the guard in the database and the plan agree on every write."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from maeve_sql import save_location, save_party

from reconciler import store
from reconciler.database import Connection
from reconciler.errors import StoreError
from reconciler.model import Identity
from reconciler.plan import location_owner
from reconciler.sample import SET_LOCATION

IDENTITIES = [Identity("GB", "TWK"), Identity("ES", "CPO"), Identity("PT", "CPO")]
LOCATIONS = ["L0", "L1", "L2"]


@st.composite
def spelled(draw: st.DrawFn, identities: list[Identity] = IDENTITIES) -> Identity:
    """An identity as a writer or a registration may spell it: upper, lower or mixed case."""
    identity = draw(st.sampled_from(identities))
    text = str(identity)
    cases = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    text = "".join(c.lower() if lower else c for c, lower in zip(text, cases, strict=True))
    return Identity(text[:2], text[3:])


#: Another writer may also give the placeholder party, in any case: it records nothing, as MaEVe's does.
writer_identities = st.one_of(spelled(), spelled([Identity("FR", "XXX")]))

maeve_saves = st.tuples(
    st.just("maeve_save"), st.sampled_from(LOCATIONS), st.sampled_from(["BE", "XX", "ES"])
)
other_upserts = st.tuples(st.just("other_upsert"), st.sampled_from(LOCATIONS), writer_identities)
#: Location writes come twice as often as the other steps: only they are checked.
operations = st.one_of(
    maeve_saves,
    maeve_saves,
    other_upserts,
    other_upserts,
    st.tuples(st.just("other_update"), st.sampled_from(LOCATIONS), writer_identities),
    st.tuples(st.just("register"), st.sampled_from(["CPO", "EMSP"]), spelled()),
    st.tuples(st.just("set_default"), spelled()),
    st.tuples(st.just("claim"), st.sampled_from(LOCATIONS), st.sampled_from(IDENTITIES)),
    st.tuples(st.just("unclaim"), st.sampled_from(LOCATIONS)),
    st.tuples(st.just("moved_from"), st.sampled_from(IDENTITIES), st.sampled_from(IDENTITIES)),
    st.tuples(st.just("unmove"), st.sampled_from(IDENTITIES)),
)

Row = tuple[str, str, str | None]


@dataclass
class Model:
    """What the database holds that the owner depends on, kept in Python."""

    #: Each identity (upper case) with a CPO row -> that row's spelling; the first registered (lowest id).
    cpo: dict[Identity, Identity] = field(default_factory=dict)
    default: Identity | None = None
    claims: dict[str, Identity] = field(default_factory=dict)
    moved_from: dict[Identity, Identity] = field(default_factory=dict)
    #: location id -> the identity its writers recorded (None: none, MaEVe's XXX)
    recorded: dict[str, Identity | None] = field(default_factory=dict)

    def expected(self, location: str, given: tuple[str, str]) -> Row:
        """The row the guard writes for `location` when its writer gave `given`."""
        owner, _ = location_owner(
            self.claims.get(location), self.recorded[location], self.cpo, self.moved_from, self.default
        )
        if owner is None:
            return (given[0], given[1], None)
        return (owner.country_code, owner.party_id, "CPO")


def upper(identity: Identity) -> Identity:
    return Identity(identity.country_code.upper(), identity.party_id.upper())


def rows(connection: Connection) -> dict[str, tuple[object, ...]]:
    return {
        str(row[0]): tuple(row[1:])
        for row in connection.execute(
            "SELECT id, country_code, party_id, party_role, recorded_country_code, recorded_party_id,"
            " location_data FROM locations ORDER BY id"
        )
    }


def write(connection: Connection, model: Model, operation: tuple[object, ...]) -> str | None:
    """Run one step on the database and the model; the id of the location written, if any."""
    kind = operation[0]
    if kind == "maeve_save":
        location, country = str(operation[1]), str(operation[2])
        save_location(connection, location, country)
        model.recorded.setdefault(location, None)  # MaEVe records nothing and keeps what was recorded
        return location
    if kind in ("other_upsert", "other_update"):
        location, identity = str(operation[1]), operation[2]
        assert isinstance(identity, Identity)
        data = json.dumps(
            {"id": location, "country_code": identity.country_code, "party_id": identity.party_id}
        )
        if kind == "other_upsert":
            connection.execute(SET_LOCATION, (location, identity.country_code, identity.party_id, data))
        else:
            before = connection.execute(
                "SELECT country_code, party_id FROM locations WHERE id = %s", (location,)
            ).fetchone()
            if before is None:
                return None
            connection.execute(
                "UPDATE locations SET country_code = %s, party_id = %s, location_data = %s WHERE id = %s",
                (identity.country_code, identity.party_id, data, location),
            )
            if before == (identity.country_code, identity.party_id):
                # An UPDATE that leaves the identity as it was cannot be told from one that does not write
                # it: the recorded identity stays.
                return location
        if identity.party_id.upper() == "XXX":
            model.recorded.setdefault(location, None)
        else:
            model.recorded[location] = upper(identity)
        return location
    change(connection, model, operation)
    return None


def change(connection: Connection, model: Model, operation: tuple[object, ...]) -> None:
    """A step that writes no location: a registration, the default party, a claim or a move."""
    kind = operation[0]
    if kind == "register":
        role, identity = str(operation[1]), operation[2]
        assert isinstance(identity, Identity)
        save_party(connection, role, identity.country_code, identity.party_id)
        if role == "CPO":
            model.cpo.setdefault(upper(identity), identity)
    elif kind == "set_default":
        identity = operation[1]
        assert isinstance(identity, Identity)
        if upper(identity) in model.cpo:
            store.set_default_party(connection, identity)
            model.default = identity
        else:
            with pytest.raises(StoreError):
                store.set_default_party(connection, identity)
    elif kind == "claim":
        location, identity = str(operation[1]), operation[2]
        assert isinstance(identity, Identity)
        connection.execute(
            "INSERT INTO reconciler_location_claims (location_id, country_code, party_id) VALUES (%s, %s, %s)"
            " ON CONFLICT (location_id) DO UPDATE SET country_code = EXCLUDED.country_code,"
            " party_id = EXCLUDED.party_id",
            (location, identity.country_code, identity.party_id),
        )
        model.claims[location] = identity
    elif kind == "unclaim":
        connection.execute("DELETE FROM reconciler_location_claims WHERE location_id = %s", (operation[1],))
        model.claims.pop(str(operation[1]), None)
    elif kind == "moved_from":
        old, new = operation[1], operation[2]
        assert isinstance(old, Identity) and isinstance(new, Identity)
        connection.execute(
            "INSERT INTO reconciler_moved_from (country_code, party_id, to_country_code, to_party_id)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (country_code, party_id) DO UPDATE"
            " SET to_country_code = EXCLUDED.to_country_code, to_party_id = EXCLUDED.to_party_id",
            (old.country_code, old.party_id, new.country_code, new.party_id),
        )
        model.moved_from[old] = new
    else:
        old = operation[1]
        assert isinstance(old, Identity)
        connection.execute(
            "DELETE FROM reconciler_moved_from WHERE country_code = %s AND party_id = %s",
            (old.country_code, old.party_id),
        )
        model.moved_from.pop(old, None)


def given_identity(operation: tuple[object, ...]) -> tuple[str, str]:
    """What the writer of a location write gave as (country_code, party_id)."""
    if operation[0] == "maeve_save":
        return (str(operation[2]), "XXX")
    identity = operation[2]
    assert isinstance(identity, Identity)
    return (identity.country_code, identity.party_id)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(operations, min_size=8, max_size=30))
def test_every_write_gives_the_owner_the_plan_computes(
    migrated: Connection, steps: list[tuple[object, ...]]
) -> None:
    migrated.execute(
        "TRUNCATE locations, ocpi_parties, reconciler_location_claims, reconciler_moved_from CASCADE"
    )
    migrated.execute("DELETE FROM system_config")
    model = Model()
    for step in steps:
        before = rows(migrated)
        written = write(migrated, model, step)
        after = rows(migrated)
        if written is None:
            # Registrations, default changes, claims and moves take effect at a location's next write (or
            # the next apply): they change no location row.
            assert after == before, step
            continue
        others = {k: v for k, v in after.items() if k != written}
        assert others == {k: v for k, v in before.items() if k != written}, step
        row = after[written]
        if step[0] == "other_update" and before[written][:2] == given_identity(step):
            expected = model.expected(written, (str(row[0]), str(row[1])))
        else:
            expected = model.expected(written, given_identity(step))
        assert row[:3] == expected, (step, model)
        kept = model.recorded[written]
        assert row[3:5] == ((kept.country_code, kept.party_id) if kept else (None, None)), step
        data = row[5]
        assert isinstance(data, dict)
        if "country_code" in data:  # standard OCPI JSON follows the row
            assert (data["country_code"], data["party_id"]) == row[:2]
        dangling = migrated.execute(
            "SELECT count(*) FROM locations AS l WHERE l.party_role IS NOT NULL AND NOT EXISTS"
            " (SELECT 1 FROM ocpi_parties AS p WHERE p.role = 'CPO'"
            "  AND p.country_code = l.country_code AND p.party_id = l.party_id)"
        ).fetchone()
        assert dangling == (0,)
