"""The `ocpi-parties` command line. Each command parses its options and calls one plain function."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import getpass
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from reconciler import __version__, report
from reconciler.errors import (
    WITH_DATABASE,
    WITHOUT_DATABASE,
    ExitCode,
    ReconcilerError,
    UsageError,
    committed,
    exit_codes_help,
    forget_commit,
)
from reconciler.model import CPO, NAME_NEEDED, ROLES, DesiredState, Identity, Kind
from reconciler.validate import DEFAULT_FILE, validate_path

if TYPE_CHECKING:
    from reconciler.apply import HistoryEntry, Outcome
    from reconciler.changes import Plan
    from reconciler.database import Session, Settings
    from reconciler.importer import Draft

# The modules behind the database and the other commands are imported by the commands that use them:
# psycopg and the rest take a third of a second to import, which `validate` never needs.

#: The epilogs of `--help`, made from the one table of exit codes (reconciler/errors.py): each lists only the
#: codes its command can return.
EXIT_CODES = exit_codes_help(WITH_DATABASE)
NO_DATABASE_EXIT_CODES = exit_codes_help(WITHOUT_DATABASE)
VALIDATE_EXIT_CODES = exit_codes_help(
    WITHOUT_DATABASE, OK="success: the files are valid (warnings do not count unless --strict)"
)


def _use_color() -> bool:
    """Colour only when standard output is a terminal, never with `--no-color` or a non-empty `NO_COLOR`
    (https://no-color.org): not in pipes, files or redirected output. JSON and Markdown are never styled."""
    context = click.get_current_context(silent=True)
    if context is not None and context.find_root().params.get("no_color"):
        return False
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _style(text: str, color: str) -> str:
    return click.style(text, fg=color)


def _plain(text: str, _color: str) -> str:
    return text


def _echo_styled(make: Callable[[Callable[[str, str], str]], str]) -> None:
    """Print the text that `make(style)` returns, styled when `_use_color()`: the one way every text output
    (validate, plan, apply's plan, show, history show) gets its colour."""
    color = _use_color()
    click.echo(make(_style if color else _plain), color=color)


ALL_EXIT_CODES = exit_codes_help(
    OK="success (validate: the files are valid; warnings do not count unless --strict)",
    INTERRUPTED="interrupted (Ctrl-C); apply: nothing was changed (rolled back)",
)


class _OutputLost(Exception):
    """Standard output was closed (`| head`). Raised instead of BrokenPipeError, which click's main turns
    into exit 1 by itself, before `_main` can say what happened to the database."""


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as error:
            raise _OutputLost from error


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]}, epilog=ALL_EXIT_CODES)
@click.version_option(__version__, prog_name="ocpi-parties")
@click.option(
    "--traceback",
    is_flag=True,
    help="Show the full traceback of an unexpected error (also accepted after the command).",
)
@click.option(
    "--no-color",
    is_flag=True,
    help="Never colour the output (also: NO_COLOR set to any value; also accepted after the command).",
)
def cli(traceback: bool, no_color: bool) -> None:
    """Manage the OCPI parties of a MaEVe CSMS from YAML files in git."""


@cli.command(epilog=VALIDATE_EXIT_CODES)
@click.argument("path", default="parties", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text: file:line:col: $.path: message; json: a stable document; github: inline annotations.",
)
@click.option("--strict", is_flag=True, help="Treat warnings (such as lower-case codes) as errors.")
def validate(path: Path, output_format: str, strict: bool) -> None:
    """Check the party files in PATH (default: parties/) without touching any database.

    Every problem in every file is reported before the command exits.
    """
    result = validate_path(path, str(path))
    if output_format == "json":
        click.echo(report.render_json(result, strict=strict))
    elif output_format == "github":
        click.echo(report.render_github(result, strict=strict))
    else:
        _echo_styled(lambda style: report.render_text(result, strict=strict, style=style))
    invalid = bool(result.errors) or (strict and bool(result.warnings))
    sys.exit(ExitCode.INVALID if invalid else ExitCode.OK)


def _desired(path: Path) -> DesiredState:
    """The validated desired state; invalid files are reported on stderr and end the command (exit 1)."""
    if path.is_file():
        # One party file is no desired state: the default party and every other party are missing.
        raise UsageError(
            f"{path} is a file: plan and apply need the parties directory (default: parties/), which holds "
            "every party file and default-party.yaml"
        )
    result = validate_path(path, str(path))
    if result.problems:
        click.echo(report.render_text(result), err=True)
    if result.state is None:
        count = len(result.errors)
        raise ReconcilerError(
            f"{path} is invalid ({count} error{'' if count == 1 else 's'}): nothing was planned"
        )
    return result.state


def database_options(function: Callable[..., None]) -> Callable[..., None]:
    """--database-url, --statement-timeout and --lock-timeout, turned into one `settings` argument."""

    @functools.wraps(function)
    def wrapper(
        database_url: str | None, statement_timeout: str | None, lock_timeout: str | None, **kwargs: Any
    ) -> None:
        from reconciler.database import Settings

        function(settings=Settings.from_options(database_url, statement_timeout, lock_timeout), **kwargs)

    options = [
        click.option(
            "--database-url",
            metavar="URL",
            help="PostgreSQL URL or libpq string [env OCPI_PARTIES_DATABASE_URL; else PG* variables; "
            "else the embedded database in .ocpi-parties/].",
        ),
        click.option(
            "--statement-timeout",
            metavar="DURATION",
            help="Cancel any statement running longer [env OCPI_PARTIES_STATEMENT_TIMEOUT; default 60s].",
        ),
        click.option(
            "--lock-timeout",
            metavar="DURATION",
            help="Give up waiting for a lock after [env OCPI_PARTIES_LOCK_TIMEOUT; default 5s].",
        ),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def _notify(message: str) -> None:
    click.echo(message, err=True)


def _reader(settings: Settings) -> contextlib.AbstractContextManager[Session]:
    """A read-only session on a migrated database."""
    from reconciler.database import session

    return session(settings, read_only=True, notify=_notify)


def _current(opened: Session) -> None:
    from reconciler import migrations

    migrations.require_current(opened.connection, opened.target.label)


def _readable(opened: Session) -> None:
    """The read commands (parties, locations, default) read a database ocpi-parties has not migrated yet, as
    plan does; one that a newer ocpi-parties migrated they refuse, as plan does."""
    from reconciler import migrations

    migrations.refuse_newer(opened.connection, opened.target.label)


def _identity(text: str) -> Identity:
    identity = Identity.parse(text)
    if identity is None:
        raise UsageError(f"{text!r} is not a party identity such as GB-TWK")
    return identity


class _RoleChoice(click.Choice):  # type: ignore[type-arg]
    """An OCPI role in any case, listed in help in upper case as OCPI writes it (click shows the case-folded
    form of a case-insensitive choice)."""

    def normalize_choice(self, choice: object, ctx: click.Context | None) -> str:
        return str(super().normalize_choice(choice, ctx)).upper()


_FORMAT = click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for programs.",
)
_OFFSET = click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)


PLAN_EXIT_CODES = exit_codes_help(
    (*WITH_DATABASE, "CHANGES"),
    OK="the plan was made (with --detailed-exitcode: and there is nothing to change)",
    INVALID="invalid party files, blocked deletions, or the command failed for the reason it prints; with "
    "--detailed-exitcode, every error",
    USAGE="usage error (without --detailed-exitcode)",
    CHANGES="with --detailed-exitcode: the plan has changes",
    DATABASE="database unreachable, login refused, timed out or without MaEVe's tables (without "
    "--detailed-exitcode)",
    INTERNAL="internal error: run again with --traceback and report it (without --detailed-exitcode)",
)


@cli.command(epilog=PLAN_EXIT_CODES)
@click.argument("path", default="parties", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="text for a terminal, json for programs (docs/plan-format.md), markdown for a pull-request comment.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Save the plan to this file for `ocpi-parties apply FILE`, which applies exactly it.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there is nothing to change, 2 when there are changes, 1 on error.",
)
@click.option(
    "--allow-delete",
    is_flag=True,
    help="Delete managed rows that the files no longer declare, without a tombstone.",
)
@click.option("--show-locations", is_flag=True, help="List the id of every location to move (text format).")
@click.option(
    "--revision",
    envvar="GITHUB_SHA",
    metavar="REV",
    help="The revision of the party files, recorded in the plan file [env GITHUB_SHA].",
)
@database_options
def plan(
    *,
    settings: Settings,
    path: Path,
    output_format: str,
    out: Path | None,
    detailed_exitcode: bool,
    allow_delete: bool,
    show_locations: bool,
    revision: str | None,
) -> None:
    """Show what `apply` would change in the database so that it matches the party files in PATH.

    Read-only: plan never writes to the database. Locations are shown as groups with counts.
    """
    from reconciler import migrations, planfile, render, state
    from reconciler.plan_document import number, plan_document

    if out is not None:
        planfile.check_target(out)
    desired = _desired(path)
    with _reader(settings) as opened:
        migrations.refuse_newer(opened.connection, opened.target.label)
        made, facts = state.plan_against(opened.connection, desired, allow_delete=allow_delete)
        if output_format == "json":
            click.echo(render.render_json(made))
        elif output_format == "markdown":
            click.echo(render.render_markdown(made))
        else:
            lister = (
                functools.partial(state.location_ids, opened.connection, desired=desired)
                if show_locations
                else None
            )
            _echo_styled(lambda style: render.render_text(made, style=style, locations=lister))
    if made.refused:
        raise ReconcilerError(made.refused[0] + ("; no plan file was written" if out else ""))
    if made.blocked:
        raise ReconcilerError(
            f"{number(len(made.blocked), 'deletion')} blocked by deletion protection: add a tombstone "
            "(deleted: true) or run with --allow-delete" + ("; no plan file was written" if out else "")
        )
    if out is not None:
        planfile.save(
            out,
            desired=desired,
            fingerprint=facts,
            allow_delete=allow_delete,
            revision=revision,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            rendered=plan_document(made),
        )
        click.echo(f"Saved the plan to {out}: apply exactly it with `ocpi-parties apply {out}`.", err=True)
    if detailed_exitcode and made.has_changes:
        sys.exit(ExitCode.CHANGES)
    sys.exit(ExitCode.OK)


APPLY_EXIT_CODES = exit_codes_help(
    (*WITH_DATABASE, "BUSY", "DIFFERS"),
    OK="applied, or nothing to change; also when the output after COMMIT was lost (a closed pipe)",
    INVALID="invalid files, blocked deletions, a stale or foreign plan file, no confirmation, or the apply "
    "failed (everything rolled back: nothing was changed)",
    DATABASE="database unreachable, login refused, timed out or without MaEVe's tables",
    BUSY="another apply (or db migrate) held the lock longer than --lock-timeout; nothing was changed",
    DIFFERS="--if-same-as: the reviewed plan is stale and the current plan's changes differ from it; nothing "
    "was applied",
    INTERRUPTED="interrupted (Ctrl-C) before COMMIT: nothing was changed (rolled back)",
)


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    if os.environ.get("GITHUB_ACTOR"):
        return f"{os.environ['GITHUB_ACTOR']} (GitHub Actions)"
    return f"{getpass.getuser()}@{socket.gethostname()}"


def _confirmed(question: str) -> bool:
    """Ask on the terminal and read one line: only y or yes applies; anything else, or end of input, does not.

    The question goes to stdout, after the plan: input() would write it to stderr, where it is lost when
    stderr is redirected.
    """
    click.echo(f"\n{question} [y/N]: ", nl=False)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _show_plan(made: Plan) -> None:
    from reconciler import render

    _echo_styled(lambda style: render.render_text(made, style=style))


@cli.command(epilog=APPLY_EXIT_CODES)
@click.argument("target", default="parties", type=click.Path(path_type=Path))
@click.option("--auto-approve", is_flag=True, help="Apply without asking (for CI and deploy jobs).")
@click.option(
    "--allow-delete",
    is_flag=True,
    help="Delete managed rows that the files no longer declare, without a tombstone.",
)
@click.option(
    "--if-same-as",
    "reviewed_file",
    metavar="REVIEWED_PLAN",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Apply the plan file reviewed (plan --out) while it holds; when it is stale, the current plan of "
    "TARGET only if it makes the same changes; else nothing (exit 5). Asks nothing.",
)
@click.option(
    "--report",
    "report_file",
    metavar="FILE",
    type=click.Path(path_type=Path, dir_okay=False),
    help="With --if-same-as: write what happened to FILE as JSON, also when it fails.",
)
@click.option(
    "--revision",
    envvar="GITHUB_SHA",
    metavar="REV",
    help="The revision of the party files, recorded in the history [env GITHUB_SHA; else git rev-parse "
    "HEAD of TARGET, -dirty when it has uncommitted changes].",
)
@click.option(
    "--actor", metavar="NAME", help="Who applies, recorded in the history [env GITHUB_ACTOR; else user@host]."
)
@click.option(
    "--pull-request",
    type=click.IntRange(min=1),
    envvar="OCPI_PARTIES_PULL_REQUEST",
    metavar="N",
    help="The pull request the files were merged from, recorded in the history [env "
    "OCPI_PARTIES_PULL_REQUEST].",
)
@click.option(
    "--pull-request-url",
    envvar="OCPI_PARTIES_PULL_REQUEST_URL",
    metavar="URL",
    help="Its address, recorded in the history [env OCPI_PARTIES_PULL_REQUEST_URL].",
)
@database_options
def apply(
    *,
    settings: Settings,
    target: Path,
    auto_approve: bool,
    allow_delete: bool,
    reviewed_file: Path | None,
    report_file: Path | None,
    revision: str | None,
    actor: str | None,
    pull_request: int | None,
    pull_request_url: str | None,
) -> None:
    """Make the database match the party files, in one transaction.

    TARGET is the parties directory (default: parties/), whose plan is shown and confirmed first, or a plan
    file saved by `plan --out`, which is applied exactly as it was reviewed or not at all. With --if-same-as,
    TARGET is the parties directory and the plan file reviewed decides what is applied (README: apply).
    """
    from reconciler import apply as apply_module
    from reconciler import migrations, planfile, state
    from reconciler.database import session

    context = _ApplyContext(_actor(actor), pull_request, pull_request_url or None)
    if reviewed_file is not None:
        if allow_delete or auto_approve:
            raise UsageError(
                "--if-same-as applies without asking and with the reviewed plan's --allow-delete: give "
                "neither --auto-approve nor --allow-delete with it"
            )
        _apply_if_same_as(
            settings=settings,
            target=target,
            reviewed_file=reviewed_file,
            report_file=report_file,
            revision=revision,
            context=context,
        )
        return
    if report_file is not None:
        raise UsageError("--report is written by `apply --if-same-as REVIEWED_PLAN` only")
    saved = planfile.load(target) if target.is_file() else None
    with session(settings, read_only=False, notify=_notify) as opened:
        migrations.refuse_newer(opened.connection, opened.target.label)
        # The plan applied is shown once its transaction has ended: never while apply holds a lock, so a
        # terminal, pager or log pipe that stops reading cannot keep MaEVe's location writes waiting.
        show_after = True
        if saved is not None:
            desired, expected, allow = saved.desired, saved.fingerprint, saved.allow_delete
            revision = revision or saved.revision
        else:
            desired, expected, allow = _desired(target), None, allow_delete
            revision = _revision(revision, target)
        if saved is None and not auto_approve:
            if not sys.stdin.isatty():
                raise ReconcilerError(
                    "stdin is not a terminal, so apply cannot ask for confirmation: review the plan and "
                    "run with --auto-approve, or save it with `plan --out FILE` and run `apply FILE`"
                )
            made, expected = state.plan_against(opened.connection, desired, allow_delete=allow)
            _show_plan(made)
            show_after = False
            if made.has_changes and made.can_apply and not _confirmed("Apply these changes?"):
                raise ReconcilerError("not applied: the changes were not confirmed")
        try:
            outcome = apply_module.apply(
                opened.connection,
                desired,
                label=opened.target.label,
                allow_delete=allow,
                expected=expected,
                revision=revision,
                actor=context.actor,
                pull_request=context.pull_request,
                pull_request_url=context.pull_request_url,
            )
        except apply_module.NothingApplied as refused:
            if show_after and refused.plan is not None:
                _show_plan(refused.plan)  # rolled back: no lock is held any more
            raise
    if show_after:
        _show_plan(outcome.plan)  # committed (or nothing to do): no lock is held any more
    _show_outcome(outcome)


@dataclasses.dataclass(frozen=True)
class _ApplyContext:
    """Who applies, and the pull request the files come from: recorded in the history row."""

    actor: str
    pull_request: int | None
    pull_request_url: str | None


def _revision(revision: str | None, path: Path) -> str | None:
    """--revision (or GITHUB_SHA), else the git revision of the parties directory if it is in a work tree."""
    from reconciler import git

    if revision:
        return revision
    return git.revision(path) if path.is_dir() else None


def _complete_line(outcome: Outcome) -> str:
    from reconciler.plan_document import number

    made = outcome.plan
    return (
        f"Apply complete: {made.to_add:,} added, {made.to_change:,} changed, {made.to_delete:,} deleted, "
        f"{made.to_adopt:,} adopted"
        + (f", {made.to_release:,} released" if made.to_release else "")
        + f"; {number(outcome.locations_moved, 'location')} moved. "
        f"Recorded as apply #{outcome.history_id}."
    )


def _show_outcome(outcome: Outcome) -> None:
    """The line that says what an apply changed, and what keeps the location owner key NOT VALID."""
    if outcome.history_id is None:
        return
    click.echo("\n" + _complete_line(outcome))
    if outcome.key_needs_owner:
        click.echo(
            "Note: the location owner key stays NOT VALID: only the owner of the locations table may "
            "validate it. Run `ocpi-parties db migrate` as that role to validate it.",
            err=True,
        )
    elif not outcome.key_validated:
        click.echo(
            "Note: some locations still have no owner, so the location owner key stays NOT VALID "
            "until a default party exists.",
            err=True,
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
class _Report:
    """What `apply --if-same-as` did, written as JSON to its --report file (README: apply)."""

    outcome: str = FAILED
    history_id: int | None = None
    summary: str | None = None
    reviewed_summary: str | None = None
    current_summary: str | None = None
    moves: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    difference_markdown: str | None = None
    error: str | None = None

    def write(self, path: Path | None) -> None:
        if path is None:
            return
        text = json.dumps(dataclasses.asdict(self), indent=2, ensure_ascii=False) + "\n"
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as error:
            message = f"cannot write the report {path}: {error.strerror or error}"
            if not committed():
                raise ReconcilerError(message) from None
            click.echo(f"warning: {message}; the apply was committed", err=True)


def _moves(made: Plan) -> list[dict[str, Any]]:
    from reconciler.changes import MoveLocations

    return [
        {"reason": c.reason, "to": str(c.to), "count": c.count}
        for c in made.applicable
        if isinstance(c, MoveLocations)
    ]


def _failure(error: BaseException) -> str:
    if isinstance(error, ReconcilerError):
        return error.message
    if isinstance(error, KeyboardInterrupt | click.Abort):
        return "interrupted" + ("" if committed() else ": nothing was changed (rolled back)")
    if isinstance(error, click.ClickException):
        return error.format_message()
    return f"internal error: {type(error).__name__}: {error}"


def _apply_if_same_as(
    *,
    settings: Settings,
    target: Path,
    reviewed_file: Path,
    report_file: Path | None,
    revision: str | None,
    context: _ApplyContext,
) -> None:
    """`apply --if-same-as`: the decision table of the README's apply section. The report is written before
    anything is printed, and on every failure before the command exits."""
    report = _Report()
    try:
        _decide_and_apply(
            settings=settings,
            target=target,
            reviewed_file=reviewed_file,
            report=report,
            report_file=report_file,
            revision=revision,
            context=context,
        )
    except BaseException as error:
        if report.outcome == FAILED:
            report.error = _failure(error)
            try:
                report.write(report_file)
            except ReconcilerError as unwritten:
                click.echo(f"warning: {unwritten.message}", err=True)  # the first error is the one to see
        raise


def _decide_and_apply(
    *,
    settings: Settings,
    target: Path,
    reviewed_file: Path,
    report: _Report,
    report_file: Path | None,
    revision: str | None,
    context: _ApplyContext,
) -> None:
    from reconciler import apply as apply_module
    from reconciler import migrations, planfile, render, state
    from reconciler.database import session
    from reconciler.plan_document import plan_document, same_changes, summary

    reviewed = planfile.load(reviewed_file)
    shown = planfile.reviewed_plan(reviewed, reviewed_file)
    report.reviewed_summary = str(reviewed.rendered.get("summary", {}).get("text") or summary(shown))
    desired = _desired(target)
    revision = _revision(revision, target)
    outcome: Outcome | None = None
    with session(settings, read_only=False, notify=_notify) as opened:
        migrations.refuse_newer(opened.connection, opened.target.label)
        current, facts = state.plan_against(opened.connection, desired, allow_delete=reviewed.allow_delete)
        report.current_summary = summary(current)
        fresh = planfile.desired_digest(desired) == reviewed.desired_digest and facts == reviewed.fingerprint
        same = same_changes(reviewed.rendered, plan_document(current))
        if fresh or (same and current.has_changes):
            try:
                outcome = apply_module.apply(
                    opened.connection,
                    reviewed.desired if fresh else desired,
                    label=opened.target.label,
                    allow_delete=reviewed.allow_delete,
                    expected=reviewed.fingerprint if fresh else facts,
                    revision=revision or (reviewed.revision if fresh else None),
                    actor=context.actor,
                    pull_request=context.pull_request,
                    pull_request_url=context.pull_request_url,
                )
            except apply_module.NothingApplied as refused:
                if refused.plan is not None:
                    _show_plan(refused.plan)  # rolled back: no lock is held any more
                raise
    if outcome is not None and outcome.history_id is not None:
        report.outcome = APPLIED_REVIEWED if fresh else APPLIED_CURRENT
        report.history_id = outcome.history_id
        report.summary = _complete_line(outcome)
        report.moves = _moves(outcome.plan)
        report.write(report_file)
        _show_plan(outcome.plan)
        _show_outcome(outcome)
        return
    if outcome is not None or (not current.has_changes and current.can_apply):
        report.outcome = NOTHING_TO_APPLY
        report.write(report_file)
        _show_plan(outcome.plan if outcome is not None else current)
        return
    report.outcome = DIFFERENT
    report.difference_markdown = render.difference_markdown(shown, current)
    report.error = (
        "the plan differs from the reviewed one: nothing was applied; review the current plan "
        f"(`ocpi-parties plan {target}`) in a new pull request"
    )
    report.write(report_file)
    _show_plan(current)
    raise ReconcilerError(report.error, exit_code=ExitCode.DIFFERS)


@cli.command("show", epilog=NO_DATABASE_EXIT_CODES, short_help="Show a saved plan file again.")
@click.argument("planfile", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="As plan prints it: text for a terminal, json for programs, markdown for a pull-request comment.",
)
def show_command(planfile: Path, output_format: str) -> None:
    """Print the plan saved in PLANFILE by `plan --out` again, without a database (as `terraform show`)."""
    from reconciler import planfile as planfile_module
    from reconciler import render

    made = planfile_module.reviewed_plan(planfile_module.load(planfile), planfile)
    if output_format == "json":
        click.echo(render.render_json(made))
    elif output_format == "markdown":
        click.echo(render.render_markdown(made))
    else:
        _show_plan(made)


class _HistoryGroup(click.Group):
    """`history` lists the applies; `history show N` shows one."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[OPTIONS] | show N [OPTIONS]")


@cli.group(cls=_HistoryGroup, invoke_without_command=True, epilog=EXIT_CODES)
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many applies to list."
)
@_FORMAT
@database_options
@click.pass_context
def history(ctx: click.Context, settings: Settings, limit: int, output_format: str) -> None:
    """List the latest applies, newest first: when, which revision and pull request, who, and what changed.

    `history show N` shows one apply and its changes.
    """
    from reconciler import apply as apply_module

    if ctx.invoked_subcommand is not None:
        return
    with _reader(settings) as opened:
        _current(opened)
        entries = apply_module.history(opened.connection, limit)
    if output_format == "json":
        click.echo(json.dumps([dataclasses.asdict(e) for e in entries], indent=2, ensure_ascii=False))
        return
    if not entries:
        click.echo("No apply has been recorded.")
        return
    for entry in entries:
        pull = f"  {_pull_request(entry)}" if entry.pull_request_number or entry.pull_request_url else ""
        click.echo(
            f"#{entry.id}  {entry.applied_at}  {entry.revision or '(no revision)'}{pull}  {entry.actor}"
        )
        click.echo(f"    {entry.summary}")


def _pull_request(entry: HistoryEntry) -> str:
    """`pull request #17 (https://...)`, or what of it was recorded."""
    from reconciler import render

    number = f"#{entry.pull_request_number}" if entry.pull_request_number else ""
    url = f"({render.safe(entry.pull_request_url)})" if entry.pull_request_url else ""
    return " ".join(["pull request", *(part for part in (number, url) if part)])


@history.command("show", epilog=EXIT_CODES)
@click.argument("number", metavar="N", type=click.IntRange(min=1))
@_FORMAT
@database_options
def history_show(settings: Settings, number: int, output_format: str) -> None:
    """Show apply #N: when, which revision and pull request, who, and its changes as the plan showed them."""
    from reconciler import apply as apply_module
    from reconciler import render
    from reconciler.plan_document import PlanDocumentError, recorded_plan

    with _reader(settings) as opened:
        _current(opened)
        entry = apply_module.history_entry(opened.connection, number)
    if entry is None:
        raise ReconcilerError(f"no apply #{number} in the history of {opened.target.label}")
    if output_format == "json":
        click.echo(json.dumps(dataclasses.asdict(entry), indent=2, ensure_ascii=False))
        return
    try:
        made = recorded_plan(entry.changes)
    except PlanDocumentError as error:
        raise ReconcilerError(
            f"apply #{number} recorded changes this ocpi-parties cannot read ({error}): "
            "`history show --format json` shows them as recorded"
        ) from None
    pull = _pull_request(entry) if entry.pull_request_number or entry.pull_request_url else "(none)"
    click.echo(f"Apply #{entry.id}")
    click.echo(f"  applied at:   {entry.applied_at}")
    click.echo(f"  revision:     {render.safe(entry.revision or '(none)')}")
    click.echo(f"  pull request: {pull.removeprefix('pull request ')}")
    click.echo(f"  actor:        {render.safe(entry.actor)}")
    click.echo(f"  tool version: {render.safe(entry.tool_version)}")
    click.echo("")
    _show_plan(made)


def _written(written: Sequence[str], drafts: Sequence[Draft]) -> None:
    from reconciler import importer
    from reconciler.plan_document import number

    roles = {f"{d.identity}.yaml": ", ".join(r.role for r in d.roles) for d in drafts}
    for path in written:
        described = roles.get(Path(path).name)
        click.echo(f"wrote {path}" + (f": {described}" if described else ""))
    unknown = sum(d.shared_name_unknown + sum(r.name_unknown for r in d.roles) for d in drafts)
    if unknown:
        click.echo(
            f"{number(unknown, 'business name')} not known: the identity stands in; "
            f"look for '{importer.NAME_UNKNOWN}' in the files."
        )
    for draft in drafts:
        if draft.name_needed:
            shown = next((p for p in written if Path(p).name == draft.file_name), draft.file_name)
            click.echo(
                f"{draft.identity} needs its business name, which OCPI peers see: write it in place of "
                f"'{NAME_NEEDED}' in {shown} (validate warns until then)."
            )


_OUT_DIRECTORY = click.option(
    "--out",
    "directory",
    default="parties",
    show_default=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The parties directory to write into.",
)


@cli.command("import", epilog=EXIT_CODES, short_help="Write a party file for each party in the database.")
@_OUT_DIRECTORY
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=_RoleChoice(ROLES, case_sensitive=False),
    help="Import only rows of this role (repeatable).",
)
@click.option(
    "--identity", "identities", multiple=True, metavar="CC-PID", help="Import only this party (repeatable)."
)
@click.option("--force", is_flag=True, help="Overwrite party files that exist already.")
@database_options
def import_command(
    settings: Settings, directory: Path, roles: tuple[str, ...], identities: tuple[str, ...], force: bool
) -> None:
    """Write one party file per party identity in the database, so a running deployment comes under git.

    Roles of one identity go into one file, with the business details the database holds; tokens are never
    read or written. A row that holds OCPI credentials is a partner's (`kind: partner`), whose url stays
    registration's and is not written; a credential-less CPO row, which ocpi-parties created, is hosted.
    Every file is checked as `validate` checks it before it is written; an existing file is never
    overwritten without --force. Read-only on the database. Afterwards, `plan` shows these parties as
    adopted.
    """
    from reconciler import importer, migrations

    wanted = tuple(_identity(text) for text in identities)
    with _reader(settings) as opened:
        migrations.refuse_newer(opened.connection, opened.target.label)
        rows, default = importer.read_party_rows(opened.connection)
    result = importer.plan_import(rows, roles=tuple(r.upper() for r in roles), identities=wanted)
    for skipped in result.skipped:
        click.echo(
            f"warning: {skipped.identity} is not imported: {skipped.reason}; its rows stay as they are, "
            "not managed by ocpi-parties",
            err=True,
        )
    if not result.drafts:
        if roles or identities or result.skipped:
            raise ReconcilerError(
                f"no party rows in {opened.target.label} to import as asked: nothing was written"
            )
        click.echo(f"{opened.target.label} holds no party rows: nothing to import.")
        return
    files = {draft.file_name: importer.render(draft) for draft in result.drafts}
    imported = {
        d.identity for d in result.drafts if any(r.role == CPO and r.kind is Kind.HOSTED for r in d.roles)
    }
    if default is not None and default in imported and not (directory / DEFAULT_FILE).exists():
        files[DEFAULT_FILE] = importer.render_default(default)
    written = importer.write_files(directory, str(directory), files, force=force)
    _written(written, result.drafts)
    _editor_files(directory)
    if DEFAULT_FILE not in files and not (directory / DEFAULT_FILE).exists():
        click.echo(
            f"No {directory}/{DEFAULT_FILE} yet: write it with "
            "`ocpi-parties init --from-maeve-config manager.toml` (MaEVe's own party is in its config)."
        )


@cli.command(
    "init", epilog=NO_DATABASE_EXIT_CODES, short_help="Write the own party's file and the default party file."
)
@click.option(
    "--from-maeve-config",
    "config",
    metavar="FILE",
    type=click.Path(path_type=Path, dir_okay=False),
    help="MaEVe's manager config (TOML): its [ocpi] country_code and party_id name the own party.",
)
@click.option("--party", metavar="CC-PID", help="The own party, when there is no MaEVe config at hand.")
@click.option("--name", help="The own party's business name [default: [api] org_name of the config].")
@_OUT_DIRECTORY
@click.option("--force", is_flag=True, help="Overwrite files that exist already.")
def init_command(
    config: Path | None, party: str | None, name: str | None, directory: Path, force: bool
) -> None:
    """Declare this CSMS's own party (the default party, a hosted CPO) in the parties directory.

    Writes default-party.yaml and the own party's file. MaEVe keeps its own party only in its config, so
    this is how it enters the database: through git, on the next apply. Needs no database. An own party file
    that exists already and declares a hosted CPO role is kept.
    """
    from reconciler import importer

    if (config is None) == (party is None):
        raise UsageError("give either --from-maeve-config FILE or --party CC-PID")
    if config is not None:
        draft = importer.draft_from_maeve_config(config, str(config), name=name)
    else:
        identity = _identity(str(party))
        draft = importer.own_party_draft(identity, name)
    problem = importer.check(draft, importer.render(draft))
    if problem is not None:
        raise ReconcilerError(f"{draft.file_name} cannot be written: {problem}")
    files = {}
    if not force and importer.declared_cpo(directory / draft.file_name):
        click.echo(
            f"kept {directory}/{draft.file_name}, which declares the hosted CPO role of {draft.identity}"
        )
    else:
        files[draft.file_name] = importer.render(draft)
    if not force and importer.names_default(directory / DEFAULT_FILE, draft.identity):
        click.echo(f"kept {directory}/{DEFAULT_FILE}, which names {draft.identity}")
    else:
        files[DEFAULT_FILE] = importer.render_default(draft.identity)
    # A kept own party file is the user's: a name missing there is not this command's to report.
    written = importer.write_files(directory, str(directory), files, force=force)
    _written(written, [draft] if draft.file_name in files else [])
    _editor_files(directory, gitignore=True)
    click.echo(f"Next: `ocpi-parties validate {directory}`, then `ocpi-parties plan {directory}`.")


def _schemas_written(directory: Path, *, say_unchanged: bool) -> None:
    from reconciler import editor

    for written in editor.write_schemas(directory):
        if written.status == "updated":
            click.echo(f"updated {written.path}: it differed from the schema of ocpi-parties {__version__}")
        elif written.status == "wrote":
            click.echo(f"wrote {written.path}")
        elif say_unchanged:
            click.echo(f"{written.path} is up to date")


def _editor_files(parties: Path, *, gitignore: bool = False) -> None:
    """The schemas that the party files' modelines name, and (init) the repository's .gitignore."""
    from reconciler import editor

    _schemas_written(editor.beside(parties, "schema"), say_unchanged=False)
    if gitignore:
        ignore = editor.beside(parties, ".gitignore")
        added = editor.extend_gitignore(ignore)
        if added:
            click.echo(f"added {', '.join(added)} to {ignore}")


@cli.command(
    "schema", epilog=NO_DATABASE_EXIT_CODES, short_help="Write the party files' JSON Schemas, for editors."
)
@click.option(
    "--out",
    "directory",
    default="schema",
    show_default=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The folder to write into: `schema` beside the parties directory, where party files point.",
)
def schema_command(directory: Path) -> None:
    """Write party.schema.json and default-party.schema.json, the schemas of this version, into --out.

    Each party file's first line, `# yaml-language-server: $schema=../schema/party.schema.json`, gives an
    editor running the YAML language server completion and inline errors from them. They belong to the tool:
    one that differs (an older version's) is replaced, and said so. `init` and `import` write them too.
    """
    _schemas_written(directory, say_unchanged=True)


def credentials_roles_of(desired: DesiredState) -> list[dict[str, Any]]:
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


@cli.command(
    "credentials-roles",
    epilog=NO_DATABASE_EXIT_CODES,
    short_help="Print the OCPI CredentialsRole list of the hosted parties.",
)
@click.argument("path", default="parties", type=click.Path(path_type=Path))
@_FORMAT
def credentials_roles(path: Path, output_format: str) -> None:
    """Print the CredentialsRole list (OCPI 2.2.1) of the hosted parties in PATH: what this CSMS's
    credentials endpoint should return in `roles`, each with its business details. Needs no database."""
    roles = credentials_roles_of(_desired(path))
    if output_format == "json":
        click.echo(json.dumps(roles, indent=2, ensure_ascii=False))
        return
    if not roles:
        click.echo("No hosted party: this CSMS presents no role of its own.")
    for entry in roles:
        details = entry["business_details"]
        click.echo(f"{entry['country_code']}-{entry['party_id']} {entry['role']}: {details['name']}")
        if "website" in details:
            click.echo(f"    website: {details['website']}")
        if "logo" in details:
            click.echo(f"    logo:    {details['logo']['url']}")


@cli.command(
    "fmt",
    epilog=exit_codes_help(
        WITHOUT_DATABASE,
        OK="success: every file is in canonical form (or, without --check, now is)",
        INVALID="a file is not YAML that can be read, or (--check) a file is not in canonical form",
    ),
    short_help="Rewrite party files in canonical form, keeping comments.",
)
@click.argument("path", default="parties", type=click.Path(path_type=Path))
@click.option(
    "--check", is_flag=True, help="Change nothing: list the files not in canonical form and exit 1 if any."
)
def fmt_command(path: Path, check: bool) -> None:
    """Rewrite the party files in PATH (default: parties/) in canonical form, as `terraform fmt` does.

    Keys in the schema's order, codes in upper case, text quoted only where a YAML reader would read it
    otherwise; comments stay. Only files that change are written, each in one step; their names are printed.
    A file that is not readable YAML is reported as validate reports it and left as it is.
    """
    from reconciler import fmt

    changed, problems = fmt.format_path(path, str(path), write=not check)
    for name in changed:
        click.echo(name)
    for problem in problems:
        click.echo(f"{problem.source}: {problem.message}", err=True)
    sys.exit(ExitCode.INVALID if problems or (check and changed) else ExitCode.OK)


@cli.group(epilog=EXIT_CODES, short_help="Prepare the database: MaEVe's tables, migrations, status.")
def db() -> None:
    """Prepare the database: MaEVe's base tables and ocpi-parties' own migrations."""


@db.command("init", epilog=EXIT_CODES)
@database_options
@click.option(
    "--sample-data",
    is_flag=True,
    help="Also write, into an empty database, peers and locations as a running MaEVe writes them.",
)
def db_init(settings: Settings, sample_data: bool) -> None:
    """Create MaEVe's tables where they are absent (development and test databases).

    On MaEVe's real database this changes nothing. MaEVe's own schema_migrations is never written.
    --sample-data, for trying the tool, refuses a database that holds any party or location.
    """
    from reconciler import migrations, sample
    from reconciler.database import session

    with session(settings, read_only=False, require_maeve=False, notify=_notify) as opened:
        created = migrations.create_maeve_base(opened.connection)
        written = sample.write(opened.connection, opened.target.label) if sample_data else None
    if created:
        click.echo(f"Created MaEVe's tables {', '.join(created)} in {opened.target.label}.")
    elif written is None:
        click.echo(f"MaEVe's tables already exist in {opened.target.label}; nothing to do.")
    if written is not None:
        click.echo(
            f"Wrote sample data as a running MaEVe would: {written.parties} parties from OCPI registration, "
            f"{written.locations} locations recorded under no party's CPO row."
        )


@db.command("migrate", epilog=EXIT_CODES)
@database_options
@click.option(
    "--to",
    "version",
    metavar="VERSION",
    type=click.IntRange(min=0),
    help="Migrate up or down to this version; 0 removes everything ocpi-parties added. Default: latest.",
)
@click.option("--yes", is_flag=True, help="Revert with --to without asking (for scripts).")
def db_migrate(settings: Settings, version: int | None, yes: bool) -> None:
    """Apply ocpi-parties' schema additions (idempotent), or revert them with --to.

    Reverting removes data (the apply history, business details, the default party): it is listed and
    confirmed on a terminal first; without a terminal, --yes is required.
    """
    from reconciler import db_report, migrations, store
    from reconciler.database import session

    with session(settings, read_only=False, notify=_notify) as opened:
        if version is not None and not yes:
            _confirm_revert(migrations.to_revert(opened.connection, version), version, opened.target.label)
        steps = migrations.migrate(opened.connection, to=version, label=opened.target.label)
        key_valid = None
        if version is None or version >= migrations.latest_version():
            key_valid = store.validate_location_key(opened.connection)
    click.echo(db_report.steps_text(steps, key_valid))


def _confirm_revert(reverting: Sequence[Any], version: int, label: str) -> None:
    """List what `db migrate --to` removes and ask; refuse without a terminal (scripts pass --yes)."""
    from reconciler.migrations import REVERT_REMOVES

    if not reverting:
        return
    if not sys.stdin.isatty():
        raise ReconcilerError(
            f"db migrate --to {version} removes data and stdin is not a terminal, so it cannot ask for "
            "confirmation: run it with --yes to revert without asking; nothing was changed"
        )
    click.echo(f"db migrate --to {version} reverts on {label}, newest first:")
    for migration in reverting:
        click.echo(f"  {migration.label}: removes {REVERT_REMOVES.get(migration.version, 'what it added')}")
    if not _confirmed("Revert these migrations?"):
        raise ReconcilerError("not reverted: it was not confirmed; nothing was changed")


@db.command("status", epilog=EXIT_CODES)
@database_options
def db_status(settings: Settings) -> None:
    """Show what is migrated, managed and unmanaged parties, orphan locations. Read-only."""
    from reconciler import db_report, store

    with _reader(settings) as opened:
        result = store.status(opened.connection)
    click.echo(db_report.status_text(result, opened.target.label))


@cli.group(epilog=EXIT_CODES)
def parties() -> None:
    """Read the parties recorded in the database."""


@parties.command("list", epilog=EXIT_CODES)
@database_options
@click.option("--role", type=_RoleChoice(ROLES, case_sensitive=False))
@_FORMAT
@_OFFSET
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
def parties_list(settings: Settings, role: str | None, output_format: str, offset: int, limit: int) -> None:
    """List party rows (one per role), optionally of one role. Read-only."""
    from reconciler import db_report, store

    with _reader(settings) as opened:
        _readable(opened)
        page = store.party_page(opened.connection, role=role, offset=offset, limit=limit)
    click.echo(db_report.parties_json(page) if output_format == "json" else db_report.parties_text(page))


@parties.command("show", epilog=EXIT_CODES)
@database_options
@click.argument("party")
@_FORMAT
def parties_show(settings: Settings, party: str, output_format: str) -> None:
    """Show every role of PARTY (e.g. GB-TWK) and its location count. Read-only."""
    from reconciler import db_report, store

    identity = _identity(party)
    with _reader(settings) as opened:
        _readable(opened)
        details = store.get_party(opened.connection, identity)
    if details is None:
        raise ReconcilerError(f"no party {identity} in the database")
    click.echo(db_report.party_json(details) if output_format == "json" else db_report.party_text(details))


@cli.command("locations", epilog=EXIT_CODES, short_help="List the locations recorded under a party.")
@database_options
@click.argument("party")
@_FORMAT
@_OFFSET
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
def locations_command(settings: Settings, party: str, output_format: str, offset: int, limit: int) -> None:
    """List the locations recorded under PARTY (e.g. GB-TWK, or XX-XXX for MaEVe's orphans). Read-only."""
    from reconciler import db_report, store

    identity = _identity(party)
    with _reader(settings) as opened:
        _readable(opened)
        page = store.location_page(opened.connection, identity, offset=offset, limit=limit)
    if output_format == "json":
        click.echo(db_report.locations_json(identity, page))
    else:
        click.echo(db_report.locations_text(identity, page))


@cli.command("default", epilog=EXIT_CODES, short_help="Show the default party.")
@database_options
def default_command(settings: Settings) -> None:
    """Show the default party: the CPO that owns every location nobody else claims. Read-only."""
    from reconciler import db_report, store

    with _reader(settings) as opened:
        _readable(opened)
        recorded = store.default_recorded(opened.connection)
        identity = store.get_default_party(opened.connection)
    click.echo(db_report.default_text(identity, recorded))


#: Allocations between two runs of Python's cycle collector while a command runs (Python's default: 700).
COLLECT_EVERY = 100_000


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run Python's cycle collector less often while a command runs.

    A command holds tens of thousands of long-lived objects, all freed by reference counting (the files'
    data and positions, the desired and the actual state); at the default threshold the collector scans them
    all again and again: 1.5 s of a 6.5 s `plan` of 10,000 party files. The previous threshold is restored
    afterwards, for callers that run commands in their own process.
    """
    previous = gc.get_threshold()
    gc.set_threshold(COLLECT_EVERY, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def main(args: Sequence[str] | None = None, prog_name: str | None = None) -> None:
    """Entry point: runs the command and maps every failure to one line on stderr and an exit code."""
    with _fewer_collections():
        _main(args, prog_name)


def _main(args: Sequence[str] | None, prog_name: str | None) -> None:
    argv, show_traceback = _without_traceback(list(sys.argv[1:] if args is None else args))
    detailed = _detailed_exitcode(argv)
    forget_commit()
    try:
        cli.main(args=argv, prog_name=prog_name or "ocpi-parties", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(_error_code(done.exit_code, detailed))
    except click.ClickException as error:
        error.show()
        sys.exit(
            _error_code(ExitCode.USAGE if isinstance(error, click.UsageError) else error.exit_code, detailed)
        )
    except click.Abort as aborted:
        if isinstance(aborted.__cause__, KeyboardInterrupt):
            _interrupted(_command(argv))
        click.echo("Aborted.", err=True)
        sys.exit(ExitCode.INVALID)
    except ReconcilerError as error:
        click.echo(f"error: {error.message}", err=True)
        sys.exit(_error_code(error.exit_code, detailed))
    except _OutputLost:
        _output_lost(_command(argv))
    except Exception as error:
        if show_traceback:
            raise
        click.echo(
            f"internal error: {type(error).__name__}: {error}\n"
            "This is a bug in ocpi-parties. Run again with --traceback and report the output.",
            err=True,
        )
        sys.exit(ExitCode.INTERNAL)
    sys.exit(ExitCode.OK)


#: Options of the whole program that may also stand after the command (`ocpi-parties plan --no-color`).
_GLOBAL_FLAGS = ("--traceback", "--no-color")


def _without_traceback(argv: list[str]) -> tuple[list[str], bool]:
    """The command line with the global flags moved before the command, where the group declares them, and
    --traceback taken out (the error handler reads it), with whether it was there. Before any `--`."""
    end = argv.index("--") if "--" in argv else len(argv)
    found = {flag for flag in _GLOBAL_FLAGS if flag in argv[:end]}
    kept = [token for token in argv[:end] if token not in _GLOBAL_FLAGS] + argv[end:]
    return (["--no-color"] if "--no-color" in found else []) + kept, "--traceback" in found


def _detailed_exitcode(argv: Sequence[str]) -> bool:
    """--detailed-exitcode is on the command line (before any `--`), even if the rest cannot be parsed."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    return any(token.split("=", 1)[0] == "--detailed-exitcode" for token in options)


def _error_code(code: int, detailed: bool) -> int:
    """The exit code of an error. With --detailed-exitcode, as in Terraform, every error exits 1 and only "the
    plan has changes" exits 2: a pipeline tells changes from failure by the code alone."""
    return ExitCode.INVALID if detailed and code != ExitCode.OK else code


def _command(argv: Sequence[str]) -> str | None:
    """The command's name: the first word on the command line that is not an option (the group's options
    are flags)."""
    return next((token for token in argv if not token.startswith("-")), None)


def _interrupted(command: str | None) -> NoReturn:
    """Ctrl-C (click turns KeyboardInterrupt into Abort). An apply before its COMMIT has rolled back.

    Each line goes to stderr where it still can: stderr may be a closed pipe too.
    """
    with contextlib.suppress(OSError):
        if committed():
            click.echo(
                "warning: interrupted after the apply was committed: the changes are in the database, only "
                "its output is incomplete; `ocpi-parties history` shows what it changed",
                err=True,
            )
            sys.exit(ExitCode.OK)
        if command == "apply":
            click.echo("error: interrupted: nothing was changed (rolled back)", err=True)
        else:
            click.echo("error: interrupted", err=True)
    sys.exit(ExitCode.INTERRUPTED)


def _output_lost(command: str | None) -> NoReturn:
    """Standard output was closed (`| head`): say what happened to the database, which alone decides the
    exit code; no second error while Python flushes stdout at exit."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    with contextlib.suppress(OSError):
        if committed():
            click.echo(
                "warning: the apply was committed, but standard output was closed (a pipe whose reader has "
                "exited), so part of its output was lost; `ocpi-parties history` shows what it changed",
                err=True,
            )
            sys.exit(ExitCode.OK)
        if command == "apply":
            click.echo(
                "error: standard output was closed before the apply committed: nothing was changed "
                "(rolled back)",
                err=True,
            )
    sys.exit(ExitCode.INVALID)
