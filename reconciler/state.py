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

from psycopg import sql
from psycopg.rows import tuple_row

from reconciler import migrations
from reconciler.changes import (
    ActualState,
    AppliedRow,
    ClaimedLocation,
    LocationGroup,
    LocationRules,
    MoveLocations,
    PartyRow,
    Plan,
)
from reconciler.database import Connection, exists
from reconciler.model import DesiredState, Identity
from reconciler.plan import compute_plan, fingerprint

#: The key of `system_config` (migration 0001) that records the default party.
DEFAULT_PARTY_KEY = "default_party"

#: Locations per recorded identity and owner now. Before migration 0006 no location has a recorded identity:
#: the rule the migration applies to the rows it finds stands in (none for MaEVe's own rows, which hold Go
#: field names such as `Country` and are written under XXX; else the identity the row is stored under).
_RECORDED_NOW = {
    "recorded_cc": sql.SQL("l.recorded_country_code"),
    "recorded_pid": sql.SQL("l.recorded_party_id"),
}
_RECORDED_BEFORE_0006 = {
    name: sql.SQL(
        "CASE WHEN upper(l.party_id) = 'XXX' OR l.location_data ? 'Country' THEN NULL ELSE upper(l.{}) END"
    ).format(sql.Identifier(column))
    for name, column in (("recorded_cc", "country_code"), ("recorded_pid", "party_id"))
}
#: The role of the CPO row that owns the location, NULL while none does; before migration 0005, 'CPO' when
#: its identity names a CPO row.
_OWNED_NOW = sql.SQL("l.party_role")
_OWNED_BEFORE_0005 = sql.SQL(
    "CASE WHEN EXISTS (SELECT 1 FROM ocpi_parties AS p"
    " WHERE p.role = 'CPO' AND p.country_code = l.country_code AND p.party_id = l.party_id) THEN 'CPO' END"
)

#: Grouped in the order of the index `locations_recorded_owner` (migration 0006), which PostgreSQL then
#: reads alone, already sorted: a quarter of the time of grouping on `party_role IS NOT NULL`.
_GROUPS = sql.SQL(
    "SELECT {recorded_cc}, {recorded_pid}, l.country_code, l.party_id, {owned}, count(*)"
    " FROM locations AS l GROUP BY l.country_code, l.party_id, 1, 2, 5"
)

_CLAIMED = sql.SQL(
    "SELECT l.id, {recorded_cc}, {recorded_pid}, l.country_code, l.party_id, {owned}"
    " FROM locations AS l WHERE l.id = ANY(%s)"
)


def location_columns(connection: Connection) -> dict[str, sql.Composable]:
    """The location columns of `_GROUPS` and `_CLAIMED` (and of `store`'s location lists): the recorded
    identity, or its stand-ins before migration 0006, and whether a location is owned."""
    recorded = (
        _RECORDED_NOW if exists(connection, "locations", "recorded_country_code") else _RECORDED_BEFORE_0006
    )
    owned = _OWNED_NOW if exists(connection, "locations", "party_role") else _OWNED_BEFORE_0005
    return {**recorded, "owned": owned}


def _identity_or_none(country_code: str | None, party_id: str | None) -> Identity | None:
    return None if country_code is None or party_id is None else Identity(country_code, party_id)


def _rules(connection: Connection) -> LocationRules | None:
    """The claims and moves the guard reads; None before migration 0006 adds them."""
    if not exists(connection, "reconciler_location_claims"):
        return None
    with connection.cursor(row_factory=tuple_row) as cursor:
        claims = {
            location_id: Identity(country_code, party_id)
            for location_id, country_code, party_id in cursor.execute(
                "SELECT location_id, country_code, party_id FROM reconciler_location_claims"
            )
        }
        moved = {
            Identity(country_code, party_id): Identity(to_cc, to_pid)
            for country_code, party_id, to_cc, to_pid in cursor.execute(
                "SELECT country_code, party_id, to_country_code, to_party_id FROM reconciler_moved_from"
            )
        }
    return LocationRules(claims, moved)


def default_recorded(connection: Connection) -> bool:
    """Whether the database records a default party: `system_config` (migration 0001) exists."""
    return exists(connection, "system_config")


def get_default_party(connection: Connection) -> Identity | None:
    """The default party recorded in `system_config`, or None when none is set (or not recorded yet)."""
    if not default_recorded(connection):
        return None
    row = connection.execute(
        "SELECT value FROM system_config WHERE key = %s", (DEFAULT_PARTY_KEY,)
    ).fetchone()
    return Identity.parse(row[0]) if row else None


def _party_columns(
    connection: Connection, details_recorded: bool
) -> tuple[sql.SQL, sql.SQL, sql.SQL, sql.SQL]:
    """The business details, managed and credentials columns and the join they need; stand-ins before the
    migrations that add them (`business_details`: migration 0002, `details_recorded`).

    Before migration 0006 a row is taken to hold credentials unless ocpi-parties created it: the token
    itself is never read.
    """
    details = sql.SQL("p.business_details") if details_recorded else sql.SQL("NULL::jsonb")
    if exists(connection, "reconciler_managed_parties", "row_created_at"):
        managed = sql.SQL("m.party_row_id IS NOT NULL")
        join = sql.SQL(
            "LEFT JOIN reconciler_managed_parties AS m"
            " ON m.party_row_id = p.id AND m.row_created_at = p.created_at"
        )
    elif exists(connection, "reconciler_managed_parties"):
        managed = sql.SQL("m.party_row_id IS NOT NULL")
        join = sql.SQL("LEFT JOIN reconciler_managed_parties AS m ON m.party_row_id = p.id")
    else:
        managed, join = sql.SQL("false"), sql.SQL("")
    return details, managed, _holds_credentials(connection), join


def _holds_credentials(connection: Connection) -> sql.SQL:
    """Whether OCPI registration gave a row (`p`) credentials, read without reading its token.

    Migration 0006 keeps it in `ocpi_parties.holds_credentials`. Before it, every row counts as holding
    credentials except one that ocpi-parties created (`reconciler_managed_parties`, joined as `m`, says
    how='created'): it wrote such rows with token ''.
    """
    if exists(connection, "ocpi_parties", "holds_credentials"):
        return sql.SQL("p.holds_credentials")
    if exists(connection, "reconciler_managed_parties", "how"):
        return sql.SQL("m.how IS DISTINCT FROM 'created'")
    return sql.SQL("true")


def zoned(column: str) -> sql.Composed:
    """A `timestamp without time zone` column of MaEVe's as a `timestamptz`.

    MaEVe writes NOW() into such columns, and so does ocpi-parties: PostgreSQL stores the time of day in the
    writing session's TimeZone, which neither sets, so the database's (the server's `timezone`, or an
    ALTER DATABASE/ROLE ... SET timezone). This session has the same TimeZone, so the value is read as a time
    in it; docs/database.md says so.
    """
    return sql.SQL("({} AT TIME ZONE current_setting('TimeZone'))").format(sql.Identifier(*column.split(".")))


def party_rows(
    connection: Connection,
    rest: sql.Composable | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    times: bool = True,
) -> list[PartyRow]:
    """The party rows, never their token, that `rest` selects (WHERE and ORDER BY on the columns of
    `ocpi_parties AS p`): the one query behind every PartyRow, for plan, import and the read commands.

    Before the migrations, the columns they add have stand-ins. Without ORDER BY the rows come in no
    particular order, which spares PostgreSQL sorting 17,600 rows with their documents (on disk, past
    work_mem). Without `times`, created_at and updated_at are not read (None): the plan does not show them,
    and reading them as times in the session's time zone took a fortieth of a second over 17,600 rows. The
    business details come as text, decoded here: psycopg's jsonb loader took as long again.
    """
    recorded = exists(connection, "ocpi_parties", "business_details")
    details, managed, credentials, join = _party_columns(connection, recorded)
    never = sql.SQL("NULL::timestamptz")
    query = sql.SQL(
        "SELECT p.country_code, p.party_id, p.role, p.url, {details}::text, {managed}, p.id, {credentials},"
        " {created_at}, {updated_at} FROM ocpi_parties AS p {join} {rest}"
    ).format(
        details=details,
        managed=managed,
        credentials=credentials,
        created_at=zoned("p.created_at") if times else never,
        updated_at=zoned("p.updated_at") if times else never,
        join=join,
        rest=rest or sql.SQL(""),
    )
    with connection.cursor(row_factory=tuple_row) as cursor:
        records = cursor.execute(query, params).fetchall()
    return [
        PartyRow(
            Identity(country_code, party_id),
            role,
            url,
            None if text is None else json.loads(text),
            is_managed,
            row_id,
            holds,
            created,
            updated,
            recorded,
        )
        for country_code, party_id, role, url, text, is_managed, row_id, holds, created, updated in records
    ]


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
    rows = tuple(party_rows(connection, times=False))
    columns = location_columns(connection)
    default = get_default_party(connection)
    with connection.cursor(row_factory=tuple_row) as cursor:
        groups = tuple(
            LocationGroup(
                _identity_or_none(rcc, rpid), Identity(country_code, party_id), count, role is not None
            )
            for rcc, rpid, country_code, party_id, role, count in cursor.execute(_GROUPS.format(**columns))
        )
        claimed = {
            location_id: ClaimedLocation(
                _identity_or_none(rcc, rpid), Identity(country_code, party_id), role is not None
            )
            for location_id, rcc, rpid, country_code, party_id, role in (
                cursor.execute(_CLAIMED.format(**columns), (claimed_ids,)) if claimed_ids else ()
            )
        }
        last = None
        if exists(connection, "reconciler_apply_history"):
            last = cursor.execute(
                "SELECT state FROM reconciler_apply_history WHERE state IS NOT NULL ORDER BY id DESC LIMIT 1"
            ).fetchone()
    return ActualState(
        rows,
        default,
        groups,
        claimed,
        _applied_rows(last[0]) if last is not None else None,
        pending,
        _rules(connection),
    )


#: The locations of a move's groups: same owner now, same recorded identity, same owned state; those a file
#: claims by id are moved by id instead. apply's UPDATE and `plan --show-locations` select with it.
MOVED_GROUPS_FROM = (
    "unnest(%(owner_cc)s::text[], %(owner_pid)s::text[], %(recorded_cc)s::text[], %(recorded_pid)s::text[],"
    " %(owned)s::boolean[]) AS g(owner_cc, owner_pid, recorded_cc, recorded_pid, owned)"
)
MOVED_GROUPS_WHERE = (
    "l.country_code = g.owner_cc AND l.party_id = g.owner_pid"
    " AND l.recorded_country_code IS NOT DISTINCT FROM g.recorded_cc"
    " AND l.recorded_party_id IS NOT DISTINCT FROM g.recorded_pid"
    " AND (l.party_role IS NOT NULL) = g.owned"
    " AND l.id <> ALL(%(claimed)s::text[])"
)


def moved_groups_parameters(move: MoveLocations, desired: DesiredState) -> dict[str, Any]:
    """The parameters of MOVED_GROUPS_FROM and MOVED_GROUPS_WHERE for `move`."""
    groups = move.groups
    return {
        "owner_cc": [g.owner.country_code for g in groups],
        "owner_pid": [g.owner.party_id for g in groups],
        "recorded_cc": [g.recorded.country_code if g.recorded else None for g in groups],
        "recorded_pid": [g.recorded.party_id if g.recorded else None for g in groups],
        "owned": [g.owned for g in groups],
        "claimed": sorted({claim.value for party in desired.parties for claim in party.locations}),
    }


def location_ids(connection: Connection, move: MoveLocations, desired: DesiredState) -> Iterator[str]:
    """The ids of the locations a move concerns, in id order, streamed from a server-side cursor.

    Before migration 0006 (a plan on a database apply has not migrated yet), the groups are matched by the
    owner alone.
    """
    if move.location_ids:
        yield from move.location_ids
        return
    query = f"SELECT l.id FROM locations AS l, {MOVED_GROUPS_FROM} WHERE {MOVED_GROUPS_WHERE} ORDER BY l.id"
    if not exists(connection, "locations", "recorded_country_code"):
        query = (
            "SELECT DISTINCT l.id FROM locations AS l"
            " JOIN unnest(%(owner_cc)s::text[], %(owner_pid)s::text[]) AS g(owner_cc, owner_pid)"
            " ON l.country_code = g.owner_cc AND l.party_id = g.owner_pid"
            " WHERE l.id <> ALL(%(claimed)s::text[]) ORDER BY l.id"
        )
    with connection.transaction(), connection.cursor(name="ocpi_parties_location_ids") as cursor:
        cursor.execute(query.encode(), moved_groups_parameters(move, desired))
        for (location_id,) in cursor:
            yield str(location_id)


def plan_against(connection: Connection, desired: DesiredState, *, allow_delete: bool) -> tuple[Plan, str]:
    """The plan for this database and the fingerprint of the facts it relies on."""
    actual = read_actual_state(connection, desired)
    plan = compute_plan(desired, actual, allow_delete=allow_delete)
    return plan, fingerprint(desired, actual, plan)
