"""The plan's data contract: the actual state the plan reads, the change types it produces, and `Plan`.

Plain frozen dataclasses, no I/O: `state` reads the actual state into them, `plan.compute_plan` computes
the changes, `plan_document` writes and reads them as JSON, `output.plan` shows them and `apply` executes
them. Each of those dispatches on the `Change` union with a `match` that ends in `assert_never`, so a change
type added here is reported by mypy wherever it is not handled yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any, assert_never

from reconciler.model import Identity, Source

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


#: A party row's key: (COUNTRY_CODE, PARTY_ID, role), the identity in upper case, since rows match the files
#: case-insensitively. Plain strings hash and compare in C, where an Identity runs Python code, which a plan
#: over 17,600 rows felt. Every lookup of a party row (rows, declarations, tombstones, drift) uses it.
RowKey = tuple[str, str, str]

#: The role of a `RowKey` that stands for every role of an identity (a tombstone without `role`).
EVERY_ROLE = ""


def row_key(identity: Identity, role: str) -> RowKey:
    """The key of `identity`'s `role` row, whatever the case the identity is spelled in."""
    return (identity.country_code.upper(), identity.party_id.upper(), role)


@dataclass(frozen=True)
class PartyRow:
    """One row of `ocpi_parties` (one role of a party), never its token: what plan, import and the read
    commands see of it, all read by one query (`state.party_rows`).

    `identity` is as the row spells it; rows are matched with the files case-insensitively (`key`).
    """

    identity: Identity
    role: str
    url: str
    business_details: Details
    #: ocpi-parties manages the row (it created or adopted it).
    managed: bool
    #: The row's id: a row deleted and registered again is another row. Not compared; None for a row that
    #: was not read from the database (a plan read back from its document).
    id: int | None = field(default=None, compare=False)
    #: OCPI registration gave the row a token: registration owns it, its url and its token.
    credentials: bool = True
    #: When the row was written, as the read commands show it; None where it was not read (by the plan).
    created_at: datetime | None = field(default=None, compare=False)
    updated_at: datetime | None = field(default=None, compare=False)
    #: False before migration 0002 adds `business_details`: the database does not record them yet.
    details_recorded: bool = True

    @property
    def key(self) -> RowKey:
        return row_key(self.identity, self.role)

    @property
    def order(self) -> int:
        """Rows that differ only in the case of their identity: the oldest (lowest id) counts."""
        return self.id or 0

    @property
    def how(self) -> str | None:
        """ "created" or "adopted" when ocpi-parties manages the row, None when it does not. A row that holds
        no credentials was created by ocpi-parties (registration always gives a token), whatever was recorded.
        """
        if not self.managed:
            return None
        return "adopted" if self.credentials else "created"


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

    @cached_property
    def _keyed(self) -> tuple[dict[RowKey, PartyRow], tuple[PartyRow, ...]]:
        rows: dict[RowKey, PartyRow] = {}
        shadowed: list[PartyRow] = []
        for row in self.rows:
            key = row.key
            other = rows.get(key)
            if other is None:
                rows[key] = row
            elif row.order < other.order:
                rows[key] = row
                shadowed.append(other)
            else:
                shadowed.append(row)
        return rows, tuple(shadowed)

    @property
    def rows_by_key(self) -> Mapping[RowKey, PartyRow]:
        """The row of each key: of rows that differ only in the case of their identity, the oldest counts.
        Built once, for the plan and its fingerprint."""
        return self._keyed[0]

    @property
    def shadowed_rows(self) -> tuple[PartyRow, ...]:
        """The rows that repeat the key of an older row in another case (`rows_by_key` holds that one)."""
        return self._keyed[1]


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
    row_id: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class UpdateParty:
    """Change what git owns of a row: url and business details of a hosted row, business details else."""

    identity: Identity
    role: str
    changes: tuple[FieldChange, ...]
    source: Source = field(default=Source(""), compare=False)
    row_id: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DeleteParty:
    """Delete a row that holds no credentials. A `blocked` deletion is shown, not applied."""

    identity: Identity
    role: str
    reason: str
    blocked: bool = False
    row_id: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ReleaseParty:
    """Stop managing a row that OCPI registration owns; the row, its url and its token stay."""

    identity: Identity
    role: str
    reason: str
    row_id: int | None = field(default=None, compare=False)


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


class MoveReason(StrEnum):
    """Which rule of `location_owner` gives the locations of a move their new owner; its value is what the
    plan document writes. A plan lists its moves in the order of these members."""

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

    reason: MoveReason
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

    @cached_property
    def counts(self) -> Counts:
        """What the applicable changes add, change, delete, adopt, release, move and migrate."""
        return count_changes(self.applicable)


@dataclass
class Counts:
    """The numbers of the summary line (`Plan: 1 to add, ...`)."""

    to_add: int = 0
    to_change: int = 0
    to_delete: int = 0
    to_adopt: int = 0
    to_release: int = 0
    migrations_to_run: int = 0
    locations_to_move: int = 0


def count_changes(changes: Iterable[Change]) -> Counts:
    """Each change counted once, under the number the summary shows it in."""
    counts = Counts()
    for change in changes:
        match change:
            case RunMigrations():
                counts.migrations_to_run += len(change.migrations)
            case CreateParty():
                counts.to_add += 1
            case AdoptParty():
                counts.to_adopt += 1
            case UpdateParty() | SetDefaultParty() | SetLocationRules():
                counts.to_change += 1
            case MoveLocations():
                counts.locations_to_move += change.count
            case ReleaseParty():
                counts.to_release += 1
            case DeleteParty():
                counts.to_delete += 1
            case _:
                assert_never(change)
    return counts
