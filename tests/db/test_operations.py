"""The workflows of reconciler/operations.py, called as plain functions: no click, no terminal.

A recording console stands in for the terminal; the database tests run against the real PostgreSQL of
tests/conftest.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reconciler import operations
from reconciler.apply import Outcome
from reconciler.changes import Plan
from reconciler.database import Connection, Settings
from reconciler.errors import (
    DatabaseError,
    DiffersError,
    ExitCode,
    NothingApplied,
    ReconcilerError,
    StalePlan,
    UsageError,
)
from reconciler.model import Identity
from reconciler.operations import ApplyContext, Report
from reconciler.validate import ValidationResult

CONTEXT = ApplyContext("tester@example")


@dataclass
class Console:
    """A console that records what a workflow said and answers its question with `answer`."""

    interactive: bool = True
    answer: bool = True
    problems_seen: list[ValidationResult] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    confirmed: list[tuple[Plan, bool]] = field(default_factory=list)

    def problems(self, result: ValidationResult) -> None:
        self.problems_seen.append(result)

    def notify(self, message: str) -> None:
        self.notices.append(message)

    def confirm(self, plan: Plan, *, ask: bool) -> bool:
        self.confirmed.append((plan, ask))
        return self.answer or not ask


def _apply(settings: Settings, console: Console | None = None, *, confirm: bool = False) -> Outcome:
    return operations.apply_parties(
        settings,
        Path("parties"),
        allow_delete=False,
        confirm=confirm,
        revision="r1",
        context=CONTEXT,
        console=console or Console(),
    )


# ------------------------------------------------------------------------------------ without a database


def test_desired_state_refuses_a_file_and_reports_problems_before_failing(workdir: Path) -> None:
    console = Console()
    with pytest.raises(UsageError, match="is a file: plan and apply need the parties directory"):
        operations.desired_state(workdir / "parties" / "GB-TWK.yaml", console)
    (workdir / "parties" / "GB-TWK.yaml").write_text("country_code: GB\n", encoding="utf-8")
    with pytest.raises(ReconcilerError, match=r"parties is invalid \(\d+ errors?\): nothing was planned"):
        operations.desired_state(Path("parties"), console)
    assert len(console.problems_seen) == 1 and console.problems_seen[0].errors


def test_credentials_roles_are_the_hosted_roles(workdir: Path) -> None:
    roles = operations.credentials_roles(operations.desired_state(Path("parties"), Console()))
    assert roles and all(entry["role"] == "CPO" for entry in roles)
    assert [f"{r['country_code']}-{r['party_id']}" for r in roles] == sorted(
        f"{r['country_code']}-{r['party_id']}" for r in roles
    )


def test_init_writes_the_own_party_and_keeps_what_declares_it(tmp_path: Path) -> None:
    parties = tmp_path / "parties"
    with pytest.raises(UsageError, match="give either --from-maeve-config FILE or --party CC-PID"):
        operations.init(parties, config=None, party=None, name=None, force=False)
    with pytest.raises(UsageError, match="is not a party identity"):
        operations.init(parties, config=None, party="nope", name=None, force=False)
    done = operations.init(parties, config=None, party="gb-own", name="Own Ltd", force=False)
    assert done.files.written == [f"{parties}/GB-OWN.yaml", f"{parties}/default-party.yaml"]
    assert not done.kept_party_file and not done.kept_default_file
    again = operations.init(parties, config=None, party="GB-OWN", name="Own Ltd", force=False)
    assert again.kept_party_file and again.kept_default_file and again.files.written == []
    schemas, ignore, added = operations.editor_files(parties, gitignore=True)
    assert {Path(s.path).name for s in schemas} == {"party.schema.json", "default-party.schema.json"}
    assert ignore == tmp_path / ".gitignore" and added == ["plan.json", ".ocpi-parties/"]


def test_the_apply_context_names_who_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    assert operations.ApplyContext.of(None, 7, "").actor == "octocat (GitHub Actions)"
    assert operations.ApplyContext.of(None, 7, "").pull_request_url is None
    assert operations.ApplyContext.of("me", None, None) == ApplyContext("me")
    monkeypatch.delenv("GITHUB_ACTOR")
    assert "@" in operations.ApplyContext.of(None, None, None).actor


def test_a_reworded_error_keeps_its_class_exit_code_and_plan() -> None:
    plan = Plan(())
    refused = StalePlan("stale", plan=plan).reworded("apply failed: stale")
    assert type(refused) is StalePlan and refused.plan is plan and refused.message == "apply failed: stale"
    assert DatabaseError("x").reworded("y").exit_code == ExitCode.DATABASE


# ---------------------------------------------------------------------------------------- with a database


def test_plan_then_keep_saves_the_plan_file(database_url: str, workdir: Path) -> None:
    settings = Settings(url=database_url)
    out = workdir / "plan.json"
    with operations.plan(settings, Path("parties"), allow_delete=False, out=out, console=Console()) as made:
        assert made.plan.has_changes
    operations.keep_plan(made, out=out, revision="abc")
    outcome = operations.apply_plan_file(settings, out, revision=None, context=CONTEXT, console=Console())
    assert outcome.history_id is not None
    with pytest.raises(StalePlan):  # applied: the file's fingerprint no longer matches
        operations.apply_plan_file(settings, out, revision=None, context=CONTEXT, console=Console())


def test_blocked_deletions_are_refused_by_plan_and_apply_in_the_same_words(
    database_url: str, workdir: Path
) -> None:
    settings = Settings(url=database_url)
    assert _apply(settings).history_id is not None
    (workdir / "parties" / "ES-CPO.yaml").unlink()
    with operations.plan(settings, Path("parties"), allow_delete=False, out=None, console=Console()) as made:
        pass
    blocked = (
        "1 deletion blocked by deletion protection: add a tombstone (deleted: true) "
        "or run with --allow-delete"
    )
    with pytest.raises(NothingApplied) as planned:
        operations.keep_plan(made, out=Path("plan.json"), revision=None)
    assert planned.value.message == blocked + "; no plan file was written"
    assert not Path("plan.json").exists()
    with pytest.raises(NothingApplied) as applied:
        _apply(settings)
    assert applied.value.message == blocked + "; nothing was changed"
    assert applied.value.plan is not None and applied.value.plan.blocked


def test_apply_confirmed_asks_once_and_applies_only_a_yes(database_url: str, workdir: Path) -> None:
    settings = Settings(url=database_url)
    with pytest.raises(ReconcilerError, match="stdin is not a terminal, so apply cannot ask"):
        _apply(settings, Console(interactive=False), confirm=True)
    declined = Console(answer=False)
    with pytest.raises(ReconcilerError, match="not applied: the changes were not confirmed"):
        _apply(settings, declined, confirm=True)
    assert [ask for _, ask in declined.confirmed] == [True]
    accepted = Console()
    outcome = _apply(settings, accepted, confirm=True)
    assert outcome.history_id is not None and accepted.confirmed[0][0].has_changes
    nothing = Console()
    assert _apply(settings, nothing, confirm=True).history_id is None
    assert [ask for _, ask in nothing.confirmed] == [False], "no changes: shown, not asked"


def test_apply_if_same_as_applies_the_reviewed_plan_or_reports_the_difference(
    database_url: str, workdir: Path
) -> None:
    settings = Settings(url=database_url)
    reviewed = workdir / "reviewed.json"
    with operations.plan(
        settings, Path("parties"), allow_delete=False, out=reviewed, console=Console()
    ) as made:
        pass
    operations.keep_plan(made, out=reviewed, revision="r0")

    def if_same_as() -> tuple[operations.Reviewed, Report]:
        report = Report()
        done = operations.apply_if_same_as(
            settings,
            Path("parties"),
            reviewed,
            report=report,
            revision=None,
            context=CONTEXT,
            console=Console(),
        )
        return done, report

    done, report = if_same_as()
    assert report.outcome == operations.APPLIED_REVIEWED and done.outcome is not None
    assert report.summary == operations.complete_line(done.outcome) and report.history_id
    done, report = if_same_as()
    assert report.outcome == operations.NOTHING_TO_APPLY and done.differs is None
    (workdir / "parties" / "GB-TWK.yaml").write_text(
        (workdir / "parties" / "GB-TWK.yaml").read_text(encoding="utf-8").replace("name: ", "name: New ", 1),
        encoding="utf-8",
    )
    done, report = if_same_as()
    assert report.outcome == operations.DIFFERENT and isinstance(done.differs, DiffersError)
    assert report.error == done.differs.message and report.difference_markdown
    assert done.differs.exit_code == ExitCode.DIFFERS


def test_import_writes_a_file_per_party_and_refuses_an_empty_selection(
    database_url: str, live: Connection, tmp_path: Path
) -> None:
    settings = Settings(url=database_url)
    read = operations.read_import(settings, roles=(), identities=(), console=Console())
    files = operations.write_import(read, tmp_path / "parties", force=False, filtered=False)
    assert files is not None and files.default_missing
    assert sorted(Path(p).name for p in files.written) == ["BE-PEE.yaml", "NL-VLT.yaml"]
    nobody = operations.read_import(
        settings, roles=(), identities=(Identity("GB", "NON"),), console=Console()
    )
    with pytest.raises(ReconcilerError, match=r"no party rows in .* to import as asked: nothing was written"):
        operations.write_import(nobody, tmp_path / "other", force=False, filtered=True)


def test_import_from_a_database_without_parties_writes_nothing(database_url: str, tmp_path: Path) -> None:
    read = operations.read_import(Settings(url=database_url), roles=(), identities=(), console=Console())
    assert operations.write_import(read, tmp_path, force=False, filtered=False) is None
