"""Read the actual state that `compute_plan` compares the party files with.

Five queries, whatever the size of the database: the party rows (without tokens) with their management
record, the default party, the number of locations per recorded identity, the current identity of the
location ids the files claim, and the state the last apply recorded. Locations are counted by PostgreSQL,
never loaded; the result's size grows with the number of parties and identities, not of locations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.rows import dict_row

from reconciler.model import DesiredState, Identity
from reconciler.plan import ActualState, AppliedRow, LocationGroup, PartyRow

Connection = psycopg.Connection[Any]

DEFAULT_PARTY_KEY = "default_party"

_ROWS = """
SELECT p.id, p.role, p.country_code, p.party_id, p.url, p.business_details, p.updated_at,
       m.party_row_id IS NOT NULL AS managed
  FROM ocpi_parties AS p
  LEFT JOIN reconciler_managed_parties AS m ON m.party_row_id = p.id
 ORDER BY p.country_code, p.party_id, p.role
"""

_GROUPS = """
SELECT country_code, party_id, count(*) AS locations
  FROM locations
 GROUP BY country_code, party_id
 ORDER BY country_code, party_id
"""

_CLAIMED = "SELECT id, country_code, party_id FROM locations WHERE id = ANY(%s)"

_DEFAULT = "SELECT value FROM system_config WHERE key = %s"

_LAST_APPLY = "SELECT state FROM reconciler_apply_history WHERE state IS NOT NULL ORDER BY id DESC LIMIT 1"


def _applied_rows(state: Any) -> tuple[AppliedRow, ...] | None:
    if not isinstance(state, Mapping) or not isinstance(state.get("rows"), list):
        return None
    rows = []
    for row in state["rows"]:
        identity = Identity.parse(str(row.get("identity", "")))
        if identity is not None:
            rows.append(AppliedRow(identity, str(row["role"]), str(row["url"]), row.get("business_details")))
    return tuple(rows)


def read_actual_state(connection: Connection, desired: DesiredState) -> ActualState:
    """The actual state in five queries; see `plan.fingerprint` for what a saved plan checks of it."""
    claimed_ids = sorted({claim.value for party in desired.parties for claim in party.locations})
    with connection.cursor(row_factory=dict_row) as cursor:
        rows = tuple(
            PartyRow(
                Identity(record["country_code"], record["party_id"]),
                record["role"],
                record["url"],
                record["business_details"],
                record["managed"],
                f"{record['id']}@{record['updated_at'].isoformat()}",
            )
            for record in cursor.execute(_ROWS)
        )
        found = cursor.execute(_DEFAULT, (DEFAULT_PARTY_KEY,)).fetchone()
        groups = tuple(
            LocationGroup(Identity(record["country_code"], record["party_id"]), record["locations"])
            for record in cursor.execute(_GROUPS)
        )
        claimed = {
            record["id"]: Identity(record["country_code"], record["party_id"])
            for record in (cursor.execute(_CLAIMED, (claimed_ids,)) if claimed_ids else ())
        }
        last = cursor.execute(_LAST_APPLY).fetchone()
    return ActualState(
        rows,
        Identity.parse(found["value"]) if found is not None else None,
        groups,
        claimed,
        _applied_rows(last["state"]) if last is not None else None,
    )
