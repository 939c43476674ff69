"""Least privilege: `db migrate` by a role that owns MaEVe's tables (not a superuser), then the full cycle
with only the roles and grants of docs/deployment.md (run as written there), and what the apply role cannot
do. tests/acceptance/test_deployment.py checks the cycle itself with those grants; this adds the owner and
refusals."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from deployment_grants import ROLES, grants_block
from maeve_sql import PEER_TOKEN, location_owner, save_location, save_party
from psycopg import errors, sql
from psycopg.conninfo import make_conninfo
from reliability import run_cli, seed_live

from reconciler.database import Connection

ROOT = Path(__file__).parents[2]


@dataclass(frozen=True)
class Roles:
    owner_url: str
    plan_url: str
    apply_url: str


@pytest.fixture
def roles(postgres_admin: str, database_url: str, tmp_path: Path) -> Iterator[Roles]:
    """MaEVe's tables owned by a role of their own, migrated by it, and the documented roles granted."""
    suffix = uuid.uuid4().hex[:8]
    owner = f"ocpi_owner_{suffix}"
    names = {role: f"{role}_{suffix}" for role in ROLES}
    with psycopg.connect(postgres_admin, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(owner)))
    try:
        with psycopg.connect(database_url, autocommit=True) as admin:
            # golang-migrate's bookkeeping and a table of MaEVe's that ocpi-parties never needs stand for
            # the rest of MaEVe's schema.
            admin.execute("CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean)")
            admin.execute("INSERT INTO schema_migrations VALUES (30, false)")
            admin.execute("CREATE TABLE tokens (uid text PRIMARY KEY, contract_id text)")
            for table in ("ocpi_parties", "locations", "ocpi_registrations", "schema_migrations", "tokens"):
                admin.execute(
                    sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(table), sql.Identifier(owner))
                )
            admin.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(owner)))
            owner_url = make_conninfo(database_url, user=owner)
            with psycopg.connect(owner_url, autocommit=True) as maeve:  # MaEVe, as the owner of its tables
                seed_live(maeve, 500)
            shutil.copytree(ROOT / "parties", tmp_path / "parties")
            _ok(["db", "migrate", "--database-url", owner_url], tmp_path)
            script = grants_block()
            for role, name in names.items():
                script = re.sub(rf"\b{role}\b", name, script)
            admin.execute(script)
        yield Roles(
            owner_url,
            make_conninfo(database_url, user=names["ocpi_parties_plan"]),
            make_conninfo(database_url, user=names["ocpi_parties_apply"]),
        )
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            for name in (*names.values(), owner):
                admin.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(name)))
        with psycopg.connect(postgres_admin, autocommit=True) as admin:
            for name in (*names.values(), owner):
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _ok(args: list[str], cwd: Path) -> str:
    result = run_cli(args, cwd)
    assert result.returncode == 0, (args, result.stderr)
    return result.stdout


def test_the_full_cycle_with_only_the_documented_grants(
    roles: Roles, connection: Connection, tmp_path: Path
) -> None:
    reader, applier = ["--database-url", roles.plan_url], ["--database-url", roles.apply_url]
    _ok(["plan", *reader, "--out", "plan.json"], tmp_path)
    out = _ok(["apply", "plan.json", *applier], tmp_path)
    assert "Apply complete: 2 added, 1 changed, 0 deleted, 1 adopted; 550 locations moved." in out
    spain = tmp_path / "parties" / "ES-CPO.yaml"
    spain.write_text(spain.read_text() + "locations:\n  - LOC-000003\n")
    (tmp_path / "parties" / "DE-EMO.yaml").write_text("country_code: DE\nparty_id: EMO\ndeleted: true\n")
    _ok(["apply", "--auto-approve", *applier], tmp_path)
    assert _ok(["plan", "--detailed-exitcode", *reader], tmp_path).splitlines()[-1] == (
        "No changes. The database matches the party files."
    )
    for command in (
        ["history", "--format", "json"],
        ["parties", "list"],
        ["parties", "show", "NL-VLT", "--format", "json"],
        ["locations", "ES-CPO"],
        ["db", "status"],
    ):
        assert PEER_TOKEN not in _ok([*command, *reader], tmp_path)
    # The owner's next db migrate validates the key, as docs/deployment.md says.
    assert "Location owner key: valid." in _ok(["db", "migrate", "--database-url", roles.owner_url], tmp_path)
    with psycopg.connect(roles.owner_url, autocommit=True) as maeve:  # MaEVe goes on writing
        save_location(maeve, "LOC-NEW", "FR")
        assert location_owner(maeve, "LOC-NEW") == ("GB", "TWK", "CPO")
        save_party(maeve, "CPO", "FR", "NEW", token="t")
    assert location_owner(connection, "LOC-000003") == ("ES", "CPO", "CPO")


FORBIDDEN = [
    "SELECT token FROM ocpi_parties",
    "SELECT * FROM ocpi_parties",
    "UPDATE ocpi_parties SET token = 'x'",
    "SELECT * FROM tokens",
    "SELECT * FROM ocpi_registrations",
    "SELECT * FROM schema_migrations",
    "UPDATE schema_migrations SET version = 31",
    "INSERT INTO reconciler_migrations (version, name, checksum) VALUES (99, 'x', 'x')",
    "DELETE FROM reconciler_apply_history",
    "UPDATE reconciler_managed_parties SET how = 'created'",
    "UPDATE reconciler_location_claims SET country_code = 'GB'",
    "DELETE FROM locations",
    "INSERT INTO locations (id, country_code, party_id, location_data) VALUES ('x', 'GB', 'XXX', '{}')",
    "TRUNCATE locations",
    "ALTER TABLE ocpi_parties ADD COLUMN x int",
    "ALTER TABLE locations DISABLE TRIGGER locations_owner_guard",
    "DROP TABLE locations",
    "DROP FUNCTION reconciler_location_owner_guard()",
    "CREATE TABLE t (x int)",
]


def test_the_apply_role_cannot_touch_what_it_does_not_need(roles: Roles) -> None:
    with psycopg.connect(roles.apply_url, autocommit=True) as applier:
        for statement in FORBIDDEN:
            with pytest.raises(errors.InsufficientPrivilege):
                applier.execute(statement)
        # What it may do, it can: the columns apply reads, without the token.
        applier.execute(
            "SELECT id, role, country_code, party_id, url, business_details, holds_credentials"
            " FROM ocpi_parties"
        )
