"""Secrets: a password in the database URL (or PGPASSWORD) and the OCPI tokens MaEVe keeps never appear in
any output of a full cycle, in any format, in the plan file, in the history rows or in an error message."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import psycopg
import pytest
from conftest import Run
from maeve_sql import PEER_TOKEN
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from reliability import seed_live

from reconciler.database import ADVISORY_LOCK_KEY, Connection

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
