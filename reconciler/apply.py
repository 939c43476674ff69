"""Execute a plan: make the database match the party files, in one transaction, under one lock.

The transaction takes the advisory lock shared with `db migrate`, reads the actual state again, computes
the plan and checks it against the fingerprint of the plan the user reviewed (a saved plan, or the plan
shown before confirmation): when anything in scope changed, it refuses and changes nothing. A plan that
moves locations or changes the default party first locks `locations` against writes (MaEVe's wait until
the commit, so none is left without an owner) and reads the state again under that lock. Then it runs,
in an order that cannot break a constraint: ocpi-parties' pending migrations, created and adopted rows,
updated rows, the default party, the location moves (one statement per move group), the deletions, the
validation of the location foreign key, and the history row. Any error rolls all of it back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg.rows import dict_row

from reconciler import __version__, migrations, store
from reconciler.database import ADVISORY_LOCK_KEY, Connection
from reconciler.errors import ExitCode, ReconcilerError
from reconciler.model import DesiredState, Identity
from reconciler.plan import (
    AdoptParty,
    CreateParty,
    DeleteParty,
    MoveLocations,
    Plan,
    RunMigrations,
    SetDefaultParty,
    UpdateParty,
)
from reconciler.render import plan_document, summary
from reconciler.state import plan_against


class NothingApplied(ReconcilerError):
    """A refusal before anything was written; the message says why and that nothing was changed."""


class StalePlan(NothingApplied):
    """The database (or the files) changed since the plan was made."""


class Busy(NothingApplied):
    """Another apply (or `db migrate`) holds the lock."""

    exit_code = ExitCode.BUSY


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
            connection.execute(
                sql.SQL("SELECT pg_advisory_xact_lock({})").format(sql.Literal(ADVISORY_LOCK_KEY))
            )
    except errors.LockNotAvailable:
        waited = connection.execute("SHOW lock_timeout").fetchone()
        raise Busy(
            f"another apply (or db migrate) is running on {label}: waited {waited[0] if waited else '?'} "
            "for it (--lock-timeout); nothing was changed, try again when it has finished"
        ) from None


def _owners_change(plan: Plan) -> bool:
    """The plan moves locations or changes the default party that MaEVe's new locations go to."""
    return any(isinstance(change, MoveLocations | SetDefaultParty) for change in plan.applicable)


def _rows(
    desired: DesiredState, changes: Sequence[CreateParty | AdoptParty | UpdateParty]
) -> list[dict[str, Any]]:
    """The full desired values of each changed row, for one set-based statement."""
    rows = []
    for change in changes:
        party = desired.party(change.identity)
        role = party.role(change.role) if party is not None else None
        if party is None or role is None:  # pragma: no cover - compute_plan only plans declared rows
            raise ReconcilerError(f"{change.identity} {change.role} is not declared")
        rows.append(
            {
                "role": change.role,
                "country_code": change.identity.country_code,
                "party_id": change.identity.party_id,
                "url": party.url,
                "business_details": role.business_details.to_ocpi(),
            }
        )
    return rows


_RECORDS = (
    "jsonb_to_recordset(%(rows)s::jsonb) AS r(role text, country_code text, party_id text, url text, "
    "business_details jsonb)"
)

_CREATE = f"""
WITH created AS (
    INSERT INTO ocpi_parties (role, country_code, party_id, url, token, business_details)
    SELECT r.role, r.country_code, r.party_id, coalesce(r.url, ''), '', r.business_details FROM {_RECORDS}
    RETURNING id
)
INSERT INTO reconciler_managed_parties (party_row_id, how, apply_id)
SELECT id, 'created', %(apply)s FROM created
"""

_UPDATE = f"""
UPDATE ocpi_parties AS p
   SET url = coalesce(r.url, p.url), business_details = r.business_details, updated_at = NOW()
  FROM {_RECORDS}
 WHERE p.role = r.role AND p.country_code = r.country_code AND p.party_id = r.party_id
   AND (p.business_details IS DISTINCT FROM r.business_details OR (r.url IS NOT NULL AND p.url <> r.url))
"""

_ADOPT = f"""
INSERT INTO reconciler_managed_parties (party_row_id, how, apply_id)
SELECT p.id, 'adopted', %(apply)s
  FROM ocpi_parties AS p JOIN {_RECORDS}
    ON p.role = r.role AND p.country_code = r.country_code AND p.party_id = r.party_id
"""

_DELETE = """
DELETE FROM ocpi_parties AS p
 USING reconciler_managed_parties AS m,
       jsonb_to_recordset(%(rows)s::jsonb) AS r(role text, country_code text, party_id text)
 WHERE m.party_row_id = p.id
   AND p.role = r.role AND p.country_code = r.country_code AND p.party_id = r.party_id
"""

_MOVE_GROUPS = """
UPDATE locations AS l
   SET country_code = %(country_code)s, party_id = %(party_id)s, party_role = 'CPO'
  FROM unnest(%(countries)s::text[], %(parties)s::text[]) AS g(country_code, party_id)
 WHERE l.country_code = g.country_code AND l.party_id = g.party_id
"""

_MOVE_IDS = """
UPDATE locations
   SET country_code = %(country_code)s, party_id = %(party_id)s, party_role = 'CPO'
 WHERE id = ANY(%(ids)s)
"""

_MANAGED_STATE = """
SELECT p.country_code, p.party_id, p.role, p.url, p.business_details
  FROM ocpi_parties AS p JOIN reconciler_managed_parties AS m ON m.party_row_id = p.id
 ORDER BY p.country_code, p.party_id, p.role
"""


def _move(connection: Connection, move: MoveLocations) -> int:
    """One set-based UPDATE per move group; the guard trigger keeps location_data's keys in step."""
    target = {"country_code": move.to.country_code, "party_id": move.to.party_id}
    if move.location_ids:
        cursor = connection.execute(_MOVE_IDS, {**target, "ids": list(move.location_ids)})
    else:
        cursor = connection.execute(
            _MOVE_GROUPS,
            {
                **target,
                "countries": [g.identity.country_code for g in move.groups],
                "parties": [g.identity.party_id for g in move.groups],
            },
        )
    return cursor.rowcount


def _execute(connection: Connection, desired: DesiredState, plan: Plan, apply_id: int) -> tuple[int, bool]:
    """Run the plan's changes in order; return the number of locations moved and whether the key is valid."""
    changes = plan.applicable
    creates = [c for c in changes if isinstance(c, CreateParty)]
    if creates:
        connection.execute(_CREATE, {"rows": json.dumps(_rows(desired, creates)), "apply": apply_id})
    adopts = [c for c in changes if isinstance(c, AdoptParty)]
    updates = [c for c in changes if isinstance(c, AdoptParty | UpdateParty)]
    if updates:
        connection.execute(_UPDATE, {"rows": json.dumps(_rows(desired, updates))})
    if adopts:
        connection.execute(_ADOPT, {"rows": json.dumps(_rows(desired, adopts)), "apply": apply_id})
    for change in changes:
        if isinstance(change, SetDefaultParty):
            store.set_default_party(connection, change.after)
    moved = 0
    moves = [c for c in changes if isinstance(c, MoveLocations)]
    if moves:
        connection.execute("SELECT set_config(%s, 'on', true)", (store.MOVE_SETTING,))
        moved = sum(_move(connection, move) for move in moves)
        connection.execute("SELECT set_config(%s, 'off', true)", (store.MOVE_SETTING,))
    deletes = [
        {"role": c.role, "country_code": c.identity.country_code, "party_id": c.identity.party_id}
        for c in changes
        if isinstance(c, DeleteParty)
    ]
    if deletes:
        connection.execute(_DELETE, {"rows": json.dumps(deletes)})
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


def apply(
    connection: Connection,
    desired: DesiredState,
    *,
    label: str,
    allow_delete: bool,
    expected: str | None,
    revision: str | None,
    actor: str,
    show: Callable[[Plan], None] | None = None,
) -> Outcome:
    """Apply the plan for `desired` in one transaction; see the module's description.

    `expected` is the fingerprint of the plan the user reviewed (None with --auto-approve: the plan computed
    under the lock is the one applied, and `show` prints it first).
    """
    committing = False
    try:
        with connection.transaction():
            _lock(connection, label)
            # A newer ocpi-parties may have changed what this one writes: refused (exit code 3), as plan does.
            migrations.refuse_newer(connection, label)
            plan, facts = plan_against(connection, desired, allow_delete=allow_delete)
            if _owners_change(plan):
                # A location MaEVe writes after the state is read and before the commit would miss both
                # the moves and the new default party (its guard cannot see them yet) and stay an orphan.
                # Its writes wait for the commit instead; the state is read again under the lock.
                connection.execute("LOCK TABLE locations IN SHARE ROW EXCLUSIVE MODE")
                plan, facts = plan_against(connection, desired, allow_delete=allow_delete)
            if expected is not None and facts != expected:
                raise StalePlan(
                    "stale plan: the database changed since the plan was made (rows it concerns, the default "
                    "party or the location counts); nothing was changed. Run plan again"
                )
            if show is not None:
                show(plan)
            if plan.blocked:
                raise NothingApplied(
                    f"{len(plan.blocked)} deletion(s) blocked by deletion protection: add a tombstone "
                    "(deleted: true) or run with --allow-delete; nothing was changed"
                )
            if not plan.has_changes:
                return Outcome(plan)
            if any(isinstance(c, RunMigrations) for c in plan.applicable):
                migrations.migrate(connection, label=label)
            history = connection.execute(
                "INSERT INTO reconciler_apply_history (revision, actor, tool_version, summary)"
                " VALUES (%s, %s, %s, %s) RETURNING id",
                (revision, actor, __version__, summary(plan)),
            ).fetchone()
            assert history is not None
            apply_id = int(str(history[0]))
            moved, valid = _execute(connection, desired, plan, apply_id)
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
        raise ReconcilerError(
            f"apply failed: {error.message}; nothing was changed (rolled back)", exit_code=error.exit_code
        ) from None
    except psycopg.Error as error:
        code = ExitCode.DATABASE if isinstance(error, psycopg.OperationalError) else ExitCode.INVALID
        if committing and connection.broken:
            raise ReconcilerError(
                f"apply failed: the connection to the database was lost during COMMIT ({_reason(error)}), "
                "so whether the changes were committed is unknown: run `ocpi-parties history` to see "
                "whether this apply was recorded, then `ocpi-parties plan`",
                exit_code=code,
            ) from None
        raise ReconcilerError(
            f"apply failed: {_explain(error, connection)}; nothing was changed (rolled back)", exit_code=code
        ) from None
    return Outcome(plan, apply_id, moved, valid, needs_owner)


def _reason(error: psycopg.Error) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _explain(error: psycopg.Error, connection: Connection) -> str:
    """The server's words, with what they mean for the user when a timeout or a lost connection caused it."""
    reason = _reason(error)
    if isinstance(error, errors.LockNotAvailable):
        return (
            f"another transaction held a lock that apply needs for longer than lock_timeout ({reason}); "
            "try again, or raise --lock-timeout"
        )
    if isinstance(error, errors.QueryCanceled):
        return f"a statement ran longer than statement_timeout ({reason}); raise it with --statement-timeout"
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


def history(connection: Connection, limit: int) -> list[HistoryEntry]:
    """The latest applies, newest first."""
    with connection.cursor(row_factory=dict_row) as cursor:
        return [
            HistoryEntry(
                r["id"],
                r["applied_at"].isoformat(timespec="seconds"),
                r["revision"],
                r["actor"],
                r["tool_version"],
                r["summary"],
                r["changes"] or [],
            )
            for r in cursor.execute(
                "SELECT id, applied_at, revision, actor, tool_version, summary, changes"
                " FROM reconciler_apply_history ORDER BY id DESC LIMIT %s",
                (limit,),
            )
        ]
