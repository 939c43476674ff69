"""`compute_plan(desired, actual)`: what apply must change so the database matches the party files.

A pure function over plain data: no I/O, no clock. The actual state is read by `database` (party rows,
the default party, location counts per recorded identity, the claimed location ids, the last applied state);
the plan is rendered by `render` and executed by `apply`, which both dispatch on the change types below.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.model import CPO, DesiredState, Identity, Party, Source

#: business_details as stored in the database: OCPI BusinessDetails JSON, or None when never set.
Details = Mapping[str, Any] | None


@dataclass(frozen=True)
class PartyRow:
    """One row of `ocpi_parties` as the plan sees it (never its token)."""

    identity: Identity
    role: str
    url: str
    business_details: Details
    managed: bool
    #: The row's id: a row deleted and registered again is another row. Not compared.
    row_id: str = field(default="", compare=False)

    @property
    def key(self) -> tuple[Identity, str]:
        return (self.identity, self.role)


@dataclass(frozen=True)
class LocationGroup:
    """How many locations are recorded under one identity."""

    identity: Identity
    count: int


@dataclass(frozen=True)
class AppliedRow:
    """A managed row as the last apply left it: the base for drift."""

    identity: Identity
    role: str
    url: str
    business_details: Details


@dataclass(frozen=True)
class ActualState:
    """What the database holds, as far as the plan needs it. Locations are counted, never listed."""

    rows: tuple[PartyRow, ...]
    default_party: Identity | None
    location_groups: tuple[LocationGroup, ...] = ()
    #: The claimed location ids that exist, each with the identity it is recorded under now.
    claimed: Mapping[str, Identity] = field(default_factory=dict)
    #: The managed rows as the last apply left them; None before the first apply.
    last_applied: tuple[AppliedRow, ...] | None = None
    #: ocpi-parties' own migrations not yet run on this database (apply runs them first).
    pending_migrations: tuple[str, ...] = ()


@dataclass(frozen=True)
class FieldChange:
    """One changed field: `field` is a dotted path such as `business_details.logo.url`."""

    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class RunMigrations:
    """ocpi-parties' own tables, columns and the location owner key, added before anything else."""

    migrations: tuple[str, ...]


@dataclass(frozen=True)
class CreateParty:
    identity: Identity
    role: str
    url: str | None
    business_details: Mapping[str, Any]
    source: Source = field(default=Source(""), compare=False)


@dataclass(frozen=True)
class AdoptParty:
    """A declared row that exists unmanaged (OCPI registration wrote it): manage it from now on."""

    identity: Identity
    role: str
    changes: tuple[FieldChange, ...]
    source: Source = field(default=Source(""), compare=False)


@dataclass(frozen=True)
class UpdateParty:
    identity: Identity
    role: str
    changes: tuple[FieldChange, ...]
    source: Source = field(default=Source(""), compare=False)


@dataclass(frozen=True)
class DeleteParty:
    """Delete a managed row. A `blocked` deletion is shown, not applied: it needs a tombstone or the flag."""

    identity: Identity
    role: str
    reason: str
    blocked: bool = False


@dataclass(frozen=True)
class SetDefaultParty:
    before: Identity | None
    after: Identity


class MoveReason:
    ORPHANS = "orphans"
    MOVED_FROM = "moved_from"
    CLAIMED = "claimed"
    PARTY_DELETED = "party_deleted"


@dataclass(frozen=True)
class MoveLocations:
    """Give locations to the CPO `to`: all those recorded under `groups`, or the listed `location_ids`."""

    reason: str
    to: Identity
    groups: tuple[LocationGroup, ...] = ()
    location_ids: tuple[str, ...] = ()
    source: Source = field(default=Source(""), compare=False)

    @property
    def count(self) -> int:
        return len(self.location_ids) if self.location_ids else sum(group.count for group in self.groups)


@dataclass(frozen=True)
class Drift:
    """A managed row changed in the database since the last apply, outside git."""

    identity: Identity
    role: str
    changes: tuple[FieldChange, ...]
    #: True when the row was deleted outside git.
    missing: bool = False


Change = (
    RunMigrations | CreateParty | AdoptParty | UpdateParty | DeleteParty | SetDefaultParty | MoveLocations
)


@dataclass(frozen=True)
class LocationOwners:
    """The locations recorded, and how many of them no CPO row owns now and after the plan is applied.

    The location owner key can be validated only when none is left without an owner.
    """

    recorded: int = 0
    unowned_now: int = 0
    unowned_after: int = 0


@dataclass(frozen=True)
class Plan:
    """The changes in the order apply executes them, plus what the reviewer should know besides."""

    changes: tuple[Change, ...]
    unmanaged: tuple[PartyRow, ...] = ()
    drift: tuple[Drift, ...] = ()
    notes: tuple[str, ...] = ()
    owners: LocationOwners = LocationOwners()

    @property
    def blocked(self) -> tuple[DeleteParty, ...]:
        return tuple(c for c in self.changes if isinstance(c, DeleteParty) and c.blocked)

    @property
    def applicable(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if not (isinstance(c, DeleteParty) and c.blocked))

    @property
    def has_changes(self) -> bool:
        return bool(self.applicable)

    def count(self, kind: type) -> int:
        return sum(1 for c in self.applicable if isinstance(c, kind))

    @property
    def to_add(self) -> int:
        return self.count(CreateParty)

    @property
    def to_change(self) -> int:
        return self.count(UpdateParty) + self.count(SetDefaultParty)

    @property
    def to_delete(self) -> int:
        return self.count(DeleteParty)

    @property
    def to_adopt(self) -> int:
        return self.count(AdoptParty)

    @property
    def migrations_to_run(self) -> int:
        return sum(len(c.migrations) for c in self.applicable if isinstance(c, RunMigrations))

    @property
    def locations_to_move(self) -> int:
        return sum(c.count for c in self.applicable if isinstance(c, MoveLocations))


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
    if before is None or after is None:
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


def _row_changes(
    url_before: str, details_before: Details, url: str | None, details: Details
) -> tuple[FieldChange, ...]:
    """The changes from a row's url and details to `url` (None: left as it is) and `details`."""
    changes = details_changes(details_before, details)
    if url is not None and url_before != url:
        return (FieldChange("url", url_before, url), *changes)
    return changes


#: A row's (country_code, party_id, role). Plain strings hash and compare in C, where an Identity runs Python
#: code, which a plan over 17,600 rows felt; they sort as (Identity, role) does.
RowKey = tuple[str, str, str]


def _declared(desired: DesiredState) -> set[RowKey]:
    """The key of every row the files declare."""
    return {
        (p.identity.country_code, p.identity.party_id, role.role) for p in desired.parties for role in p.roles
    }


def _pair(identity: Identity) -> tuple[str, str]:
    return (identity.country_code, identity.party_id)


def _key(row: PartyRow) -> RowKey:
    return (row.identity.country_code, row.identity.party_id, row.role)


def _rows_by_key(actual: ActualState) -> dict[RowKey, PartyRow]:
    return {_key(row): row for row in actual.rows}


def _party_changes(
    desired: DesiredState,
    rows: Mapping[RowKey, PartyRow],
    declared: set[RowKey],
    allow_delete: bool,
) -> tuple[list[Change], list[Change], list[DeleteParty], list[str]]:
    """Creates and adoptions, updates, deletions and notes for the party rows."""
    created: list[Change] = []
    updated: list[Change] = []
    deleted: list[DeleteParty] = []
    notes: list[str] = []
    for party in desired.parties:
        details_url = party.url
        country_code, party_id = party.identity.country_code, party.identity.party_id
        for role in party.roles:
            details = role.business_details.to_ocpi()
            row = rows.get((country_code, party_id, role.role))
            if row is None:
                created.append(CreateParty(party.identity, role.role, details_url, details, role.source))
                continue
            changes = _row_changes(row.url, row.business_details, details_url, details)
            if not row.managed:
                created.append(AdoptParty(party.identity, role.role, changes, role.source))
            elif changes:
                updated.append(UpdateParty(party.identity, role.role, changes, role.source))
    tombstones = {(t.identity, t.role): t for t in desired.tombstones}
    # Sort only the rows to delete: sorting every row of a large database took a tenth of a second.
    undeclared = [(key, row) for key, row in rows.items() if row.managed and key not in declared]
    for _, row in sorted(undeclared, key=lambda item: item[0]):
        tombstone = tombstones.get(row.key) or tombstones.get((row.identity, None))
        if tombstone is not None:
            reason = f"marked deleted at {tombstone.source}" if tombstone.source.file else "marked deleted"
            deleted.append(DeleteParty(row.identity, row.role, reason))
        elif allow_delete:
            deleted.append(DeleteParty(row.identity, row.role, "no longer declared in the party files"))
        else:
            deleted.append(
                DeleteParty(
                    row.identity,
                    row.role,
                    "no longer declared in the party files; deleting needs a tombstone (deleted: true) "
                    "or --allow-delete",
                    blocked=True,
                )
            )
    by_identity: dict[Identity, list[PartyRow]] = defaultdict(list)
    if desired.tombstones:
        for row in rows.values():
            by_identity[row.identity].append(row)
    for tombstone in desired.tombstones:
        roles = [r for r in by_identity.get(tombstone.identity, ()) if tombstone.role in (None, r.role)]
        if not any(r.managed for r in roles):
            what = f"{tombstone.identity} {tombstone.role}" if tombstone.role else str(tombstone.identity)
            unmanaged = " (its rows are not managed by ocpi-parties)" if roles else ""
            notes.append(
                f"{what} is marked deleted at {tombstone.source} but has nothing to delete{unmanaged}"
            )
    return created, updated, deleted, notes


def _cpo_after(
    desired: DesiredState, cpo_now: set[Identity], deleted: Sequence[DeleteParty]
) -> set[Identity]:
    """The identities that hold a CPO row once the plan is applied."""
    removed = {d.identity for d in deleted if d.role == CPO and not d.blocked}
    declared = {p.identity for p in desired.parties if any(r.role == CPO for r in p.roles)}
    return (cpo_now - removed) | declared


def _owners(
    actual: ActualState, cpo_now: set[Identity], cpo_after: set[Identity], moves: Sequence[MoveLocations]
) -> LocationOwners:
    """Count the locations without a CPO owner before and after the moves, from the group counts alone."""
    left = {group.identity: group.count for group in actual.location_groups}
    for move in moves:
        for location_id in move.location_ids:
            left[actual.claimed[location_id]] -= 1
        for group in move.groups:
            left[group.identity] -= group.count
    return LocationOwners(
        recorded=sum(group.count for group in actual.location_groups),
        unowned_now=sum(g.count for g in actual.location_groups if g.identity not in cpo_now),
        unowned_after=sum(count for identity, count in left.items() if identity not in cpo_after),
    )


def _location_moves(
    desired: DesiredState, actual: ActualState, cpo_before: set[Identity], cpo_after: set[Identity]
) -> tuple[list[MoveLocations], list[str]]:
    """Group the locations that change owner: claims by id, moved identities, orphans, deleted parties."""
    moves: list[MoveLocations] = []
    notes: list[str] = []

    claimed_out: dict[Identity, int] = defaultdict(int)
    for party in desired.parties:
        ids = []
        for claim in party.locations:
            recorded = actual.claimed.get(claim.value)
            if recorded is None:
                notes.append(
                    f"location {claim.value!r} claimed by {party.identity} at {claim.source} does not exist"
                )
            elif recorded != party.identity:
                ids.append(claim.value)
                claimed_out[recorded] += 1
        if ids:
            moves.append(MoveLocations(MoveReason.CLAIMED, party.identity, location_ids=tuple(ids)))

    moved_to: dict[Identity, Party] = {m.value: p for p in desired.parties for m in p.moved_from}
    grouped: dict[tuple[str, Identity], list[LocationGroup]] = defaultdict(list)
    for group in sorted(actual.location_groups, key=lambda g: _pair(g.identity)):
        count = group.count - claimed_out.get(group.identity, 0)
        if count <= 0:
            continue
        remaining = LocationGroup(group.identity, count)
        if group.identity in moved_to:
            grouped[(MoveReason.MOVED_FROM, moved_to[group.identity].identity)].append(remaining)
        elif group.identity in cpo_after:
            continue
        elif group.identity in cpo_before:
            grouped[(MoveReason.PARTY_DELETED, desired.default_party)].append(remaining)
        elif group.identity != desired.default_party:
            grouped[(MoveReason.ORPHANS, desired.default_party)].append(remaining)
    order = [MoveReason.MOVED_FROM, MoveReason.ORPHANS, MoveReason.PARTY_DELETED]
    for (reason, to), groups in sorted(
        grouped.items(), key=lambda item: (order.index(item[0][0]), item[0][1])
    ):
        source = next(
            (m.source for p in desired.parties for m in p.moved_from if p.identity == to), Source("")
        )
        moves.append(
            MoveLocations(reason, to, tuple(groups), source=source if reason == "moved_from" else Source(""))
        )
    return moves, notes


def _drift(actual: ActualState, rows: Mapping[RowKey, PartyRow]) -> tuple[Drift, ...]:
    if actual.last_applied is None:
        return ()
    drift = []
    for applied in actual.last_applied:
        row = rows.get((applied.identity.country_code, applied.identity.party_id, applied.role))
        if row is None:
            drift.append(Drift(applied.identity, applied.role, (), missing=True))
        elif changes := _row_changes(applied.url, applied.business_details, row.url, row.business_details):
            drift.append(Drift(applied.identity, applied.role, changes))
    return tuple(drift)


def compute_plan(desired: DesiredState, actual: ActualState, *, allow_delete: bool = False) -> Plan:
    """The changes that make `actual` match `desired`, in the order apply executes them.

    Order: run pending migrations, create and adopt parties, update them, set the default party, move
    locations, delete parties.
    """
    rows = _rows_by_key(actual)
    declared = _declared(desired)
    created, updated, deleted, notes = _party_changes(desired, rows, declared, allow_delete)
    changes: list[Change] = [RunMigrations(actual.pending_migrations)] if actual.pending_migrations else []
    changes.extend([*created, *updated])
    if actual.default_party != desired.default_party:
        changes.append(SetDefaultParty(actual.default_party, desired.default_party))
    cpo_now = {row.identity for row in actual.rows if row.role == CPO}
    cpo_after = _cpo_after(desired, cpo_now, deleted)
    moves, move_notes = _location_moves(desired, actual, cpo_now, cpo_after)
    changes.extend(moves)
    changes.extend(deleted)
    # Sort only the few rows kept: sorting all 17,600 rows of a large database took a tenth of a second.
    undeclared = [(key, row) for key, row in rows.items() if not row.managed and key not in declared]
    unmanaged = tuple(row for _, row in sorted(undeclared, key=lambda item: item[0]))
    owners = _owners(actual, cpo_now, cpo_after, moves)
    return Plan(tuple(changes), unmanaged, _drift(actual, rows), tuple(notes + move_notes), owners)


def fingerprint(desired: DesiredState, actual: ActualState) -> str:
    """A digest of every database fact the plan depends on; a saved plan applies only while it is unchanged.

    In scope: the rows the files declare or tombstone and the managed rows (their id and every column the
    plan compares), which identities hold a CPO row, the default party, the pending migrations, the
    location counts of the identities whose locations the plan may move (those without a CPO row, those
    named in `moved_from`, those of parties that may be deleted) and the claimed locations. Outside it, so
    a running CSMS does not make a reviewed plan stale: an OCPI peer refreshing its token, and MaEVe saving
    locations that land on a CPO the plan leaves alone.
    """
    declared = _declared(desired)
    tombstoned = {_pair(t.identity) for t in desired.tombstones}
    movable = {_pair(m.value) for p in desired.parties for m in p.moved_from} | tombstoned
    owners: set[tuple[str, str]] = set()
    facts: list[Any] = []
    for row in sorted(actual.rows, key=_key):
        key = _key(row)
        if row.managed or key in declared or key[:2] in tombstoned:
            facts.append(
                ["row", str(row.identity), row.role, row.url, row.business_details, row.managed, row.row_id]
            )
            if row.managed and key not in declared:
                movable.add(key[:2])
        elif row.role == CPO:
            facts.append(["cpo", str(row.identity)])
        if row.role == CPO:
            owners.add(key[:2])
    facts.append(["default", str(actual.default_party)])
    facts.append(["migrations", list(actual.pending_migrations)])
    for group in sorted(actual.location_groups, key=lambda g: _pair(g.identity)):
        if _pair(group.identity) not in owners or _pair(group.identity) in movable:
            facts.append(["locations", str(group.identity), group.count])
    facts.extend(["claimed", key, str(value)] for key, value in sorted(actual.claimed.items()))
    # No check for circular references: the facts are data decoded from JSON, which cannot hold any.
    digest = json.dumps(facts, sort_keys=True, default=str, check_circular=False)
    return hashlib.sha256(digest.encode()).hexdigest()
