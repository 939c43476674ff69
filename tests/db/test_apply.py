"""`ocpi-parties apply` on a real PostgreSQL: the GitOps cycle, atomicity, staleness, the lock, history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
from conftest import Run
from maeve_sql import (
    GET_OCPI_PARTY,
    LIST_ALL_LOCATIONS,
    LIST_OCPI_PARTIES_FOR_ROLE,
    PEER_TOKEN,
    location_data,
    location_owner,
    save_location,
    save_party,
    snapshot,
)

from reconciler import store
from reconciler.database import ADVISORY_LOCK_KEY, Connection


def _registered(connection: Connection) -> list[tuple[object, ...]]:
    """Every row OCPI registration wrote (it holds a token), every MaEVe column."""
    return connection.execute(
        "SELECT id, role, country_code, party_id, url, token, created_at, updated_at FROM ocpi_parties"
        " WHERE token <> '' ORDER BY id"
    ).fetchall()


def _peers(connection: Connection) -> list[tuple[object, ...]]:
    """The registration-created row no file declares, every MaEVe column (token and timestamps included)."""
    return connection.execute(
        "SELECT id, role, country_code, party_id, url, token, created_at, updated_at FROM ocpi_parties"
        " WHERE (role, country_code, party_id) = ('CPO', 'BE', 'PEE')"
    ).fetchall()


def test_full_gitops_cycle(
    run: Run, live: Connection, database_url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    peers = _peers(live)
    assert run("validate")[0] == 0
    code, _, err = run("plan", "--database-url", database_url, "--out", "plan.json", "--revision", "c0ffee")
    assert code == 0, err
    code, out, err = run("apply", "plan.json", "--database-url", database_url, "--actor", "deploy-bot")
    assert code == 0, err
    assert out.rstrip().endswith(
        "Apply complete: 2 added, 1 changed, 0 deleted, 1 adopted; 11 locations moved. Recorded as apply #1."
    )
    code, out, _ = run("plan", "--database-url", database_url, "--detailed-exitcode")
    assert code == 0
    assert out.splitlines()[-1] == (
        "No changes. The database matches the party files; 2 partner roles awaiting OCPI registration."
    )
    # MaEVe pushes new locations to every EMSP row: only the registered partner is one. DE-EMO, a partner
    # that has not registered, has no row until registration creates it.
    emsp = live.execute(LIST_OCPI_PARTIES_FOR_ROLE, ("EMSP",)).fetchall()
    assert [(row[2], row[3], row[5]) for row in emsp] == [("NL", "VLT", PEER_TOKEN)]
    assert live.execute("SELECT count(*) FROM ocpi_parties WHERE country_code = 'DE'").fetchone() == (0,)

    # Every orphan went to the default party, the owner key is valid, the peer is untouched byte for byte.
    assert live.execute("SELECT count(*) FROM locations WHERE party_role IS NULL").fetchone() == (0,)
    assert live.execute(
        "SELECT country_code, party_id, count(*) FROM locations GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall() == [("BE", "PEE", 1), ("GB", "TWK", 11)]
    assert store.location_key_state(live) == "valid"
    assert _peers(live) == peers
    adopted = live.execute(GET_OCPI_PARTY, ("EMSP", "NL", "VLT")).fetchone()
    assert adopted is not None and adopted[5] == PEER_TOKEN, "adopting kept the token registration gave"

    # MaEVe's own statements still work: a new location lands on the default party, a re-save keeps it.
    save_location(live, "LOC-NEW", "FR")
    assert location_owner(live, "LOC-NEW") == ("GB", "TWK", "CPO")
    save_party(live, "CPO", "FR", "NEW", token="t")
    assert len(live.execute(LIST_ALL_LOCATIONS, (100, 0)).fetchall()) == 13

    code, out, _ = run("history", "--database-url", database_url, "--format", "json")
    (entry,) = json.loads(out)
    assert (entry["id"], entry["revision"], entry["actor"]) == (1, "c0ffee", "deploy-bot")
    assert entry["summary"].startswith("Plan: 2 to add, 1 to change")
    assert {c["action"] for c in entry["changes"]} == {
        "run_migrations",
        "create",
        "adopt",
        "set_default_party",
        "move_locations",
    }
    everything = json.dumps(entry) + (workdir / "plan.json").read_text()
    assert PEER_TOKEN not in everything


def test_second_apply_reports_no_changes(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    monkey_env = {"GITHUB_SHA": "abc", "GITHUB_ACTOR": "octocat"}
    os.environ.update(monkey_env)
    try:
        assert run("apply", "--auto-approve", "--database-url", database_url)[0] == 0
        code, out, _ = run("apply", "--auto-approve", "--database-url", database_url)
    finally:
        for key in monkey_env:
            os.environ.pop(key, None)
    assert code == 0
    assert out.splitlines()[-1].startswith("No changes. The database matches the party files")
    rows = live.execute("SELECT id, revision, actor FROM reconciler_apply_history").fetchall()
    assert rows == [(1, "abc", "octocat (GitHub Actions)")]


def test_stale_plan_is_refused(run: Run, live: Connection, database_url: str, workdir: Path) -> None:
    assert run("plan", "--database-url", database_url, "--out", "plan.json")[0] == 0
    # DE-EMO registers: the plan reviewed said it awaits registration; now its rows would be adopted.
    save_party(live, "EMSP", "DE", "EMO", url="https://emo.example/versions", token=PEER_TOKEN)
    before = snapshot(live)
    code, _, err = run("apply", "plan.json", "--database-url", database_url)
    assert code == 1
    assert "stale plan: the database changed since the plan was made" in err and "Run plan again" in err
    assert snapshot(live) == before


def test_a_peer_refreshing_its_token_does_not_make_the_plan_stale(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    assert run("plan", "--database-url", database_url, "--out", "plan.json")[0] == 0
    save_party(live, "CPO", "BE", "PEE", url="https://peer.example/versions", token="rotated")
    assert run("apply", "plan.json", "--database-url", database_url)[0] == 0


def test_a_running_csms_does_not_make_a_reviewed_plan_stale(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    """After the first apply: MaEVe saving locations (they land on the default party) and an adopted peer
    refreshing its token leave a saved plan applicable; a new orphan identity group would not."""
    assert run("apply", "--auto-approve", "--database-url", database_url)[0] == 0
    (workdir / "parties" / "NL-VLT.yaml").write_text(
        (workdir / "parties" / "NL-VLT.yaml").read_text().replace("name: Voltkaart", "name: Voltkaart B.V.")
    )
    assert run("plan", "--database-url", database_url, "--out", "plan.json")[0] == 0
    save_location(live, "LOC-NEW-1", "FR")
    save_location(live, "LOC-GB-0", "GB", location_data("LOC-GB-0", "GB", Name="renamed"))
    save_party(live, "EMSP", "NL", "VLT", url="https://api.voltkaart.example/ocpi/versions", token="rotated")
    code, out, err = run("apply", "plan.json", "--database-url", database_url)
    assert code == 0, err
    assert "Apply complete: 0 added, 1 changed" in out
    assert location_owner(live, "LOC-NEW-1") == ("GB", "TWK", "CPO")


def test_an_edited_plan_file_is_refused(run: Run, live: Connection, database_url: str, workdir: Path) -> None:
    assert run("plan", "--database-url", database_url, "--out", "plan.json")[0] == 0
    document = json.loads((workdir / "plan.json").read_text())
    document["desired"]["parties"][0]["roles"][0]["business_details"]["name"] = "Changed after review"
    (workdir / "plan.json").write_text(json.dumps(document))
    before = snapshot(live)
    code, _, err = run("apply", "plan.json", "--database-url", database_url)
    assert code == 1 and "altered after it was made" in err
    assert snapshot(live) == before


def test_an_error_in_the_middle_changes_nothing(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    live.execute(
        "CREATE FUNCTION fail_on_move() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN IF NEW.party_id = 'TWK' THEN"
        " RAISE EXCEPTION 'injected failure while moving %', NEW.id; END IF; RETURN NEW; END $$"
    )
    live.execute(
        "CREATE TRIGGER zz_fail_on_move BEFORE UPDATE ON locations"
        " FOR EACH ROW EXECUTE FUNCTION fail_on_move()"
    )
    before = snapshot(live)
    code, _, err = run("apply", "--auto-approve", "--database-url", database_url)
    assert code == 1
    assert "apply failed: injected failure while moving" in err
    assert "nothing was changed (rolled back)" in err
    assert snapshot(live) == before, "the migrations, party rows and default party were rolled back too"


def test_apply_waits_for_the_lock_then_gives_up(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    with psycopg.connect(database_url, autocommit=True) as other:
        other.execute("BEGIN")
        other.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        before = snapshot(live)
        code, _, err = run(
            "apply", "--auto-approve", "--database-url", database_url, "--lock-timeout", "300ms"
        )
        assert code == 4
        assert "another apply (or db migrate) is running" in err and "waited 300ms" in err
        assert snapshot(live) == before
        other.execute("ROLLBACK")
    assert run("apply", "--auto-approve", "--database-url", database_url)[0] == 0


def test_a_killed_process_leaves_no_lock(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, psycopg\n"
            "c = psycopg.connect(sys.argv[1])\n"
            f"c.execute('SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY})')\n"
            "print('locked', flush=True)\n"
            "time.sleep(600)\n",
            database_url,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    holder.kill()
    holder.wait()
    holder.stdout.close()
    code, _, err = run("apply", "--auto-approve", "--database-url", database_url, "--lock-timeout", "10s")
    assert code == 0, err


def test_two_concurrent_applies_apply_once(live: Connection, database_url: str, workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCPI_PARTIES_", "PG", "GITHUB_"))}
    command = [sys.executable, "-m", "reconciler", "apply", "--auto-approve", "--database-url", database_url]
    results: list[subprocess.CompletedProcess[str]] = []

    def one() -> None:
        results.append(
            subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, check=False)
        )

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.returncode for r in results) == [0, 0], [r.stderr for r in results]
    outputs = sorted(r.stdout.splitlines()[-1] for r in results)
    assert outputs[0].startswith("Apply complete:")
    assert outputs[1].startswith("No changes. The database matches the party files")
    assert live.execute("SELECT count(*) FROM reconciler_apply_history").fetchone() == (1,)


def test_without_a_terminal_apply_needs_auto_approve(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    before = snapshot(live)
    code, _, err = run("apply", "--database-url", database_url)
    assert code == 1 and "stdin is not a terminal" in err and "--auto-approve" in err
    assert snapshot(live) == before


def test_tombstones_delete_and_hand_locations_to_the_default_party(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    spain = workdir / "parties" / "ES-CPO.yaml"
    spain.write_text(spain.read_text() + "moved_from:\n  - PT-CPO\n")
    assert run("apply", "--auto-approve", "--database-url", database_url)[0] == 0
    registered = _registered(live)
    assert location_owner(live, "LOC-PT-0") == ("ES", "CPO", "CPO")
    data = live.execute("SELECT location_data FROM locations WHERE id = 'LOC-PT-0'").fetchone()
    assert data is not None and (data[0]["country_code"], data[0]["party_id"]) == ("ES", "CPO")

    spain.write_text("country_code: ES\nparty_id: CPO\ndeleted: true\n")
    (workdir / "parties" / "NL-VLT.yaml").write_text("country_code: NL\nparty_id: VLT\ndeleted: true\n")
    code, out, err = run("apply", "--auto-approve", "--database-url", database_url)
    assert code == 0, err
    assert "  - ES-CPO CPO will be deleted: marked deleted at parties/ES-CPO.yaml:3:10" in out
    assert "  / NL-VLT EMSP will no longer be managed: marked deleted at parties/NL-VLT.yaml:3:10" in out
    assert location_owner(live, "LOC-PT-0") == ("GB", "TWK", "CPO")
    assert live.execute(GET_OCPI_PARTY, ("CPO", "ES", "CPO")).fetchone() is None
    # The tombstoned partner's row, url and token are byte for byte what registration left; only the
    # management record went.
    assert _registered(live) == registered
    assert live.execute("SELECT count(*) FROM reconciler_managed_parties").fetchone() == (1,)
    assert store.location_key_state(live) == "valid"
    assert _peers(live) != []


def test_removing_a_file_deletes_nothing_without_permission(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    assert run("apply", "--auto-approve", "--database-url", database_url)[0] == 0
    (workdir / "parties" / "ES-CPO.yaml").unlink()
    before = snapshot(live)
    code, out, err = run("apply", "--auto-approve", "--database-url", database_url)
    assert code == 1 and "blocked by deletion protection" in err and "nothing was changed" in err
    assert "  x ES-CPO CPO will NOT be deleted" in out
    assert snapshot(live) == before
    assert run("apply", "--auto-approve", "--allow-delete", "--database-url", database_url)[0] == 0
    assert live.execute(GET_OCPI_PARTY, ("CPO", "ES", "CPO")).fetchone() is None


def test_removing_a_partner_file_keeps_its_credentials(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    """Registration owns a partner's row: a removed file, with --allow-delete even, releases it."""
    assert run("apply", "--auto-approve", "--database-url", database_url)[0] == 0
    registered = _registered(live)
    (workdir / "parties" / "NL-VLT.yaml").unlink()
    code, out, err = run("apply", "--auto-approve", "--allow-delete", "--database-url", database_url)
    assert code == 0, err
    assert "Apply complete: 0 added, 0 changed, 0 deleted, 0 adopted, 1 released; 0 locations moved." in out
    assert _registered(live) == registered
    emsp = live.execute(LIST_OCPI_PARTIES_FOR_ROLE, ("EMSP",)).fetchall()
    assert [(row[2], row[3], row[4], row[5]) for row in emsp] == [
        ("NL", "VLT", "https://api.voltkaart.example/ocpi/versions", PEER_TOKEN)
    ]
    code, out, _ = run("plan", "--database-url", database_url, "--detailed-exitcode")
    assert code == 0 and "  NL-VLT  EMSP  https://api.voltkaart.example/ocpi/versions" in out


def test_a_token_rotation_survives_any_number_of_applies(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    """Re-registration writes a new url and token: apply leaves the pair as registration wrote it."""
    assert run("apply", "--auto-approve", "--database-url", database_url)[0] == 0
    save_party(live, "EMSP", "NL", "VLT", url="https://new.voltkaart.example/versions", token="rotated-7")
    for _ in range(3):
        code, out, err = run("apply", "--auto-approve", "--database-url", database_url)
        assert code == 0, err
        assert out.splitlines()[-1].startswith("No changes. The database matches the party files")
    row = live.execute(GET_OCPI_PARTY, ("EMSP", "NL", "VLT")).fetchone()
    assert row is not None and (row[4], row[5]) == ("https://new.voltkaart.example/versions", "rotated-7")
    code, out, _ = run("plan", "--database-url", database_url, "--detailed-exitcode")
    assert code == 0
    # The file still expects the old url: a warning for the reviewer, never a revert.
    assert "OCPI registration recorded the url 'https://new.voltkaart.example/versions'" in out


def test_an_apply_that_moves_nothing_writes_no_location_row(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    assert run("apply", "--auto-approve", "--database-url", database_url)[0] == 0
    versions = live.execute("SELECT id, xmin::text FROM locations ORDER BY id").fetchall()
    spain = workdir / "parties" / "ES-CPO.yaml"
    spain.write_text(spain.read_text().replace("name: Carga Ibérica", "name: Carga Ibérica S.L."))
    code, out, err = run("apply", "--auto-approve", "--database-url", database_url)
    assert code == 0, err
    assert "Apply complete: 0 added, 1 changed" in out
    assert live.execute("SELECT id, xmin::text FROM locations ORDER BY id").fetchall() == versions


def test_a_location_saved_by_maeve_keeps_the_owner_apply_gave_it(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    spain = workdir / "parties" / "ES-CPO.yaml"
    spain.write_text(spain.read_text() + "locations:\n  - LOC-GB-1\n")
    assert run("apply", "--auto-approve", "--database-url", database_url)[0] == 0
    assert location_owner(live, "LOC-GB-1") == ("ES", "CPO", "CPO")
    save_location(live, "LOC-GB-1", "GB", location_data("LOC-GB-1", "GB", Name="renamed"))
    assert location_owner(live, "LOC-GB-1") == ("ES", "CPO", "CPO")
    assert run("plan", "--database-url", database_url, "--detailed-exitcode")[0] == 0


def _on_terminal(args: list[str], cwd: Path, answer: bytes) -> tuple[int, str]:
    """Run the command with stdin and stdout on a pseudo-terminal, typing `answer` at the prompt."""
    import pty
    import select

    main_fd, child_fd = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCPI_PARTIES_", "PG", "GITHUB_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        stdin=child_fd,
        stdout=child_fd,
        stderr=subprocess.DEVNULL,
        env={**env, "NO_COLOR": "1"},
    )
    os.close(child_fd)
    output = b""
    answered = False
    while True:
        ready, _, _ = select.select([main_fd], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
        if not answered and b"Apply these changes?" in output:
            os.write(main_fd, answer)
            answered = True
    process.wait(timeout=60)
    os.close(main_fd)
    return process.returncode, output.decode()


@pytest.mark.parametrize(("answer", "applied"), [(b"y\n", True), (b"n\n", False), (b"\n", False)])
def test_apply_asks_for_confirmation_on_a_terminal(
    live: Connection, database_url: str, workdir: Path, answer: bytes, applied: bool
) -> None:
    code, output = _on_terminal(["apply", "--database-url", database_url], workdir, answer)
    assert "Plan: 2 to add" in output and "Apply these changes? [y/N]" in output
    history = live.execute("SELECT to_regclass('reconciler_apply_history') IS NOT NULL").fetchone()
    if applied:
        assert code == 0 and "Apply complete:" in output
        assert history == (True,)
    else:
        assert code == 1 and "Apply complete:" not in output
        assert history == (False,), "declining changed nothing, not even the migrations"


def test_a_refused_plan_never_waits_for_the_lock_on_locations(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    """A plan refused on the first reading (here a stale plan file whose locations would move) is refused at
    once: apply never asks for the lock that makes MaEVe's location writes wait."""
    code, out, _ = run("plan", "--out", "plan.json", "--database-url", database_url)
    assert code == 0 and "locations to move" in out
    save_location(live, "LOC-GB-9", "GB")  # MaEVe writes another location: the reviewed plan is stale
    before = snapshot(live)
    with psycopg.connect(database_url, autocommit=True) as maeve:
        maeve.execute("BEGIN")
        maeve.execute("LOCK TABLE locations IN ROW EXCLUSIVE MODE")  # as MaEVe's upsert holds it
        code, _, err = run("apply", "plan.json", "--database-url", database_url, "--lock-timeout", "300ms")
        maeve.execute("ROLLBACK")
    assert code == 1 and "stale plan" in err, err
    assert snapshot(live) == before
