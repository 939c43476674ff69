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
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.model import CPO, DesiredState, Identity, Source

#: business_details as stored in the database: OCPI BusinessDetails JSON, or None when never set. The column
#: is jsonb, so a row may hold any JSON value (a string, an array): see `details_problem`.
Details = Mapping[str, Any] | None


def details_problem(value: object) -> str | None:
    """What is wrong with a row's stored business_details, or None when it is an object or unset."""
    if value is None or isinstance(value, Mapping):
        return None
    kind = (
        "a string"
        if isinstance(value, str)
        else "an array"
        if isinstance(value, list)
        else "true or false"
        if isinstance(value, bool)
        else "a number"
    )
    return f"business_details is {kind}, not an object as OCPI's BusinessDetails"


@dataclass(frozen=True)
class PartyRow:
    """One row of `ocpi_parties` as the plan sees it (never its token).

    `identity` is as the row spells it; rows are matched with the files case-insensitively (`key`).
    """

    identity: Identity
    role: str
    url: str
    business_details: Details
    managed: bool
    #: The row's id: a row deleted and registered again is another row. Not compared.
    row_id: str = field(default="", compare=False)
    #: OCPI registration gave the row a token: registration owns it, its url and its token.
    credentials: bool = True

    @property
    def key(self) -> RowKey:
        return (self.identity.country_code.upper(), self.identity.party_id.upper(), self.role)

    @property
    def order(self) -> int:
        """Rows that differ only in the case of their identity: the oldest (lowest id) counts."""
        return int(self.row_id) if self.row_id.isdigit() else 0


@dataclass(frozen=True)
class LocationGroup:
    """How many locations have one recorded identity and one owner now.

    `recorded` is the identity the writer gave (upper case), None when it gave none (MaEVe's XXX);
    `owner` is the (country_code, party_id) the location is stored under now, as spelled there; `owned` is
    False while no CPO row owns it (party_role NULL).
    """

    recorded: Identity | None
    owner: Identity
    count: int
    owned: bool = True

    @property
    def key(self) -> tuple[str, str, str, str]:
        recorded = self.recorded or Identity("", "")
        return (self.owner.country_code, self.owner.party_id, recorded.country_code, recorded.party_id)


@dataclass(frozen=True)
class ClaimedLocation:
    """A location that a file claims by id, as the database holds it now."""

    recorded: Identity | None
    owner: Identity
    owned: bool = True


@dataclass(frozen=True)
class AppliedRow:
    """A managed row as the last apply left it: the base for drift."""

    identity: Identity
    role: str
    url: str
    business_details: Details


@dataclass(frozen=True)
class LocationRules:
    """The files' `locations:` claims and `moved_from:` moves, as the guard reads them from the database."""

    claims: Mapping[str, Identity] = field(default_factory=dict)
    moved_from: Mapping[Identity, Identity] = field(default_factory=dict)


@dataclass(frozen=True)
class ActualState:
    """What the database holds, as far as the plan needs it. Locations are counted, never listed."""

    rows: tuple[PartyRow, ...]
    default_party: Identity | None
    location_groups: tuple[LocationGroup, ...] = ()
    #: The claimed location ids that exist, with their recorded identity and owner now.
    claimed: Mapping[str, ClaimedLocation] = field(default_factory=dict)
    #: The managed rows as the last apply left them; None before the first apply.
    last_applied: tuple[AppliedRow, ...] | None = None
    #: ocpi-parties' own migrations not yet run on this database (apply runs them first).
    pending_migrations: tuple[str, ...] = ()
    #: The claims and moves the guard applies to MaEVe's writes; None before migration 0006.
    rules: LocationRules | None = None


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
    """Create the row of a hosted role (no credentials: it is never a push target)."""

    identity: Identity
    role: str
    url: str | None
    business_details: Mapping[str, Any]
    source: Source = field(default=Source(""), compare=False)


@dataclass(frozen=True)
class AdoptParty:
    """A declared row that exists unmanaged (OCPI registration wrote it): manage its business details."""

    identity: Identity
    role: str
    changes: tuple[FieldChange, ...]
    source: Source = field(default=Source(""), compare=False)
    row_id: str = field(default="", compare=False)


@dataclass(frozen=True)
class UpdateParty:
    """Change what git owns of a row: url and business details of a hosted row, business details else."""

    identity: Identity
    role: str
    changes: tuple[FieldChange, ...]
    source: Source = field(default=Source(""), compare=False)
    row_id: str = field(default="", compare=False)


@dataclass(frozen=True)
class DeleteParty:
    """Delete a row that holds no credentials. A `blocked` deletion is shown, not applied."""

    identity: Identity
    role: str
    reason: str
    blocked: bool = False
    row_id: str = field(default="", compare=False)


@dataclass(frozen=True)
class ReleaseParty:
    """Stop managing a row that OCPI registration owns; the row, its url and its token stay."""

    identity: Identity
    role: str
    reason: str
    row_id: str = field(default="", compare=False)


@dataclass(frozen=True)
class SetDefaultParty:
    before: Identity | None
    after: Identity


@dataclass(frozen=True)
class SetLocationRules:
    """Record the files' claims and moves for the guard, which gives MaEVe's new writes their owner."""

    claims: Mapping[str, Identity]
    moved_from: Mapping[Identity, Identity]
    claims_before: int = 0
    moved_from_before: int = 0


class MoveReason:
    """Which rule of `location_owner` gives the locations of a move their new owner."""

    CLAIMED = "claimed"
    RECORDED = "recorded"
    MOVED_FROM = "moved_from"
    ORPHANS = "orphans"
    PARTY_DELETED = "party_deleted"


@dataclass(frozen=True)
class MoveLocations:
    """Give locations to the CPO `to`: all those of `groups`, or the listed `location_ids`.

    `to` is spelled as its CPO row is. With `location_ids`, `groups` only say where they come from.
    """

    reason: str
    to: Identity
    groups: tuple[LocationGroup, ...] = ()
    location_ids: tuple[str, ...] = ()
    source: Source = field(default=Source(""), compare=False)

    @property
    def count(self) -> int:
        return len(self.location_ids) if self.location_ids else sum(group.count for group in self.groups)


@dataclass(frozen=True)
class AwaitRegistration:
    """A declared partner role without a row: OCPI registration creates it; nothing to apply."""

    identity: Identity
    role: str
    source: Source = field(default=Source(""), compare=False)


@dataclass(frozen=True)
class Drift:
    """A managed row changed in the database since the last apply, outside git (fields git owns only)."""

    identity: Identity
    role: str
    changes: tuple[FieldChange, ...]
    #: True when the row was deleted outside git.
    missing: bool = False


Change = (
    RunMigrations
    | CreateParty
    | AdoptParty
    | UpdateParty
    | DeleteParty
    | ReleaseParty
    | SetDefaultParty
    | SetLocationRules
    | MoveLocations
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
    #: Declared partner roles that OCPI registration has not created yet: shown and counted, not applied.
    awaiting: tuple[AwaitRegistration, ...] = ()
    #: What a reviewer should look at although nothing changes it (a registered url the file did not expect).
    warnings: tuple[str, ...] = ()
    #: Why the files cannot be applied to this database as they are: apply refuses while there is any.
    refused: tuple[str, ...] = ()

    @property
    def blocked(self) -> tuple[DeleteParty, ...]:
        return tuple(c for c in self.changes if isinstance(c, DeleteParty) and c.blocked)

    @property
    def applicable(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if not (isinstance(c, DeleteParty) and c.blocked))

    @property
    def has_changes(self) -> bool:
        return bool(self.applicable)

    @property
    def can_apply(self) -> bool:
        """Nothing blocks the plan: no deletion is blocked and the files fit the database."""
        return not self.blocked and not self.refused

    def count(self, kind: type) -> int:
        return sum(1 for c in self.applicable if isinstance(c, kind))

    @property
    def to_add(self) -> int:
        return self.count(CreateParty)

    @property
    def to_change(self) -> int:
        return self.count(UpdateParty) + self.count(SetDefaultParty) + self.count(SetLocationRules)

    @property
    def to_delete(self) -> int:
        return self.count(DeleteParty)

    @property
    def to_adopt(self) -> int:
        return self.count(AdoptParty)

    @property
    def to_release(self) -> int:
        return self.count(ReleaseParty)

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


#: A row's (COUNTRY_CODE, PARTY_ID, role): identities match case-insensitively. Plain strings hash and compare
#: in C, where an Identity runs Python code, which a plan over 17,600 rows felt.
RowKey = tuple[str, str, str]

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
    return {
        (p.identity.country_code, p.identity.party_id, role.role) for p in desired.parties for role in p.roles
    }


def _pair(identity: Identity) -> tuple[str, str]:
    return (identity.country_code, identity.party_id)


def _rows_by_key(actual: ActualState) -> tuple[dict[RowKey, PartyRow], list[PartyRow]]:
    """The row of each key, and the rows that repeat a key in another case (the oldest row counts)."""
    rows: dict[RowKey, PartyRow] = {}
    shadowed: list[PartyRow] = []
    for row in actual.rows:
        key = row.key
        other = rows.get(key)
        if other is None:
            rows[key] = row
        elif row.order < other.order:
            rows[key] = row
            shadowed.append(other)
        else:
            shadowed.append(row)
    return rows, shadowed


@dataclass
class _PartyChanges:
    created: list[Change] = field(default_factory=list)
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
        country_code, party_id = party.identity.country_code, party.identity.party_id
        for role in party.roles:
            details = role.business_details.to_ocpi()
            row = rows.get((country_code, party_id, role.role))
            if row is None:
                if role.hosted:
                    found.created.append(
                        CreateParty(party.identity, role.role, party.url, details, role.source)
                    )
                else:
                    found.awaiting.append(AwaitRegistration(party.identity, role.role, role.source))
                continue
            if not row.credentials and not role.hosted:
                found.deleted.append(DeleteParty(row.identity, row.role, CREDENTIAL_LESS, row_id=row.row_id))
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
                found.created.append(AdoptParty(party.identity, role.role, changes, role.source, row.row_id))
            elif changes:
                found.updated.append(UpdateParty(party.identity, role.role, changes, role.source, row.row_id))


def _undeclared_changes(
    desired: DesiredState,
    rows: Mapping[RowKey, PartyRow],
    declared: set[RowKey],
    allow_delete: bool,
    found: _PartyChanges,
) -> None:
    """Managed rows no file declares any more: release registration's rows, delete ocpi-parties' own."""
    tombstones = {(t.identity, t.role): t for t in desired.tombstones}
    # Sort only the rows concerned: sorting every row of a large database took a tenth of a second.
    undeclared = [(key, row) for key, row in rows.items() if row.managed and key not in declared]
    for key, row in sorted(undeclared, key=lambda item: item[0]):
        identity = Identity(key[0], key[1])
        tombstone = tombstones.get((identity, row.role)) or tombstones.get((identity, None))
        marked = f"marked deleted at {tombstone.source}" if tombstone and tombstone.source.file else None
        if row.credentials:
            why = marked or ("marked deleted" if tombstone else "no longer declared in the party files")
            found.released.append(
                ReleaseParty(
                    row.identity,
                    row.role,
                    f"{why}; OCPI registration owns this row: its url, token and business details stay. "
                    "To disconnect the partner, end its registration through the CSMS (OCPI credentials "
                    "DELETE)",
                    row.row_id,
                )
            )
        elif tombstone is not None:
            found.deleted.append(
                DeleteParty(row.identity, row.role, marked or "marked deleted", row_id=row.row_id)
            )
        elif row.role != CPO:
            # Only a CPO can be hosted: a managed row of another role without credentials is one an earlier
            # ocpi-parties created for a partner, which MaEVe would call with an empty token. No protection.
            found.deleted.append(DeleteParty(row.identity, row.role, CREDENTIAL_LESS, row_id=row.row_id))
        elif allow_delete:
            found.deleted.append(
                DeleteParty(
                    row.identity, row.role, "no longer declared in the party files", row_id=row.row_id
                )
            )
        else:
            found.deleted.append(
                DeleteParty(
                    row.identity,
                    row.role,
                    "no longer declared in the party files; deleting needs a tombstone (deleted: true) "
                    "or --allow-delete",
                    blocked=True,
                    row_id=row.row_id,
                )
            )
    by_identity: dict[Identity, list[PartyRow]] = defaultdict(list)
    if desired.tombstones:
        for key, row in rows.items():
            by_identity[Identity(key[0], key[1])].append(row)
    for tombstone in desired.tombstones:
        roles = [r for r in by_identity.get(tombstone.identity, ()) if tombstone.role in (None, r.role)]
        if not any(r.managed for r in roles):
            what = f"{tombstone.identity} {tombstone.role}" if tombstone.role else str(tombstone.identity)
            unmanaged = " (its rows are not managed by ocpi-parties)" if roles else ""
            found.notes.append(
                f"{what} is marked deleted at {tombstone.source} but has nothing to delete{unmanaged}"
            )


def _cpo_after(
    desired: DesiredState, rows: Mapping[RowKey, PartyRow], deleted: Sequence[DeleteParty]
) -> dict[Identity, Identity]:
    """Each identity (upper case) that holds a CPO row once the plan is applied, with that row's spelling."""
    removed = {d.row_id for d in deleted if d.role == CPO and not d.blocked}
    cpo = {
        Identity(key[0], key[1]): row.identity
        for key, row in rows.items()
        if key[2] == CPO and row.row_id not in removed
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
) -> tuple[Identity | None, str]:
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


_REASON_ORDER = (
    MoveReason.CLAIMED,
    MoveReason.RECORDED,
    MoveReason.MOVED_FROM,
    MoveReason.ORPHANS,
    MoveReason.PARTY_DELETED,
)


def _location_moves(
    desired: DesiredState,
    actual: ActualState,
    cpo: Mapping[Identity, Identity],
    deleted_cpo: set[Identity],
) -> tuple[list[MoveLocations], list[str], int]:
    """The moves that give every location the owner `location_owner` says, and the locations left unowned."""
    rules = _rules(desired)
    moves: list[MoveLocations] = []
    notes: list[str] = []
    unowned_after = 0
    claimed_in: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for party in desired.parties:
        ids: list[str] = []
        origins: dict[tuple[str, str, str, str], LocationGroup] = {}
        for claim in party.locations:
            location = actual.claimed.get(claim.value)
            if location is None:
                notes.append(
                    f"location {claim.value!r} claimed by {party.identity} at {claim.source} does not exist"
                )
                continue
            group = LocationGroup(location.recorded, location.owner, 1, location.owned)
            claimed_in[group.key] += 1
            owner, _ = location_owner(
                party.identity, location.recorded, cpo, rules.moved_from, desired.default_party
            )
            if owner is None:
                unowned_after += 1
            elif not location.owned or owner != location.owner:
                ids.append(claim.value)
                seen = origins.get(group.key)
                origins[group.key] = replace(group, count=seen.count + 1) if seen else group
        if ids:
            groups = tuple(sorted(origins.values(), key=lambda g: g.key))
            target = cpo[party.identity]
            moves.append(MoveLocations(MoveReason.CLAIMED, target, groups, tuple(ids)))

    #: Each moved identity with its declaration, in file order.
    declarations = [m for p in desired.parties for m in p.moved_from]
    recorded_identities = {group.recorded for group in actual.location_groups}
    for party in desired.parties:
        for moved in party.moved_from:
            if moved.value not in recorded_identities:
                notes.append(
                    f"moved_from {moved.value} of {party.identity} at {moved.source} matches no location: "
                    "none is recorded under that identity"
                )
    grouped: dict[tuple[str, Identity], list[LocationGroup]] = defaultdict(list)
    for group in sorted(actual.location_groups, key=lambda g: g.key):
        count = group.count - claimed_in.get(group.key, 0)
        if count <= 0:
            continue
        owner, reason = location_owner(None, group.recorded, cpo, rules.moved_from, desired.default_party)
        if owner is None:
            unowned_after += count
            continue
        if group.owned and owner == group.owner:
            continue
        if reason == MoveReason.ORPHANS and group.owned and _upper(group.owner) in deleted_cpo:
            reason = MoveReason.PARTY_DELETED
        key = (reason, owner)
        grouped[key].append(replace(group, count=count))
    for (reason, to), found in sorted(
        grouped.items(), key=lambda item: (_REASON_ORDER.index(item[0][0]), _pair(item[0][1]))
    ):
        source = Source("")
        if reason == MoveReason.MOVED_FROM:
            recorded = {group.recorded for group in found}
            source = next((m.source for m in declarations if m.value in recorded), source)
        moves.append(MoveLocations(reason, to, tuple(found), source=source))
    moves.sort(key=lambda m: _REASON_ORDER.index(m.reason))
    return moves, notes, unowned_after


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
        key = (applied.identity.country_code.upper(), applied.identity.party_id.upper(), applied.role)
        row = rows.get(key)
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
    rows, shadowed = _rows_by_key(actual)
    declared = _declared(desired)
    found = _PartyChanges()
    _declared_changes(desired, rows, found)
    _undeclared_changes(desired, rows, declared, allow_delete, found)
    changes: list[Change] = [RunMigrations(actual.pending_migrations)] if actual.pending_migrations else []
    changes.extend([*found.created, *found.updated])
    if actual.default_party is None or _upper(actual.default_party) != desired.default_party:
        changes.append(SetDefaultParty(actual.default_party, desired.default_party))
    rules = _rules_change(desired, actual)
    if rules is not None:
        changes.append(rules)
    cpo = _cpo_after(desired, rows, found.deleted)
    deleted_cpo = {_upper(d.identity) for d in found.deleted if d.role == CPO and not d.blocked}
    moves, move_notes, unowned_after = _location_moves(desired, actual, cpo, deleted_cpo)
    changes.extend(moves)
    changes.extend(found.released)
    changes.extend(found.deleted)
    # Sort only the few rows kept: sorting all 17,600 rows of a large database took a tenth of a second.
    undeclared = [
        (row.key, row) for row in [*rows.values(), *shadowed] if not row.managed and row.key not in declared
    ]
    undeclared += [(row.key, row) for row in shadowed if row.key in declared and not row.managed]
    unmanaged = tuple(row for _, row in sorted(undeclared, key=lambda item: (item[0], item[1].order)))
    owners = LocationOwners(
        recorded=sum(group.count for group in actual.location_groups),
        unowned_now=sum(group.count for group in actual.location_groups if not group.owned),
        unowned_after=unowned_after,
    )
    return Plan(
        tuple(changes),
        unmanaged,
        _drift(actual, rows),
        tuple(found.notes + move_notes),
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
    tombstoned = {_pair(t.identity) for t in desired.tombstones}
    facts: list[Any] = []
    rows, _ = _rows_by_key(actual)
    cpo: list[str] = []
    for key in sorted(rows):
        row = rows[key]
        if row.managed or key in declared or key[:2] in tombstoned:
            url = None if row.credentials else row.url
            facts.append(["row", *key, url, row.business_details, row.managed, row.row_id, row.credentials])
        if key[2] == CPO:
            cpo.append(f"{row.identity}#{row.row_id}")
    facts.append(["cpo", cpo])
    facts.append(["default", str(actual.default_party)])
    facts.append(["migrations", list(actual.pending_migrations)])
    if actual.rules is not None:
        facts.append(["claims", sorted((k, str(v)) for k, v in actual.rules.claims.items())])
        facts.append(["moved", sorted((str(k), str(v)) for k, v in actual.rules.moved_from.items())])
    for move in plan.changes:
        if isinstance(move, MoveLocations):
            facts.append(["move", move.reason, str(move.to), [[*g.key, g.count] for g in move.groups]])
    facts.extend(
        ["claimed", key, str(value.recorded), str(value.owner), value.owned]
        for key, value in sorted(actual.claimed.items())
    )
    # No check for circular references: the facts are data decoded from JSON, which cannot hold any.
    digest = json.dumps(facts, sort_keys=True, default=str, check_circular=False)
    return hashlib.sha256(digest.encode()).hexdigest()
