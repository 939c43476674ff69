"""The workflows of the commands, without click: plan, apply (from a plan file, confirmed on a terminal,
auto-approved, or as a reviewed plan allows), import and init.

The command line turns its options into arguments, calls a workflow and prints what it returns. A workflow
prints nothing; what it must say or ask on the way (the problems of the party files, the database's
notices, "apply these changes?") goes through the `Console` it is given, never while apply's transaction is
open. Everything here can be run, and tested, without a terminal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import getpass
import os
import socket
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.errors import DiffersError, ReconcilerError, UsageError
from reconciler.model import CPO, DesiredState, Identity, Kind
from reconciler.validate import DEFAULT_FILE, ValidationResult, validate_path

if TYPE_CHECKING:
    from reconciler.apply import Outcome
    from reconciler.changes import ActualState, Plan
    from reconciler.connect import Session
    from reconciler.database import Settings
    from reconciler.editor import Written
    from reconciler.importer import Draft, ImportResult
    from reconciler.output.plan import LocationLister

# The modules behind the database are imported by the workflows that use them: psycopg and the rest take a
# third of a second to import, which `validate` and `init` never need.


class Console(Protocol):
    """What a workflow tells and asks the person running it before it returns."""

    #: Whether `confirm` can ask (standard input is a terminal).
    interactive: bool

    def problems(self, result: ValidationResult) -> None:
        """The problems validation found in the party files (warnings, or the errors that end the command)."""

    def notify(self, message: str) -> None:
        """A notice of the database layer (the embedded server starting, say)."""

    def confirm(self, plan: Plan, *, ask: bool) -> bool:
        """Show the plan; when `ask`, ask whether to apply it and return the answer (else True)."""


# ------------------------------------------------------------------------------------------ party files


def desired_state(path: Path, console: Console) -> DesiredState:
    """The validated desired state of the parties directory; its problems go to `console` first."""
    if path.is_file():
        # One party file is no desired state: the default party and every other party are missing.
        raise UsageError(
            f"{path} is a file: plan and apply need the parties directory (default: parties/), which holds "
            "every party file and default-party.yaml"
        )
    result = validate_path(path, str(path))
    if result.problems:
        console.problems(result)
    if result.state is None:
        count = len(result.errors)
        raise ReconcilerError(
            f"{path} is invalid ({count} error{'' if count == 1 else 's'}): nothing was planned"
        )
    return result.state


def credentials_roles(desired: DesiredState) -> list[dict[str, Any]]:
    """OCPI 2.2.1 CredentialsRole objects of the hosted roles (CPO): what the CSMS presents in `roles`."""
    return [
        {
            "role": role.role,
            "business_details": role.business_details.to_ocpi(),
            "party_id": party.identity.party_id,
            "country_code": party.identity.country_code,
        }
        for party in sorted(desired.parties, key=lambda p: p.identity)
        for role in party.roles
        if role.hosted
    ]


# ------------------------------------------------------------------------------------------------- plan


@dataclasses.dataclass(frozen=True)
class Planned:
    """A plan made against the database, and what saving it needs. `locations` lists a move's location
    ids from the database: only while the `plan` block that yielded it is open."""

    plan: Plan
    desired: DesiredState
    #: What the plan was computed from: saving it takes its fingerprint (`plan.fingerprint`), which a plan
    #: that is only shown never needs (about 4% of a plan of 10,000 files).
    actual: ActualState
    allow_delete: bool
    locations: LocationLister


@contextlib.contextmanager
def plan(
    settings: Settings, path: Path, *, allow_delete: bool, out: Path | None, console: Console
) -> Iterator[Planned]:
    """Plan the parties directory against the database, read-only; the session stays open in the block, so
    that the plan can be shown with the ids of the locations it moves (streamed, however many)."""
    from reconciler import migrations, planfile, state
    from reconciler.connect import session
    from reconciler.plan import compute_plan

    if out is not None:
        planfile.check_target(out)
    desired = desired_state(path, console)
    with session(settings, read_only=True, notify=console.notify) as opened:
        migrations.refuse_newer(opened.connection, opened.target.label)
        actual = state.read_actual_state(opened.connection, desired)
        made = compute_plan(desired, actual, allow_delete=allow_delete)
        lister = functools.partial(state.location_ids, opened.connection, desired=desired)
        yield Planned(made, desired, actual, allow_delete, lister)


def keep_plan(planned: Planned, *, out: Path | None, revision: str | None) -> None:
    """Refuse a plan that cannot be applied (exit 1); else save it to `out` for `apply FILE`, if given."""
    from reconciler import apply, planfile
    from reconciler.plan import fingerprint
    from reconciler.plan_document import plan_document

    apply.refuse_unapplicable(planned.plan, "; no plan file was written" if out else "")
    if out is not None:
        planfile.save(
            out,
            desired=planned.desired,
            fingerprint=fingerprint(planned.desired, planned.actual, planned.plan),
            allow_delete=planned.allow_delete,
            revision=revision,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            rendered=plan_document(planned.plan),
        )


# ------------------------------------------------------------------------------------------------ apply


@dataclasses.dataclass(frozen=True)
class ApplyContext:
    """Who applies, and the pull request the files come from: recorded in the history row."""

    actor: str
    pull_request: int | None = None
    pull_request_url: str | None = None

    @classmethod
    def of(cls, actor: str | None, pull_request: int | None, pull_request_url: str | None) -> ApplyContext:
        """--actor, else GitHub's actor in Actions, else user@host."""
        if not actor:
            github = os.environ.get("GITHUB_ACTOR")
            actor = f"{github} (GitHub Actions)" if github else f"{getpass.getuser()}@{socket.gethostname()}"
        return cls(actor, pull_request, pull_request_url or None)


def revision_of(revision: str | None, path: Path) -> str | None:
    """--revision (or GITHUB_SHA), else the git revision of the parties directory if it is in a work tree."""
    from reconciler import git

    if revision:
        return revision
    return git.revision(path) if path.is_dir() else None


@contextlib.contextmanager
def _writer(settings: Settings, console: Console) -> Iterator[Session]:
    from reconciler import migrations
    from reconciler.connect import session

    with session(settings, read_only=False, notify=console.notify) as opened:
        migrations.refuse_newer(opened.connection, opened.target.label)
        yield opened


def _apply(
    opened: Session,
    desired: DesiredState,
    *,
    allow_delete: bool,
    reviewed_fingerprint: str | None,
    revision: str | None,
    context: ApplyContext,
) -> Outcome:
    from reconciler import apply

    return apply.apply(
        opened.connection,
        desired,
        label=opened.target.label,
        allow_delete=allow_delete,
        reviewed_fingerprint=reviewed_fingerprint,
        revision=revision,
        actor=context.actor,
        pull_request=context.pull_request,
        pull_request_url=context.pull_request_url,
    )


# Each apply returns once its transaction has ended, committed or rolled back: the caller shows the plan
# applied then, never while apply holds a lock, so a terminal, pager or log pipe that stops reading cannot
# keep MaEVe's location writes waiting. A refusal (NothingApplied) carries the plan it refused.


def apply_plan_file(
    settings: Settings, plan_file: Path, *, revision: str | None, context: ApplyContext, console: Console
) -> Outcome:
    """Apply a plan file saved by `plan --out`: exactly the plan reviewed, or nothing when it is stale."""
    from reconciler import planfile

    saved = planfile.load(plan_file)
    with _writer(settings, console) as opened:
        return _apply(
            opened,
            saved.desired,
            allow_delete=saved.allow_delete,
            reviewed_fingerprint=saved.fingerprint,
            revision=revision or saved.revision,
            context=context,
        )


def apply_parties(
    settings: Settings,
    path: Path,
    *,
    allow_delete: bool,
    confirm: bool,
    revision: str | None,
    context: ApplyContext,
    console: Console,
) -> Outcome:
    """Apply the parties directory: with `confirm`, the plan is shown and confirmed on the terminal first
    and applied only while the database still matches it; else (--auto-approve) the plan made under the lock
    is applied."""
    from reconciler import state

    with _writer(settings, console) as opened:
        desired = desired_state(path, console)
        revision = revision_of(revision, path)
        reviewed_fingerprint = None
        if confirm:
            if not console.interactive:
                raise ReconcilerError(
                    "stdin is not a terminal, so apply cannot ask for confirmation: review the plan and "
                    "run with --auto-approve, or save it with `plan --out FILE` and run `apply FILE`"
                )
            made, reviewed_fingerprint = state.plan_against(
                opened.connection, desired, allow_delete=allow_delete
            )
            if not console.confirm(made, ask=made.has_changes and made.can_apply):
                raise ReconcilerError("not applied: the changes were not confirmed")
        return _apply(
            opened,
            desired,
            allow_delete=allow_delete,
            reviewed_fingerprint=reviewed_fingerprint,
            revision=revision,
            context=context,
        )


#: The outcomes `apply --if-same-as` reports (README: apply).
APPLIED_REVIEWED, APPLIED_CURRENT, NOTHING_TO_APPLY, DIFFERENT, FAILED = (
    "applied-reviewed",
    "applied-current",
    "nothing-to-apply",
    "different",
    "failed",
)


@dataclasses.dataclass
class Report:
    """What `apply --if-same-as` did, written as JSON to its --report file (README: apply). Filled in as the
    workflow goes, so that a failure reports what was known when it happened."""

    outcome: str = FAILED
    history_id: int | None = None
    summary: str | None = None
    reviewed_summary: str | None = None
    current_summary: str | None = None
    moves: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    difference_markdown: str | None = None
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class Reviewed:
    """What `apply --if-same-as` decided: the plan to show, the apply's outcome when it ran, and the error
    to end with when the plan differs from the reviewed one."""

    plan: Plan
    outcome: Outcome | None = None
    differs: DiffersError | None = None


def complete_line(outcome: Outcome) -> str:
    """`Apply complete: 1 added, ...; 2 locations moved. Recorded as apply #7.`"""
    from reconciler.plan_document import number

    counts = outcome.plan.counts
    return (
        f"Apply complete: {counts.to_add:,} added, {counts.to_change:,} changed, "
        f"{counts.to_delete:,} deleted, {counts.to_adopt:,} adopted"
        + (f", {counts.to_release:,} released" if counts.to_release else "")
        + f"; {number(outcome.locations_moved, 'location')} moved. "
        f"Recorded as apply #{outcome.history_id}."
    )


def _moves(made: Plan) -> list[dict[str, Any]]:
    from reconciler.changes import MoveLocations

    return [
        {"reason": c.reason, "to": str(c.to), "count": c.count}
        for c in made.applicable
        if isinstance(c, MoveLocations)
    ]


def apply_if_same_as(
    settings: Settings,
    path: Path,
    reviewed_file: Path,
    *,
    report: Report,
    revision: str | None,
    context: ApplyContext,
    console: Console,
) -> Reviewed:
    """`apply --if-same-as`: the decision table of the README's apply section. The reviewed plan file is
    applied while it holds; when it is stale, the current plan of `path` only if it makes the same changes;
    else nothing. `report` is filled in on the way."""
    from reconciler import planfile, state
    from reconciler.output import plan as plan_output
    from reconciler.plan_document import plan_document, same_changes, summary

    reviewed = planfile.load(reviewed_file)
    shown = planfile.reviewed_plan(reviewed, reviewed_file)
    report.reviewed_summary = str(reviewed.rendered.get("summary", {}).get("text") or summary(shown))
    desired = desired_state(path, console)
    revision = revision_of(revision, path)
    outcome: Outcome | None = None
    with _writer(settings, console) as opened:
        current, fingerprint = state.plan_against(
            opened.connection, desired, allow_delete=reviewed.allow_delete
        )
        report.current_summary = summary(current)
        fresh = (
            planfile.desired_digest(desired) == reviewed.desired_digest
            and fingerprint == reviewed.fingerprint
        )
        # A fresh plan is the reviewed one; only another needs its changes compared with the reviewed ones.
        same = not fresh and same_changes(reviewed.rendered, plan_document(current))
        if fresh or (same and current.has_changes):
            outcome = _apply(
                opened,
                reviewed.desired if fresh else desired,
                allow_delete=reviewed.allow_delete,
                reviewed_fingerprint=reviewed.fingerprint if fresh else fingerprint,
                revision=revision or (reviewed.revision if fresh else None),
                context=context,
            )
    if outcome is not None and outcome.history_id is not None:
        report.outcome = APPLIED_REVIEWED if fresh else APPLIED_CURRENT
        report.history_id = outcome.history_id
        report.summary = complete_line(outcome)
        report.moves = _moves(outcome.plan)
        return Reviewed(outcome.plan, outcome)
    if outcome is not None or (not current.has_changes and current.can_apply):
        report.outcome = NOTHING_TO_APPLY
        return Reviewed(outcome.plan if outcome is not None else current)
    differs = DiffersError(
        "the plan differs from the reviewed one: nothing was applied; review the current plan "
        f"(`ocpi-parties plan {path}`) in a new pull request"
    )
    report.outcome = DIFFERENT
    report.difference_markdown = plan_output.difference_markdown(shown, current)
    report.error = differs.message
    return Reviewed(current, differs=differs)


# ------------------------------------------------------------------------------------------ import, init


@dataclasses.dataclass(frozen=True)
class ImportRead:
    """The party rows of a database as party files to be, and the default party it records."""

    label: str
    result: ImportResult
    default: Identity | None


def read_import(
    settings: Settings, *, roles: Sequence[str], identities: Sequence[Identity], console: Console
) -> ImportRead:
    """Read the database's party rows (read-only) and make a draft of each identity's party file."""
    from reconciler import importer, migrations
    from reconciler.connect import session

    with session(settings, read_only=True, notify=console.notify) as opened:
        migrations.refuse_newer(opened.connection, opened.target.label)
        rows, default = importer.read_party_rows(opened.connection)
    result = importer.plan_import(rows, roles=roles, identities=identities)
    return ImportRead(opened.target.label, result, default)


@dataclasses.dataclass(frozen=True)
class FilesWritten:
    """The files a command wrote (as shown to the user), and the drafts of the party files among them."""

    written: list[str]
    drafts: Sequence[Draft]
    #: No default-party file was written and none exists: what `init` is for.
    default_missing: bool = False


def write_import(read: ImportRead, directory: Path, *, force: bool, filtered: bool) -> FilesWritten | None:
    """Write the party files of `read` into `directory` (all or none); a default-party file naming the
    default party too, when it is one of the hosted parties imported and the directory has none. None when
    the database holds no party row; an error when no row was left to import as asked (`filtered`)."""
    from reconciler import importer

    drafts = read.result.drafts
    if not drafts:
        if filtered or read.result.skipped:
            raise ReconcilerError(f"no party rows in {read.label} to import as asked: nothing was written")
        return None
    files = {draft.file_name: importer.render(draft) for draft in drafts}
    imported = {d.identity for d in drafts if any(r.role == CPO and r.kind is Kind.HOSTED for r in d.roles)}
    has_default = (directory / DEFAULT_FILE).exists()
    if read.default is not None and read.default in imported and not has_default:
        files[DEFAULT_FILE] = importer.render_default(read.default)
    written = importer.write_files(directory, str(directory), files, force=force)
    return FilesWritten(written, drafts, default_missing=DEFAULT_FILE not in files and not has_default)


@dataclasses.dataclass(frozen=True)
class Initialised:
    """What `init` wrote, and the files it kept because they already declare what it would write."""

    files: FilesWritten
    draft: Draft
    kept_party_file: bool
    kept_default_file: bool


def parse_identity(text: str) -> Identity:
    """A party identity given on the command line (`GB-TWK`, any case)."""
    identity = Identity.parse(text)
    if identity is None:
        raise UsageError(f"{text!r} is not a party identity such as GB-TWK")
    return identity


def init(
    directory: Path, *, config: Path | None, party: str | None, name: str | None, force: bool
) -> Initialised:
    """Write the own party's file (a hosted CPO) and the default-party file naming it: from MaEVe's config
    or the identity given. Files that already declare the same are kept, unless `force`."""
    from reconciler import importer

    if (config is None) == (party is None):
        raise UsageError("give either --from-maeve-config FILE or --party CC-PID")
    if config is not None:
        draft = importer.draft_from_maeve_config(config, str(config), name=name)
    else:
        draft = importer.own_party_draft(parse_identity(str(party)), name)
    text = importer.render(draft)
    problem = importer.check(draft, text)
    if problem is not None:
        raise ReconcilerError(f"{draft.file_name} cannot be written: {problem}")
    files = {}
    kept_party = not force and importer.declared_cpo(directory / draft.file_name)
    if not kept_party:
        files[draft.file_name] = text
    kept_default = not force and importer.names_default(directory / DEFAULT_FILE, draft.identity)
    if not kept_default:
        files[DEFAULT_FILE] = importer.render_default(draft.identity)
    written = importer.write_files(directory, str(directory), files, force=force)
    # A kept own party file is the user's: a name missing there is not this command's to report.
    drafts = [] if kept_party else [draft]
    return Initialised(FilesWritten(written, drafts), draft, kept_party, kept_default)


def editor_files(parties: Path, *, gitignore: bool = False) -> tuple[list[Written], Path, list[str]]:
    """Write the schemas that the party files' modelines name beside `parties`, and (init) add what a party
    repository ignores to its .gitignore: the schemas written, the .gitignore and the entries added."""
    from reconciler import editor

    schemas = editor.write_schemas(editor.beside(parties, "schema"))
    ignore = editor.beside(parties, ".gitignore")
    return schemas, ignore, editor.extend_gitignore(ignore) if gitignore else []
