"""docs/migrating-an-existing-deployment.md, run as written against a database shaped like a live MaEVe.

The database holds what a running deployment holds before ocpi-parties: peers with several roles per
identity written by OCPI registration (with tokens), locations MaEVe saved under party XXX with countries
GB, BE and XX, and the own party only in manager.toml. The test runs every `ocpi-parties` line and every
SQL block of the document in order, then checks what the document promises: nothing lost, every location
owned, peers untouched, MaEVe's own statements working, and the way back returning MaEVe's tables to where
they were.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from conftest import Run
from maeve_sql import GET_LOCATION, location_data, location_owner, save_location, save_party

from reconciler.database import Connection
from reconciler.migrations import available

DOC = Path(__file__).parents[2] / "docs" / "migrating-an-existing-deployment.md"
_BLOCK = re.compile(r"^```(sh|sql)\n(.*?)^```", re.M | re.S)

PEERS = [
    ("CPO", "DE", "EMO", "https://ocpi.elektromobil.example/versions", "emo-cpo-token-7d1f"),
    ("EMSP", "DE", "EMO", "https://ocpi.elektromobil.example/versions", "emo-emsp-token-a31c"),
    ("EMSP", "NL", "VLT", "https://api.voltkaart.example/ocpi/versions", "vlt-token-99be"),
    ("CPO", "FR", "ION", "https://ocpi.ion.example/cpo/versions", "ion-cpo-token-0c2a"),
    ("EMSP", "FR", "ION", "https://ocpi.ion.example/emsp/versions", "ion-emsp-token-5e4d"),
]
MANAGER_TOML = """\
[api]
addr = ":9410"
org_name = "Thoughtworks EV Charging"

[ocpi]
addr = ":9090"
external_url = "https://ocpi.csms.example"
country_code = "GB"
party_id = "TWK"
"""


def _steps(section: str) -> list[tuple[str, str]]:
    """The (kind, text) of each sh and sql block in the document, before or from "## The way back"."""
    text = DOC.read_text(encoding="utf-8")
    head, _, tail = text.partition("\n## The way back\n")
    return [(m.group(1), m.group(2)) for m in _BLOCK.finditer(head if section == "migrate" else tail)]


def _maeve_rows(connection: Connection) -> list[list[tuple[object, ...]]]:
    """MaEVe's own columns of its two tables, every row."""
    return [
        connection.execute(
            "SELECT id, role, country_code, party_id, url, token, created_at, updated_at FROM ocpi_parties"
            " ORDER BY id"
        ).fetchall(),
        connection.execute(
            "SELECT id, country_code, party_id, location_data, created_at FROM locations ORDER BY id"
        ).fetchall(),
    ]


@pytest.fixture
def deployment(connection: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Connection:
    for role, country_code, party_id, url, token in PEERS:
        save_party(connection, role, country_code, party_id, url=url, token=token)
    for country_code, count in (("GB", 5), ("BE", 3), ("XX", 2)):
        for number in range(count):
            location = f"LOC-{country_code}-{number}"
            country = "" if country_code == "XX" else country_code  # MaEVe writes XX for an empty Country
            save_location(connection, location, country_code, location_data(location, country))
    connection.execute(  # another writer's standard OCPI JSON, whose keys must follow the row and come back
        "INSERT INTO locations (id, country_code, party_id, location_data)"
        " VALUES ('LOC-OCPI-1', 'BE', 'XXX', %s)",
        (location_data("LOC-OCPI-1", country_code="BE", party_id="XXX"),),
    )
    (tmp_path / "manager.toml").write_text(MANAGER_TOML, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return connection


def _run_steps(run: Run, connection: Connection, steps: list[tuple[str, str]]) -> dict[str, list[object]]:
    """Run each step; return the results of the SQL blocks marked `-- counts`, in order, and every output."""
    seen: dict[str, list[object]] = {"counts": [], "output": []}
    for kind, text in steps:
        if kind == "sql":
            cursor = connection.execute(text)
            if text.startswith("-- counts"):
                seen["counts"].append(cursor.fetchone())
            elif cursor.description is not None:
                seen["output"].append(cursor.fetchall())
            continue
        for line in text.splitlines():
            if not line.startswith("ocpi-parties "):
                continue
            code, out, err = run(*shlex.split(line)[1:])
            assert code == 0, f"{line}: {err}"
            seen["output"].extend([line, out, err])
    return seen


def test_the_documented_migration_loses_nothing_and_the_way_back_restores_maeve(
    run: Run, deployment: Connection, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OCPI_PARTIES_DATABASE_URL", database_url)
    before = _maeve_rows(deployment)

    seen = _run_steps(run, deployment, _steps("migrate"))

    # The files: one per identity, the own party from the config, all valid, no token anywhere.
    files = sorted(p.name for p in (tmp_path / "parties").iterdir())
    assert files == ["DE-EMO.yaml", "FR-ION.yaml", "GB-TWK.yaml", "NL-VLT.yaml", "default-party.yaml"]
    written = "".join((tmp_path / "parties" / name).read_text() for name in files)
    everything = written + "".join(str(item) for item in seen["output"])
    assert not any(token in everything for *_, token in PEERS)
    assert "- role: CPO\n  - role: EMSP\n" in (tmp_path / "parties" / "DE-EMO.yaml").read_text()

    # The plan read like a migration report; the last plan found nothing left to do.
    outputs = seen["output"]

    def output_of(command: str) -> str:
        """What the last run of `command` printed on stdout."""
        return str(outputs[len(outputs) - 1 - outputs[::-1].index(command) + 1])

    plan_output = output_of("ocpi-parties plan parties --out plan.json")
    assert "* NL-VLT EMSP will be adopted" in plan_output and "+ GB-TWK CPO will be created" in plan_output
    assert "Locations: 11 recorded, 11 locations owned by no CPO now." in plan_output
    migrations = len(available())
    assert (
        f"Plan: 1 to add, 1 to change, 0 to delete, 5 to adopt; 11 locations to move; {migrations} migrations"
        in plan_output
    )
    assert output_of("ocpi-parties plan parties") == "No changes. The database matches the party files.\n"
    assert output_of("ocpi-parties db status").endswith("Location owner key: valid\n")

    # Nothing lost: the same locations, the peers' urls and tokens unchanged, one row more (the own party).
    counted_before, counted_after = seen["counts"]
    assert counted_after[0] == counted_before[0] + 1
    assert counted_after[1:] == counted_before[1:]
    assert seen["output"][-1] == [(0,)], "no location without an owner"
    assert deployment.execute("SELECT count(*) FROM locations WHERE party_id = 'XXX'").fetchone() == (0,)
    peers_now = deployment.execute(
        "SELECT role, country_code, party_id, url, token FROM ocpi_parties WHERE token <> '' ORDER BY id"
    ).fetchall()
    assert peers_now == [tuple(peer) for peer in PEERS]
    moved = deployment.execute(GET_LOCATION, ("LOC-OCPI-1",)).fetchone()
    assert moved is not None and (moved[3]["country_code"], moved[3]["party_id"]) == ("GB", "TWK")

    # MaEVe's own statements keep working: a new location lands on the default party, a re-save keeps it.
    save_location(deployment, "LOC-NEW-1", "FR")
    assert location_owner(deployment, "LOC-NEW-1") == ("GB", "TWK", "CPO")
    save_location(deployment, "LOC-GB-0", "GB", location_data("LOC-GB-0", "GB", Name="renamed"))
    assert location_owner(deployment, "LOC-GB-0") == ("GB", "TWK", "CPO")
    save_party(deployment, "EMSP", "NL", "VLT", url=PEERS[2][3], token=PEERS[2][4])
    deployment.execute("DELETE FROM locations WHERE id = 'LOC-NEW-1'")
    deployment.execute(
        "UPDATE locations SET location_data = %s WHERE id = 'LOC-GB-0'", (location_data("LOC-GB-0", "GB"),)
    )

    # The way back: MaEVe's tables hold exactly what they held before, and ocpi-parties left no trace.
    _run_steps(run, deployment, _steps("way back"))
    after = _maeve_rows(deployment)
    assert after[1] == before[1]
    assert [r[:6] for r in after[0]] == [r[:6] for r in before[0]]
    leftovers = deployment.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        " AND table_name NOT IN ('ocpi_registrations', 'ocpi_parties', 'locations') ORDER BY 1"
    ).fetchall()
    assert leftovers == []
    columns = deployment.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'locations' ORDER BY 1"
    ).fetchall()
    assert ("party_role",) not in columns


def test_import_refuses_to_overwrite_and_writes_nothing(
    run: Run, deployment: Connection, database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "parties").mkdir()
    (tmp_path / "parties" / "NL-VLT.yaml").write_text("# written by hand\n")
    code, out, err = run("import", "--database-url", database_url)
    assert (code, out) == (1, "")
    assert err.endswith(
        "error: parties/NL-VLT.yaml already exists: nothing was written (--force overwrites)\n"
    )
    assert sorted(p.name for p in (tmp_path / "parties").iterdir()) == ["NL-VLT.yaml"]
    code, out, _ = run("import", "--database-url", database_url, "--force", "--identity", "nl-vlt")
    assert code == 0 and out.startswith("wrote parties/NL-VLT.yaml: EMSP\n")
    text = (tmp_path / "parties" / "NL-VLT.yaml").read_text()
    assert "role: EMSP" in text
    # Registration wrote NL-VLT's row: a partner, whose url (with its token) stays registration's.
    assert "\nkind: partner  # a roaming peer" in text and "\nurl:" not in text


def test_import_filters_and_reports_what_it_cannot_declare(
    run: Run, deployment: Connection, database_url: str, tmp_path: Path
) -> None:
    save_party(deployment, "CPO", "xx", "abc", token="t")  # a peer that sent a lower-case identity
    code, out, err = run("import", "--database-url", database_url, "--role", "cpo", "--out", "cpos")
    assert code == 0
    assert out.splitlines()[:2] == ["wrote cpos/DE-EMO.yaml: CPO", "wrote cpos/FR-ION.yaml: CPO"]
    assert "warning: xx-abc is not imported: country_code 'xx' is not two upper-case letters" in err
    code, _, err = run("import", "--database-url", database_url, "--identity", "GB-NOP", "--out", "none")
    assert code == 1 and "nothing was written" in err
    assert not (tmp_path / "none").exists()


def test_import_of_an_empty_database_writes_nothing(
    run: Run, connection: Connection, database_url: str
) -> None:
    code, out, _ = run("import", "--database-url", database_url)
    assert code == 0 and out.endswith("holds no party rows: nothing to import.\n")


def test_init_needs_one_source_and_keeps_what_matches(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("init")[0] == 2
    assert run("init", "--party", "GB-TWK", "--from-maeve-config", "x.toml")[0] == 2
    code, out, _ = run("init", "--party", "gb-twk", "--name", "Own CPO")
    assert code == 0 and "wrote parties/GB-TWK.yaml: CPO\nwrote parties/default-party.yaml\n" in out
    assert "name: Own CPO\n" in (tmp_path / "parties" / "GB-TWK.yaml").read_text()
    assert "\nkind: hosted  # this CSMS operates it" in (tmp_path / "parties" / "GB-TWK.yaml").read_text()
    code, out, _ = run("init", "--party", "GB-TWK")
    assert code == 0 and out.startswith(
        "kept parties/GB-TWK.yaml, which declares the hosted CPO role of GB-TWK\n"
        "kept parties/default-party.yaml, which names GB-TWK\n"
    )
    assert "business name" not in out  # the kept file's name is its own
    code, _, err = run("init", "--party", "GB-ABC")
    assert code == 1 and "parties/default-party.yaml already exists: nothing was written" in err
    assert not (tmp_path / "parties" / "GB-ABC.yaml").exists()
    assert run("validate")[0] == 0
    own = tmp_path / "parties" / "GB-TWK.yaml"
    own.write_text(own.read_text().replace("kind: hosted", "kind: partner"))
    code, _, err = run("init", "--party", "GB-TWK")  # a partner CPO cannot be the default party: not kept
    assert code == 1 and "parties/GB-TWK.yaml already exists: nothing was written" in err


def test_init_without_a_name_writes_a_placeholder_that_validate_warns_about(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run("init", "--party", "GB-TWK")
    text = (tmp_path / "parties" / "GB-TWK.yaml").read_text()
    assert (
        code == 0 and "name: business name needed  # a placeholder: write the party's business name" in text
    )
    assert "not recorded in the database" not in text + out
    assert "GB-TWK needs its business name" in out and "in parties/GB-TWK.yaml" in out
    code, out, _ = run("validate")
    assert code == 0 and "parties/GB-TWK.yaml:7:9: $.business_details.name: warning: the business name" in out
    assert run("validate", "--strict")[0] == 1
    code, out, _ = run("init", "--party", "GB-TWK")
    assert code == 0 and "kept parties/GB-TWK.yaml" in out and "business name" not in out


def test_import_after_apply_gives_back_files_that_plan_nothing(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    """The example's rows, once applied, import as files equal in meaning: only the unmanaged peer is new."""
    assert run("apply", "--auto-approve", "--database-url", database_url)[0] == 0
    code, out, _ = run("import", "--out", "again", "--database-url", database_url)
    assert code == 0 and "wrote again/default-party.yaml\n" in out
    code, out, _ = run("plan", "again", "--database-url", database_url)
    assert code == 0
    assert (
        out.splitlines()[-1] == "Plan: 0 to add, 0 to change, 0 to delete, 1 to adopt; 0 locations to move."
    )
    assert "* BE-PEE CPO will be adopted" in out
    code, out, _ = run(
        "import",
        "--out",
        "managed",
        "--identity",
        "GB-TWK",
        "--identity",
        "ES-CPO",
        "--identity",
        "DE-EMO",
        "--identity",
        "NL-VLT",
        "--database-url",
        database_url,
    )
    assert code == 0
    code, out, _ = run("plan", "managed", "--database-url", database_url, "--detailed-exitcode")
    assert (code, out.splitlines()[-1]) == (0, "No changes. The database matches the party files.")


def test_import_writes_files_that_fmt_leaves_as_they_are(
    run: Run, deployment: Connection, database_url: str, tmp_path: Path
) -> None:
    code, out, _ = run("import", "--database-url", database_url)
    assert code == 0 and out.startswith("wrote parties/")
    assert run("fmt", "--check", "parties") == (0, "", "")
