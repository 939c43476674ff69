"""The reference in the same run: the hand-written SQL for the plan's changes, and a per-row baseline.

The hand-written SQL is the original design's cleanup script made to reach the same end state as `apply`:
count the orphans, read the party rows, INSERT and UPDATE the changed party rows in one statement each,
and one UPDATE that gives every orphan location to the default party (its owner key, and the OCPI
`country_code`/`party_id` keys of standard Location JSON). It runs with the location guard trigger off:
the fastest way to get there. The per-row baseline issues that UPDATE once per location, as a naive tool
would, on a sample of the orphans.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import psycopg

from benchmarks import dataset

Connection = psycopg.Connection[Any]

ORPHAN_COUNT = """
SELECT count(*) FROM locations AS l
 WHERE NOT EXISTS (SELECT 1 FROM ocpi_parties AS p
                    WHERE p.role = 'CPO' AND p.country_code = l.country_code AND p.party_id = l.party_id)
"""

PARTY_ROWS = "SELECT role, country_code, party_id, url, business_details FROM ocpi_parties"

INSERT_PARTIES = """
INSERT INTO ocpi_parties (role, country_code, party_id, url, token, business_details)
SELECT r.role, r.country_code, r.party_id, r.url, '', r.details::jsonb
  FROM unnest(%(roles)s::text[], %(countries)s::text[], %(parties)s::text[], %(urls)s::text[],
              %(details)s::text[]) AS r(role, country_code, party_id, url, details)
"""

UPDATE_PARTIES = """
UPDATE ocpi_parties AS p
   SET url = r.url, business_details = r.details::jsonb, updated_at = now()
  FROM unnest(%(roles)s::text[], %(countries)s::text[], %(parties)s::text[], %(urls)s::text[],
              %(details)s::text[]) AS r(role, country_code, party_id, url, details)
 WHERE p.role = r.role AND p.country_code = r.country_code AND p.party_id = r.party_id
"""

_SET_OWNER = """
UPDATE locations AS l
   SET country_code = %(country_code)s::text, party_id = %(party_id)s::text, party_role = 'CPO',
       location_data = CASE WHEN l.location_data ? 'party_id'
                            THEN l.location_data || jsonb_build_object('country_code', %(country_code)s::text,
                                                                       'party_id', %(party_id)s::text)
                            ELSE l.location_data END
"""

UPDATE_LOCATIONS = (
    _SET_OWNER
    + """
 WHERE NOT EXISTS (SELECT 1 FROM ocpi_parties AS p
                    WHERE p.role = 'CPO' AND p.country_code = l.country_code AND p.party_id = l.party_id)
"""
)

UPDATE_ONE_LOCATION = _SET_OWNER + " WHERE l.id = %(id)s"

SAMPLE_ORPHANS = """
SELECT l.id FROM locations AS l
 WHERE NOT EXISTS (SELECT 1 FROM ocpi_parties AS p
                    WHERE p.role = 'CPO' AND p.country_code = l.country_code AND p.party_id = l.party_id)
 ORDER BY l.id LIMIT %s
"""

#: What apply and the hand-written SQL must both leave behind: owners per identity, JSON keys, party rows.
END_STATE = (
    """
SELECT country_code, party_id, party_role, count(*),
       count(*) FILTER (WHERE location_data ? 'party_id'
                          AND (location_data ->> 'party_id' <> party_id
                               OR location_data ->> 'country_code' <> country_code))
  FROM locations GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
""",
    "SELECT role, country_code, party_id, url, business_details FROM ocpi_parties ORDER BY 1, 2, 3",
)

_DEFAULT = {"country_code": dataset.DEFAULT_PARTY[0], "party_id": dataset.DEFAULT_PARTY[1]}


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def party_changes(scale: dataset.Scale) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The rows to insert and the rows to update, as column arrays for one statement each."""
    inserts: dict[str, list[str]] = {key: [] for key in ("roles", "countries", "parties", "urls", "details")}
    updates: dict[str, list[str]] = {key: [] for key in inserts}
    for number in range(scale.parties):
        kind = dataset.change_kind(scale, number)
        if kind is None:
            continue
        target = inserts if kind == "create" else updates
        for role in dataset.roles(number):
            country_code, party_id = dataset.identity(number)
            target["roles"].append(role)
            target["countries"].append(country_code)
            target["parties"].append(party_id)
            target["urls"].append(dataset.url(number))
            target["details"].append(json.dumps(dataset.business_details(number, role)))
    return inserts, updates


def read_queries(connection: Connection) -> dict[str, float]:
    """The reads a hand-written plan needs: the orphan count, and the party rows to compare with the files."""
    return {
        "orphan_count": _timed(lambda: connection.execute(ORPHAN_COUNT).fetchone()),
        "party_rows": _timed(lambda: connection.execute(PARTY_ROWS).fetchall()),
    }


def _guard_off(connection: Connection) -> None:
    connection.execute("ALTER TABLE locations DISABLE TRIGGER locations_owner_guard")


def hand_written_apply(connection: Connection, scale: dataset.Scale) -> tuple[dict[str, float], int]:
    """The writes, in one transaction: party INSERT, party UPDATE, location UPDATE; return times, moved."""
    inserts, updates = party_changes(scale)
    with connection.transaction():
        _guard_off(connection)
        times = {
            "party_insert": _timed(lambda: connection.execute(INSERT_PARTIES, inserts)),
            "party_update": _timed(lambda: connection.execute(UPDATE_PARTIES, updates)),
        }
        started = time.perf_counter()
        moved = connection.execute(UPDATE_LOCATIONS, _DEFAULT).rowcount
        times["location_update"] = time.perf_counter() - started
        connection.execute("ALTER TABLE locations ENABLE TRIGGER locations_owner_guard")
    return times, moved


def per_row(connection: Connection, sample: int) -> tuple[float, int]:
    """One UPDATE per location for the first `sample` orphans, in one transaction; (seconds, rows)."""
    ids = [str(row[0]) for row in connection.execute(SAMPLE_ORPHANS, (sample,))]
    with connection.transaction():
        _guard_off(connection)
        with connection.cursor() as cursor:
            started = time.perf_counter()
            for location in ids:
                cursor.execute(UPDATE_ONE_LOCATION, {**_DEFAULT, "id": location})
            seconds = time.perf_counter() - started
        connection.execute("ALTER TABLE locations ENABLE TRIGGER locations_owner_guard")
    return seconds, len(ids)


def count_orphans(connection: Connection) -> int:
    row = connection.execute(ORPHAN_COUNT).fetchone()
    return int(str(row[0])) if row else -1


def end_state(connection: Connection) -> str:
    """A digest of the end state that apply and the hand-written SQL are compared on."""
    digest = hashlib.sha256()
    for query in END_STATE:
        for row in connection.execute(query):
            digest.update(json.dumps(row, sort_keys=True, default=str).encode())
    return digest.hexdigest()
