"""Secrets: a password in the database URL (or PGPASSWORD) and the OCPI tokens MaEVe keeps never appear in
any output of a full cycle, in any format, in the plan file, in the history rows or in an error message."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import psycopg
import pytest
from conftest import Result, Run
from maeve_sql import PEER_TOKEN
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from reliability import seed_live

from reconciler.database import ADVISORY_LOCK_KEY, Connection
from reconciler.errors import ExitCode

PASSWORD = "Pw-5ecr3t@lot:of/chars"
ENCODED = urllib.parse.quote(PASSWORD, safe="")
SECRETS = (PASSWORD, ENCODED, PEER_TOKEN, "rotated-peer-token-91f3")


def _url(conninfo: str, password: str = ENCODED, **changes: str) -> str:
    """postgresql://user:password@/dbname?host=...&port=... for the test database."""
    params = {**conninfo_to_dict(conninfo), **changes}
    query = urllib.parse.urlencode({k: params[k] for k in ("host", "port") if params.get(k)})
    return f"postgresql://{params.get('user') or 'postgres'}:{password}@/{params['dbname']}?{query}"


def _libpq(conninfo: str) -> dict[str, str]:
    """The test database as libpq's PG* variables."""
    params = conninfo_to_dict(conninfo)
    names = {"host": "PGHOST", "port": "PGPORT", "dbname": "PGDATABASE"}
    return {variable: str(params[key]) for key, variable in names.items() if params.get(key)}


def _clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} shows a secret"


def test_no_secret_in_any_output_of_a_full_cycle(
    database_url: str,
    connection: Connection,
    workdir: Path,
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password_role = str(conninfo_to_dict(database_url).get("user") or "postgres")
    seed_live(connection, 20)
    connection.execute("UPDATE ocpi_parties SET token = 'rotated-peer-token-91f3' WHERE party_id = 'PEE'")
    url = _url(database_url, user=password_role)
    keyvalue = make_conninfo(database_url, password=PASSWORD)
    outputs: list[tuple[list[str], str]] = []

    def command(args: list[str], expect: int = 0, **env: str) -> str:
        with monkeypatch.context() as environment:
            for name, value in env.items():
                environment.setenv(name, value)
            code, out, err = run(*args)
        assert code == expect, (args, err)
        outputs.append((args, out + err))
        return out + err

    db = ["--database-url", url]
    command(["validate"])
    for form in ("text", "json", "github"):
        command(["validate", "--format", form])
    command(["db", "status", *db])
    command(["db", "migrate", *db])
    command(["db", "status", "--database-url", keyvalue])
    for form in ("text", "json", "markdown"):
        command(["plan", "--format", form, "--show-locations", *db])
    command(["plan", "--out", "plan.json", "--revision", "r1", *db])
    command(["apply", "plan.json", *db])
    command(["apply", "--auto-approve"], OCPI_PARTIES_DATABASE_URL=url)
    command(["history"], PGPASSWORD=PASSWORD, PGUSER=password_role, **_libpq(database_url))
    for form in ("text", "json"):
        command(["history", "--format", form, *db])
        command(["parties", "list", "--format", form, *db])
        command(["parties", "show", "NL-VLT", "--format", form, *db])
        command(["parties", "show", "BE-PEE", "--format", form, *db])
        command(["locations", "GB-TWK", "--format", form, *db])
    command(["default", *db])

    # Errors that name the database: unreachable, a database that does not exist, a lock held too long.
    closed = _url(database_url, user=password_role, host="127.0.0.1", port="1")
    for args in (["plan"], ["apply", "--auto-approve"], ["history"], ["db", "status"]):
        assert "cannot connect to" in command([*args, "--database-url", closed], expect=3)
    assert "***" in command(["history", "--database-url", _url(database_url, dbname="no_such_db")], expect=3)
    command(["apply", "--auto-approve", "--database-url", f"{url}&sslmode=bogus"], expect=3)
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        (workdir / "parties" / "NL-VLT.yaml").write_text(
            (workdir / "parties" / "NL-VLT.yaml").read_text().replace("Voltkaart", "Voltkaart B.V.")
        )
        command(["apply", "--auto-approve", "--lock-timeout", "200ms", *db], expect=4)
        holder.execute("ROLLBACK")

    assert len(outputs) == 32
    for args, text in outputs:
        _clean(text, " ".join(args))
    assert any("***" in text for _, text in outputs), "the password is shown masked"
    _clean((workdir / "plan.json").read_text(encoding="utf-8"), "the plan file")
    history = connection.execute("SELECT row_to_json(h)::text FROM reconciler_apply_history AS h").fetchall()
    assert len(history) == 1
    _clean(str(history), "the history rows")
    # MaEVe still has the tokens: they were kept, never read.
    tokens = connection.execute("SELECT token FROM ocpi_parties WHERE token <> '' ORDER BY 1").fetchall()
    assert tokens == [(PEER_TOKEN,), ("rotated-peer-token-91f3",)]


#: Malformed database settings and the password each one means. A string that libpq cannot read (or whose
#: port is not a number) is shown not at all: only where it came from.
MALFORMED = {
    "postgresql://u:Xy%9!kQ2@host/db": "Xy%9!kQ2",  # a bad percent-escape
    "postgresql://u:correct horse battery staple@host/db": "correct horse battery staple",  # spaces
    "postgresql://u:p@ss:w/rd@host/db": "p@ss:w/rd",  # unescaped @ and /: host ss, port w
}
#: A string that libpq reads (the password is `pa ss`), aimed at a closed port: the error names the database.
READABLE = {"password=pa\\ ss host=127.0.0.1 port=1": "pa ss", "password=pa\\ ss": "pa ss"}
SOURCES = ("--database-url", "OCPI_PARTIES_DATABASE_URL")
COMMANDS = (["plan"], ["apply", "--auto-approve"], ["db", "status"])


def _leaks(text: str, password: str) -> list[str]:
    """The parts of `password` (3 characters or more, spaces not counted) that `text` shows.

    A part made of word characters only that `text` has inside a longer word the password does not hold
    (`ect` of `correct` in `unexpected`) is a coincidence of letters, not a leak.
    """
    found = []
    parts = {
        password[i:j]
        for i in range(len(password))
        for j in range(i + 3, len(password) + 1)
        if len(password[i:j].replace(" ", "")) >= 3
    }
    for part in parts:
        for match in re.finditer(re.escape(part), text):
            if re.fullmatch(r"\w+", part):
                start, end = match.start(), match.end()
                while start > 0 and re.match(r"\w", text[start - 1]):
                    start -= 1
                while end < len(text) and re.match(r"\w", text[end]):
                    end += 1
                word = text[start:end]
                if word != part and word not in password:
                    continue
            found.append(part)
    return sorted(set(found))


def _run_with(
    run: Run, monkeypatch: pytest.MonkeyPatch, args: list[str], setting: str, source: str
) -> Result:
    with monkeypatch.context() as environment:
        if source == "--database-url":
            return run(*args, "--database-url", setting)
        environment.setenv(source, setting)
        return run(*args)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("setting", list(MALFORMED))
@pytest.mark.usefixtures("workdir")
def test_a_malformed_database_setting_shows_no_part_of_it(
    setting: str, args: list[str], source: str, *, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = _run_with(run, monkeypatch, args, setting, source)
    assert code == ExitCode.USAGE, err
    assert err.strip().startswith(f"error: {source} is not a valid connection string: "), err
    assert _leaks(out + err, MALFORMED[setting]) == []
    assert "host/db" not in err
    assert not re.search(r"\w\*\*\*|\*\*\*\w", out + err), "a mask inside a word"


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("setting", list(READABLE))
@pytest.mark.usefixtures("workdir")
def test_a_readable_setting_is_named_by_libpqs_reading_without_its_password(
    setting: str, args: list[str], source: str, *, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", "1")
    code, out, err = _run_with(run, monkeypatch, args, setting, source)
    assert code == ExitCode.DATABASE, err
    assert "cannot connect to " in err
    assert "password=***" in err
    assert "*** ss" not in err  # the rest of the password after an escaped space
    assert _leaks(out + err, READABLE[setting]) == []
    assert not re.search(r"\w\*\*\*|\*\*\*\w", out + err), "a mask inside a word"


def test_the_old_leaks_are_caught_by_the_check() -> None:
    """`_leaks` finds what the messages of the old masker showed."""
    assert _leaks('invalid percent-encoded token: "Xy%9!kQ2"', "Xy%9!kQ2") != []
    assert _leaks("cannot connect to postgresql://u:***@ss:w/rd@host/db", "p@ss:w/rd") != []
    assert _leaks("garbled to u:correct horse", "correct horse battery staple") != []
    assert _leaks("found in correct horse battery staple", "correct horse battery staple") != []
    assert _leaks("unexpected", "correct horse battery staple") == []


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--database-url", ""], {}),
        ([], {"OCPI_PARTIES_DATABASE_URL": ""}),
        ([], {"OCPI_PARTIES_LOCK_TIMEOUT": ""}),
        ([], {"OCPI_PARTIES_STATEMENT_TIMEOUT": ""}),
        (["--lock-timeout", ""], {}),
    ],
)
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_setting_given_but_empty_is_a_usage_error_not_the_embedded_database(
    command: list[str],
    args: list[str],
    env: dict[str, str],
    *,
    workdir: Path,
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, _, err = run(*command, *args)
    assert code == ExitCode.USAGE, err
    named = next(iter(env), "--database-url" if "--database-url" in args else "--lock-timeout")
    assert f"error: {named} is set but empty" in err
    assert "embedded" not in err
    assert not (workdir / ".ocpi-parties").exists()
