"""The database commands end to end: `db init/migrate/status`, `parties`, `locations`, `default`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from conftest import Run
from maeve_sql import save_location, save_party, snapshot

from reconciler import migrations, store
from reconciler.connect import LIBPQ_VARIABLES
from reconciler.database import Connection
from reconciler.model import Identity
from reconciler.output import database as database_output


@pytest.fixture(autouse=True)
def _nothing_from_the_environment(no_configured_database: None) -> None:
    """Each test names its database itself."""


def create_own(connection: Connection, role: str, country_code: str, party_id: str, url: str) -> int:
    """A row as apply creates it for a hosted role (no token), recorded as created by ocpi-parties."""
    row = connection.execute(
        "INSERT INTO ocpi_parties (role, country_code, party_id, url, token) VALUES (%s, %s, %s, %s, '')"
        " RETURNING id",
        (role, country_code, party_id, url),
    ).fetchone()
    assert row is not None
    manage(connection, int(row[0]), "created")
    return int(row[0])


def manage(connection: Connection, row_id: int, how: str) -> None:
    connection.execute(
        "INSERT INTO reconciler_managed_parties (party_row_id, row_created_at, how)"
        " SELECT id, created_at, %s FROM ocpi_parties WHERE id = %s",
        (how, row_id),
    )


@pytest.fixture
def seeded(migrated: Connection) -> Connection:
    """GB-TWK: a hosted CPO that ocpi-parties created, the default party. DE-EMO EMSP: registered,
    unmanaged."""
    own = create_own(migrated, "CPO", "GB", "TWK", "https://twk.example/versions")
    migrated.execute(
        "UPDATE ocpi_parties SET business_details = %s WHERE id = %s",
        ('{"name": "The Wallbox Co", "website": "https://twk.example"}', own),
    )
    save_party(migrated, "EMSP", "DE", "EMO", url="https://emo.example/versions", token="peer-token")
    for number in range(3):
        save_location(migrated, f"BE-{number}", "BE")
    store.set_default_party(migrated, Identity("GB", "TWK"))
    for number in range(4):
        save_location(migrated, f"GB-{number}", "GB")
    return migrated


def test_db_init_creates_maeve_tables_only_where_absent(run: Run, empty_database_url: str) -> None:
    code, out, _ = run("db", "init", "--database-url", empty_database_url)
    assert code == 0
    assert out.startswith("Created MaEVe's tables ocpi_registrations, ocpi_parties, locations in ")
    code, out, _ = run("db", "init", "--database-url", empty_database_url)
    assert (code, "already exist" in out) == (0, True)
    with psycopg.connect(empty_database_url) as connection:
        assert connection.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,)


def test_db_init_sample_data_writes_what_a_running_maeve_holds(
    run: Run, connection: Connection, database_url: str
) -> None:
    code, out, err = run("db", "init", "--sample-data", "--database-url", database_url)
    assert (code, err) == (0, "")
    assert out == (
        "Wrote sample data as a running MaEVe would: 2 parties from OCPI registration, "
        "12 locations recorded under no party's CPO row.\n"
    )
    assert connection.execute(
        "SELECT country_code, party_id, count(*) FROM locations GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall() == [("BE", "XXX", 3), ("FR", "CPO", 1), ("GB", "XXX", 4), ("PT", "CPO", 2), ("XX", "XXX", 2)]
    tokens = [row[0] for row in connection.execute("SELECT token FROM ocpi_parties ORDER BY id")]
    assert len(tokens) == 2 and all(len(token) >= 32 for token in tokens) and tokens[0] != tokens[1]
    lisbon = connection.execute("SELECT location_data FROM locations WHERE id = 'LOC-LIS-1'").fetchone()
    assert lisbon is not None and (lisbon[0]["country_code"], lisbon[0]["party_id"]) == ("PT", "CPO")
    before = connection.execute("SELECT count(*), max(updated_at) FROM locations").fetchone()

    code, out, err = run("db", "init", "--sample-data", "--database-url", database_url)
    assert (code, out) == (1, "")
    assert err.endswith(
        "already holds 2 parties and 12 locations: sample data goes only into an empty "
        "database, so it never mixes with real rows\n"
    )
    assert connection.execute("SELECT count(*), max(updated_at) FROM locations").fetchone() == before
    assert not any(token in out + err for token in tokens)


def test_db_migrate_then_status(run: Run, database_url: str) -> None:
    code, out, err = run("db", "migrate", "--database-url", database_url)
    assert (code, err) == (0, "")
    assert out.splitlines()[0].startswith("applied  0001_system_config (")
    assert "Location owner key: valid." in out
    code, out, _ = run("db", "migrate", "--database-url", database_url)
    assert out.startswith("Nothing to do")
    code, out, _ = run("db", "status", "--database-url", database_url)
    assert code == 0
    assert "  up to date" in out
    assert "Parties: 0 rows, 0 managed, 0 not managed" in out


def test_db_migrate_down_and_status_shows_pending(run: Run, database_url: str) -> None:
    run("db", "migrate", "--database-url", database_url)
    code, out, _ = run("db", "migrate", "--to", "0", "--yes", "--database-url", database_url)
    assert code == 0
    assert out.splitlines()[0].startswith(f"reverted {migrations.available()[-1].label}")
    code, out, _ = run("db", "status", "--database-url", database_url)
    assert f"{len(migrations.available())} pending: run `ocpi-parties db migrate`" in out
    assert "Location owner key: absent" in out


def test_db_status_of_a_seeded_database(run: Run, seeded: Connection, database_url: str) -> None:
    code, out, _ = run("db", "status", "--database-url", database_url)
    assert code == 0
    assert "Default party: GB-TWK" in out
    assert "Parties: 2 rows, 1 managed, 1 not managed" in out
    assert "Locations: 7, 3 orphan (no CPO party)" in out
    assert "Location owner key: not valid" in out


def test_parties_list_text_and_role_filter(run: Run, seeded: Connection, database_url: str) -> None:
    code, out, _ = run("parties", "list", "--database-url", database_url)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["PARTY", "ROLE", "MANAGED", "NAME", "URL"]
    assert lines[1].split()[:3] == ["DE-EMO", "EMSP", "no"]
    assert lines[2].split()[:3] == ["GB-TWK", "CPO", "created"]
    assert "token" not in out
    code, out, _ = run("parties", "list", "--role", "cpo", "--database-url", database_url)
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["GB-TWK"]


def test_parties_list_json_pages(run: Run, seeded: Connection, database_url: str) -> None:
    code, out, _ = run(
        "parties", "list", "--format", "json", "--offset", "1", "--limit", "5", "--database-url", database_url
    )
    document = json.loads(out)
    assert (code, document["offset"], document["limit"]) == (0, 1, 5)
    assert [p["party"] for p in document["parties"]] == ["GB-TWK"]
    party = document["parties"][0]
    assert party["business_details"] == {"name": "The Wallbox Co", "website": "https://twk.example"}
    assert party["managed"] == "created"
    assert "token" not in party
    assert "peer-token" not in out


def test_parties_show(run: Run, seeded: Connection, database_url: str) -> None:
    code, out, _ = run("parties", "show", "gb-twk", "--database-url", database_url)
    assert code == 0
    assert out.splitlines()[0] == "GB-TWK (default party)"
    assert "    name:     The Wallbox Co" in out
    assert "    managed:  created" in out
    assert "  locations: 4" in out
    code, out, _ = run("parties", "show", "DE-EMO", "--format", "json", "--database-url", database_url)
    document = json.loads(out)
    assert (document["party"], document["is_default"], [r["role"] for r in document["roles"]]) == (
        "DE-EMO",
        False,
        ["EMSP"],
    )


def test_parties_list_and_show_say_which_rows_ocpi_parties_created_and_which_it_adopted(
    run: Run, seeded: Connection, database_url: str
) -> None:
    """Created: a hosted row ocpi-parties wrote, without credentials. Adopted: a registered row (it holds
    credentials) whose business details ocpi-parties manages. No: a row it does not manage."""
    vlt = save_party(seeded, "EMSP", "NL", "VLT", url="https://vlt.example/versions", token="vlt-token")
    manage(seeded, int(str(vlt[0])), "adopted")
    code, out, _ = run("parties", "list", "--database-url", database_url)
    assert code == 0
    assert [line.split()[:3] for line in out.splitlines()[1:]] == [
        ["DE-EMO", "EMSP", "no"],
        ["GB-TWK", "CPO", "created"],
        ["NL-VLT", "EMSP", "adopted"],
    ]
    code, out, _ = run("parties", "list", "--format", "json", "--database-url", database_url)
    document = json.loads(out)
    assert [(p["party"], p["managed"]) for p in document["parties"]] == [
        ("DE-EMO", None),
        ("GB-TWK", "created"),
        ("NL-VLT", "adopted"),
    ]
    assert "vlt-token" not in out and "peer-token" not in out
    code, out, _ = run("parties", "show", "NL-VLT", "--database-url", database_url)
    assert "    managed:  adopted" in out.splitlines()


def test_parties_show_and_locations_find_a_registration_row_spelled_in_lower_case(
    run: Run, seeded: Connection, database_url: str
) -> None:
    save_party(seeded, "CPO", "es", "cpo", url="https://es.example/versions", token="es-token")
    for number in range(2):  # another writer gives the identity; the guard gives them to the es/cpo row
        seeded.execute(
            "INSERT INTO locations (id, country_code, party_id, location_data) VALUES (%s, 'ES', 'CPO', %s)",
            (f"ES-{number}", json.dumps({"id": f"ES-{number}", "name": f"Sitio {number}", "country": "ESP"})),
        )
    owners = seeded.execute(
        "SELECT DISTINCT country_code, party_id, party_role FROM locations WHERE id LIKE 'ES-%'"
    ).fetchall()
    assert owners == [("es", "cpo", "CPO")]
    for asked in ("ES-CPO", "es-cpo", "Es-cPo"):
        code, out, err = run("parties", "show", asked, "--database-url", database_url)
        assert (code, err) == (0, ""), asked
        lines = out.splitlines()
        assert lines[0] == "ES-CPO"
        assert "  CPO" in lines and "    url:      https://es.example/versions" in lines
        assert "  locations: 2" in lines
        code, out, _ = run("locations", asked, "--database-url", database_url)
        assert code == 0
        assert sorted(line.split()[0] for line in out.splitlines()[1:]) == ["ES-0", "ES-1"], asked
    code, out, _ = run("parties", "show", "es-cpo", "--format", "json", "--database-url", database_url)
    roles = json.loads(out)["roles"]
    assert [(r["country_code"], r["party_id"], r["role"], r["managed"]) for r in roles] == [
        ("es", "cpo", "CPO", None)
    ]


def test_parties_show_of_an_unknown_party_exits_1(run: Run, seeded: Connection, database_url: str) -> None:
    code, out, err = run("parties", "show", "FR-ABC", "--database-url", database_url)
    assert (code, out, err) == (1, "", "error: no party FR-ABC in the database\n")


def test_a_malformed_identity_is_a_usage_error(run: Run, database_url: str) -> None:
    code, _, err = run("locations", "GBTWK", "--database-url", database_url)
    assert (code, err) == (2, "error: 'GBTWK' is not a party identity such as GB-TWK\n")


def test_locations_pages(run: Run, seeded: Connection, database_url: str) -> None:
    code, out, _ = run("locations", "GB-TWK", "--limit", "3", "--database-url", database_url)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "CITY", "COUNTRY", "OWNED"]
    assert len(lines) == 5
    assert lines[-1] == "showing 1–3 of 4 locations; the next page: --offset 3"  # noqa: RUF001
    code, out, _ = run(
        "locations", "GB-TWK", "--limit", "3", "--format", "json", "--database-url", database_url
    )
    document = json.loads(out)
    assert (document["offset"], document["limit"], document["total"], document["next_offset"]) == (0, 3, 4, 3)
    code, out, _ = run(
        "locations", "GB-TWK", "--offset", "3", "--format", "json", "--database-url", database_url
    )
    document = json.loads(out)
    assert len(document["locations"]) == 1
    assert (document["total"], document["next_offset"]) == (4, None)
    code, out, _ = run("locations", "GB-TWK", "--offset", "3", "--database-url", database_url)
    assert out.splitlines()[-1] == "showing 4–4 of 4 locations"  # noqa: RUF001
    code, out, _ = run("locations", "BE-XXX", "--database-url", database_url)
    assert out.count("no (orphan)") == 3
    assert "showing" not in out, "the whole list needs no position"
    code, out, _ = run("locations", "GB-TWK", "--offset", "10", "--database-url", database_url)
    assert out == "No locations recorded under GB-TWK from offset 10 (of 4).\n"
    code, out, _ = run("locations", "FR-NON", "--format", "json", "--database-url", database_url)
    assert (json.loads(out)["total"], json.loads(out)["next_offset"], json.loads(out)["locations"]) == (
        0,
        None,
        [],
    )


def test_parties_list_pages(run: Run, seeded: Connection, database_url: str) -> None:
    code, out, _ = run("parties", "list", "--limit", "1", "--offset", "1", "--database-url", database_url)
    assert code == 0
    assert out.splitlines()[1].split()[:2] == ["GB-TWK", "CPO"]
    assert out.splitlines()[-1] == "showing 2–2 of 2 party rows"  # noqa: RUF001
    code, out, _ = run("parties", "list", "--limit", "1", "--format", "json", "--database-url", database_url)
    document = json.loads(out)
    assert {k: document[k] for k in ("offset", "limit", "total", "next_offset")} == {
        "offset": 0,
        "limit": 1,
        "total": 2,
        "next_offset": 1,
    }
    code, out, _ = run(
        "parties", "list", "--role", "emsp", "--format", "json", "--database-url", database_url
    )
    assert (json.loads(out)["total"], json.loads(out)["next_offset"]) == (1, None)
    code, out, _ = run("parties", "list", "--offset", "5", "--database-url", database_url)
    assert out == "No parties from offset 5 (of 2).\n"


def test_showing_says_where_the_page_is_in_thousands() -> None:
    page = store.Page(rows=list(range(50)), offset=50, limit=50, total=1234)
    assert database_output.showing(page, "party rows") == [
        "showing 51–100 of 1,234 party rows; the next page: --offset 100"  # noqa: RUF001
    ]
    assert database_output.showing(store.Page(rows=[1, 2], offset=0, limit=50, total=2), "locations") == []


def test_json_time_stamps_carry_the_time_zone_maeve_wrote_them_in(
    run: Run, seeded: Connection, database_url: str
) -> None:
    """MaEVe's created_at/updated_at are `timestamp without time zone` holding NOW() in the database's
    TimeZone: given that zone, the instant read back is the instant written."""
    seeded.execute(f"ALTER DATABASE {seeded.info.dbname} SET timezone = 'America/New_York'")
    with psycopg.connect(database_url, autocommit=True) as maeve:
        maeve.execute("UPDATE ocpi_parties SET updated_at = NOW() WHERE role = 'EMSP'")
        maeve.execute("UPDATE locations SET updated_at = NOW() WHERE id = 'GB-0'")
        written = maeve.execute("SELECT NOW()").fetchone()
    assert written is not None
    _code, out, _ = run("parties", "show", "DE-EMO", "--format", "json", "--database-url", database_url)
    (emsp,) = json.loads(out)["roles"]
    for stamp in (emsp["created_at"], emsp["updated_at"]):
        assert datetime.fromisoformat(stamp).tzinfo is not None, stamp
    assert abs(datetime.fromisoformat(emsp["updated_at"]) - written[0]) < timedelta(seconds=5)
    _code, out, _ = run("locations", "GB-TWK", "--format", "json", "--database-url", database_url)
    (gb0,) = [r for r in json.loads(out)["locations"] if r["id"] == "GB-0"]
    assert abs(datetime.fromisoformat(gb0["updated_at"]) - written[0]) < timedelta(seconds=5)
    out = run("parties", "list", "--format", "json", "--database-url", database_url)[1]
    assert all(datetime.fromisoformat(p["updated_at"]).tzinfo for p in json.loads(out)["parties"])


def test_json_gives_null_for_absent_values(run: Run, seeded: Connection, database_url: str) -> None:
    create_own(seeded, "EMSP", "GB", "TWK", "")
    save_location(seeded, "GB-EMPTY", "GB", json.dumps({"id": "GB-EMPTY", "name": "", "city": ""}), "TWK")
    out = run("parties", "show", "GB-TWK", "--format", "json", "--database-url", database_url)[1]
    assert [(r["role"], r["url"]) for r in json.loads(out)["roles"]] == [
        ("CPO", "https://twk.example/versions"),
        ("EMSP", None),
    ]
    out = run("locations", "GB-TWK", "--format", "json", "--database-url", database_url)[1]
    (empty,) = [r for r in json.loads(out)["locations"] if r["id"] == "GB-EMPTY"]
    assert (empty["name"], empty["city"], empty["country"]) == (None, None, None)
    assert all(value != "" for r in json.loads(out)["locations"] for value in r.values())


def test_parties_show_shows_the_logo(run: Run, seeded: Connection, database_url: str) -> None:
    logo = {
        "url": "https://twk.example/logo.png",
        "category": "OPERATOR",
        "type": "png",
        "width": 512,
        "height": 512,
    }
    seeded.execute(
        "UPDATE ocpi_parties SET business_details = business_details || jsonb_build_object('logo', %s::jsonb)"
        " WHERE country_code = 'GB'",
        (json.dumps(logo),),
    )
    code, out, _ = run("parties", "show", "GB-TWK", "--database-url", database_url)
    assert code == 0
    assert "    logo:     https://twk.example/logo.png  OPERATOR  512x512" in out.splitlines()
    code, out, _ = run("parties", "show", "DE-EMO", "--database-url", database_url)
    assert "logo:" not in out


def test_default(run: Run, migrated: Connection, database_url: str) -> None:
    assert run("default", "--database-url", database_url)[1] == "No default party is set.\n"
    save_party(migrated, "CPO", "GB", "TWK")
    store.set_default_party(migrated, Identity("GB", "TWK"))
    assert run("default", "--database-url", database_url)[1] == "GB-TWK\n"


def test_read_commands_read_an_unmigrated_database(run: Run, live: Connection, database_url: str) -> None:
    """Before `db migrate`: what MaEVe recorded, with business details and the default party not recorded
    yet; nothing is written."""
    before = snapshot(live)
    code, out, err = run("parties", "list", "--database-url", database_url)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[1].split() == [
        "BE-PEE",
        "CPO",
        "no",
        "(not",
        "recorded",
        "yet)",
        "https://peer.example/versions",
    ]
    assert lines[-1] == "Business details: (not recorded yet: run `ocpi-parties db migrate`)."
    code, out, _ = run("parties", "list", "--format", "json", "--database-url", database_url)
    document = json.loads(out)
    assert (document["business_details_recorded"], document["total"], document["next_offset"]) == (
        False,
        2,
        None,
    )
    assert [(p["party"], p["business_details"], p["managed"]) for p in document["parties"]] == [
        ("BE-PEE", None, None),
        ("NL-VLT", None, None),
    ]
    code, out, _ = run("parties", "show", "NL-VLT", "--database-url", database_url)
    assert code == 0
    assert "  default party: (not recorded yet: run `ocpi-parties db migrate`)" in out.splitlines()
    assert "    business details: (not recorded yet: run `ocpi-parties db migrate`)" in out.splitlines()
    code, out, _ = run("parties", "show", "NL-VLT", "--format", "json", "--database-url", database_url)
    assert (json.loads(out)["is_default"], json.loads(out)["business_details_recorded"]) == (None, False)
    # Before migration 0005 a location is owned when its identity names a CPO row, as plan reads it.
    code, out, _ = run("locations", "BE-PEE", "--database-url", database_url)
    assert out.splitlines()[1].split()[0] == "LOC-PEE-1" and out.splitlines()[1].endswith("yes")
    code, out, _ = run("locations", "GB-XXX", "--format", "json", "--database-url", database_url)
    assert [r["owned"] for r in json.loads(out)["locations"]] == [False] * 4
    code, out, _ = run("default", "--database-url", database_url)
    assert (code, out) == (0, "Default party: (not recorded yet: run `ocpi-parties db migrate`).\n")
    assert snapshot(live) == before


def test_read_commands_refuse_a_database_a_newer_ocpi_parties_migrated(
    run: Run, migrated: Connection, database_url: str
) -> None:
    migrated.execute(
        "INSERT INTO reconciler_migrations (version, name, checksum) VALUES (9999, 'from_the_future', 'x')"
    )
    for command in (["parties", "list"], ["parties", "show", "GB-TWK"], ["locations", "GB-TWK"], ["default"]):
        code, out, err = run(*command, "--database-url", database_url)
        assert (code, out) == (3, ""), command
        assert "was migrated by a newer ocpi-parties" in err


@pytest.mark.parametrize("command", [["db", "status"], ["db", "migrate"], ["parties", "list"]])
def test_a_database_without_maeve_tables_exits_3(
    run: Run, empty_database_url: str, command: list[str]
) -> None:
    code, _, err = run(*command, "--database-url", empty_database_url)
    assert code == 3
    assert err.startswith("error: ")
    assert "has no MaEVe table ocpi_parties, locations" in err
    assert err.count("\n") == 1


def test_an_unreachable_database_exits_3_with_the_password_masked(run: Run) -> None:
    code, out, err = run("db", "status", "--database-url", "postgresql://app:TopSecret@127.0.0.1:1/maeve")
    assert (code, out) == (3, "")
    shown = "host=127.0.0.1 port=1 dbname=maeve user=app password=***"
    assert err.startswith(f"error: cannot connect to {shown}: ")
    assert "TopSecret" not in err
    assert err.count("\n") == 1


def test_the_url_variable_is_used_and_masked(
    run: Run, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCPI_PARTIES_DATABASE_URL", f"{database_url} password=TopSecret")
    code, out, err = run("db", "status")
    assert (code, err) == (0, "")
    assert "password=***" in out
    assert "TopSecret" not in out


def test_a_lock_timeout_exits_3(run: Run, database_url: str) -> None:
    with psycopg.connect(database_url) as other:
        other.execute("LOCK TABLE locations IN ACCESS EXCLUSIVE MODE")
        code, _, err = run("db", "status", "--lock-timeout", "100ms", "--database-url", database_url)
    assert code == 3
    assert "within lock_timeout=100ms" in err


def test_a_statement_timeout_exits_3(run: Run, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCPI_PARTIES_STATEMENT_TIMEOUT", "200ms")
    with psycopg.connect(database_url) as other:
        other.execute("LOCK TABLE locations IN ACCESS EXCLUSIVE MODE")
        # No lock timeout: the wait goes on until the statement timeout cancels it.
        code, _, err = run("db", "status", "--lock-timeout", "0", "--database-url", database_url)
    assert code == 3
    assert "ran longer than statement_timeout=200ms and was cancelled" in err


def test_a_bad_timeout_is_a_usage_error(run: Run, database_url: str) -> None:
    code, _, err = run("db", "status", "--statement-timeout", "soon", "--database-url", database_url)
    assert code == 2
    assert err.startswith("error: invalid statement timeout 'soon': use milliseconds or a number with ms, s,")


@pytest.fixture
def fresh_checkout() -> Iterator[Path]:
    """An empty working directory that others may traverse (as root, the server runs as another user)."""
    folder = Path(tempfile.mkdtemp(prefix="ocpi-parties-checkout-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_fresh_checkout_runs_on_the_embedded_database(fresh_checkout: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in LIBPQ_VARIABLES and not k.startswith("OCPI_PARTIES_")
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "reconciler", *args]
        return subprocess.run(
            command, cwd=fresh_checkout, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    init = cli("db", "init")
    assert init.returncode == 0, init.stderr
    assert "using the embedded PostgreSQL database in" in init.stderr
    assert "MaEVe's tables already exist in the embedded database" in init.stdout
    migrate = cli("db", "migrate")
    assert migrate.returncode == 0, migrate.stderr
    assert "applied  0005_location_owner" in migrate.stdout
    status = cli("db", "status")
    assert status.returncode == 0, status.stderr
    assert "  up to date" in status.stdout
    assert (fresh_checkout / ".ocpi-parties" / ".gitignore").read_text().endswith("*\n")
    assert cli("parties", "list").stdout == "No parties.\n"


def test_migrate_gives_up_behind_a_long_maeve_transaction_and_resumes_later(
    run: Run, database_url: str
) -> None:
    with psycopg.connect(database_url) as maeve:
        maeve.execute("SELECT count(*) FROM ocpi_parties")  # an open transaction that MaEVe has not ended
        code, _, err = run("db", "migrate", "--lock-timeout", "200ms", "--database-url", database_url)
    assert code == 3
    assert "within lock_timeout=200ms" in err
    code, out, _ = run("db", "migrate", "--database-url", database_url)
    assert code == 0
    assert "0001_system_config" not in out  # applied by the first run, before it had to wait
    assert "applied  0002_business_details" in out
