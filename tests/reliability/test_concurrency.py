"""Concurrency: several `apply` processes at once, of the same and of different plans, while MaEVe keeps
writing locations (party `XXX`) and registering peers in a loop.

Exactly one process applies each change set (one history row each); the others find nothing left to do,
refuse a stale plan, or give up on the lock, each with its documented message and exit code. Every MaEVe
write succeeds, none is lost, and no location is left without an owner once a default party exists.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from maeve_sql import GET_LOCATION, GET_OCPI_PARTY, save_location, save_party
from reliability import LONG, run_cli, seed_live

from reconciler.database import ADVISORY_LOCK_KEY, Connection
from reconciler.migrations import migrate
from reconciler.plan_document import NO_CHANGES

ROOT = Path(__file__).parents[2]
PROCESSES = 8 if LONG else 4
ROUNDS = 3 if LONG else 1
COUNTRIES = ("GB", "BE", "FR", "DE", "XX", "ES", "IT")


@dataclass
class MaEVe:
    """MaEVe's runtime writes in two loops (locations, peer registrations) until `stop` is set."""

    url: str
    stop: threading.Event = field(default_factory=threading.Event)
    #: While set, MaEVe writes only what no plan depends on (peers no file declares).
    quiet: threading.Event = field(default_factory=threading.Event)
    failures: list[str] = field(default_factory=list)
    locations: set[str] = field(default_factory=set)
    #: (role, country_code, party_id) -> the last token registered.
    tokens: dict[tuple[str, str, str], str] = field(default_factory=dict)
    writes: int = 0

    def write_locations(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as connection:
            number = 0
            while not self.stop.is_set():
                if self.quiet.is_set():
                    self.stop.wait(0.01)
                    continue
                number += 1
                # New sites, and re-saves of sites apply is moving.
                location = f"MAEVE-{number:05d}" if number % 3 else f"LOC-{number % 2000 + 1:06d}"
                try:
                    save_location(connection, location, COUNTRIES[number % len(COUNTRIES)])
                except psycopg.Error as error:
                    self.failures.append(f"location {location}: {error}")
                else:
                    self.locations.add(location)
                    self.writes += 1

    def register_peers(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as connection:
            number = 0
            while not self.stop.is_set():
                number += 1
                adopted = number % 2 and not self.quiet.is_set()
                key = ("EMSP", "NL", "VLT") if adopted else ("EMSP", "IT", f"{number % 40:03d}")
                token = f"token-{number}"
                try:
                    url = (
                        "https://api.voltkaart.example/ocpi/versions"
                        if key[1] == "NL"
                        else "https://it.example"
                    )
                    save_party(connection, *key, url=url, token=token)
                except psycopg.Error as error:
                    self.failures.append(f"party {key}: {error}")
                else:
                    self.tokens[key] = token
                    self.writes += 1


def _together(commands: list[tuple[list[str], Path]]) -> list[subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda item: run_cli(*item), commands))


def _history(connection: Connection) -> int:
    row = connection.execute("SELECT count(*) FROM reconciler_apply_history").fetchone()
    return int(str(row[0])) if row else 0


def _variant(base: Path, round_number: int, number: int) -> Path:
    """A party repository that also declares the hosted CPO FR-V<number>: a change set of its own."""
    folder = base / f"round-{round_number}" / f"variant-{number}"
    shutil.copytree(base / "parties", folder / "parties")
    (folder / "parties" / f"FR-V{number:02d}.yaml").write_text(
        f"country_code: FR\nparty_id: V{number:02d}\nkind: hosted\n"
        f"business_details:\n  name: Variant {number}\n"
        "roles:\n  - role: CPO\n"
    )
    return folder


def _variant_parties(connection: Connection) -> list[str]:
    rows = connection.execute(
        "SELECT party_id FROM ocpi_parties WHERE country_code = 'FR' AND party_id LIKE 'V%' ORDER BY 1"
    ).fetchall()
    return [str(row[0]) for row in rows]


def _same_files(connection: Connection, url: list[str], workdir: Path) -> None:
    """The same files from PROCESSES deploy jobs at once: one applies, the others find nothing to do."""
    history = _history(connection)
    results = _together([(["apply", "--auto-approve", *url], workdir)] * PROCESSES)
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert sum("Apply complete:" in r.stdout for r in results) == 1
    finished = [r.stdout.splitlines()[-1].startswith(NO_CHANGES[:-1]) for r in results]
    assert sum(finished) == PROCESSES - 1
    assert _history(connection) == history + 1


def _one_winner(results: list[subprocess.CompletedProcess[str]], refusal: str) -> int:
    """The one process that applied; every other one exited 1 with `refusal`."""
    winners = [n for n, r in enumerate(results) if r.returncode == 0]
    assert len(winners) == 1, [r.stderr for r in results]
    assert "Apply complete:" in results[winners[0]].stdout
    for number, result in enumerate(results):
        if number != winners[0]:
            assert result.returncode == 1 and refusal in result.stderr, result.stderr
    return winners[0]


def _different_files(connection: Connection, url: list[str], variants: list[Path]) -> None:
    """Different files from each job. With deletion protection, the first to get the lock creates its own
    party; each other one finds that party undeclared in its files and refuses to delete it. With
    --allow-delete, each job applies its own change set, one after another."""
    history = _history(connection)
    results = _together([(["apply", "--auto-approve", *url], folder) for folder in variants])
    winner = _one_winner(results, "1 deletion blocked by deletion protection")
    assert all("nothing was changed" in r.stderr for r in results if r.returncode)
    assert _history(connection) == history + 1
    assert _variant_parties(connection) == [f"V{winner:02d}"]

    results = _together(
        [(["apply", "--auto-approve", "--allow-delete", *url], folder) for folder in variants]
    )
    assert [r.returncode for r in results] == [0] * PROCESSES, [r.stderr for r in results]
    changed = sum("Apply complete:" in r.stdout for r in results)
    assert changed in (PROCESSES - 1, PROCESSES)  # the files of the first winner may come first again
    assert _history(connection) == history + 1 + changed
    assert len(_variant_parties(connection)) == 1


def _saved_plans(connection: Connection, url: list[str], variants: list[Path], writer: MaEVe) -> None:
    """Plans saved against the same database: one applies, the others are refused as stale. MaEVe writes
    meanwhile only what the plans do not depend on: any new location changes the location counts a saved
    plan relies on, and makes it stale too."""
    writer.quiet.set()
    try:
        for folder in variants:
            saved = run_cli(["plan", "--allow-delete", *url, "--out", "plan.json"], folder)
            assert saved.returncode == 0, saved.stderr
        history = _history(connection)
        results = _together([(["apply", "plan.json", *url], folder) for folder in variants])
    finally:
        writer.quiet.clear()
    _one_winner(results, "stale plan: the database changed since the plan was made")
    assert _history(connection) == history + 1


def _back_to_shared_files(connection: Connection, url: list[str], workdir: Path) -> None:
    back = run_cli(["apply", "--auto-approve", "--allow-delete", *url], workdir)
    assert back.returncode == 0, back.stderr
    assert _variant_parties(connection) == []


def _busy(database_url: str, url: list[str], workdir: Path) -> None:
    """While another apply holds the lock, every job gives up after --lock-timeout with exit code 4."""
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        results = _together(
            [(["apply", "--auto-approve", "--lock-timeout", "300ms", *url], workdir)] * PROCESSES
        )
        holder.execute("ROLLBACK")
    assert [r.returncode for r in results] == [4] * PROCESSES
    assert all("another apply (or db migrate) is running" in r.stderr for r in results)


def _nothing_lost(connection: Connection, writer: MaEVe) -> None:
    assert writer.failures == []
    assert writer.writes > 50, "MaEVe kept writing during the applies"
    for location in writer.locations:
        assert connection.execute(GET_LOCATION, (location,)).fetchone() is not None
    orphans = connection.execute(
        "SELECT id, country_code, party_id FROM locations WHERE party_role IS NULL ORDER BY id"
    ).fetchall()
    assert orphans == [], "a location MaEVe wrote during an apply was left without an owner"
    for key, token in writer.tokens.items():
        row = connection.execute(GET_OCPI_PARTY, key).fetchone()
        assert row is not None and row[5] == token, f"the last registration of {key} was lost"
    # The registration-created peers stay unmanaged; NL-VLT, declared in the files, was adopted once.
    managed = connection.execute(
        "SELECT p.country_code || '-' || p.party_id, p.role, m.how FROM reconciler_managed_parties AS m"
        " JOIN ocpi_parties AS p ON p.id = m.party_row_id ORDER BY 1, 2"
    ).fetchall()
    assert ("NL-VLT", "EMSP", "adopted") in managed
    assert not any(identity.startswith(("IT-", "BE-")) for identity, _, _ in managed)


def test_concurrent_applies_apply_each_change_once_while_maeve_writes(
    connection: Connection, database_url: str, tmp_path: Path
) -> None:
    seed_live(connection, 2_000)
    migrate(connection)  # as a deployment with least privilege does: `db migrate` first, as the owner
    shutil.copytree(ROOT / "parties", tmp_path / "parties")
    url = ["--database-url", database_url]
    writer = MaEVe(database_url)
    threads = [threading.Thread(target=loop) for loop in (writer.write_locations, writer.register_peers)]
    for thread in threads:
        thread.start()
    try:
        _same_files(connection, url, tmp_path)
        for round_number in range(ROUNDS):
            variants = [_variant(tmp_path, round_number, n) for n in range(PROCESSES)]
            _different_files(connection, url, variants)
            _back_to_shared_files(connection, url, tmp_path)  # so that every variant has a change to make
            _saved_plans(connection, url, variants, writer)
            _back_to_shared_files(connection, url, tmp_path)
        _busy(database_url, url, tmp_path)
    finally:
        writer.stop.set()
        for thread in threads:
            thread.join(timeout=60)
    _nothing_lost(connection, writer)
    assert run_cli(["plan", "--detailed-exitcode", *url], tmp_path).returncode == 0
