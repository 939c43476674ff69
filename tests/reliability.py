"""Shared by the reliability tests: real `ocpi-parties` processes, a large plan, gates, and state comparisons.

A *gate* stops a running apply at a chosen statement without any hook in ocpi-parties: a test trigger on the
table (present in the before-state, so part of what is compared) waits for a shared advisory lock that the
test holds while the gate is armed. The test sees the apply waiting in `pg_locks`, so it knows exactly where
the apply is when it kills or disturbs it.

`OCPI_PARTIES_LONG_TESTS=1` runs the long variants (more kill moments, more rounds, more examples).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from maeve_sql import PEER_TOKEN, ocpi_location, save_location, save_party
from psycopg import sql
from psycopg.conninfo import make_conninfo

from reconciler.database import ADVISORY_LOCK_KEY, Connection

LONG = os.environ.get("OCPI_PARTIES_LONG_TESTS") == "1"

#: The advisory lock key a gate waits for (shared) while the test holds it.
GATE_KEY = 7_340_021
APPLICATION = "ocpi-parties%"


def cli_environment(**extra: str) -> dict[str, str]:
    """The environment of a child `ocpi-parties`: nothing from the test run chooses its database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCPI_PARTIES_", "PG", "GITHUB_"))}
    return {**env, "NO_COLOR": "1", **extra}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", *args]


def spawn(args: list[str], cwd: Path, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(*args),
        cwd=cwd,
        env=cli_environment(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_cli(
    args: list[str], cwd: Path, timeout: float = 120, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args),
        cwd=cwd,
        env=cli_environment(**extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for(condition: Callable[[], Any], timeout: float = 30, what: str = "the condition") -> Any:
    """Poll `condition` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


# -- databases ---------------------------------------------------------------------------------------------


def create_database(admin: str, template: str) -> str:
    name = f"ocpi_parties_rel_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        )
    return name


def drop_database(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def database_copy(admin: str, template: str) -> Iterator[str]:
    """A fresh copy of `template` (a libpq string), dropped afterwards."""
    name = create_database(admin, template)
    try:
        yield make_conninfo(admin, dbname=name)
    finally:
        drop_database(admin, name)


def seed_live(connection: Connection, locations: int) -> None:
    """MaEVe before ocpi-parties, at scale: two peers, `locations` XXX locations as MaEVe writes them (their
    own two-letter Country), 50 more in OCPI JSON under PT-CPO and one under the peer BE-PEE."""
    save_party(
        connection, "EMSP", "NL", "VLT", url="https://api.voltkaart.example/ocpi/versions", token=PEER_TOKEN
    )
    save_party(connection, "CPO", "BE", "PEE", url="https://peer.example/versions", token=PEER_TOKEN)
    connection.execute(
        "INSERT INTO locations (id, country_code, party_id, location_data)"
        " SELECT format('LOC-%%s', lpad(n::text, 6, '0')),"
        "        (ARRAY['GB', 'BE', 'FR', 'XX'])[n %% 4 + 1], 'XXX',"
        "        jsonb_build_object('Id', format('LOC-%%s', lpad(n::text, 6, '0')), 'Name', 'Site ' || n,"
        "                           'City', 'Brussels', 'Country', (ARRAY['GB', 'BE', 'FR', ''])[n %% 4 + 1],"
        "                           'Evses', '[]'::jsonb)"
        "   FROM generate_series(1, %s) AS n",
        (locations,),
    )
    connection.execute(
        "INSERT INTO locations (id, country_code, party_id, location_data)"
        " SELECT format('LOC-PT-%%s', n), 'PT', 'CPO',"
        "        jsonb_build_object('id', format('LOC-PT-%%s', n), 'country_code', 'PT', 'party_id', 'CPO',"
        "                           'country', 'PRT')"
        "   FROM generate_series(1, %s) AS n",
        (50,),
    )
    save_location(connection, "LOC-PEE-1", "BE", ocpi_location("LOC-PEE-1", "BE", "PEE", "BEL"), "PEE")


def large_plan_files(workdir: Path) -> None:
    """The shipped parties, with ES-CPO also claiming the PT-CPO sites and one MaEVe location."""
    spain = workdir / "parties" / "ES-CPO.yaml"
    spain.write_text(spain.read_text() + "moved_from:\n  - PT-CPO\nlocations:\n  - LOC-000007\n")


# -- gates -------------------------------------------------------------------------------------------------

GATE_FUNCTION = f"""
CREATE TABLE reliability_gate (tbl text NOT NULL, op text NOT NULL, row_id text);
CREATE FUNCTION reliability_gate() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    written jsonb := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
BEGIN
    IF EXISTS (SELECT 1 FROM reliability_gate AS g
                WHERE g.tbl = coalesce(TG_ARGV[0], TG_TABLE_NAME) AND g.op = TG_OP
                  AND (g.row_id IS NULL OR g.row_id = written ->> 'id')) THEN
        PERFORM pg_advisory_xact_lock_shared({GATE_KEY});
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
"""


DDL_GATE = f"""
CREATE FUNCTION reliability_gate_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM reliability_gate WHERE tbl = 'ddl' AND op = TG_TAG) THEN
        PERFORM pg_advisory_xact_lock_shared({GATE_KEY});
    END IF;
END
$$;
CREATE EVENT TRIGGER reliability_gate_ddl ON ddl_command_start EXECUTE FUNCTION reliability_gate_ddl();
"""


def install_gates(connection: Connection, tables: tuple[str, ...], *, ddl: bool = False) -> None:
    """The gate function (once), a gate trigger on each table and, with `ddl`, a gate on DDL statements
    (armed as table 'ddl', operation the command tag such as 'ALTER TABLE')."""
    if connection.execute("SELECT to_regclass('reliability_gate')").fetchone() == (None,):
        connection.execute(GATE_FUNCTION)
    if ddl:
        connection.execute(DDL_GATE)
    for table in tables:
        connection.execute(
            sql.SQL(
                "CREATE TRIGGER {} BEFORE INSERT OR UPDATE OR DELETE ON {}"
                " FOR EACH ROW EXECUTE FUNCTION reliability_gate()"
            ).format(sql.Identifier(f"zz_reliability_gate_{table}"), sql.Identifier(table))
        )


def install_commit_gate(connection: Connection) -> None:
    """A gate that runs at COMMIT (a deferred constraint trigger on the history row); armed as 'commit'."""
    connection.execute(
        "CREATE CONSTRAINT TRIGGER zz_reliability_commit_gate AFTER INSERT ON reconciler_apply_history"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION reliability_gate('commit')"
    )


def arm_gate(connection: Connection, table: str, op: str, row_id: str | None = None) -> None:
    connection.execute("INSERT INTO reliability_gate VALUES (%s, %s, %s)", (table, op, row_id))


def waiting_at_gate(observer: Connection) -> int | None:
    """The pid of an ocpi-parties backend waiting at the armed gate, if any."""
    return waiting_for_advisory(observer, GATE_KEY)


def _waiting(observer: Connection, condition: str, value: object) -> int | None:
    """The pid of an ocpi-parties backend of this database waiting for a lock that `condition` picks."""
    row = observer.execute(
        "SELECT l.pid FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid"
        " WHERE NOT l.granted AND a.application_name LIKE %s"
        "   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        f"  AND {condition}",
        (APPLICATION, value),
    ).fetchone()
    return int(str(row[0])) if row else None


def waiting_for_advisory(observer: Connection, key: int) -> int | None:
    advisory = "l.locktype = 'advisory' AND ((l.classid::bigint << 32) | l.objid::bigint) = %s"
    return _waiting(observer, advisory, key & 0xFFFF_FFFF_FFFF_FFFF)


def waiting_for_table(observer: Connection, table: str) -> int | None:
    """The pid of an ocpi-parties backend waiting for a lock on `table`, if any."""
    return _waiting(observer, "l.locktype = 'relation' AND l.relation = to_regclass(%s)", table)


def active_statement(observer: Connection, prefix: str) -> float | None:
    """For how many seconds an ocpi-parties backend has run a statement starting with `prefix`, if it does."""
    row = observer.execute(
        "SELECT extract(epoch FROM clock_timestamp() - query_start) FROM pg_stat_activity"
        " WHERE application_name LIKE %s AND state = 'active' AND datname = current_database()"
        "   AND ltrim(query, chr(10) || chr(32)) LIKE %s ORDER BY query_start LIMIT 1",
        (APPLICATION, prefix + "%"),
    ).fetchone()
    return float(str(row[0])) if row else None


def backends(observer: Connection) -> list[int]:
    """The ocpi-parties backends still connected to this database (a killed client's backend lingers)."""
    rows = observer.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s AND datname = current_database()",
        (APPLICATION,),
    ).fetchall()
    return [int(str(row[0])) for row in rows]


def holds_apply_lock(observer: Connection) -> bool:
    row = observer.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND ((classid::bigint << 32) | objid::bigint) = %s",
        (ADVISORY_LOCK_KEY,),
    ).fetchone()
    return bool(row and row[0])


# -- states ------------------------------------------------------------------------------------------------


def logical_state(connection: Connection) -> dict[str, Any]:
    """What the database means, without row ids and clock times (sequence values are never rolled back)."""

    def rows(query: str) -> list[tuple[Any, ...]]:
        return connection.execute(query).fetchall()

    def present(table: str) -> bool:
        return connection.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone() == (True,)

    has_details = _has_column(connection, "ocpi_parties", "business_details")
    details = "business_details::text" if has_details else "''"
    role = "party_role" if _has_column(connection, "locations", "party_role") else "''"
    state: dict[str, Any] = {
        "columns": rows(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY 1, 2"
        ),
        "constraints": rows("SELECT conname, convalidated FROM pg_constraint ORDER BY 1"),
        "triggers": rows("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1"),
        "parties": rows(
            f"SELECT role, country_code, party_id, url, token, {details} FROM ocpi_parties ORDER BY 1, 2, 3"
        ),
        "locations": rows(
            f"SELECT count(*), md5(string_agg(concat_ws('|', id, country_code, party_id, {role},"
            " location_data::text), ',' ORDER BY id)) FROM locations"
        ),
    }
    # ocpi-parties' own tables, once migrated.
    optional = {
        "managed": (
            "reconciler_managed_parties",
            "SELECT p.role, p.country_code, p.party_id, m.how FROM reconciler_managed_parties AS m"
            " JOIN ocpi_parties AS p ON p.id = m.party_row_id ORDER BY 1, 2, 3",
        ),
        "config": ("system_config", "SELECT key, value FROM system_config ORDER BY 1"),
        "history": (
            "reconciler_apply_history",
            "SELECT revision, actor, tool_version, summary, changes::text, state::text"
            " FROM reconciler_apply_history ORDER BY id",
        ),
        "migrations": (
            "reconciler_migrations",
            "SELECT version, name, checksum FROM reconciler_migrations ORDER BY 1",
        ),
    }
    for key, (table, query) in optional.items():
        if present(table):
            state[key] = rows(query)
    return state


def _has_column(connection: Connection, table: str, column: str) -> bool:
    row = connection.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = %s AND column_name = %s",
        (table, column),
    ).fetchone()
    return bool(row and row[0])
