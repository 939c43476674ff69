"""The actual state that `compute_plan` compares the party files with, and the plan against it.

A fixed number of queries, whatever the size of the database: the party rows (without tokens) with
their management record, the default party, the number of locations per recorded identity, the current
identity of the location ids the files claim, and the state the last apply recorded. Locations are
counted by PostgreSQL, never loaded; the result grows with parties and identities, not with locations.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from reconciler import migrations
from reconciler.model import DesiredState, Identity
from reconciler.plan import (
    ActualState,
    AppliedRow,
    LocationGroup,
    MoveLocations,
    PartyRow,
    Plan,
    compute_plan,
    fingerprint,
)

Connection = psycopg.Connection[Any]

DEFAULT_PARTY_KEY = "default_party"

_GROUPS = """
SELECT country_code, party_id, count(*) AS locations
  FROM locations
 GROUP BY country_code, party_id
 ORDER BY country_code, party_id
"""

_CLAIMED = "SELECT id, country_code, party_id FROM locations WHERE id = ANY(%s)"


def _exists(connection: Connection, table: str, column: str | None = None) -> bool:
    with connection.cursor(row_factory=tuple_row) as cursor:
        if column is None:
            found = cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        else:
            found = cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = %s AND column_name = %s)",
                (table, column),
            ).fetchone()
    return bool(found and found[0])


def _party_columns(connection: Connection) -> tuple[sql.SQL, sql.SQL, sql.SQL]:
    """The business details and managed columns and the join they need; before the migrations, stand-ins."""
    details = (
        sql.SQL("p.business_details")
        if _exists(connection, "ocpi_parties", "business_details")
        else sql.SQL("NULL::jsonb")
    )
    if _exists(connection, "reconciler_managed_parties"):
        managed = sql.SQL("m.party_row_id IS NOT NULL")
        join = sql.SQL("LEFT JOIN reconciler_managed_parties AS m ON m.party_row_id = p.id")
    else:
        managed, join = sql.SQL("false"), sql.SQL("")
    return details, managed, join


def holds_credentials(connection: Connection) -> sql.SQL:
    """Whether OCPI registration gave a row (`p`) credentials, read without reading its token.

    Migration 0006 keeps it in `ocpi_parties.holds_credentials`. Before it, every row counts as holding
    credentials except one that ocpi-parties created (`reconciler_managed_parties`, joined as `m`, says
    how='created'): it wrote such rows with token ''.
    """
    if _exists(connection, "ocpi_parties", "holds_credentials"):
        return sql.SQL("p.holds_credentials")
    if _exists(connection, "reconciler_managed_parties", "how"):
        return sql.SQL("m.how IS DISTINCT FROM 'created'")
    return sql.SQL("true")


def party_rows_query(cursor: psycopg.Cursor[Any]) -> sql.Composed:
    """Party rows with their management record and whether they hold OCPI credentials (never the token);
    before the migrations, without the columns they add."""
    details, managed, join = _party_columns(cursor.connection)
    return sql.SQL(
        "SELECT p.id, p.role, p.country_code, p.party_id, p.url, {details} AS business_details, p.updated_at,"
        " {managed} AS managed, {credentials} AS credentials"
        " FROM ocpi_parties AS p {join} ORDER BY p.country_code, p.party_id, p.role"
    ).format(details=details, managed=managed, credentials=holds_credentials(cursor.connection), join=join)


def _party_rows(connection: Connection) -> tuple[PartyRow, ...]:
    """The party rows as the plan sees them, in no particular order (the plan sorts what it shows).

    Unsorted, PostgreSQL need not sort 17,600 rows with their documents (on disk, past work_mem); the
    documents come as text and are decoded in one `json.loads` rather than one call per row.
    """
    details, managed, join = _party_columns(connection)
    query = sql.SQL(
        "SELECT p.id, p.role, p.country_code, p.party_id, p.url, {details}::text, {managed}"
        " FROM ocpi_parties AS p {join}"
    ).format(details=details, managed=managed, join=join)
    with connection.cursor(row_factory=tuple_row) as cursor:
        records = cursor.execute(query).fetchall()
    documents = json.loads("[" + ",".join("null" if r[5] is None else r[5] for r in records) + "]")
    return tuple(
        PartyRow(Identity(country_code, party_id), role, url, document, managed, str(row_id))
        for (row_id, role, country_code, party_id, url, _, managed), document in zip(
            records, documents, strict=True
        )
    )


def _applied_rows(state: Any) -> tuple[AppliedRow, ...] | None:
    if not isinstance(state, Mapping) or not isinstance(state.get("rows"), list):
        return None
    rows = []
    parsed: dict[str, Identity | None] = {}
    for row in state["rows"]:
        text = str(row.get("identity", ""))
        if text not in parsed:
            parsed[text] = Identity.parse(text)
        identity = parsed[text]
        if identity is not None:
            rows.append(AppliedRow(identity, str(row["role"]), str(row["url"]), row.get("business_details")))
    return tuple(rows)


def read_actual_state(connection: Connection, desired: DesiredState) -> ActualState:
    """The actual state in a fixed number of queries; see `plan.fingerprint` for what a saved plan checks.

    Works on a database that ocpi-parties has not migrated yet: its own tables then count as empty and the
    pending migrations are part of the state (apply runs them first).
    """
    claimed_ids = sorted({claim.value for party in desired.parties for claim in party.locations})
    pending = tuple(migration.label for migration in migrations.pending(connection))
    rows = _party_rows(connection)
    with connection.cursor(row_factory=tuple_row) as cursor:
        found = None
        if _exists(connection, "system_config"):
            found = cursor.execute(
                "SELECT value FROM system_config WHERE key = %s", (DEFAULT_PARTY_KEY,)
            ).fetchone()
        groups = tuple(
            LocationGroup(Identity(country_code, party_id), count)
            for country_code, party_id, count in cursor.execute(_GROUPS)
        )
        claimed = {
            location_id: Identity(country_code, party_id)
            for location_id, country_code, party_id in (
                cursor.execute(_CLAIMED, (claimed_ids,)) if claimed_ids else ()
            )
        }
        last = None
        if _exists(connection, "reconciler_apply_history"):
            last = cursor.execute(
                "SELECT state FROM reconciler_apply_history WHERE state IS NOT NULL ORDER BY id DESC LIMIT 1"
            ).fetchone()
    return ActualState(
        rows,
        Identity.parse(found[0]) if found is not None else None,
        groups,
        claimed,
        _applied_rows(last[0]) if last is not None else None,
        pending,
    )


def location_ids(connection: Connection, move: MoveLocations) -> Iterator[str]:
    """The ids of the locations a move concerns, in id order, streamed from a server-side cursor."""
    if move.location_ids:
        yield from move.location_ids
        return
    identities = [(group.identity.country_code, group.identity.party_id) for group in move.groups]
    with connection.transaction(), connection.cursor(name="ocpi_parties_location_ids") as cursor:
        cursor.execute(
            "SELECT l.id FROM locations AS l JOIN unnest(%s::text[], %s::text[]) AS g(country_code, party_id)"
            " ON l.country_code = g.country_code AND l.party_id = g.party_id ORDER BY l.id",
            ([c for c, _ in identities], [p for _, p in identities]),
        )
        for (location_id,) in cursor:
            yield str(location_id)


def plan_against(connection: Connection, desired: DesiredState, *, allow_delete: bool) -> tuple[Plan, str]:
    """The plan for this database and the fingerprint of the facts it relies on."""
    actual = read_actual_state(connection, desired)
    return compute_plan(desired, actual, allow_delete=allow_delete), fingerprint(desired, actual)
