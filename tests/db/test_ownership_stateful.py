"""Locations end where the files say, whatever order the edits, MaEVe's writes and the applies came in.

A hypothesis state machine edits the party files (claims added and removed, a hosted CPO declared and
removed, `moved_from` changed, the default changed, partners declared and removed), lets MaEVe write locations
and register partners with its own statements (tests/maeve_sql.py), lets another writer record locations under
real identities, and applies. It checks, against a real PostgreSQL:

* after every apply: each location's owner is `plan.location_owner` of the current files, the CPO rows and the
  identity its writer recorded, and none is without an owner (a default party always exists); a new plan has
  nothing to change; MaEVe's push targets (every EMSP row) all hold credentials; every registered row keeps
  the url and token its registration last wrote;
* after every write between applies: the guard gave the row the owner the same function gives with the files
  of the last apply, and recorded what the writer gave (nothing for MaEVe's XXX, which keeps an earlier
  writer's identity).

The counts of what ran are printed (run with `-s`); OCPI_PARTIES_LONG_TESTS=1 runs longer sequences.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from maeve_sql import LIST_OCPI_PARTIES_FOR_ROLE, location_data
from psycopg.rows import tuple_row

from reconciler import apply
from reconciler.errors import NothingApplied
from reconciler.model import BusinessDetails, Declared, DesiredState, Identity, Kind, Party, PartyRole
from reconciler.plan import location_owner
from reconciler.sample import SET_LOCATION, SET_OCPI_PARTY
from reconciler.state import plan_against

LONG = bool(os.environ.get("OCPI_PARTIES_LONG_TESTS"))

TWK = Identity("GB", "TWK")
ES = Identity("ES", "CPO")
PT = Identity("PT", "CPO")
FR = Identity("FR", "CPO")
EMO = Identity("DE", "EMO")
VLT = Identity("NL", "VLT")

LOCATION_IDS = [f"LOC-{n}" for n in range(6)]
#: The identities another writer records locations under (one spelled in lower case).
WRITER_IDENTITIES = [("PT", "CPO"), ("FR", "CPO"), ("ES", "CPO"), ("es", "cpo"), ("DE", "EMO"), ("NL", "VLT")]
#: What OCPI registration may create: (role, country_code, party_id); one spelled in lower case.
REGISTRATIONS = [("CPO", "DE", "EMO"), ("EMSP", "DE", "EMO"), ("EMSP", "NL", "VLT"), ("CPO", "fr", "cpo")]

COUNTS: Counter[str] = Counter()


def _details(name: str) -> BusinessDetails:
    return BusinessDetails(name)


class Ownership(RuleBasedStateMachine):
    url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.connection = psycopg.connect(self.url, autocommit=True)
        self.connection.execute(
            "TRUNCATE locations, ocpi_parties, reconciler_managed_parties, reconciler_apply_history,"
            " reconciler_location_claims, reconciler_moved_from, system_config RESTART IDENTITY"
        )
        # The files: GB-TWK is always declared (hosted CPO), ES-CPO may be, and so may two partners.
        self.spain = False
        self.partners: set[Identity] = set()
        self.claims: dict[str, Identity] = {}
        self.moved_from: dict[Identity, Identity] = {}
        self.default = TWK
        # What the last successful apply applied (the guard works from it between applies).
        self.applied: DesiredState | None = None
        # What each writer recorded, and what each registration wrote last.
        self.recorded: dict[str, Identity | None] = {}
        self.registered: dict[tuple[str, str, str], tuple[str, str]] = {}
        self.tokens = 0
        COUNTS["sequences"] += 1

    def teardown(self) -> None:
        self.connection.close()

    # ------------------------------------------------------------------ the files

    def desired(self) -> DesiredState:
        def hosted(identity: Identity, name: str) -> Party:
            return Party(
                identity,
                (PartyRole("CPO", _details(name), kind=Kind.HOSTED),),
                moved_from=tuple(Declared(f) for f, to in sorted(self.moved_from.items()) if to == identity),
                locations=tuple(Declared(i) for i, to in sorted(self.claims.items()) if to == identity),
            )

        parties = [hosted(TWK, "Own")]
        if self.spain:
            parties.append(hosted(ES, "Carga"))
        if EMO in self.partners:
            roles = (
                PartyRole("CPO", _details("Emo"), kind=Kind.PARTNER),
                PartyRole("EMSP", _details("Emo"), kind=Kind.PARTNER),
            )
            parties.append(Party(EMO, roles))
        if VLT in self.partners:
            parties.append(Party(VLT, (PartyRole("EMSP", _details("Volt"), kind=Kind.PARTNER),)))
        return DesiredState(tuple(sorted(parties, key=lambda p: p.identity)), self.default)

    def hosted_cpos(self) -> list[Identity]:
        return [TWK, ES] if self.spain else [TWK]

    @rule(location=st.sampled_from(LOCATION_IDS), data=st.data())
    def claim(self, location: str, data: st.DataObject) -> None:
        self.claims[location] = data.draw(st.sampled_from(self.hosted_cpos()))

    @rule(location=st.sampled_from(LOCATION_IDS))
    def unclaim(self, location: str) -> None:
        self.claims.pop(location, None)

    @rule()
    def declare_spain(self) -> None:
        self.spain = True

    @rule()
    def remove_spain(self) -> None:
        self.spain = False
        self.claims = {i: to for i, to in self.claims.items() if to != ES}
        self.moved_from = {f: to for f, to in self.moved_from.items() if to != ES}
        if self.default == ES:
            self.default = TWK

    @rule(moved=st.sampled_from([PT, FR]), data=st.data())
    def move_from(self, moved: Identity, data: st.DataObject) -> None:
        self.moved_from[moved] = data.draw(st.sampled_from(self.hosted_cpos()))

    @rule(moved=st.sampled_from([PT, FR]))
    def stop_moving(self, moved: Identity) -> None:
        self.moved_from.pop(moved, None)

    @rule(data=st.data())
    def change_default(self, data: st.DataObject) -> None:
        self.default = data.draw(st.sampled_from(self.hosted_cpos()))

    @rule(partner=st.sampled_from([EMO, VLT]), declared=st.booleans())
    def declare_partner(self, partner: Identity, declared: bool) -> None:
        (self.partners.add if declared else self.partners.discard)(partner)

    # ------------------------------------------------------------------ the running CSMS

    @rule(location=st.sampled_from(LOCATION_IDS), country=st.sampled_from(["GB", "BE", ""]))
    def maeve_saves_a_location(self, location: str, country: str) -> None:
        """MaEVe's SetLocation: its own Country (XX when empty) and the placeholder party XXX."""
        data = location_data(location, country)
        self.connection.execute(SET_LOCATION, (location, country or "XX", "XXX", data))
        self.recorded.setdefault(location, None)
        COUNTS["maeve writes"] += 1
        self.check_written(location)

    @rule(location=st.sampled_from(LOCATION_IDS), identity=st.sampled_from(WRITER_IDENTITIES))
    def another_writer_saves_a_location(self, location: str, identity: tuple[str, str]) -> None:
        """A writer of standard OCPI Location JSON, under the identity of the CPO it says owns the site."""
        country_code, party_id = identity
        data = json.dumps(
            {"id": location, "country_code": country_code, "party_id": party_id, "name": location}
        )
        self.connection.execute(SET_LOCATION, (location, country_code, party_id, data))
        self.recorded[location] = Identity(country_code.upper(), party_id.upper())
        COUNTS["other writes"] += 1
        self.check_written(location)

    @rule(registration=st.sampled_from(REGISTRATIONS))
    def a_partner_registers(self, registration: tuple[str, str, str]) -> None:
        """SetOcpiParty, as OCPI credentials registration (or a token rotation) writes it."""
        self.tokens += 1
        url, token = f"https://{registration[1]}.example/versions/{self.tokens}", f"token-{self.tokens}"
        self.connection.execute(SET_OCPI_PARTY, (*registration, url, token))
        self.registered[registration] = (url, token)
        COUNTS["registrations"] += 1

    # ------------------------------------------------------------------ apply

    @rule()
    def apply(self) -> None:
        desired = self.desired()
        plan, _ = plan_against(self.connection, desired, allow_delete=True)

        def run() -> None:
            apply.apply(
                self.connection,
                desired,
                label="test",
                allow_delete=True,
                reviewed_fingerprint=None,
                revision=None,
                actor="test",
            )

        if plan.refused:
            # moved_from names an identity that registration gave a CPO row: apply refuses, changing nothing.
            with pytest.raises(NothingApplied):
                run()
            COUNTS["refused applies"] += 1
            return
        run()
        self.applied = desired
        COUNTS["applies"] += 1
        again, _ = plan_against(self.connection, desired, allow_delete=True)
        assert not again.has_changes, again.changes
        for location, owner, party_role in self.owners(desired):
            assert owner is not None, f"{location} has no owner"
            assert party_role == "CPO", location

    # ------------------------------------------------------------------ checks

    def cpo_rows(self) -> dict[Identity, Identity]:
        rows = self.connection.execute(
            "SELECT country_code, party_id FROM ocpi_parties WHERE role = 'CPO' ORDER BY id DESC"
        ).fetchall()
        return {Identity(c.upper(), p.upper()): Identity(c, p) for c, p in rows}

    def owners(
        self, desired: DesiredState, only: str | None = None
    ) -> list[tuple[str, Identity | None, Any]]:
        """Each location's expected owner under `desired` (or only that of location `only`), checked against
        the row, with its party_role."""
        cpo = self.cpo_rows()
        claims = {claim.value: p.identity for p in desired.parties for claim in p.locations}
        moved = {m.value: p.identity for p in desired.parties for m in p.moved_from}
        found = []
        with self.connection.cursor(row_factory=tuple_row) as cursor:
            for location, cc, pid, role, rcc, rpid in cursor.execute(
                "SELECT id, country_code, party_id, party_role, recorded_country_code, recorded_party_id"
                " FROM locations WHERE %(only)s::text IS NULL OR id = %(only)s ORDER BY id",
                {"only": only},
            ):
                recorded = Identity(rcc, rpid) if rcc is not None else None
                assert recorded == self.recorded[location], location
                owner, _ = location_owner(claims.get(location), recorded, cpo, moved, desired.default_party)
                if owner is not None:
                    assert (cc, pid) == (owner.country_code, owner.party_id), (location, recorded, owner)
                found.append((location, owner, role))
        return found

    def check_written(self, location: str) -> None:
        """The guard gave the row just written the owner the files of the last apply give it."""
        if self.applied is None:
            return
        ((_, owner, role),) = self.owners(self.applied, only=location)
        assert role == ("CPO" if owner is not None else None), location

    @invariant()
    def push_targets_hold_credentials(self) -> None:
        """MaEVe's PushLocation calls every EMSP row with its url and token: none may lack them."""
        COUNTS["steps"] += 1  # invariants run once after each step (and once at the start)
        for row in self.connection.execute(LIST_OCPI_PARTIES_FOR_ROLE, ("EMSP",)).fetchall():
            assert row[5] != "", row

    @invariant()
    def registrations_keep_their_url_and_token(self) -> None:
        rows = {
            (role, cc, pid): (url, token)
            for role, cc, pid, url, token in self.connection.execute(
                "SELECT role, country_code, party_id, url, token FROM ocpi_parties"
            ).fetchall()
        }
        for key, pair in self.registered.items():
            assert rows.get(key) == pair, key


def test_locations_end_where_the_files_say(migrated: psycopg.Connection[Any], database_url: str) -> None:
    Ownership.url = database_url
    run_state_machine_as_test(
        Ownership,
        settings=settings(
            max_examples=150 if LONG else 50,
            stateful_step_count=40 if LONG else 30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
    print(f"\nownership state machine: {dict(COUNTS)}")
    assert COUNTS["applies"] > 0
