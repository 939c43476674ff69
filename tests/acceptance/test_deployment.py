"""docs/deployment.md's grants are the whole truth: plan and apply work with them and need nothing more.

The SQL block of "The database roles and their grants" runs as written, with the role names made unique
(roles belong to the whole server, which other test runs may share). Then the GitOps cycle runs with those
roles alone, after the owner migrated: plan with the read role, apply of the saved plan with the apply role.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import Run
from deployment_grants import ROLES, grants_block
from psycopg import errors, sql
from psycopg.conninfo import make_conninfo

from reconciler import sample, store
from reconciler.database import Connection
from reconciler.migrations import migrate

ROOT = Path(__file__).parents[2]


@pytest.fixture
def roles(connection: Connection) -> Iterator[dict[str, str]]:
    """The documented roles, granted as documented on a migrated database with sample data."""
    sample.write(connection, "the test database")
    migrate(connection)
    suffix = uuid.uuid4().hex[:8]
    names = {role: f"{role}_{suffix}" for role in ROLES}
    script = grants_block()
    for role, name in names.items():
        script = re.sub(rf"\b{role}\b", name, script)
    connection.execute(script)
    try:
        yield names
    finally:
        for name in names.values():
            connection.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            connection.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_the_documented_grants_are_enough_for_plan_and_apply(
    run: Run, connection: Connection, database_url: str, roles: dict[str, str], workdir: Path
) -> None:
    reader = make_conninfo(database_url, user=roles["ocpi_parties_plan"])
    writer = make_conninfo(database_url, user=roles["ocpi_parties_apply"])
    code, out, err = run("plan", "--database-url", reader, "--out", "plan.json", "--detailed-exitcode")
    assert code == 2, err
    assert out.splitlines()[-1].startswith("Plan: 2 to add, 1 to change, 0 to delete, 1 to adopt;")
    for command in (["db", "status"], ["parties", "list"], ["locations", "XX-XXX"], ["history"], ["default"]):
        assert run(*command, "--database-url", reader)[0] == 0, command

    code, out, err = run("apply", "plan.json", "--database-url", writer, "--actor", "deploy")
    assert code == 0, err
    assert "Apply complete: 2 added, 1 changed, 0 deleted, 1 adopted; 12 locations moved." in out
    assert "only the owner of the locations table may validate it" in err
    assert store.location_key_state(connection) == "not valid"

    code, out, _ = run("plan", "--database-url", reader, "--detailed-exitcode")
    assert (code, out.splitlines()[-1]) == (
        0,
        "No changes. The database matches the party files; 2 partner roles awaiting OCPI registration.",
    )

    # Every other kind of change: an update, a partner released, locations claimed by id; then a hosted
    # party deleted (its locations first) and the claims it made cleared.
    parties = workdir / "parties"
    twk = (parties / "GB-TWK.yaml").read_text(encoding="utf-8")
    (parties / "GB-TWK.yaml").write_text(twk.replace("Thoughtworks EV Charging", "TW Charging"), "utf-8")
    (parties / "NL-VLT.yaml").write_text("country_code: NL\nparty_id: VLT\ndeleted: true\n", "utf-8")
    with (parties / "ES-CPO.yaml").open("a", encoding="utf-8") as es:
        es.write("locations:\n  - LOC-LIS-1\n  - LOC-PAR-1\n")
    code, out, err = run("apply", "--auto-approve", "--database-url", writer)
    assert code == 0, err
    assert "Apply complete: 0 added, 2 changed, 0 deleted, 0 adopted, 1 released; 2 locations moved." in out
    (parties / "ES-CPO.yaml").write_text("country_code: ES\nparty_id: CPO\ndeleted: true\n", "utf-8")
    code, out, err = run("apply", "--auto-approve", "--database-url", writer)
    assert code == 0, err
    assert "Apply complete: 0 added, 1 changed, 1 deleted, 0 adopted; 2 locations moved." in out
    code, out, _ = run("db", "migrate", "--database-url", database_url)
    assert code == 0
    assert out.splitlines() == [
        "Nothing to do: the database is at the requested version.",
        "Location owner key: valid.",
    ]


def test_the_roles_cannot_read_tokens_and_the_read_role_cannot_write(
    database_url: str, roles: dict[str, str]
) -> None:
    for role in roles.values():
        with psycopg.connect(make_conninfo(database_url, user=role)) as session:
            with pytest.raises(errors.InsufficientPrivilege):
                session.execute("SELECT token FROM ocpi_parties")
            session.rollback()
            assert session.execute("SELECT count(*) FROM ocpi_parties").fetchone() == (2,)
    with psycopg.connect(make_conninfo(database_url, user=roles["ocpi_parties_plan"])) as session:
        for statement in (
            "UPDATE ocpi_parties SET url = url",
            "UPDATE locations SET party_id = party_id",
            "INSERT INTO system_config (key, value) VALUES ('default_party', 'GB-TWK')",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                session.execute(statement)
            session.rollback()
