"""Measure how long MaEVe's location upsert waits behind an `apply` that moves 100,000 locations.

Usage: .venv/bin/python scripts/measure_apply_lock.py postgresql://postgres@127.0.0.1:5432/postgres [RUNS]

Builds a template database (dropped afterwards): MaEVe's tables migrated by ocpi-parties, 100,000 locations
MaEVe wrote (party XXX, countries GB, BE, FR and none), which the shipped example's default party takes
over. Each run copies it, starts `ocpi-parties apply --auto-approve parties/` as a real process and, from
another connection, issues MaEVe's SetLocation (verbatim, a new location) the moment the apply holds its lock
on `locations`; it prints how long that upsert took, and how long the apply held the lock (from the first
poll that saw the lock to the last). Two kinds of stdout:

* read at once (a terminal, a log collector that keeps up);
* stalled: a pipe whose buffer is full and nobody reads for STALL seconds (a pager, a stuck log pipe).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from reconciler import migrations
from reconciler.sample import SET_LOCATION

ROOT = Path(__file__).resolve().parent.parent
LOCATIONS = 100_000
STALL = 10.0
Connection = psycopg.Connection[tuple[object, ...]]

HOLDS_LOCK = """
SELECT count(*) FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
 WHERE l.granted AND l.locktype = 'relation' AND l.relation = to_regclass('locations')
   AND l.mode = 'ShareRowExclusiveLock' AND a.application_name LIKE 'ocpi-parties%%'
"""


def _build(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(make_conninfo(admin, dbname=name), autocommit=True) as connection:
        migrations.create_maeve_base(connection)
        connection.execute(
            "INSERT INTO locations (id, country_code, party_id, location_data)"
            " SELECT format('LOC-%%s', lpad(n::text, 6, '0')), (ARRAY['GB', 'BE', 'FR', 'XX'])[n %% 4 + 1],"
            "        'XXX', jsonb_build_object('Id', format('LOC-%%s', lpad(n::text, 6, '0')),"
            "        'Name', 'Site ' || n, 'Country', (ARRAY['GB', 'BE', 'FR', ''])[n %% 4 + 1],"
            "        'Evses', '[]'::jsonb)"
            "   FROM generate_series(1, %s) AS n",
            (LOCATIONS,),
        )
        migrations.migrate(connection)
        connection.execute("VACUUM ANALYZE")


def _drop(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _filled_pipe() -> tuple[int, int]:
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        while True:
            os.write(write_end, b"." * 65_536)
    except BlockingIOError:
        pass
    os.set_blocking(write_end, True)
    return read_end, write_end


def _drain(read_end: int, delay: float) -> None:
    time.sleep(delay)
    with os.fdopen(read_end, "rb") as reader:
        while reader.read(65_536):
            pass


def _run(admin: str, template: str, stalled: bool) -> tuple[float, float]:
    """One apply on a copy of the template: (the upsert's wait, how long the lock was seen held), in s."""
    name = f"ocpi_parties_measure_lock_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        )
    url = make_conninfo(admin, dbname=name)
    read_end, write_end = _filled_pipe() if stalled else os.pipe()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCPI_PARTIES_", "PG", "GITHUB_"))}
    try:
        with (
            psycopg.connect(url, autocommit=True) as observer,
            psycopg.connect(url, autocommit=True) as maeve,
        ):
            maeve.execute("SET statement_timeout = '120s'")
            process = subprocess.Popen(
                [sys.executable, "-m", "reconciler", "apply", "--auto-approve", "--database-url", url],
                cwd=ROOT,
                env={**env, "NO_COLOR": "1"},
                stdout=write_end,
                stderr=subprocess.DEVNULL,
            )
            os.close(write_end)
            reader = threading.Thread(target=_drain, args=(read_end, STALL if stalled else 0.0))
            reader.start()
            while observer.execute(HOLDS_LOCK).fetchone() == (0,):
                if process.poll() is not None:
                    raise SystemExit(f"the apply ended (exit {process.returncode}) before it took the lock")
            seen = time.perf_counter()
            done = threading.Event()
            held = [0.0]

            def watch() -> None:
                with psycopg.connect(url, autocommit=True) as watcher:
                    while watcher.execute(HOLDS_LOCK).fetchone() != (0,):
                        pass
                    held[0] = time.perf_counter() - seen
                    done.set()

            watcher = threading.Thread(target=watch)
            watcher.start()
            started = time.perf_counter()
            maeve.execute(SET_LOCATION, ("MAEVE-MEASURE", "GB", "XXX", '{"Id": "MAEVE-MEASURE"}'))
            waited = time.perf_counter() - started
            watcher.join()
            if process.wait(timeout=300) != 0:
                raise SystemExit(f"the apply failed (exit {process.returncode})")
            reader.join()
        return waited, held[0]
    finally:
        _drop(admin, name)


def main() -> None:
    admin = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    template = f"ocpi_parties_measure_lock_template_{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    _build(admin, template)
    print(f"built {LOCATIONS:,} locations to move in {time.perf_counter() - started:.1f} s")
    try:
        for stalled in (False, True):
            kind = f"stdout stalled {STALL:.0f} s" if stalled else "stdout read at once"
            results = [_run(admin, template, stalled) for _ in range(runs)]
            waits = [w * 1000 for w, _ in results]
            helds = [h * 1000 for _, h in results]
            print(
                f"{kind:<22} upsert waited: median {statistics.median(waits):8.0f} ms"
                f" (runs {', '.join(f'{w:.0f}' for w in waits)});"
                f" lock held: median {statistics.median(helds):8.0f} ms"
            )
    finally:
        _drop(admin, template)


if __name__ == "__main__":
    main()
