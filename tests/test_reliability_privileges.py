"""Least privilege: the full cycle as a role with only the grants of docs/deployment.md (read from it), after
`db migrate` by a role that owns MaEVe's tables, and what that role cannot do."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from maeve_sql import PEER_TOKEN, location_owner, save_location, save_party
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from reliability import run_cli, seed_live

from reconciler.database import Connection

ROOT = Path(__file__).parent.parent
DEPLOYMENT = ROOT / "docs" / "deployment.md"


def _grants() -> str:
    text = DEPLOYMENT.read_text(encoding="utf-8")
    section = text.split("## Minimal grants", 1)[1]
    found = re.search(r"```sql\n(.*?)```", section, re.S)
    assert found, "docs/deployment.md: ## Minimal grants has no sql block"
    return found.group(1)


@dataclass(frozen=True)
class Roles:
    owner: str
    apply: str
    owner_url: str
    apply_url: str


@pytest.fixture
def roles(postgres_admin: str, database_url: str) -> Iterator[Roles]:
    suffix = uuid.uuid4().hex[:8]
    owner, apply = f"ocpi_owner_{suffix}", f"ocpi_apply_{suffix}"
    with psycopg.connect(postgres_admin, autocommit=True) as admin:
        for role in (owner, apply):
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        with psycopg.connect(database_url, autocommit=True) as admin:
            # MaEVe's tables belong to MaEVe's role; golang-migrate's bookkeeping and a table of MaEVe's
            # that ocpi-parties never needs stand for the rest of its schema.
            admin.execute(
                "CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL)"
            )
            admin.execute("INSERT INTO schema_migrations VALUES (30, false)")
            admin.execute("CREATE TABLE tokens (uid text PRIMARY KEY, contract_id text)")
            for table in ("ocpi_parties", "locations", "ocpi_registrations", "schema_migrations", "tokens"):
                admin.execute(
                    sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(table), sql.Identifier(owner))
                )
            admin.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(owner)))
        base = conninfo_to_dict(database_url)
        yield Roles(
            owner,
            apply,
            make_conninfo(**{**base, "user": owner}),  # type: ignore[arg-type]
            make_conninfo(**{**base, "user": apply}),  # type: ignore[arg-type]
        )
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            for role in (apply, owner):
                admin.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
        with psycopg.connect(postgres_admin, autocommit=True) as admin:
            for role in (apply, owner):
                admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def _ok(args: list[str], cwd: Path) -> str:
    result = run_cli(args, cwd)
    assert result.returncode == 0, (args, result.stderr)
    return result.stdout


def test_the_full_cycle_with_only_the_documented_grants(
    roles: Roles, database_url: str, connection: Connection, tmp_path: Path
) -> None:
    with psycopg.connect(roles.owner_url, autocommit=True) as maeve:  # MaEVe, as the owner of its tables
        seed_live(maeve, 500)
    shutil.copytree(ROOT / "parties", tmp_path / "parties")
    owner = ["--database-url", roles.owner_url]
    applier = ["--database-url", roles.apply_url]
    _ok(["db", "migrate", *owner], tmp_path)
    connection.execute(_grants().replace("ocpi_parties_apply", roles.apply))

    _ok(["plan", *applier, "--out", "plan.json"], tmp_path)
    out = _ok(["apply", "plan.json", *applier], tmp_path)
    assert "Apply complete: 4 added, 1 changed, 0 deleted, 1 adopted; 550 locations moved." in out
    assert _ok(["plan", "--detailed-exitcode", *applier], tmp_path).splitlines()[-1] == (
        "No changes. The database matches parties/."
    )
    spain = tmp_path / "parties" / "ES-CPO.yaml"
    spain.write_text(spain.read_text() + "locations:\n  - LOC-000003\n")
    (tmp_path / "parties" / "DE-EMO.yaml").write_text("country_code: DE\nparty_id: EMO\ndeleted: true\n")
    _ok(["apply", "--auto-approve", *applier], tmp_path)
    for command in (
        ["history"],
        ["history", "--format", "json"],
        ["parties", "list"],
        ["parties", "show", "NL-VLT", "--format", "json"],
        ["locations", "ES-CPO"],
        ["default"],
        ["db", "status"],
    ):
        assert PEER_TOKEN not in _ok([*command, *applier], tmp_path)
    # The key is validated by the owner's next db migrate, as docs/deployment.md says.
    assert "Location owner key: valid." in _ok(["db", "migrate", *owner], tmp_path)

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
    "DELETE FROM reconciler_managed_parties",
    "DELETE FROM locations",
    "INSERT INTO locations (id, country_code, party_id, location_data) VALUES ('x', 'GB', 'XXX', '{}')",
    "TRUNCATE locations",
    "ALTER TABLE ocpi_parties ADD COLUMN x int",
    "ALTER TABLE locations DISABLE TRIGGER locations_owner_guard",
    "DROP TABLE locations",
    "DROP FUNCTION reconciler_location_owner_guard()",
    "CREATE TABLE t (x int)",
]


def test_the_apply_role_cannot_touch_what_it_does_not_need(
    roles: Roles, connection: Connection, tmp_path: Path
) -> None:
    with psycopg.connect(roles.owner_url, autocommit=True) as maeve:
        seed_live(maeve, 10)
    shutil.copytree(ROOT / "parties", tmp_path / "parties")
    _ok(["db", "migrate", "--database-url", roles.owner_url], tmp_path)
    connection.execute(_grants().replace("ocpi_parties_apply", roles.apply))
    with psycopg.connect(roles.apply_url, autocommit=True) as applier:
        for statement in FORBIDDEN:
            with pytest.raises(errors.InsufficientPrivilege):
                applier.execute(statement)
        # What it may do, it can: the columns apply reads, without the token.
        applier.execute("SELECT id, role, country_code, party_id, url, business_details FROM ocpi_parties")
