"""`apply --if-same-as REVIEWED_PLAN`: the deploy job applies what was reviewed, or the current plan when it
makes the same changes, or nothing (exit 5). One test per row of the README's decision table, on a real
PostgreSQL, each checking the --report document the workflow reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Run
from maeve_sql import PEER_TOKEN, save_party, snapshot

from reconciler import planfile
from reconciler.database import Connection
from reconciler.errors import ExitCode

REPORT_KEYS = [
    "outcome",
    "history_id",
    "summary",
    "reviewed_summary",
    "current_summary",
    "moves",
    "difference_markdown",
    "error",
]


def _review(run: Run, database_url: str) -> str:
    """The plan workflow on the pull request: `plan --out`; returns the summary reviewers saw."""
    code, out, err = run("plan", "--database-url", database_url, "--out", "reviewed.json")
    assert code == 0, err
    return out.splitlines()[-1]


def _deploy(run: Run, database_url: str, *more: str) -> tuple[int, str, str]:
    return run(
        "apply", "--if-same-as", "reviewed.json", "parties", "--report", "report.json",
        "--database-url", database_url, "--actor", "deploy-bot", *more,
    )  # fmt: skip


def _report(workdir: Path) -> dict[str, Any]:
    text = (workdir / "report.json").read_text(encoding="utf-8")
    report = json.loads(text)
    assert list(report) == REPORT_KEYS
    assert PEER_TOKEN not in text
    return dict(report)


def _history(connection: Connection) -> list[tuple[object, ...]]:
    return connection.execute(
        "SELECT id, revision, actor, pull_request_number, pull_request_url FROM reconciler_apply_history"
    ).fetchall()


def test_a_fresh_reviewed_plan_is_applied_exactly(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    reviewed = _review(run, database_url)
    url = "https://github.com/example/parties/pull/17"
    code, out, err = _deploy(run, database_url, "--pull-request", "17", "--pull-request-url", url)
    assert code == 0, err
    report = _report(workdir)
    assert report["outcome"] == "applied-reviewed"
    assert report["history_id"] == 1
    assert report["summary"] == out.splitlines()[-1]
    assert report["summary"].startswith(
        "Apply complete: 2 added, 1 changed, 0 deleted, 1 adopted; 11 locations"
    )
    assert report["reviewed_summary"] == reviewed == report["current_summary"]
    assert report["moves"] == [{"reason": "orphans", "to": "GB-TWK", "count": 11}]
    assert report["difference_markdown"] is None and report["error"] is None
    assert _history(live) == [(1, None, "deploy-bot", 17, url)]


def test_a_stale_plan_with_the_same_changes_applies_the_current_plan(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    reviewed = _review(run, database_url)
    # A new peer registers a CPO row after the review: which identities hold a CPO row is a fact the plan
    # relies on (its fingerprint changes), but no change of the plan is about it.
    save_party(live, "CPO", "FR", "NEW", url="https://new.example/versions", token=PEER_TOKEN)
    code, _, err = run("plan", "--database-url", database_url, "--out", "current.json")
    assert code == 0, err
    saved, current = planfile.load(workdir / "reviewed.json"), planfile.load(workdir / "current.json")
    assert saved.fingerprint != current.fingerprint
    assert run("apply", "reviewed.json", "--database-url", database_url)[0] == ExitCode.INVALID  # stale

    code, out, err = _deploy(run, database_url)
    assert code == 0, err
    report = _report(workdir)
    assert report["outcome"] == "applied-current"
    assert report["history_id"] == 1 and report["summary"] == out.splitlines()[-1]
    assert report["reviewed_summary"] == reviewed == report["current_summary"]
    assert report["moves"] == [{"reason": "orphans", "to": "GB-TWK", "count": 11}]
    assert report["difference_markdown"] is None and report["error"] is None


@pytest.mark.parametrize("change", ["registration", "party file"])
def test_a_stale_plan_with_other_changes_applies_nothing_and_exits_5(
    run: Run, live: Connection, database_url: str, workdir: Path, change: str
) -> None:
    reviewed = _review(run, database_url)
    if change == "registration":
        # DE-EMO registers: the plan reviewed said it awaits registration; now its rows would be adopted.
        save_party(live, "EMSP", "DE", "EMO", url="https://emo.example/versions", token=PEER_TOKEN)
    else:
        # Another pull request merged first and renamed a party.
        vlt = workdir / "parties" / "NL-VLT.yaml"
        vlt.write_text(vlt.read_text().replace("name: Voltkaart", "name: Voltkaart B.V."))
    before = snapshot(live)
    code, out, err = _deploy(run, database_url)
    assert code == ExitCode.DIFFERS == 5
    assert "error: the plan differs from the reviewed one: nothing was applied" in err
    assert snapshot(live) == before
    report = _report(workdir)
    assert report["outcome"] == "different"
    assert report["history_id"] is None and report["summary"] is None and report["moves"] == []
    assert report["reviewed_summary"] == reviewed
    assert report["current_summary"] == out.splitlines()[-1]
    assert report["error"].startswith("the plan differs from the reviewed one: nothing was applied")
    markdown = report["difference_markdown"]
    assert markdown.startswith("**The current plan differs from the reviewed one: nothing was applied.**")
    assert "<summary>Only in the current plan</summary>" in markdown
    assert "<summary>Only in the reviewed plan</summary>" in markdown or change == "registration"
    if change == "party file":
        assert '!       business_details.name    = (none) -> "Voltkaart B.V."' in markdown
        assert '!       business_details.name    = (none) -> "Voltkaart"\n' in markdown


def test_a_stale_plan_already_applied_leaves_nothing_to_apply(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    reviewed = _review(run, database_url)
    assert run("apply", "--auto-approve", "--database-url", database_url)[0] == 0  # someone applied it
    code, out, err = _deploy(run, database_url)
    assert code == 0, err
    assert out.splitlines()[-1].startswith("No changes. The database matches the party files")
    report = _report(workdir)
    assert report["outcome"] == "nothing-to-apply"
    assert report["history_id"] is None and report["summary"] is None and report["error"] is None
    assert report["reviewed_summary"] == reviewed
    assert report["current_summary"] == out.splitlines()[-1]
    assert len(_history(live)) == 1


@pytest.mark.parametrize(
    "case",
    [
        (None, "cannot read the plan file reviewed.json"),
        ("not json", "reviewed.json is not a plan file written by `ocpi-parties plan --out`"),
        ("altered", "reviewed.json was altered after it was made: run plan again"),
    ],
)
def test_an_unreadable_reviewed_plan_applies_nothing_and_exits_1(
    run: Run, live: Connection, database_url: str, workdir: Path, case: tuple[str | None, str]
) -> None:
    content, message = case
    if content == "altered":
        _review(run, database_url)
        document = json.loads((workdir / "reviewed.json").read_text())
        document["desired"]["parties"][0]["roles"][0]["business_details"]["name"] = "Changed after review"
        (workdir / "reviewed.json").write_text(json.dumps(document))
    elif content is not None:
        (workdir / "reviewed.json").write_text(content)
    before = snapshot(live)
    code, _, err = _deploy(run, database_url)
    assert code == ExitCode.INVALID
    assert f"error: {message}" in err
    assert snapshot(live) == before
    report = _report(workdir)
    assert report["outcome"] == "failed"
    assert report["error"].startswith(message)
    assert report["history_id"] is None and report["reviewed_summary"] is None


def test_the_report_is_written_when_the_database_is_unreachable(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    reviewed = _review(run, database_url)
    code, _, err = _deploy(run, "postgresql://nobody:secret@127.0.0.1:1/none")
    assert code == ExitCode.DATABASE
    report = _report(workdir)
    assert report["outcome"] == "failed" and report["reviewed_summary"] == reviewed
    assert report["error"] == err.removeprefix("error: ").splitlines()[-1]
    assert "secret" not in json.dumps(report)


def test_report_and_if_same_as_misuse_are_usage_errors(run: Run, database_url: str, workdir: Path) -> None:
    code, _, err = run("apply", "--report", "r.json", "--auto-approve", "--database-url", database_url)
    assert code == ExitCode.USAGE and "--report is written by `apply --if-same-as REVIEWED_PLAN` only" in err
    code, _, err = run("apply", "--if-same-as", "x.json", "--auto-approve", "--database-url", database_url)
    assert code == ExitCode.USAGE and "--if-same-as applies without asking" in err


def test_a_report_that_cannot_be_written_fails_only_an_apply_not_yet_committed(
    run: Run, live: Connection, database_url: str, workdir: Path
) -> None:
    missing = "no-such-directory/report.json"
    (workdir / "reviewed.json").write_text("not json")
    code, _, err = run(
        "apply", "--if-same-as", "reviewed.json", "--report", missing, "--database-url", database_url
    )
    assert code == ExitCode.INVALID
    assert "error: reviewed.json is not a plan file" in err
    assert f"warning: cannot write the report {missing}: No such file or directory" in err

    _review(run, database_url)
    code, out, err = run(
        "apply", "--if-same-as", "reviewed.json", "--report", missing, "--database-url", database_url
    )
    assert code == 0, err
    assert (
        f"warning: cannot write the report {missing}: No such file or directory; the apply was committed"
        in err
    )
    assert out.splitlines()[-1].endswith("Recorded as apply #1.")


def test_a_fresh_plan_that_goes_stale_while_apply_waits_for_its_lock_is_refused(
    run: Run, live: Connection, database_url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler import apply as apply_module

    _review(run, database_url)
    real = apply_module.plan_against

    def registration_first(*args: Any, **kwargs: Any) -> Any:
        """A peer registers between the decision (fresh) and the apply's own read under the lock."""
        save_party(live, "CPO", "FR", "NEW", url="https://new.example/versions", token=PEER_TOKEN)
        return real(*args, **kwargs)

    monkeypatch.setattr(apply_module, "plan_against", registration_first)
    before = snapshot(live)
    code, _, err = _deploy(run, database_url)
    assert code == ExitCode.INVALID
    assert "error: stale plan: the database changed since the plan was made" in err
    report = _report(workdir)
    assert report["outcome"] == "failed" and report["error"].startswith("stale plan: ")
    assert len(snapshot(live)) == len(before)
    assert live.execute("SELECT to_regclass('reconciler_apply_history')").fetchone() == (None,)
