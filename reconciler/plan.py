"""`compute_plan(desired, actual)`: what apply must change so the database matches the party files.

A pure function over plain data: no I/O, no clock. The actual state is read by `state` (party rows, the
default party, location counts per recorded identity, the claimed location ids, the last applied state);
the plan is rendered by `output.plan` and executed by `apply`, which both dispatch on the change types of
`changes`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.changes import (
    EVERY_ROLE,
    ActualState,
    AdoptParty,
    AwaitRegistration,
    Change,
    CreateParty,
    DeleteParty,
    Details,
    Drift,
    FieldChange,
    LocationGroup,
    LocationOwners,
    LocationRules,
    MoveLocations,
    MoveReason,
    PartyRow,
    Plan,
    ReleaseParty,
    RowKey,
    RunMigrations,
    SetDefaultParty,
    SetLocationRules,
    UpdateParty,
    row_key,
)
from reconciler.model import CPO, DesiredState, Identity, Party, Source, Tombstone

_DEEPDIFF_KEY = re.compile(r"\['([^']*)'\]|\[(\d+)\]")


def _dotted(path: str) -> str:
    """deepdiff's `root['logo']['url']` -> `logo.url`."""
    return ".".join(key or index for key, index in _DEEPDIFF_KEY.findall(path))


def _missing(value: Any) -> Any:
    return None if type(value).__name__ == "NotPresent" else value


def _same(before: Any, after: Any) -> bool:
    """Equal JSON values with the same types all the way down: 1, 1.0 and True differ, as in deepdiff.

    `==` (in C) settles the pair unless the values are equal; only then are they walked, for their types.
    """
    return type(before) is type(after) and before == after and _same_types(before, after)


def _same_types(before: Any, after: Any) -> bool:
    """Whether the items of two equal dicts (or lists) have the same types all the way down."""
    if isinstance(before, dict):
        pairs = zip(before.values(), map(after.__getitem__, before), strict=True)
    elif isinstance(before, list):
        pairs = zip(before, after, strict=True)
    else:
        return True
    for value, other in pairs:
        if type(value) is not type(other):
            return False
        if isinstance(value, (dict, list)) and not _same_types(value, other):
            return False
    return True


def details_changes(before: Details, after: Details) -> tuple[FieldChange, ...]:
    """Field-level differences of two BusinessDetails documents, as dotted `business_details.*` paths.

    Documents that are the same are answered without deepdiff: a plan compares every managed row twice
    (with its file and with the last apply), and almost all of them are unchanged.
    """
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        # Unset, or a value that is no JSON object (a row's `"Voltkaart B.V."`, written by hand or by another
        # tool): the whole document changes, shown before -> after, and apply writes the file's object.
        return () if before == after else (FieldChange("business_details", before, after),)
    before, after = _as_dict(before), _as_dict(after)
    if _same(before, after):
        return ()
    from deepdiff import DeepDiff  # imported only when documents differ: it takes a tenth of a second

    diff = DeepDiff(before, after, verbose_level=2, view="tree")
    changes = [
        FieldChange(f"business_details.{_dotted(item.path())}", _missing(item.t1), _missing(item.t2))
        for items in diff.values()
        for item in items
    ]
    return tuple(sorted(changes, key=lambda change: change.field))


def _as_dict(details: Mapping[str, Any]) -> dict[str, Any]:
    """`details` as a dict, copied only when it is another kind of mapping."""
    return details if type(details) is dict else dict(details)


#: Why a declared partner's row that holds no token is deleted.
CREDENTIAL_LESS = (
    "a partner's row without credentials, which an earlier ocpi-parties created: MaEVe would call it with an "
    "empty token (it pushes every new location to each EMSP row and stops at the first failure); OCPI "
    "registration creates the partner's rows"
)


def _upper(identity: Identity) -> Identity:
    country_code, party_id = identity.country_code.upper(), identity.party_id.upper()
    if country_code == identity.country_code and party_id == identity.party_id:
        return identity
    return Identity(country_code, party_id)


def _row_changes(
    url_before: str | None, details_before: Details, url: str | None, details: Details
) -> tuple[FieldChange, ...]:
    """The changes from a row's url and details to `url` (None: not git's to change) and `details`."""
    changes = details_changes(details_before, details)
    if url is not None and url_before != url:
        return (FieldChange("url", url_before, url), *changes)
    return changes


def _declared(desired: DesiredState) -> set[RowKey]:
    """The key of every row the files declare."""
    return {row_key(p.identity, role.role) for p in desired.parties for role in p.roles}


def _pair(identity: Identity) -> tuple[str, str]:
    return (identity.country_code, identity.party_id)


@dataclass
class _PartyChanges:
    #: Rows to create and rows to adopt, in the order the files declare them.
    created_or_adopted: list[CreateParty | AdoptParty] = field(default_factory=list)
    updated: list[Change] = field(default_factory=list)
    deleted: list[DeleteParty] = field(default_factory=list)
    released: list[ReleaseParty] = field(default_factory=list)
    awaiting: list[AwaitRegistration] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _declared_changes(desired: DesiredState, rows: Mapping[RowKey, PartyRow], found: _PartyChanges) -> None:
    """Creates, adoptions, updates and the credential-less partner rows to delete, for declared roles.

    The rule (docs/party-management.md, "Hosted and partner"): ocpi-parties creates rows only for hosted
    roles, which are CPOs. MaEVe's PushLocation lists every EMSP row (`SELECT ... FROM ocpi_parties WHERE
    role = $1 ORDER BY created_at DESC`) and calls each with its url and token, so a row nobody registered
    would break pushes. A partner's rows come from OCPI registration (SetOcpiParty), which owns their url and
    token; ocpi-parties manages only their business details.
    """
    for party in desired.parties:
        for role in party.roles:
            details = role.business_details.to_ocpi()
            row = rows.get(row_key(party.identity, role.role))
            if row is None:
                if role.hosted:
                    found.created_or_adopted.append(
                        CreateParty(party.identity, role.role, party.url, details, role.source)
                    )
                else:
                    found.awaiting.append(AwaitRegistration(party.identity, role.role, role.source))
                continue
            if not row.credentials and not role.hosted:
                found.deleted.append(DeleteParty(row.identity, row.role, CREDENTIAL_LESS, row_id=row.id))
                found.awaiting.append(AwaitRegistration(party.identity, role.role, role.source))
                continue
            if row.credentials:
                if party.url is not None and row.url != party.url:
                    found.warnings.append(
                        f"{party.identity} {role.role}: OCPI registration recorded the url {row.url!r}, "
                        f"{role.source.file or 'the party file'} expects {party.url!r}; ocpi-parties does "
                        "not change it (registration owns url and token): check that the partner meant it"
                    )
                if role.hosted:
                    found.warnings.append(
                        f"{party.identity} {role.role} is declared hosted, but OCPI registration gave its "
                        "row credentials: ocpi-parties manages its business details, never its url or token"
                    )
                changes = details_changes(row.business_details, details)
            else:
                changes = _row_changes(row.url, row.business_details, party.url, details)
            if row.credentials and not row.managed:
                found.created_or_adopted.append(
                    AdoptParty(party.identity, role.role, changes, role.source, row.id)
                )
            elif changes:
                found.updated.append(UpdateParty(party.identity, role.role, changes, role.source, row.id))


def _undeclared_changes(
    desired: DesiredState,
    rows: Mapping[RowKey, PartyRow],
    declared: set[RowKey],
    allow_delete: bool,
    found: _PartyChanges,
) -> None:
    """Managed rows no file declares any more: release registration's rows, delete ocpi-parties' own."""
    tombstones = {row_key(t.identity, t.role or EVERY_ROLE): t for t in desired.tombstones}
    for key in sorted(key for key, row in rows.items() if row.managed and key not in declared):
        row = rows[key]
        tombstone = tombstones.get(key) or tombstones.get((key[0], key[1], EVERY_ROLE))
        if row.credentials:
            found.released.append(_release(row, tombstone))
        else:
            found.deleted.append(_deletion(row, tombstone, allow_delete))
    found.notes.extend(_tombstone_notes(desired.tombstones, rows))


def _marked(tombstone: Tombstone | None) -> str | None:
    return f"marked deleted at {tombstone.source}" if tombstone and tombstone.source.file else None


def _release(row: PartyRow, tombstone: Tombstone | None) -> ReleaseParty:
    """Stop managing a row registration owns that the files no longer declare (or mark deleted)."""
    why = _marked(tombstone) or ("marked deleted" if tombstone else "no longer declared in the party files")
    return ReleaseParty(
        row.identity,
        row.role,
        f"{why}; OCPI registration owns this row: its url, token and business details stay. "
        "To disconnect the partner, end its registration through the CSMS (OCPI credentials "
        "DELETE)",
        row.id,
    )


def _deletion(row: PartyRow, tombstone: Tombstone | None, allow_delete: bool) -> DeleteParty:
    """Delete ocpi-parties' own row that the files no longer declare; blocked without a tombstone or
    --allow-delete."""
    if tombstone is not None:
        return DeleteParty(row.identity, row.role, _marked(tombstone) or "marked deleted", row_id=row.id)
    if row.role != CPO:
        # Only a CPO can be hosted: a managed row of another role without credentials is one an earlier
        # ocpi-parties created for a partner, which MaEVe would call with an empty token. No protection.
        return DeleteParty(row.identity, row.role, CREDENTIAL_LESS, row_id=row.id)
    if allow_delete:
        return DeleteParty(row.identity, row.role, "no longer declared in the party files", row_id=row.id)
    return DeleteParty(
        row.identity,
        row.role,
        "no longer declared in the party files; deleting needs a tombstone (deleted: true) or --allow-delete",
        blocked=True,
        row_id=row.id,
    )


def _tombstone_notes(tombstones: Sequence[Tombstone], rows: Mapping[RowKey, PartyRow]) -> list[str]:
    """Tombstones that find no managed row to delete."""
    by_identity: dict[tuple[str, str], list[PartyRow]] = defaultdict(list)
    if tombstones:
        for key, row in rows.items():
            by_identity[key[:2]].append(row)
    notes = []
    for tombstone in tombstones:
        identity = row_key(tombstone.identity, EVERY_ROLE)[:2]
        roles = [r for r in by_identity.get(identity, ()) if tombstone.role in (None, r.role)]
        if not any(r.managed for r in roles):
            what = f"{tombstone.identity} {tombstone.role}" if tombstone.role else str(tombstone.identity)
            unmanaged = " (its rows are not managed by ocpi-parties)" if roles else ""
            notes.append(
                f"{what} is marked deleted at {tombstone.source} but has nothing to delete{unmanaged}"
            )
    return notes


def _cpo_after(
    desired: DesiredState, rows: Mapping[RowKey, PartyRow], deleted: Sequence[DeleteParty]
) -> dict[Identity, Identity]:
    """Each identity (upper case) that holds a CPO row once the plan is applied, with that row's spelling."""
    removed = {d.row_id for d in deleted if d.role == CPO and not d.blocked}
    cpo = {
        Identity(key[0], key[1]): row.identity
        for key, row in rows.items()
        if key[2] == CPO and row.id not in removed
    }
    for party in desired.parties:
        role = party.role(CPO)
        if role is not None and role.hosted and party.identity not in cpo:
            cpo[party.identity] = party.identity
    return cpo


def location_owner(
    claimant: Identity | None,
    recorded: Identity | None,
    cpo: Mapping[Identity, Identity],
    moved_from: Mapping[Identity, Identity],
    default: Identity | None,
) -> tuple[Identity | None, MoveReason]:
    """The owner of a location, as the guard (`reconciler_location_owner()`, migration 0006) computes it.

    Claimed by id -> the claimant; recorded under an identity with a CPO row -> that row; recorded under an
    identity a hosted party's moved_from names -> that party; otherwise the default party; None while there
    is none. `cpo` maps each identity in upper case to the spelling of its CPO row. Returns the owner as its
    CPO row spells it, and the rule that chose it (a `MoveReason`).
    """
    if claimant is not None and claimant in cpo:
        return cpo[claimant], MoveReason.CLAIMED
    if recorded is not None:
        if recorded in cpo:
            return cpo[recorded], MoveReason.RECORDED
        target = moved_from.get(recorded)
        if target is not None and target in cpo:
            return cpo[target], MoveReason.MOVED_FROM
    if default is not None and _upper(default) in cpo:
        return cpo[_upper(default)], MoveReason.ORPHANS
    return None, MoveReason.ORPHANS


def _rules(desired: DesiredState) -> LocationRules:
    """The claims and moves the files declare, as the guard reads them."""
    return LocationRules(
        claims={claim.value: party.identity for party in desired.parties for claim in party.locations},
        moved_from={moved.value: party.identity for party in desired.parties for moved in party.moved_from},
    )


#: The order of the moves in a plan: the order `MoveReason` lists its members in.
_REASON_ORDER = tuple(MoveReason)

#: The key of a `LocationGroup`.
_GroupKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class _Owners:
    """What decides the owner of a location once the plan is applied."""

    desired: DesiredState
    #: Each identity (upper case) holding a CPO row after the plan, with that row's spelling.
    cpo: Mapping[Identity, Identity]
    #: The identities (upper case) whose CPO row the plan deletes.
    deleted_cpo: set[Identity]
    rules: LocationRules

    def owner(
        self, claimant: Identity | None, recorded: Identity | None
    ) -> tuple[Identity | None, MoveReason]:
        return location_owner(claimant, recorded, self.cpo, self.rules.moved_from, self.desired.default_party)


@dataclass
class _Moves:
    moves: list[MoveLocations] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Locations that no CPO row owns once the plan is applied.
    unowned_after: int = 0
    #: How many locations of each group the files claim by id (they move by id, not with their group).
    claimed_in: dict[_GroupKey, int] = field(default_factory=lambda: defaultdict(int))


def _location_moves(
    desired: DesiredState,
    actual: ActualState,
    cpo: Mapping[Identity, Identity],
    deleted_cpo: set[Identity],
) -> _Moves:
    """The moves that give every location the owner `location_owner` says, and the locations left unowned."""
    owners = _Owners(desired, cpo, deleted_cpo, _rules(desired))
    found = _Moves()
    for party in desired.parties:
        _claimed_moves(party, actual, owners, found)
    found.notes.extend(_moved_from_notes(desired, actual))
    _group_moves(actual, owners, found)
    found.moves.sort(key=lambda m: _REASON_ORDER.index(m.reason))
    return found


def _claimed_moves(party: Party, actual: ActualState, owners: _Owners, found: _Moves) -> None:
    """The move of the locations `party` claims by id that another owner holds now."""
    ids: list[str] = []
    origins: dict[_GroupKey, LocationGroup] = {}
    for claim in party.locations:
        location = actual.claimed.get(claim.value)
        if location is None:
            found.notes.append(
                f"location {claim.value!r} claimed by {party.identity} at {claim.source} does not exist"
            )
            continue
        group = LocationGroup(location.recorded, location.owner, 1, location.owned)
        found.claimed_in[group.key] += 1
        owner, _ = owners.owner(party.identity, location.recorded)
        if owner is None:
            found.unowned_after += 1
        elif not location.owned or owner != location.owner:
            ids.append(claim.value)
            seen = origins.get(group.key)
            origins[group.key] = replace(group, count=seen.count + 1) if seen else group
    if ids:
        groups = tuple(sorted(origins.values(), key=lambda g: g.key))
        found.moves.append(MoveLocations(MoveReason.CLAIMED, owners.cpo[party.identity], groups, tuple(ids)))


def _moved_from_notes(desired: DesiredState, actual: ActualState) -> list[str]:
    """moved_from naming an identity that no location is recorded under."""
    recorded_identities = {group.recorded for group in actual.location_groups}
    return [
        f"moved_from {moved.value} of {party.identity} at {moved.source} matches no location: "
        "none is recorded under that identity"
        for party in desired.parties
        for moved in party.moved_from
        if moved.value not in recorded_identities
    ]


def _group_moves(actual: ActualState, owners: _Owners, found: _Moves) -> None:
    """One move per rule and new owner for the location groups (less the claimed locations) whose owner
    changes."""
    grouped: dict[tuple[MoveReason, Identity], list[LocationGroup]] = defaultdict(list)
    for group in sorted(actual.location_groups, key=lambda g: g.key):
        count = group.count - found.claimed_in.get(group.key, 0)
        if count <= 0:
            continue
        owner, reason = owners.owner(None, group.recorded)
        if owner is None:
            found.unowned_after += count
            continue
        if group.owned and owner == group.owner:
            continue
        if reason is MoveReason.ORPHANS and group.owned and _upper(group.owner) in owners.deleted_cpo:
            reason = MoveReason.PARTY_DELETED
        grouped[(reason, owner)].append(replace(group, count=count))
    #: Each moved identity with its declaration, in file order.
    declarations = [m for p in owners.desired.parties for m in p.moved_from]
    for (reason, to), groups in sorted(
        grouped.items(), key=lambda item: (_REASON_ORDER.index(item[0][0]), _pair(item[0][1]))
    ):
        source = Source("")
        if reason is MoveReason.MOVED_FROM:
            recorded = {group.recorded for group in groups}
            source = next((m.source for m in declarations if m.value in recorded), source)
        found.moves.append(MoveLocations(reason, to, tuple(groups), source=source))


def _refusals(desired: DesiredState, cpo: Mapping[Identity, Identity]) -> list[str]:
    """moved_from naming an identity with a CPO row of its own (OCPI registration created one): its
    locations belong to that row, and the files must say so."""
    return [
        f"{party.identity} moves the locations of {moved.value} at {moved.source}, but {moved.value} holds a "
        f"CPO row of its own ({cpo[moved.value]}, from OCPI registration): its locations stay with it; "
        f"remove {moved.value} from moved_from"
        for party in desired.parties
        for moved in party.moved_from
        if moved.value in cpo and moved.value != party.identity
    ]


def _rules_change(desired: DesiredState, actual: ActualState) -> SetLocationRules | None:
    """The claims and moves to record for the guard, when they differ from what it reads now."""
    wanted = _rules(desired)
    recorded = actual.rules or LocationRules()
    if (
        actual.rules is not None
        and dict(wanted.claims) == dict(recorded.claims)
        and dict(wanted.moved_from) == dict(recorded.moved_from)
    ):
        return None
    if actual.rules is None and not wanted.claims and not wanted.moved_from:
        return None
    return SetLocationRules(wanted.claims, wanted.moved_from, len(recorded.claims), len(recorded.moved_from))


def _drift(actual: ActualState, rows: Mapping[RowKey, PartyRow]) -> tuple[Drift, ...]:
    """Fields git owns that changed since the last apply: a registered row's url is registration's."""
    if actual.last_applied is None:
        return ()
    drift = []
    for applied in actual.last_applied:
        row = rows.get(row_key(applied.identity, applied.role))
        if row is None:
            drift.append(Drift(applied.identity, applied.role, (), missing=True))
            continue
        url = None if row.credentials else row.url
        before = None if row.credentials else applied.url
        if changes := _row_changes(before, applied.business_details, url, row.business_details):
            drift.append(Drift(applied.identity, applied.role, changes))
    return tuple(drift)


def compute_plan(desired: DesiredState, actual: ActualState, *, allow_delete: bool = False) -> Plan:
    """The changes that make `actual` match `desired`, in the order apply executes them.

    Order: run pending migrations, create and adopt parties, update them, set the default party, record
    the claims and moves for the guard, move locations, release partners' rows, delete parties.
    """
    rows = actual.rows_by_key
    declared = _declared(desired)
    found = _PartyChanges()
    _declared_changes(desired, rows, found)
    _undeclared_changes(desired, rows, declared, allow_delete, found)
    changes: list[Change] = [RunMigrations(actual.pending_migrations)] if actual.pending_migrations else []
    changes.extend([*found.created_or_adopted, *found.updated])
    if actual.default_party is None or _upper(actual.default_party) != desired.default_party:
        changes.append(SetDefaultParty(actual.default_party, desired.default_party))
    rules = _rules_change(desired, actual)
    if rules is not None:
        changes.append(rules)
    cpo = _cpo_after(desired, rows, found.deleted)
    deleted_cpo = {_upper(d.identity) for d in found.deleted if d.role == CPO and not d.blocked}
    moves = _location_moves(desired, actual, cpo, deleted_cpo)
    changes.extend(moves.moves)
    changes.extend(found.released)
    changes.extend(found.deleted)
    # Unmanaged rows no file declares, and every unmanaged row that repeats a key in another case.
    unmanaged = [row for key, row in rows.items() if not row.managed and key not in declared]
    unmanaged += [row for row in actual.shadowed_rows if not row.managed]
    owners = LocationOwners(
        recorded=sum(group.count for group in actual.location_groups),
        unowned_now=sum(group.count for group in actual.location_groups if not group.owned),
        unowned_after=moves.unowned_after,
    )
    return Plan(
        tuple(changes),
        tuple(sorted(unmanaged, key=lambda row: (row.key, row.order))),
        _drift(actual, rows),
        tuple(found.notes + moves.notes),
        owners,
        tuple(found.awaiting),
        tuple(found.warnings),
        tuple(_refusals(desired, cpo)),
    )


def fingerprint(desired: DesiredState, actual: ActualState, plan: Plan) -> str:
    """A digest of every database fact the plan depends on; a saved plan applies only while it is unchanged.

    In scope: the rows the files declare or tombstone and the managed rows (their id and every column the
    plan compares), which identities hold a CPO row, the default party, the pending migrations, the claims
    and moves the guard reads, the location groups whose owner the plan changes and the claimed locations.
    Outside it, so a running CSMS does not make a reviewed plan stale: an OCPI peer refreshing its token,
    and MaEVe saving locations that land on the owner the files give them.
    """
    declared = _declared(desired)
    tombstoned = {row_key(t.identity, EVERY_ROLE)[:2] for t in desired.tombstones}
    parts: list[Any] = []
    rows = actual.rows_by_key
    cpo: list[str] = []
    for key in sorted(rows):
        row = rows[key]
        if row.managed or key in declared or key[:2] in tombstoned:
            url = None if row.credentials else row.url
            parts.append(["row", *key, url, row.business_details, row.managed, str(row.id), row.credentials])
        if key[2] == CPO:
            cpo.append(f"{row.identity}#{row.id}")
    parts.append(["cpo", cpo])
    parts.append(["default", str(actual.default_party)])
    parts.append(["migrations", list(actual.pending_migrations)])
    if actual.rules is not None:
        parts.append(["claims", sorted((k, str(v)) for k, v in actual.rules.claims.items())])
        parts.append(["moved", sorted((str(k), str(v)) for k, v in actual.rules.moved_from.items())])
    for move in plan.changes:
        if isinstance(move, MoveLocations):
            parts.append(["move", move.reason, str(move.to), [[*g.key, g.count] for g in move.groups]])
    parts.extend(
        ["claimed", key, str(value.recorded), str(value.owner), value.owned]
        for key, value in sorted(actual.claimed.items())
    )
    # No check for circular references: the parts are data decoded from JSON, which cannot hold any.
    digest = json.dumps(parts, sort_keys=True, default=str, check_circular=False)
    return hashlib.sha256(digest.encode()).hexdigest()
