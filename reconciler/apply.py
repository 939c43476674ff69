"""Execute a plan: make the database match the party files, in one transaction, under one lock.

The transaction takes the advisory lock shared with `db migrate`, reads the actual state again, computes
the plan and checks it against the fingerprint of the plan the user reviewed (a saved plan, or the plan
shown before confirmation): when anything in scope changed, it refuses and changes nothing. A plan that
moves locations or changes the default party first locks `locations` against writes (MaEVe's wait until
the commit, so none is left without an owner) and reads the state again under that lock. Then it runs,
in an order that cannot break a constraint: ocpi-parties' pending migrations, created and adopted rows,
updated rows, the default party, the location moves (one statement per move group), the deletions, the
validation of the location foreign key, and the history row. Any error rolls all of it back.

Nothing here writes any output: a terminal, pager or log pipe that stops reading would otherwise keep the
transaction, and with it the lock on `locations` and every MaEVe location write, waiting. The plan comes
back in the `Outcome` (or in the `NothingApplied` refusal), for the caller to show after COMMIT or ROLLBACK.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, assert_never

import psycopg
from psycopg import errors, sql
from psycopg.rows import dict_row

from reconciler import __version__, migrations, store
from reconciler.changes import (
    AdoptParty,
    CreateParty,
    DeleteParty,
    MoveLocations,
    Plan,
    ReleaseParty,
    RunMigrations,
    SetDefaultParty,
    SetLocationRules,
    UpdateParty,
)
from reconciler.database import (
    IDLE_IN_TRANSACTION_TIMEOUT,
    Cause,
    Connection,
    failure,
    lock_database,
    secrets_of,
)
from reconciler.errors import (
    Busy,
    DatabaseError,
    NothingApplied,
    ReconcilerError,
    StalePlan,
    record_commit,
)
from reconciler.model import DesiredState, Identity
from reconciler.plan_document import number, plan_document, summary
from reconciler.state import MOVED_GROUPS_FROM, MOVED_GROUPS_WHERE, moved_groups_parameters, plan_against


@dataclass(frozen=True)
class Outcome:
    """What an apply did: the plan it executed and, when it changed anything, its history row."""

    plan: Plan
    history_id: int | None = None
    locations_moved: int = 0
    key_validated: bool = False
    #: The key is left not valid only because the role that applied does not own `locations`.
    key_needs_owner: bool = False


def _lock(connection: Connection, label: str) -> None:
    try:
        with connection.transaction():
            lock_database(connection)
    except errors.LockNotAvailable as error:
        waited = connection.execute("SHOW lock_timeout").fetchone()
        raise Busy(
            f"another apply (or db migrate) is running on {label}: waited {waited[0] if waited else '?'} "
            "for it (--lock-timeout); nothing was changed, try again when it has finished"
        ) from error


def _owners_change(plan: Plan) -> bool:
    """The plan moves locations or changes the default party that MaEVe's new locations go to."""
    return any(
        isinstance(change, MoveLocations | SetDefaultParty | SetLocationRules) for change in plan.applicable
    )


def _records(desired: DesiredState, changes: Sequence[CreateParty | AdoptParty | UpdateParty]) -> str:
    """The full desired values of each changed row, as JSON for one set-based statement."""
    rows = []
    for change in changes:
        party = desired.party(change.identity)
        role = party.role(change.role) if party is not None else None
        if party is None or role is None:  # pragma: no cover - compute_plan only plans declared rows
            raise ReconcilerError(f"{change.identity} {change.role} is not declared")
        rows.append(
            {
                "id": None if isinstance(change, CreateParty) else _row_id(change),
                "role": change.role,
                "country_code": change.identity.country_code,
                "party_id": change.identity.party_id,
                "url": party.url,
                "business_details": role.business_details.to_ocpi(),
            }
        )
    return json.dumps(rows)


_RECORDS = (
    "jsonb_to_recordset(%(rows)s::jsonb) AS r(id bigint, role text, country_code text, party_id text, "
    "url text, business_details jsonb)"
)

#: The rows of hosted roles: no token, so never a push target (MaEVe pushes only to EMSP rows, and a
#: hosted role is a CPO).
_CREATE = f"""
WITH created AS (
    INSERT INTO ocpi_parties (role, country_code, party_id, url, token, business_details)
    SELECT r.role, r.country_code, r.party_id, coalesce(r.url, ''), '', r.business_details FROM {_RECORDS}
    RETURNING id, created_at
)
INSERT INTO reconciler_managed_parties (party_row_id, row_created_at, how, apply_id)
SELECT id, created_at, 'created', %(apply)s FROM created
"""

#: What git owns of ocpi-parties' own rows: url and business details. `holds_credentials` is checked again
#: here, so a row that registration took over since the plan keeps its url.
_UPDATE_OWN = f"""
UPDATE ocpi_parties AS p
   SET url = coalesce(r.url, p.url), business_details = r.business_details, updated_at = NOW()
  FROM {_RECORDS}
 WHERE p.id = r.id AND NOT p.holds_credentials
"""

#: What git owns of a registered row: its business details only; url and token are registration's.
_UPDATE_DETAILS = f"""
UPDATE ocpi_parties AS p
   SET business_details = r.business_details, updated_at = NOW()
  FROM {_RECORDS}
 WHERE p.id = r.id AND p.business_details IS DISTINCT FROM r.business_details
"""

_ADOPT = f"""
INSERT INTO reconciler_managed_parties (party_row_id, row_created_at, how, apply_id)
SELECT p.id, p.created_at, 'adopted', %(apply)s
  FROM ocpi_parties AS p JOIN {_RECORDS} ON p.id = r.id
"""

#: Records left by rows that are gone (MaEVe's migrations dropped the table, say): their ids may come back
#: for other rows.
_FORGET_GONE = """
DELETE FROM reconciler_managed_parties AS m
 WHERE NOT EXISTS (
    SELECT 1 FROM ocpi_parties AS p WHERE p.id = m.party_row_id AND p.created_at = m.row_created_at
 )
"""

#: ocpi-parties' own rows that the files declare hosted but no record lists (the records were lost with
#: `db migrate --to 0`): a row without credentials was created by ocpi-parties, never by registration.
_RECORD_OWN = """
INSERT INTO reconciler_managed_parties (party_row_id, row_created_at, how, apply_id)
SELECT p.id, p.created_at, 'created', %(apply)s
  FROM ocpi_parties AS p
  JOIN unnest(%(roles)s::text[], %(countries)s::text[], %(parties)s::text[])
       AS d(role, country_code, party_id)
    ON p.role = d.role AND upper(p.country_code) = d.country_code AND upper(p.party_id) = d.party_id
 WHERE NOT p.holds_credentials
   AND NOT EXISTS (SELECT 1 FROM reconciler_managed_parties AS m WHERE m.party_row_id = p.id)
"""

#: Only rows without credentials: a row OCPI registration gave a token is never deleted.
_DELETE = """
WITH deleted AS (
    DELETE FROM ocpi_parties AS p
     WHERE p.id = ANY(%(ids)s::bigint[]) AND NOT p.holds_credentials
    RETURNING p.id
)
DELETE FROM reconciler_managed_parties AS m USING deleted WHERE m.party_row_id = deleted.id
"""

_RELEASE = "DELETE FROM reconciler_managed_parties WHERE party_row_id = ANY(%(ids)s::bigint[])"

_MOVE_GROUPS = f"""
UPDATE locations AS l
   SET country_code = %(country_code)s, party_id = %(party_id)s, party_role = 'CPO'
  FROM {MOVED_GROUPS_FROM}
 WHERE {MOVED_GROUPS_WHERE}
"""

_MOVE_IDS = """
UPDATE locations
   SET country_code = %(country_code)s, party_id = %(party_id)s, party_role = 'CPO'
 WHERE id = ANY(%(ids)s)
"""

_MANAGED_STATE = """
SELECT p.country_code, p.party_id, p.role, p.url, p.business_details
  FROM ocpi_parties AS p
  JOIN reconciler_managed_parties AS m ON m.party_row_id = p.id AND m.row_created_at = p.created_at
 ORDER BY p.country_code, p.party_id, p.role
"""


def _move(connection: Connection, move: MoveLocations, desired: DesiredState) -> int:
    """One set-based UPDATE per move; the guard trigger keeps location_data's keys in step."""
    target = {"country_code": move.to.country_code, "party_id": move.to.party_id}
    if move.location_ids:
        cursor = connection.execute(_MOVE_IDS, {**target, "ids": list(move.location_ids)})
    else:
        cursor = connection.execute(_MOVE_GROUPS, {**target, **moved_groups_parameters(move, desired)})
    return cursor.rowcount


def _set_rules(connection: Connection, change: SetLocationRules) -> None:
    """Replace the claims and moves the guard reads with the files' own."""
    connection.execute("DELETE FROM reconciler_location_claims")
    connection.execute("DELETE FROM reconciler_moved_from")
    claims = sorted(change.claims.items())
    connection.execute(
        "INSERT INTO reconciler_location_claims (location_id, country_code, party_id)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])",
        ([i for i, _ in claims], [c.country_code for _, c in claims], [c.party_id for _, c in claims]),
    )
    moved = sorted(change.moved_from.items())
    connection.execute(
        "INSERT INTO reconciler_moved_from (country_code, party_id, to_country_code, to_party_id)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])",
        (
            [f.country_code for f, _ in moved],
            [f.party_id for f, _ in moved],
            [t.country_code for _, t in moved],
            [t.party_id for _, t in moved],
        ),
    )


def _hosted_keys(desired: DesiredState) -> dict[str, list[str]]:
    keys = [(r.role, p.identity) for p in desired.parties for r in p.roles if r.hosted]
    return {
        "roles": [role for role, _ in keys],
        "countries": [identity.country_code for _, identity in keys],
        "parties": [identity.party_id for _, identity in keys],
    }


def _row_id(change: AdoptParty | UpdateParty | ReleaseParty | DeleteParty) -> int:
    """The id of the row a change concerns: a plan computed from the database knows it, a plan read back
    from its document does not, and is never applied."""
    if change.row_id is None:  # pragma: no cover - apply executes only the plan it computed
        raise ReconcilerError(f"{change.identity} {change.role}: the plan does not say which row it changes")
    return change.row_id


@dataclass
class _Work:
    """The plan's changes sorted by the statement that executes them: the one place that dispatches on
    every change type for apply."""

    #: ocpi-parties' own migrations, which `apply` runs before anything else (the history row needs them).
    migrations: RunMigrations | None = None
    creates: list[CreateParty] = field(default_factory=list)
    adopts: list[AdoptParty] = field(default_factory=list)
    own_updates: list[UpdateParty] = field(default_factory=list)
    detail_updates: list[AdoptParty | UpdateParty] = field(default_factory=list)
    moves: list[MoveLocations] = field(default_factory=list)
    rules: SetLocationRules | None = None
    default: SetDefaultParty | None = None
    released: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, plan: Plan) -> _Work:
        work = cls()
        for change in plan.applicable:
            match change:
                case RunMigrations():
                    work.migrations = change
                case CreateParty():
                    work.creates.append(change)
                case AdoptParty():
                    work.adopts.append(change)
                    work.detail_updates.append(change)
                case UpdateParty() if any(c.field == "url" for c in change.changes):
                    work.own_updates.append(change)
                case UpdateParty():
                    work.detail_updates.append(change)
                case SetDefaultParty():
                    work.default = change
                case SetLocationRules():
                    work.rules = change
                case MoveLocations():
                    work.moves.append(change)
                case ReleaseParty():
                    work.released.append(_row_id(change))
                case DeleteParty():
                    work.deleted.append(_row_id(change))
                case _:
                    assert_never(change)
        return work


def _execute(connection: Connection, desired: DesiredState, work: _Work, apply_id: int) -> tuple[int, bool]:
    """Run the plan's changes (its migrations already run) in order; return the number of locations moved
    and whether the key is valid."""
    connection.execute(_FORGET_GONE)
    if work.creates:
        connection.execute(_CREATE, {"rows": _records(desired, work.creates), "apply": apply_id})
    if work.own_updates:
        connection.execute(_UPDATE_OWN, {"rows": _records(desired, work.own_updates)})
    if work.detail_updates:
        connection.execute(_UPDATE_DETAILS, {"rows": _records(desired, work.detail_updates)})
    if work.adopts:
        connection.execute(_ADOPT, {"rows": _records(desired, work.adopts), "apply": apply_id})
    connection.execute(_RECORD_OWN, {**_hosted_keys(desired), "apply": apply_id})
    if work.default is not None:
        store.set_default_party(connection, work.default.after)
    if work.rules is not None:
        _set_rules(connection, work.rules)
    moved = 0
    if work.moves:
        connection.execute("SELECT set_config(%s, 'on', true)", (store.MOVE_SETTING,))
        moved = sum(_move(connection, move, desired) for move in work.moves)
        connection.execute("SELECT set_config(%s, 'off', true)", (store.MOVE_SETTING,))
    if work.released:
        connection.execute(_RELEASE, {"ids": work.released})
    if work.deleted:
        connection.execute(_DELETE, {"ids": work.deleted})
    return moved, store.validate_location_key(connection)


def _managed_state(connection: Connection) -> dict[str, Any]:
    with connection.cursor(row_factory=dict_row) as cursor:
        rows = [
            {
                "identity": str(Identity(r["country_code"], r["party_id"])),
                "role": r["role"],
                "url": r["url"],
                "business_details": r["business_details"],
            }
            for r in cursor.execute(_MANAGED_STATE)
        ]
    return {"rows": rows}


def refuse_unapplicable(plan: Plan, consequence: str) -> None:
    """Refuse (NothingApplied, carrying the plan) a plan with a change that cannot be applied or a deletion
    that deletion protection blocks; `consequence` ends the message (`; nothing was changed`)."""
    if plan.refused:
        raise NothingApplied(plan.refused[0] + consequence, plan=plan)
    if plan.blocked:
        raise NothingApplied(
            f"{number(len(plan.blocked), 'deletion')} blocked by deletion protection: add a tombstone "
            "(deleted: true) or run with --allow-delete" + consequence,
            plan=plan,
        )


def _applicable(
    connection: Connection, desired: DesiredState, allow_delete: bool, reviewed_fingerprint: str | None
) -> Plan:
    """The plan for the database as it is now; refused if it is not the one reviewed or cannot be applied."""
    plan, fingerprint = plan_against(connection, desired, allow_delete=allow_delete)
    if reviewed_fingerprint is not None and fingerprint != reviewed_fingerprint:
        raise StalePlan(
            "stale plan: the database changed since the plan was made (rows it concerns, the default "
            "party or the location counts); nothing was changed. Run plan again"
        )
    refuse_unapplicable(plan, "; nothing was changed")
    return plan


def apply(
    connection: Connection,
    desired: DesiredState,
    *,
    label: str,
    allow_delete: bool,
    reviewed_fingerprint: str | None,
    revision: str | None,
    actor: str,
    pull_request: int | None = None,
    pull_request_url: str | None = None,
) -> Outcome:
    """Apply the plan for `desired` in one transaction; see the module's description.

    `reviewed_fingerprint` is the fingerprint of the plan the user reviewed (None with --auto-approve: the
    plan computed under the lock is the one applied). Nothing is printed: the caller shows `Outcome.plan` (or
    the refused plan of `NothingApplied`) once the transaction has ended and no lock is held.
    """
    committing = False
    try:
        with connection.transaction():
            _lock(connection, label)
            # A newer ocpi-parties may have changed what this one writes: refused (exit code 3), as plan does.
            migrations.refuse_newer(connection, label)
            plan = _applicable(connection, desired, allow_delete, reviewed_fingerprint)
            if _owners_change(plan):
                # A location MaEVe writes after the state is read and before the commit would miss both
                # the moves and the new default party (its guard cannot see them yet) and stay an orphan.
                # Its writes wait for the commit instead; the state is read again under the lock. A plan
                # refused on the first reading never takes this lock.
                connection.execute("LOCK TABLE locations IN SHARE ROW EXCLUSIVE MODE")
                plan = _applicable(connection, desired, allow_delete, reviewed_fingerprint)
            if not plan.has_changes:
                return Outcome(plan)
            work = _Work.of(plan)
            if work.migrations is not None:
                migrations.migrate(connection, label=label)
            # INSERT ... RETURNING returns exactly the one row inserted.
            [(history_id,)] = connection.execute(
                "INSERT INTO reconciler_apply_history"
                " (revision, actor, tool_version, summary, pull_request_number, pull_request_url)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (revision, actor, __version__, summary(plan), pull_request, pull_request_url),
            ).fetchall()
            apply_id = int(history_id)
            moved, valid = _execute(connection, desired, work, apply_id)
            needs_owner = not valid and not store.owns_locations(connection)
            connection.execute(
                "UPDATE reconciler_apply_history SET changes = %s, state = %s WHERE id = %s",
                (
                    json.dumps(plan_document(plan)["changes"], ensure_ascii=False),
                    json.dumps(_managed_state(connection), ensure_ascii=False),
                    apply_id,
                ),
            )
            committing = True  # leaving the block sends COMMIT
    except NothingApplied:
        raise
    except ReconcilerError as error:
        raise error.reworded(f"apply failed: {error.message}; nothing was changed (rolled back)") from error
    except psycopg.Error as error:
        lost = isinstance(error, psycopg.OperationalError | errors.IdleInTransactionSessionTimeout)
        if committing and connection.broken:
            raise (DatabaseError if lost else ReconcilerError)(
                "apply failed: the connection to the database was lost during COMMIT "
                f"({_reason(error, connection)}), "
                "so whether the changes were committed is unknown: run `ocpi-parties history` to see "
                "whether this apply was recorded, then `ocpi-parties plan`"
            ) from error
        raise (DatabaseError if lost else ReconcilerError)(
            f"apply failed: {_explain(error, connection)}; nothing was changed (rolled back)"
        ) from error
    record_commit()  # for the error handler: nothing after this line undoes the apply
    return Outcome(plan, apply_id, moved, valid, needs_owner)


def _reason(error: psycopg.Error, connection: Connection) -> str:
    """The server's or libpq's words, on one line, without the password of the session."""
    return failure(error, secrets_of(connection)).reason


def _explain(error: psycopg.Error, connection: Connection) -> str:
    """The server's words, with what they mean for the user when a timeout or a lost connection caused it."""
    found = failure(error, secrets_of(connection))
    reason = found.reason
    if found.cause is Cause.LOCK_TIMEOUT:
        return (
            f"another transaction held a lock that apply needs for longer than lock_timeout ({reason}); "
            "try again, or raise --lock-timeout"
        )
    if found.cause is Cause.STATEMENT_TIMEOUT:
        return f"a statement ran longer than statement_timeout ({reason}); raise it with --statement-timeout"
    if found.cause is Cause.IDLE_TIMEOUT:
        return (
            f"ocpi-parties paused inside its transaction for longer than idle_in_transaction_session_timeout="
            f"{IDLE_IN_TRANSACTION_TIMEOUT} (the process was stopped, suspended or starved), so the server "
            f"ended its session rather than keep MaEVe's writes waiting ({reason})"
        )
    if connection.broken:
        return f"the connection to the database was lost ({reason})"
    return reason


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    applied_at: str
    revision: str | None
    actor: str
    tool_version: str
    summary: str
    changes: list[Mapping[str, Any]]
    #: The pull request the applied files were merged from (migration 0007), when the apply was told.
    pull_request_number: int | None = None
    pull_request_url: str | None = None


_HISTORY = sql.SQL(
    "SELECT id, applied_at, revision, actor, tool_version, summary, changes, pull_request_number,"
    " pull_request_url FROM reconciler_apply_history {}"
)


def _entry(row: Mapping[str, Any]) -> HistoryEntry:
    return HistoryEntry(
        row["id"],
        row["applied_at"].isoformat(timespec="seconds"),
        row["revision"],
        row["actor"],
        row["tool_version"],
        row["summary"],
        row["changes"] or [],
        row["pull_request_number"],
        row["pull_request_url"],
    )


def history(connection: Connection, limit: int) -> list[HistoryEntry]:
    """The latest applies, newest first."""
    with connection.cursor(row_factory=dict_row) as cursor:
        return [
            _entry(r) for r in cursor.execute(_HISTORY.format(sql.SQL("ORDER BY id DESC LIMIT %s")), (limit,))
        ]


def history_entry(connection: Connection, apply_id: int) -> HistoryEntry | None:
    """One apply of the history, or None when no apply has that number."""
    with connection.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(_HISTORY.format(sql.SQL("WHERE id = %s")), (apply_id,)).fetchone()
    return None if row is None else _entry(row)
