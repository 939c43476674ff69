"""`ocpi-parties plan` end to end against a real PostgreSQL shaped like a live MaEVe."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from conftest import Run
from maeve_sql import PEER_TOKEN, save_location, save_party, snapshot

from reconciler import migrations, state
from reconciler.database import Connection
from reconciler.planfile import load
from reconciler.validate import validate_path

ROOT = Path(__file__).parents[2]


def test_plan_on_a_live_maeve_database(run: Run, live: Connection, database_url: str, workdir: Path) -> None:
    before = snapshot(live)
    code, out, err = run("plan", "--database-url", database_url)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "ocpi-parties will make these changes, in this order:"
    assert f"  ~ database: {len(migrations.available())} migrations of ocpi-parties will run first" in lines
    # Rows only for the hosted CPOs; the registered partner NL-VLT is adopted; DE-EMO waits for registration.
    assert "  + GB-TWK CPO will be created (parties/GB-TWK.yaml:17:5)" in lines
    assert "  + ES-CPO CPO will be created (parties/ES-CPO.yaml:11:5)" in lines
    assert "DE-EMO CPO will be created" not in out and "DE-EMO EMSP will be created" not in out
    assert (
        "  * NL-VLT EMSP will be adopted: managed by ocpi-parties from now on (parties/NL-VLT.yaml:11:5)"
        in lines
    )
    assert "  ? DE-EMO CPO is awaiting OCPI registration (parties/DE-EMO.yaml:15:5)" in lines
    assert "  ? DE-EMO EMSP is awaiting OCPI registration (parties/DE-EMO.yaml:16:5)" in lines
    assert "  ~ default party will change: (none) -> GB-TWK" in lines
    moves = out[out.index("  > 11 locations recorded under no CPO will move to the default party GB-TWK") :]
    # PT-CPO is an orphan too: no party holds it yet. BE-PEE's location stays with that registered CPO.
    assert moves.splitlines()[1:5] == [
        "      BE-XXX  3",
        "      GB-XXX  4",
        "      PT-CPO  2",
        "      XX-XXX  2",
    ]
    assert "BE-PEE" not in out[: out.index("Not managed by ocpi-parties")]
    assert "  BE-PEE  CPO  https://peer.example/versions" in lines
    assert lines[-1] == (
        "Plan: 2 to add, 1 to change, 0 to delete, 1 to adopt; 11 locations to move; "
        f"2 awaiting registration; {len(migrations.available())} migrations to run."
    )
    assert PEER_TOKEN not in out + err
    assert "using the embedded" not in err
    assert snapshot(live) == before, "plan wrote to the database"
    assert len(migrations.pending(live)) == len(migrations.available())

    assert run("plan", "--database-url", database_url, "--detailed-exitcode")[0] == 2


def test_moved_from_gives_a_group_to_its_party(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    spain = workdir / "parties" / "ES-CPO.yaml"
    spain.write_text(spain.read_text() + "moved_from:\n  - PT-CPO\nlocations:\n  - LOC-GB-0\n  - LOC-NONE\n")
    code, out, err = run("plan", "--database-url", database_url, "--format", "json")
    assert code == 0, err
    moves = [c for c in json.loads(out)["changes"] if c["action"] == "move_locations"]
    assert [(m["reason"], m["to"], m["count"], m["location_ids"]) for m in moves] == [
        ("claimed", "ES-CPO", 1, ["LOC-GB-0"]),
        ("moved_from", "ES-CPO", 2, []),
        ("orphans", "GB-TWK", 8, []),
    ]
    assert moves[0]["groups"] == [{"identity": "GB-XXX", "recorded": None, "owned": False, "count": 1}]
    assert moves[1]["groups"] == [{"identity": "PT-CPO", "recorded": "PT-CPO", "owned": False, "count": 2}]
    assert moves[1]["source"] == {"file": "parties/ES-CPO.yaml", "line": 13, "column": 5}
    assert [(g["identity"], g["count"]) for g in moves[2]["groups"]] == [
        ("BE-XXX", 3),
        ("GB-XXX", 3),
        ("XX-XXX", 2),
    ]
    assert json.loads(out)["notes"] == [
        "location 'LOC-NONE' claimed by ES-CPO at parties/ES-CPO.yaml:16:5 does not exist"
    ]


def _matching(connection: Connection, workdir: Path) -> None:
    """Make the database hold exactly what the example files declare, as an apply would leave it: hosted rows
    that ocpi-parties created (no token), partners' rows that registration created (with a token)."""
    migrations.migrate(connection)
    desired = validate_path(workdir / "parties").state
    assert desired is not None
    for party in desired.parties:
        for role in party.roles:
            row = save_party(
                connection,
                role.role,
                party.identity.country_code,
                party.identity.party_id,
                url=party.url or "",
                token="" if role.hosted else PEER_TOKEN,
            )
            connection.execute(
                "UPDATE ocpi_parties SET business_details = %s WHERE id = %s",
                (json.dumps(role.business_details.to_ocpi()), row[0]),
            )
            connection.execute(
                "INSERT INTO reconciler_managed_parties (party_row_id, row_created_at, how)"
                " SELECT id, created_at, %s FROM ocpi_parties WHERE id = %s ON CONFLICT DO NOTHING",
                ("created" if role.hosted else "adopted", row[0]),
            )
    connection.execute("INSERT INTO system_config (key, value) VALUES ('default_party', 'GB-TWK')")


def test_no_changes_when_the_database_matches(
    run: Run, connection: Connection, database_url: str, workdir: Path
) -> None:
    _matching(connection, workdir)
    save_party(connection, "CPO", "BE", "PEE", token=PEER_TOKEN)
    save_location(connection, "LOC-1", "BE")  # lands on the default party
    code, out, _ = run("plan", "--database-url", database_url, "--detailed-exitcode")
    assert code == 0
    assert out.splitlines()[-1] == "No changes. The database matches the party files."
    assert "Not managed by ocpi-parties (never changed):" in out

    # After editing one file, the plan shows just that edit.
    emo = workdir / "parties" / "DE-EMO.yaml"
    emo.write_text(emo.read_text().replace("name: Elektromobil Ladekarte", "name: Elektromobil Card"))
    code, out, _ = run("plan", "--database-url", database_url, "--detailed-exitcode")
    assert code == 2
    assert "  ~ DE-EMO EMSP will be updated in place (parties/DE-EMO.yaml:16:5)" in out
    assert '      ~ business_details.name = "Elektromobil Ladekarte" -> "Elektromobil Card"' in out
    assert (
        out.splitlines()[-1] == "Plan: 0 to add, 1 to change, 0 to delete, 0 to adopt; 0 locations to move."
    )


def test_deletion_protection(run: Run, connection: Connection, database_url: str, workdir: Path) -> None:
    _matching(connection, workdir)
    (workdir / "parties" / "ES-CPO.yaml").unlink()
    code, out, err = run("plan", "--database-url", database_url, "--out", "plan.json")
    assert code == 1
    assert (
        "  x ES-CPO CPO will NOT be deleted: no longer declared in the party files; deleting needs a " in out
    )
    assert out.splitlines()[-1].endswith("; 1 deletion blocked.")
    assert "error: 1 deletion blocked by deletion protection" in err
    assert "no plan file was written" in err and not (workdir / "plan.json").exists()

    code, out, _ = run("plan", "--database-url", database_url, "--allow-delete", "--format", "json")
    assert code == 0
    deletes = [c for c in json.loads(out)["changes"] if c["action"] == "delete"]
    assert deletes == [
        {
            "action": "delete",
            "identity": "ES-CPO",
            "role": "CPO",
            "reason": "no longer declared in the party files",
            "blocked": False,
        }
    ]

    (workdir / "parties" / "ES-CPO.yaml").write_text("country_code: ES\nparty_id: CPO\ndeleted: true\n")
    code, out, _ = run("plan", "--database-url", database_url)
    assert code == 0
    assert "  - ES-CPO CPO will be deleted: marked deleted at parties/ES-CPO.yaml:3:10" in out


def test_a_partner_file_removed_or_tombstoned_releases_its_row(
    run: Run, connection: Connection, database_url: str, workdir: Path
) -> None:
    """Registration owns a partner's row: no deletion, protected or not; the plan says how to disconnect."""
    _matching(connection, workdir)
    (workdir / "parties" / "NL-VLT.yaml").unlink()
    for extra in ((), ("--allow-delete",)):
        code, out, err = run("plan", "--database-url", database_url, *extra)
        assert code == 0, err
        assert (
            "  / NL-VLT EMSP will no longer be managed: no longer declared in the party files; OCPI " in out
        )
        assert "(OCPI credentials DELETE)" in out and "will be deleted" not in out
        assert out.splitlines()[-1] == (
            "Plan: 0 to add, 0 to change, 0 to delete, 0 to adopt, 1 to release; 0 locations to move."
        )
    (workdir / "parties" / "NL-VLT.yaml").write_text("country_code: NL\nparty_id: VLT\ndeleted: true\n")
    code, out, _ = run("plan", "--database-url", database_url)
    assert "  / NL-VLT EMSP will no longer be managed: marked deleted at parties/NL-VLT.yaml:3:10; " in out


def test_drift_since_the_last_apply(
    run: Run, connection: Connection, database_url: str, workdir: Path
) -> None:
    _matching(connection, workdir)
    applied = {
        "rows": [
            {
                "identity": "ES-CPO",
                "role": "CPO",
                "url": "https://ocpi.cargaiberica.example/ocpi/versions",
                "business_details": {"name": "Carga Ibérica", "website": "https://www.cargaiberica.example"},
            },
            {
                "identity": "NL-VLT",
                "role": "EMSP",
                "url": "https://registered.before.example/versions",
                "business_details": {"name": "Voltkaart", "website": "https://www.voltkaart.example"},
            },
        ]
    }
    connection.execute(
        "INSERT INTO reconciler_apply_history (actor, tool_version, summary, state) "
        "VALUES ('ci', '0', 's', %s)",
        (json.dumps(applied),),
    )
    connection.execute("UPDATE ocpi_parties SET url = 'https://edited.example' WHERE country_code = 'ES'")
    code, out, _ = run("plan", "--database-url", database_url)
    assert code == 0
    drift = out[out.index("Drift since the last apply") :]
    assert 'url = "https://ocpi.cargaiberica.example/ocpi/versions" -> "https://edited.example"' in drift
    assert "~ ES-CPO CPO will be updated in place" in out
    # NL-VLT's registration moved to another url since: registration owns it, so it is no drift of git's.
    assert "NL-VLT" not in drift


def test_formats_and_saved_plan(run: Run, live: Connection, database_url: str, workdir: Path) -> None:
    code, markdown, _ = run("plan", "--database-url", database_url, "--format", "markdown")
    assert code == 0
    assert markdown.startswith("### ocpi-parties plan\n\n**Plan: 2 to add, 1 to change")
    assert "<details>" in markdown and len(markdown) < 60_000

    code, _, err = run("plan", "--database-url", database_url, "--out", "plan.json", "--revision", "abc123")
    assert code == 0
    assert "Saved the plan to plan.json" in err
    text = (workdir / "plan.json").read_text()
    assert PEER_TOKEN not in text
    saved = load(workdir / "plan.json")
    assert saved.revision == "abc123" and not saved.allow_delete
    assert saved.desired == validate_path(workdir / "parties").state
    assert json.loads(text)["plan"]["summary"]["to_adopt"] == 1


def test_show_locations_lists_each_id(run: Run, live: Connection, database_url: str, workdir: Path) -> None:
    code, out, _ = run("plan", "--database-url", database_url, "--show-locations")
    assert code == 0
    for number in range(4):
        assert f"LOC-GB-{number}" in out
    without = run("plan", "--database-url", database_url)[1]
    assert "LOC-GB-0" not in without


def test_invalid_files_plan_nothing(run: Run, live: Connection, database_url: str, workdir: Path) -> None:
    (workdir / "parties" / "GB-TWK.yaml").write_text("country_code: GB\nparty_id: TWK\nkind: hosted\n")
    code, out, err = run("plan", "--database-url", database_url)
    assert code == 1 and out == ""
    assert "parties/GB-TWK.yaml:1:1: $: missing required key roles" in err
    assert "error: parties is invalid (1 error): nothing was planned" in err


def test_the_number_of_queries_does_not_grow_with_locations(live: Connection, workdir: Path) -> None:
    desired = validate_path(workdir / "parties").state
    assert desired is not None

    def queries() -> int:
        count = 0
        original = psycopg.Cursor.execute

        def counting(self: psycopg.Cursor[object], *args: object, **kwargs: object) -> object:
            nonlocal count
            count += 1
            return original(self, *args, **kwargs)  # type: ignore[arg-type]

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(psycopg.Cursor, "execute", counting)
            state.plan_against(live, desired, allow_delete=False)
        return count

    few = queries()
    with live.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO locations (id, country_code, party_id, location_data) VALUES (%s, %s, 'XXX', '{}')",
            [(f"BULK-{n}", ("GB", "BE", "FR", "DE")[n % 4]) for n in range(5_000)],
        )
    assert queries() == few
