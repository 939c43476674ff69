"""Any sequence of MaEVe writes, registrations, default changes and moves leaves every location where a
simple model says it belongs, and never leaves a location owned by a party without the CPO role."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from maeve_sql import save_location, save_party

from reconciler import store
from reconciler.database import Connection
from reconciler.model import Identity
from reconciler.store import StoreError

IDENTITIES = [Identity("GB", "TWK"), Identity("ES", "CPO"), Identity("DE", "EMO")]
LOCATIONS = ["L0", "L1", "L2", "L3"]

identities = st.sampled_from(IDENTITIES)
operations = st.one_of(
    st.tuples(st.just("maeve_save"), st.sampled_from(LOCATIONS), st.sampled_from(["BE", "XX", "ES"])),
    st.tuples(st.just("register"), st.sampled_from(["CPO", "EMSP"]), identities),
    st.tuples(st.just("set_default"), identities),
    st.tuples(st.just("move"), st.sampled_from(LOCATIONS), identities),
)


@dataclass
class Model:
    cpos: set[Identity] = field(default_factory=set)
    default: Identity | None = None
    #: location id -> (country_code, party_id, owned)
    locations: dict[str, tuple[str, str, bool]] = field(default_factory=dict)

    def maeve_save(self, location: str, country: str) -> None:
        current = self.locations.get(location)
        if current is not None and current[2]:
            return  # an owned location keeps its owner
        if self.default is not None:
            self.locations[location] = (self.default.country_code, self.default.party_id, True)
        else:
            self.locations[location] = (country, "XXX", False)


def apply(connection: Connection, model: Model, operation: tuple[str, ...]) -> None:
    kind = operation[0]
    if kind == "maeve_save":
        _, location, country = operation
        save_location(connection, location, country)
        model.maeve_save(location, country)
    elif kind == "register":
        _, role, identity = operation
        save_party(connection, role, identity.country_code, identity.party_id)
        if role == "CPO":
            model.cpos.add(identity)
    elif kind == "set_default":
        identity = operation[1]
        if identity in model.cpos:
            store.set_default_party(connection, identity)
            model.default = identity
        else:
            with pytest.raises(StoreError):
                store.set_default_party(connection, identity)
    else:
        _, location, identity = operation
        if identity in model.cpos and location in model.locations:
            store.set_location_party(connection, location, identity)
            model.locations[location] = (identity.country_code, identity.party_id, True)
        else:
            with pytest.raises(StoreError):
                store.set_location_party(connection, location, identity)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(operations, max_size=14))
def test_locations_end_where_the_model_says(migrated: Connection, steps: list[tuple[str, ...]]) -> None:
    migrated.execute("TRUNCATE locations, ocpi_parties CASCADE")
    migrated.execute("DELETE FROM system_config")
    model = Model()
    for step in steps:
        apply(migrated, model, step)
        rows = migrated.execute(
            "SELECT id, country_code, party_id, party_role IS NOT NULL FROM locations ORDER BY id"
        ).fetchall()
        assert {str(row[0]): row[1:] for row in rows} == model.locations
        dangling = migrated.execute(
            "SELECT count(*) FROM locations AS l WHERE l.party_role IS NOT NULL AND NOT EXISTS"
            " (SELECT 1 FROM ocpi_parties AS p WHERE p.role = 'CPO'"
            "  AND p.country_code = l.country_code AND p.party_id = l.party_id)"
        ).fetchone()
        assert dangling == (0,)
