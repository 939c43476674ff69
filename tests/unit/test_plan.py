"""compute_plan over plain data: change types, ownership, deletion protection, locations, drift."""

from __future__ import annotations

import copy
import itertools
from dataclasses import replace
from typing import Any

from deepdiff import DeepDiff
from hypothesis import given
from hypothesis import strategies as st

from reconciler.changes import (
    ActualState,
    AdoptParty,
    AppliedRow,
    AwaitRegistration,
    ClaimedLocation,
    CreateParty,
    DeleteParty,
    Drift,
    FieldChange,
    LocationGroup,
    LocationOwners,
    LocationRules,
    MoveLocations,
    MoveReason,
    PartyRow,
    ReleaseParty,
    SetDefaultParty,
    SetLocationRules,
    UpdateParty,
)
from reconciler.model import (
    BusinessDetails,
    Declared,
    DesiredState,
    Identity,
    Image,
    Kind,
    Party,
    PartyRole,
    Source,
    Tombstone,
)
from reconciler.plan import CREDENTIAL_LESS, _same, compute_plan, details_changes, fingerprint, location_owner

TWK = Identity("GB", "TWK")
ES = Identity("ES", "CPO")
PT = Identity("PT", "CPO")
FR = Identity("FR", "CPO")
VLT = Identity("NL", "VLT")
OLD = Identity("GB", "OLD")
PEER = Identity("BE", "PEE")
ORPHAN_GB = Identity("GB", "XXX")
ORPHAN_BE = Identity("BE", "XXX")

_IDS = itertools.count(1)


def party(
    identity: Identity,
    *roles: str,
    name: str = "N",
    url: str | None = None,
    kind: Kind | None = None,
    **extra: object,
) -> Party:
    """A party whose CPO role is hosted and whose other roles are partners', unless `kind` says otherwise."""
    return Party(
        identity,
        tuple(
            PartyRole(r, BusinessDetails(name), kind=kind or (Kind.HOSTED if r == "CPO" else Kind.PARTNER))
            for r in roles
        ),
        url,
        Source(""),
        **extra,  # type: ignore[arg-type]
    )


def row(
    identity: Identity,
    role: str,
    *,
    name: str | None = "N",
    url: str = "",
    managed: bool = True,
    credentials: bool | None = None,
) -> PartyRow:
    """A row as the plan reads it. By default a managed row is ocpi-parties' own (no credentials) and an
    unmanaged one is OCPI registration's (credentials)."""
    return PartyRow(
        identity,
        role,
        url,
        {"name": name} if name is not None else None,
        managed,
        next(_IDS),
        (not managed) if credentials is None else credentials,
    )


def desired(*parties: Party, default: Identity = TWK, tombstones: tuple[Tombstone, ...] = ()) -> DesiredState:
    return DesiredState(parties, default, Source(""), tombstones)


def actual(
    *rows: PartyRow, default: Identity | None = TWK, groups: tuple[LocationGroup, ...] = (), **kw: object
) -> ActualState:
    kw.setdefault("rules", LocationRules())
    return ActualState(rows, default, groups, **kw)  # type: ignore[arg-type]


def at(owner: Identity, count: int, recorded: Identity | None = None, *, owned: bool = True) -> LocationGroup:
    """Locations stored under `owner`, recorded under `recorded` by their writer (None: nothing recorded)."""
    return LocationGroup(recorded, owner, count, owned)


def orphans(owner: Identity, count: int) -> LocationGroup:
    """Locations MaEVe wrote (party XXX: nothing recorded) that no CPO owns yet."""
    return LocationGroup(None, owner, count, False)


def test_nothing_to_do() -> None:
    plan = compute_plan(desired(party(TWK, "CPO")), actual(row(TWK, "CPO")))
    assert plan.changes == () and not plan.has_changes
    assert (
        plan.counts.to_add,
        plan.counts.to_change,
        plan.counts.to_delete,
        plan.counts.to_adopt,
        plan.counts.locations_to_move,
    ) == (
        0,
        0,
        0,
        0,
        0,
    )


def test_rows_are_created_for_hosted_roles_only() -> None:
    """A partner's rows come from OCPI registration: a row without its url and token would break pushes."""
    plan = compute_plan(
        desired(party(TWK, "CPO"), party(ES, "CPO", url="https://es.example"), party(VLT, "EMSP", "NSP")),
        actual(row(TWK, "CPO")),
    )
    assert plan.changes == (CreateParty(ES, "CPO", "https://es.example", {"name": "N"}),)
    assert plan.counts.to_add == 1
    assert plan.awaiting == (AwaitRegistration(VLT, "EMSP"), AwaitRegistration(VLT, "NSP"))


def test_a_partner_awaiting_registration_changes_nothing() -> None:
    plan = compute_plan(desired(party(TWK, "CPO"), party(VLT, "EMSP")), actual(row(TWK, "CPO")))
    assert plan.changes == () and not plan.has_changes
    assert plan.awaiting == (AwaitRegistration(VLT, "EMSP"),)


def test_a_registered_partner_is_adopted_once_registration_created_its_row() -> None:
    plan = compute_plan(
        desired(party(TWK, "CPO"), party(VLT, "EMSP", name="Voltkaart")),
        actual(row(TWK, "CPO"), row(VLT, "EMSP", name=None, url="https://v.example", managed=False)),
    )
    assert plan.changes == (
        AdoptParty(VLT, "EMSP", (FieldChange("business_details", None, {"name": "Voltkaart"}),)),
    )
    assert plan.awaiting == () and plan.counts.to_adopt == 1 and plan.unmanaged == ()


def test_update_reports_field_level_before_and_after() -> None:
    details = BusinessDetails(
        "New", "https://new.example", Image("https://i.example/l.png", "OPERATOR", "png")
    )
    wanted = Party(TWK, (PartyRole("CPO", details),), "https://ocpi.example/v2")
    current = PartyRow(
        TWK,
        "CPO",
        "https://ocpi.example/v1",
        {"name": "Old", "logo": {"url": "https://i.example/l.png", "category": "OWNER", "type": "png"}},
        True,
        1,
        credentials=False,
    )
    plan = compute_plan(desired(wanted), actual(current))
    assert plan.changes == (
        UpdateParty(
            TWK,
            "CPO",
            (
                FieldChange("url", "https://ocpi.example/v1", "https://ocpi.example/v2"),
                FieldChange("business_details.logo.category", "OWNER", "OPERATOR"),
                FieldChange("business_details.name", "Old", "New"),
                FieldChange("business_details.website", None, "https://new.example"),
            ),
        ),
    )
    assert plan.counts.to_change == 1


def test_url_left_out_of_the_file_is_left_alone() -> None:
    plan = compute_plan(
        desired(party(TWK, "CPO", url=None)), actual(row(TWK, "CPO", url="https://kept.example"))
    )
    assert plan.changes == ()


def test_a_registered_url_is_never_written_and_a_different_one_is_a_warning() -> None:
    """url and token are one pair, owned by registration: the file's url is only an expectation."""
    plan = compute_plan(
        desired(party(TWK, "CPO"), party(VLT, "EMSP", url="https://expected.example")),
        actual(
            row(TWK, "CPO"), row(VLT, "EMSP", url="https://rotated.example", managed=True, credentials=True)
        ),
    )
    assert plan.changes == ()
    (warning,) = plan.warnings
    assert "https://rotated.example" in warning and "https://expected.example" in warning
    same = compute_plan(
        desired(party(TWK, "CPO"), party(VLT, "EMSP", url="https://v.example")),
        actual(row(TWK, "CPO"), row(VLT, "EMSP", url="https://v.example", managed=True, credentials=True)),
    )
    assert same.changes == () and same.warnings == ()


def test_a_credential_less_partner_row_of_an_earlier_version_is_deleted() -> None:
    """Rows an earlier ocpi-parties created for partners hold no token: they go, and the partner waits."""
    emsp = row(VLT, "EMSP", url="https://v.example", credentials=False)
    plan = compute_plan(desired(party(TWK, "CPO"), party(VLT, "EMSP")), actual(row(TWK, "CPO"), emsp))
    assert plan.changes == (DeleteParty(VLT, "EMSP", CREDENTIAL_LESS),)
    assert plan.counts.to_delete == 1 and plan.blocked == ()
    assert plan.awaiting == (AwaitRegistration(VLT, "EMSP"),)


def test_a_credential_less_row_of_another_role_is_deleted_when_no_file_declares_it() -> None:
    """Only a CPO is hosted: such a row is an earlier version's partner row, a push target without a token."""
    plan = compute_plan(
        desired(party(TWK, "CPO")), actual(row(TWK, "CPO"), row(VLT, "EMSP", credentials=False))
    )
    assert plan.changes == (DeleteParty(VLT, "EMSP", CREDENTIAL_LESS),)
    assert plan.blocked == () and plan.counts.to_delete == 1


def test_the_locations_of_a_credential_less_partner_cpo_go_to_the_default_party_first() -> None:
    emo = Identity("DE", "EMO")
    plan = compute_plan(
        desired(party(TWK, "CPO"), party(emo, "CPO", kind=Kind.PARTNER)),
        actual(row(TWK, "CPO"), row(emo, "CPO", credentials=False), groups=(at(emo, 3, emo),)),
    )
    assert plan.changes == (
        MoveLocations(MoveReason.PARTY_DELETED, TWK, (at(emo, 3, emo),)),
        DeleteParty(emo, "CPO", CREDENTIAL_LESS),
    )


def test_identical_unmanaged_row_is_adopted_without_differences() -> None:
    plan = compute_plan(
        desired(party(TWK, "CPO"), party(VLT, "EMSP")),
        actual(row(TWK, "CPO"), row(VLT, "EMSP", managed=False)),
    )
    assert plan.changes == (AdoptParty(VLT, "EMSP", ()),)


def test_a_hosted_row_ocpi_parties_lost_the_record_of_is_not_adopted() -> None:
    """After `db migrate --to 0`, a row without credentials is still known as ocpi-parties' own."""
    plan = compute_plan(desired(party(TWK, "CPO")), actual(row(TWK, "CPO", managed=False, credentials=False)))
    assert plan.changes == ()


def test_rows_match_case_insensitively() -> None:
    """A registration row spelled es/cpo is ES-CPO: adopted, never created a second time."""
    lower = Identity("es", "cpo")
    plan = compute_plan(
        desired(party(TWK, "CPO"), party(ES, "CPO", kind=Kind.PARTNER)),
        actual(row(TWK, "CPO"), row(lower, "CPO", managed=False), default=Identity("gb", "twk")),
    )
    assert plan.changes == (AdoptParty(ES, "CPO", ()),)


def test_undeclared_unmanaged_rows_are_listed_never_changed() -> None:
    peer = row(PEER, "CPO", url="https://peer.example", managed=False)
    plan = compute_plan(desired(party(TWK, "CPO")), actual(row(TWK, "CPO"), peer))
    assert plan.changes == () and plan.unmanaged == (peer,)


def test_deleting_a_managed_row_is_blocked_without_tombstone_or_flag() -> None:
    state = desired(party(TWK, "CPO"))
    current = actual(row(TWK, "CPO"), row(OLD, "CPO"))
    plan = compute_plan(state, current)
    (blocked,) = plan.changes
    assert isinstance(blocked, DeleteParty) and blocked.blocked
    assert "tombstone" in blocked.reason and "--allow-delete" in blocked.reason
    assert plan.blocked == (blocked,) and plan.counts.to_delete == 0 and not plan.has_changes
    allowed = compute_plan(state, current, allow_delete=True)
    assert allowed.changes == (DeleteParty(OLD, "CPO", "no longer declared in the party files"),)
    assert allowed.counts.to_delete == 1


def test_a_registered_row_is_released_never_deleted() -> None:
    """A removed or tombstoned partner file ends management; the row, its url and token stay."""
    registered = row(VLT, "EMSP", url="https://v.example", credentials=True)
    for state in (
        desired(party(TWK, "CPO")),
        desired(party(TWK, "CPO"), tombstones=(Tombstone(VLT, None, Source("parties/NL-VLT.yaml", 3, 10)),)),
    ):
        for allow in (False, True):
            plan = compute_plan(state, actual(row(TWK, "CPO"), registered), allow_delete=allow)
            (release,) = plan.changes
            assert isinstance(release, ReleaseParty) and (release.identity, release.role) == (VLT, "EMSP")
            assert "OCPI credentials DELETE" in release.reason
            assert plan.counts.to_release == 1 and plan.counts.to_delete == 0 and plan.blocked == ()


def test_tombstones_allow_deletion_of_one_role_or_all() -> None:
    plan = compute_plan(
        desired(
            party(TWK, "CPO"),
            party(ES, "CPO"),
            tombstones=(Tombstone(ES, "EMSP", Source("parties/ES-CPO.yaml", 7, 5)), Tombstone(OLD)),
        ),
        actual(row(TWK, "CPO"), row(ES, "CPO"), row(ES, "EMSP"), row(OLD, "CPO"), row(OLD, "EMSP")),
    )
    assert [c for c in plan.changes if isinstance(c, DeleteParty)] == [
        DeleteParty(ES, "EMSP", "marked deleted at parties/ES-CPO.yaml:7:5"),
        DeleteParty(OLD, "CPO", "marked deleted"),
        DeleteParty(OLD, "EMSP", "marked deleted"),
    ]


def test_tombstone_never_deletes_an_unmanaged_row() -> None:
    plan = compute_plan(
        desired(party(TWK, "CPO"), tombstones=(Tombstone(PEER, None, Source("parties/BE-PEE.yaml", 3, 10)),)),
        actual(row(TWK, "CPO"), row(PEER, "CPO", managed=False)),
    )
    assert plan.changes == ()
    assert plan.notes == (
        "BE-PEE is marked deleted at parties/BE-PEE.yaml:3:10 but has nothing to delete "
        "(its rows are not managed by ocpi-parties)",
    )


def test_default_party_change() -> None:
    plan = compute_plan(
        desired(party(TWK, "CPO"), party(ES, "CPO"), default=ES), actual(row(TWK, "CPO"), row(ES, "CPO"))
    )
    assert plan.changes == (SetDefaultParty(TWK, ES),)
    first = compute_plan(desired(party(TWK, "CPO")), actual(default=None))
    assert first.changes == (CreateParty(TWK, "CPO", None, {"name": "N"}), SetDefaultParty(None, TWK))


def test_orphans_go_to_the_default_party_grouped_with_counts() -> None:
    plan = compute_plan(
        desired(party(TWK, "CPO"), party(VLT, "EMSP")),
        actual(
            row(TWK, "CPO"),
            row(VLT, "EMSP", managed=False),
            groups=(orphans(ORPHAN_GB, 1000), orphans(ORPHAN_BE, 200), at(TWK, 50), orphans(VLT, 3)),
        ),
    )
    assert plan.changes[1:] == (
        MoveLocations(
            MoveReason.ORPHANS, TWK, (orphans(ORPHAN_BE, 200), orphans(ORPHAN_GB, 1000), orphans(VLT, 3))
        ),
    )
    assert plan.counts.locations_to_move == 1203
    assert plan.owners == LocationOwners(recorded=1253, unowned_now=1203, unowned_after=0)


def test_owners_count_claimed_ids_and_a_deleted_cpo() -> None:
    """Locations of a CPO being deleted are owned now and go to the default party; claims move single ids."""
    plan = compute_plan(
        desired(
            party(TWK, "CPO"),
            party(ES, "CPO", locations=(Declared("LOC-1"),)),
            tombstones=(Tombstone(OLD),),
        ),
        actual(
            row(TWK, "CPO"),
            row(OLD, "CPO"),
            groups=(orphans(ORPHAN_GB, 10), at(OLD, 4, OLD)),
            claimed={"LOC-1": ClaimedLocation(None, ORPHAN_GB, False)},
        ),
    )
    assert plan.counts.locations_to_move == 14
    assert plan.owners == LocationOwners(recorded=14, unowned_now=10, unowned_after=0)


def test_owners_when_every_location_is_owned() -> None:
    plan = compute_plan(desired(party(TWK, "CPO")), actual(row(TWK, "CPO"), groups=(at(TWK, 7),)))
    assert plan.owners == LocationOwners(recorded=7, unowned_now=0, unowned_after=0)


def test_without_a_default_cpo_row_locations_stay_unowned() -> None:
    plan = compute_plan(desired(party(TWK, "CPO")), actual(default=None, groups=(orphans(ORPHAN_GB, 4),)))
    moves = [c for c in plan.changes if isinstance(c, MoveLocations)]
    assert moves == [MoveLocations(MoveReason.ORPHANS, TWK, (orphans(ORPHAN_GB, 4),))]
    assert location_owner(None, None, {}, {}, None) == (None, MoveReason.ORPHANS)


def test_locations_of_a_registered_partner_cpo_stay_with_it() -> None:
    plan = compute_plan(
        desired(party(TWK, "CPO")),
        actual(row(TWK, "CPO"), row(PEER, "CPO", managed=False), groups=(at(PEER, 9, PEER),)),
    )
    assert plan.changes == ()


def test_locations_recorded_under_a_cpo_declared_late_go_to_it() -> None:
    """Ownership follows the recorded identity, not the order of applies: a hosted CPO declared after its
    locations were given to the default party gets them back."""
    plan = compute_plan(
        desired(party(TWK, "CPO"), party(ES, "CPO")),
        actual(row(TWK, "CPO"), groups=(at(TWK, 6, ES), at(ES, 2, ES, owned=False))),
    )
    assert plan.changes[1:] == (
        MoveLocations(MoveReason.RECORDED, ES, (at(ES, 2, ES, owned=False), at(TWK, 6, ES))),
    )
    assert plan.owners.unowned_after == 0


def test_moved_from_identities_go_to_their_party() -> None:
    spain = party(ES, "CPO", moved_from=(Declared(PT, Source("parties/ES-CPO.yaml", 8, 5)), Declared(FR)))
    plan = compute_plan(
        desired(party(TWK, "CPO"), spain),
        actual(
            row(TWK, "CPO"),
            row(ES, "CPO"),
            groups=(at(PT, 30, PT, owned=False), at(TWK, 12, FR), at(ES, 4, ES)),
        ),
    )
    rules, move = plan.changes
    assert rules == SetLocationRules({}, {PT: ES, FR: ES})
    assert move == MoveLocations(MoveReason.MOVED_FROM, ES, (at(TWK, 12, FR), at(PT, 30, PT, owned=False)))
    assert move.count == 42
    assert str(move.source) == "parties/ES-CPO.yaml:8:5"


def test_removing_moved_from_gives_the_locations_back_to_the_default_party() -> None:
    plan = compute_plan(
        desired(party(TWK, "CPO"), party(ES, "CPO")),
        actual(row(TWK, "CPO"), row(ES, "CPO"), groups=(at(ES, 5, PT),), rules=LocationRules({}, {PT: ES})),
    )
    assert plan.changes == (
        SetLocationRules({}, {}, 0, 1),
        MoveLocations(MoveReason.ORPHANS, TWK, (at(ES, 5, PT),)),
    )


def test_claimed_ids_move_and_leave_their_group() -> None:
    spain = party(
        ES,
        "CPO",
        locations=(
            Declared("LOC-1"),
            Declared("LOC-2"),
            Declared("LOC-3"),
            Declared("GONE", Source("f", 9, 5)),
        ),
    )
    plan = compute_plan(
        desired(party(TWK, "CPO"), spain),
        actual(
            row(TWK, "CPO"),
            row(ES, "CPO"),
            groups=(orphans(ORPHAN_GB, 10), at(TWK, 5), at(ES, 1)),
            claimed={
                "LOC-1": ClaimedLocation(None, ORPHAN_GB, False),
                "LOC-2": ClaimedLocation(None, TWK),
                "LOC-3": ClaimedLocation(None, ES),
            },
        ),
    )
    claims = {"LOC-1": ES, "LOC-2": ES, "LOC-3": ES, "GONE": ES}
    assert plan.changes == (
        SetLocationRules(claims, {}),
        MoveLocations(
            MoveReason.CLAIMED,
            ES,
            (at(TWK, 1), orphans(ORPHAN_GB, 1)),
            location_ids=("LOC-1", "LOC-2"),
        ),
        MoveLocations(MoveReason.ORPHANS, TWK, (orphans(ORPHAN_GB, 9),)),
    )
    assert plan.counts.locations_to_move == 11
    assert plan.notes == ("location 'GONE' claimed by ES-CPO at f:9:5 does not exist",)


def test_a_claim_removed_gives_the_location_back() -> None:
    """Without its claim a location goes where its recorded identity says: here the default party."""
    plan = compute_plan(
        desired(party(TWK, "CPO"), party(ES, "CPO")),
        actual(row(TWK, "CPO"), row(ES, "CPO"), groups=(at(ES, 1),), rules=LocationRules({"LOC-1": ES}, {})),
    )
    assert plan.changes == (
        SetLocationRules({}, {}, 1, 0),
        MoveLocations(MoveReason.ORPHANS, TWK, (at(ES, 1),)),
    )


def test_locations_of_a_deleted_party_go_to_the_default_party() -> None:
    plan = compute_plan(
        desired(party(TWK, "CPO"), tombstones=(Tombstone(OLD),)),
        actual(row(TWK, "CPO"), row(OLD, "CPO"), groups=(at(OLD, 77, OLD),)),
    )
    assert plan.changes == (
        MoveLocations(MoveReason.PARTY_DELETED, TWK, (at(OLD, 77, OLD),)),
        DeleteParty(OLD, "CPO", "marked deleted"),
    )


def test_blocked_deletion_keeps_the_locations_where_they_are() -> None:
    plan = compute_plan(
        desired(party(TWK, "CPO")), actual(row(TWK, "CPO"), row(OLD, "CPO"), groups=(at(OLD, 77, OLD),))
    )
    assert [type(c) for c in plan.changes] == [DeleteParty]


def test_deleted_party_moved_to_a_cpo_that_claims_it() -> None:
    spain = party(ES, "CPO", moved_from=(Declared(OLD),))
    plan = compute_plan(
        desired(party(TWK, "CPO"), spain, tombstones=(Tombstone(OLD),)),
        actual(row(TWK, "CPO"), row(ES, "CPO"), row(OLD, "CPO"), groups=(at(OLD, 5, OLD),)),
    )
    assert plan.changes[1] == MoveLocations(MoveReason.MOVED_FROM, ES, (at(OLD, 5, OLD),))


def test_apply_order_creates_default_moves_deletes() -> None:
    plan = compute_plan(
        desired(party(ES, "CPO"), party(TWK, "CPO", name="New"), default=ES, tombstones=(Tombstone(OLD),)),
        actual(
            row(TWK, "CPO"),
            row(OLD, "CPO"),
            row(VLT, "EMSP", credentials=True),
            groups=(orphans(ORPHAN_GB, 1),),
        ),
    )
    assert [type(c) for c in plan.changes] == [
        CreateParty,
        UpdateParty,
        SetDefaultParty,
        MoveLocations,
        ReleaseParty,
        DeleteParty,
    ]


def test_location_owner_precedence() -> None:
    cpo = {TWK: TWK, ES: Identity("es", "cpo"), PT: PT}
    moved = {FR: ES}
    assert location_owner(TWK, PT, cpo, moved, ES) == (TWK, MoveReason.CLAIMED)
    assert location_owner(None, PT, cpo, moved, ES) == (PT, MoveReason.RECORDED)
    assert location_owner(None, ES, cpo, moved, TWK) == (Identity("es", "cpo"), MoveReason.RECORDED)
    assert location_owner(None, FR, cpo, moved, TWK) == (Identity("es", "cpo"), MoveReason.MOVED_FROM)
    assert location_owner(None, OLD, cpo, moved, TWK) == (TWK, MoveReason.ORPHANS)
    assert location_owner(None, None, cpo, moved, Identity("es", "cpo")) == (
        Identity("es", "cpo"),
        MoveReason.ORPHANS,
    )
    assert location_owner(OLD, None, cpo, moved, None) == (None, MoveReason.ORPHANS)


def test_drift_since_the_last_apply() -> None:
    applied = (
        AppliedRow(TWK, "CPO", "https://a.example", {"name": "N"}),
        AppliedRow(OLD, "CPO", "", {"name": "Old"}),
    )
    plan = compute_plan(
        desired(party(TWK, "CPO", url="https://a.example")),
        actual(row(TWK, "CPO", name="Edited", url="https://b.example"), last_applied=applied),
    )
    assert plan.drift == (
        Drift(
            TWK,
            "CPO",
            (
                FieldChange("url", "https://a.example", "https://b.example"),
                FieldChange("business_details.name", "N", "Edited"),
            ),
        ),
        Drift(OLD, "CPO", (), missing=True),
    )
    assert compute_plan(desired(party(TWK, "CPO")), actual(row(TWK, "CPO"))).drift == ()


def test_a_rotated_registration_is_not_drift() -> None:
    """Registration owns a partner's url: a re-registration from another url is no drift of git's."""
    applied = (AppliedRow(VLT, "EMSP", "https://old.example", {"name": "N"}),)
    plan = compute_plan(
        desired(party(TWK, "CPO"), party(VLT, "EMSP")),
        actual(
            row(TWK, "CPO"),
            row(VLT, "EMSP", url="https://new.example", credentials=True),
            last_applied=applied,
        ),
    )
    assert plan.drift == () and plan.changes == ()


def test_details_changes_handles_added_and_removed_keys() -> None:
    assert details_changes({"name": "A", "website": "w"}, {"name": "A"}) == (
        FieldChange("business_details.website", "w", None),
    )
    assert details_changes(None, None) == ()
    assert details_changes({"name": "A"}, {"name": "A"}) == ()


def test_details_changes_still_reports_a_change_of_type_between_equal_values() -> None:
    logo = {"url": "https://a.example/l.png", "category": "OTHER", "type": "png"}
    assert details_changes(
        {"name": "A", "logo": {**logo, "width": 512}}, {"name": "A", "logo": {**logo, "width": 512.0}}
    )
    assert details_changes(
        {"name": "A", "logo": {**logo, "width": 1}}, {"name": "A", "logo": {**logo, "width": True}}
    )
    assert details_changes({"name": "A", "tags": ["x", "y"]}, {"name": "A", "tags": ("x", "y")})


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-3, 3) | st.sampled_from(["", "a", "b"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.sampled_from("abc"), children, max_size=3)
    ),
    max_leaves=8,
)


@given(
    st.dictionaries(st.sampled_from("abc"), _JSON, max_size=3),
    st.dictionaries(st.sampled_from("abc"), _JSON, max_size=3),
)
def test_details_changes_finds_no_change_exactly_when_deepdiff_finds_none(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    assert (details_changes(before, after) == ()) == (not DeepDiff(before, after, verbose_level=2))
    assert details_changes(before, copy.deepcopy(before)) == ()


def _strictly_same(before: Any, after: Any) -> bool:
    """The walk `_same` once was: types compared at every level, then values."""
    if type(before) is not type(after):
        return False
    if isinstance(before, dict):
        return before.keys() == after.keys() and all(
            _strictly_same(before[key], after[key]) for key in before
        )
    if isinstance(before, list):
        return len(before) == len(after) and all(map(_strictly_same, before, after))
    return bool(before == after)


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from([0.0, 1.0, -0.0, 2.5, "", "a"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=2).map(tuple)
        | st.dictionaries(st.sampled_from("abc"), children, max_size=3)
    ),
    max_leaves=10,
)


def _retyped(value: Any, data: st.DataObject) -> Any:
    """`value` with some items swapped for equal ones of another type: 1 for 1.0 or True, list for tuple."""
    if isinstance(value, dict):
        return {key: _retyped(item, data) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_retyped(item, data) for item in value]
        return (
            (tuple(items) if data.draw(st.booleans()) else items) if isinstance(value, list) else tuple(items)
        )
    if not isinstance(value, (int, float)) or not data.draw(st.booleans()):
        return value
    return data.draw(st.sampled_from([value, float(value), int(value), bool(value)]))


@given(_VALUES, _VALUES, st.data())
def test_the_quick_comparison_agrees_with_the_strict_walk(
    before: Any, other: Any, data: st.DataObject
) -> None:
    # `==` settles a pair in C unless it is equal; equal values differ still when a type does (1, 1.0, True).
    retyped = _retyped(before, data)
    for after in (other, retyped, copy.deepcopy(before)):
        assert _same(before, after) == _strictly_same(before, after)
        assert _same({"logo": before, "name": "N"}, {"name": "N", "logo": after}) == _strictly_same(
            before, after
        )


def test_fingerprint_follows_rows_in_scope_only() -> None:
    state = desired(party(TWK, "CPO"), party(VLT, "EMSP"))
    base = actual(
        PartyRow(TWK, "CPO", "", {"name": "N"}, True, 1, False),
        PartyRow(VLT, "EMSP", "https://v", None, False, 2),
        PartyRow(PEER, "EMSP", "https://peer", None, False, 3),
        groups=(orphans(ORPHAN_GB, 10),),
    )

    def print_of(state: DesiredState, current: ActualState) -> str:
        return fingerprint(state, current, compute_plan(state, current))

    same = print_of(state, base)
    assert same == print_of(state, base)

    def with_rows(*rows: PartyRow, **changes: object) -> str:
        return print_of(state, replace(base, rows=rows, **changes))

    twk, vlt, peer = base.rows
    # An undeclared, unmanaged peer refreshing its url or token does not make a saved plan stale, nor does a
    # declared partner's registration rotating its url ...
    assert with_rows(twk, vlt, replace(peer, url="https://new")) == same
    assert with_rows(twk, replace(vlt, url="https://rotated"), peer) == same
    # ... nor do new locations that land on the owner the files give them (MaEVe saving under the default) ...
    assert with_rows(twk, vlt, peer, location_groups=(*base.location_groups, at(TWK, 5))) == same
    # ... but a change to a column a managed or declared row is compared on does, as does the same row
    # deleted and registered again, a new CPO, a count of locations to move or the default.
    assert with_rows(replace(twk, url="https://twk"), vlt, peer) != same
    assert with_rows(twk, replace(vlt, business_details={"name": "V"}), peer) != same
    assert with_rows(twk, replace(vlt, id=9), peer) != same
    assert with_rows(twk, vlt, peer, PartyRow(PEER, "CPO", "", None, False, 4)) != same
    assert with_rows(twk, vlt, peer, location_groups=(orphans(ORPHAN_GB, 11),)) != same
    assert with_rows(twk, vlt, peer, default_party=None) != same
    assert with_rows(twk, vlt, peer, rules=LocationRules({"L": TWK}, {})) != same


def test_desired_state_finds_a_party_by_identity() -> None:
    state = desired(party(TWK, "CPO"), party(ES, "CPO", name="first"), party(ES, "EMSP", name="second"))
    assert state.party(TWK) == party(TWK, "CPO")
    found = state.party(ES)
    assert found is not None and found.roles[0].role == "CPO"  # the first declaration, as before
    assert state.party(VLT) is None
    assert state == desired(
        party(TWK, "CPO"), party(ES, "CPO", name="first"), party(ES, "EMSP", name="second")
    )


def test_moved_from_that_matches_no_location_gets_a_note() -> None:
    """A typo in moved_from moves nothing: the plan says so, as it does for a claimed id that is not there."""
    spain = party(ES, "CPO", moved_from=(Declared(PT, Source("parties/ES-CPO.yaml", 8, 5)), Declared(FR)))
    plan = compute_plan(
        desired(party(TWK, "CPO"), spain),
        actual(row(TWK, "CPO"), row(ES, "CPO"), groups=(at(TWK, 12, FR),)),
    )
    assert plan.notes == (
        f"moved_from {PT} of ES-CPO at parties/ES-CPO.yaml:8:5 matches no location: none is recorded under "
        "that identity",
    )
