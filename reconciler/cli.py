"""The `ocpi-parties` command line, the only module importing click.

Each command turns its options into arguments, calls a workflow of reconciler/operations.py (or one plain
function), and prints what it returns: in the format chosen from its registry of formats, which the
`--format` option offers too. `main` maps every failure to one line on stderr and an exit code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

import click
from click.decorators import FC

from reconciler import __version__, operations
from reconciler.errors import (
    WITH_DATABASE,
    WITHOUT_DATABASE,
    ExitCode,
    NothingApplied,
    PlanDocumentError,
    ReconcilerError,
    UsageError,
    committed,
    exit_codes_help,
    forget_commit,
)
from reconciler.model import NAME_NEEDED, ROLES, Identity
from reconciler.operations import FAILED, ApplyContext, Report, parse_identity
from reconciler.output import Style, plain
from reconciler.output import validation as validation_output
from reconciler.validate import DEFAULT_FILE, ValidationResult, validate_path

if TYPE_CHECKING:
    from reconciler.apply import HistoryEntry, Outcome
    from reconciler.changes import PartyRow, Plan
    from reconciler.connect import Session
    from reconciler.database import Settings
    from reconciler.editor import Written
    from reconciler.operations import FilesWritten
    from reconciler.output.plan import LocationLister
    from reconciler.store import LocationRow, Page, PartyDetails

# The modules behind the database and the other commands are imported by the commands that use them:
# psycopg and the rest take a third of a second to import, which `validate` never needs.

#: The epilogs of `--help`, each made from the one table of exit codes (reconciler/errors.py) and listing
#: only the codes its command can return, some in the command's own words. All of them are here.
EXIT_CODES = exit_codes_help(WITH_DATABASE)
NO_DATABASE_EXIT_CODES = exit_codes_help(WITHOUT_DATABASE)
VALIDATE_EXIT_CODES = exit_codes_help(
    WITHOUT_DATABASE, OK="success: the files are valid (warnings do not count unless --strict)"
)
FMT_EXIT_CODES = exit_codes_help(
    WITHOUT_DATABASE,
    OK="success: every file is in canonical form (or, without --check, now is)",
    INVALID="a file is not YAML that can be read, or (--check) a file is not in canonical form",
)

ALL_EXIT_CODES = exit_codes_help(
    OK="success (validate: the files are valid; warnings do not count unless --strict)",
    INTERRUPTED="interrupted (Ctrl-C); apply: nothing was changed (rolled back)",
)

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


@dataclasses.dataclass
class _RunOptions:
    """The options of the whole program (--traceback, --no-color), given before the command or after it.

    `main` passes one as the click context's object; every command declares the two options (hidden in its
    help, listed in the program's), whose callbacks set them here.
    """

    traceback: bool = False
    no_color: bool = False


def _run_options() -> _RunOptions | None:
    context = click.get_current_context(silent=True)
    return None if context is None else context.find_object(_RunOptions)


def _remember(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and param.name is not None:
        setattr(ctx.ensure_object(_RunOptions), param.name, True)


_TRACEBACK_HELP = "Show the traceback of an error, with its causes (also accepted after the command)."
_NO_COLOR_HELP = "Never colour the output (also: NO_COLOR set to any value; also accepted after the command)."


def _run_option_params(*, hidden: bool) -> list[click.Parameter]:
    return [
        click.Option(
            ["--traceback"],
            is_flag=True,
            expose_value=False,
            callback=_remember,
            hidden=hidden,
            help=_TRACEBACK_HELP,
        ),
        click.Option(
            ["--no-color"],
            is_flag=True,
            expose_value=False,
            callback=_remember,
            hidden=hidden,
            help=_NO_COLOR_HELP,
        ),
    ]


def _use_color() -> bool:
    """Colour only when standard output is a terminal, never with `--no-color` or a non-empty `NO_COLOR`
    (https://no-color.org): not in pipes, files or redirected output. JSON and Markdown are never styled."""
    options = _run_options()
    if options is not None and options.no_color:
        return False
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _style(text: str, color: str) -> str:
    return click.style(text, fg=color)


def _echo_styled(make: Callable[[Style], str]) -> None:
    """Print the text that `make(style)` returns, styled when `_use_color()`: the one way every text output
    (validate, plan, apply's plan, show, history show) gets its colour."""
    color = _use_color()
    click.echo(make(_style if color else plain), color=color)


T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class _Format(Generic[T]):
    """One value of a command's --format: how it renders the command's result, and whether as styled text."""

    render: Callable[[T, Style], str]
    styled: bool = False


def _format_option(formats: Mapping[str, _Format[Any]], help: str) -> Callable[[FC], FC]:
    """--format, offering the names of `formats` (the first is the default): the one list that the option
    and the printing (`_print`) read."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(list(formats)),
        default=next(iter(formats)),
        show_default=True,
        help=help,
    )


def _print(formats: Mapping[str, _Format[T]], name: str, value: T) -> None:
    """Print `value` in the format `name` of `formats`."""
    chosen = formats[name]
    if chosen.styled:
        _echo_styled(functools.partial(chosen.render, value))
    else:
        click.echo(chosen.render(value, plain))


class _OutputLost(Exception):
    """Standard output was closed (`| head`). Raised instead of BrokenPipeError, which click's main turns
    into exit 1 by itself, before `_main` can say what happened to the database."""


class _Command(click.Command):
    """A command that also takes the program's options after its name (`ocpi-parties plan --traceback`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params += _run_option_params(hidden=True)


class _SubGroup(click.Group):
    """A group of commands (db, parties, history) that also takes the program's options after its name."""

    command_class = _Command

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params += _run_option_params(hidden=True)


class _Group(click.Group):
    """The program: --traceback and --no-color listed in its help; its commands and groups take them too."""

    command_class = _Command
    group_class = _SubGroup

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params += _run_option_params(hidden=False)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as error:
            raise _OutputLost from error


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]}, epilog=ALL_EXIT_CODES)
@click.version_option(__version__, prog_name="ocpi-parties")
def cli() -> None:
    """Manage the OCPI parties of a MaEVe CSMS from YAML files in git."""


#: validate's formats; the result with whether --strict was given.
VALIDATE_FORMATS: dict[str, _Format[tuple[ValidationResult, bool]]] = {
    "text": _Format(lambda r, style: validation_output.render_text(r[0], strict=r[1], style=style), True),
    "json": _Format(lambda r, _: validation_output.render_json(r[0], strict=r[1])),
    "github": _Format(lambda r, _: validation_output.render_github(r[0], strict=r[1])),
}


@cli.command(epilog=VALIDATE_EXIT_CODES)
@click.argument("path", default="parties", type=click.Path(path_type=Path))
@_format_option(
    VALIDATE_FORMATS,
    "text: file:line:col: $.path: message; json: a stable document; github: inline annotations.",
)
@click.option("--strict", is_flag=True, help="Treat warnings (such as lower-case codes) as errors.")
def validate(path: Path, output_format: str, strict: bool) -> None:
    """Check the party files in PATH (default: parties/) without touching any database.

    Every problem in every file is reported before the command exits.
    """
    result = validate_path(path, str(path))
    _print(VALIDATE_FORMATS, output_format, (result, strict))
    invalid = bool(result.errors) or (strict and bool(result.warnings))
    sys.exit(ExitCode.INVALID if invalid else ExitCode.OK)


class _Console:
    """The terminal of a workflow (operations.Console): problems and notices on stderr; the plan to
    confirm, and the question, on stdout."""

    def __init__(self) -> None:
        self.interactive = sys.stdin.isatty()
        #: Whether the plan was shown (by `confirm`), so that it is not shown twice.
        self.plan_shown = False

    def problems(self, result: ValidationResult) -> None:
        click.echo(validation_output.render_text(result), err=True)

    def notify(self, message: str) -> None:
        _notify(message)

    def confirm(self, plan: Plan, *, ask: bool) -> bool:
        _show_plan(plan)
        self.plan_shown = True
        return not ask or _confirmed("Apply these changes?")


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
    from reconciler.connect import session

    return session(settings, read_only=True, notify=_notify)


def _current(opened: Session) -> None:
    from reconciler import migrations

    migrations.require_current(opened.connection, opened.target.label)


def _readable(opened: Session) -> None:
    """The read commands (parties, locations, default) read a database ocpi-parties has not migrated yet, as
    plan does; one that a newer ocpi-parties migrated they refuse, as plan does."""
    from reconciler import migrations

    migrations.refuse_newer(opened.connection, opened.target.label)


class _RoleChoice(click.Choice):  # type: ignore[type-arg]
    """An OCPI role in any case, listed in help in upper case as OCPI writes it (click shows the case-folded
    form of a case-insensitive choice)."""

    def normalize_choice(self, choice: object, ctx: click.Context | None) -> str:
        return str(super().normalize_choice(choice, ctx)).upper()


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _text_or_json(text: Callable[[T], str], as_json: Callable[[T], str]) -> dict[str, _Format[T]]:
    """The formats of the read commands: text for people, json for programs."""
    return {"text": _Format(lambda value, _: text(value)), "json": _Format(lambda value, _: as_json(value))}


def _format(formats: Mapping[str, _Format[Any]]) -> Callable[[FC], FC]:
    return _format_option(formats, "text for people, json for programs.")


_OFFSET = click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)


def _render() -> ModuleType:
    """reconciler.output.plan, imported when a plan is printed (not by validate)."""
    from reconciler.output import plan as plan_output

    return plan_output


#: The formats of a plan (plan, show): the plan, with what lists the ids of the locations a move concerns
#: (plan --show-locations).
PLAN_FORMATS: dict[str, _Format[tuple[Plan, LocationLister | None]]] = {
    "text": _Format(lambda p, style: _render().render_text(p[0], style=style, locations=p[1]), True),
    "json": _Format(lambda p, _: _render().render_json(p[0])),
    "markdown": _Format(lambda p, _: _render().render_markdown(p[0])),
}


@cli.command(epilog=PLAN_EXIT_CODES)
@click.argument("path", default="parties", type=click.Path(path_type=Path))
@_format_option(
    PLAN_FORMATS,
    "text for a terminal, json for programs (docs/plan-format.md), markdown for a pull-request comment.",
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
    with operations.plan(settings, path, allow_delete=allow_delete, out=out, console=_Console()) as planned:
        # Printed while the session is open: --show-locations streams the ids from the database.
        _print(PLAN_FORMATS, output_format, (planned.plan, planned.locations if show_locations else None))
    operations.keep_plan(planned, out=out, revision=revision)
    if out is not None:
        click.echo(f"Saved the plan to {out}: apply exactly it with `ocpi-parties apply {out}`.", err=True)
    if detailed_exitcode and planned.plan.has_changes:
        sys.exit(ExitCode.CHANGES)
    sys.exit(ExitCode.OK)


def _confirmed(question: str) -> bool:
    """Ask on the terminal and read one line: only y or yes applies; anything else, or end of input, does not.

    The question goes to stdout, after the plan: input() would write it to stderr, where it is lost when
    stderr is redirected.
    """
    click.echo(f"\n{question} [y/N]: ", nl=False)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _show_plan(made: Plan) -> None:
    _print(PLAN_FORMATS, "text", (made, None))


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
def apply_command(
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
    context = ApplyContext.of(actor, pull_request, pull_request_url)
    console = _Console()
    if reviewed_file is not None:
        if allow_delete or auto_approve:
            raise UsageError(
                "--if-same-as applies without asking and with the reviewed plan's --allow-delete: give "
                "neither --auto-approve nor --allow-delete with it"
            )
        _apply_if_same_as(
            target,
            reviewed_file,
            report_file=report_file,
            console=console,
            settings=settings,
            revision=revision,
            context=context,
        )
        return
    if report_file is not None:
        raise UsageError("--report is written by `apply --if-same-as REVIEWED_PLAN` only")
    with _showing_refused(console):
        if target.is_file():
            outcome = operations.apply_plan_file(
                settings, target, revision=revision, context=context, console=console
            )
        else:
            outcome = operations.apply_parties(
                settings,
                target,
                allow_delete=allow_delete,
                confirm=not auto_approve,
                revision=revision,
                context=context,
                console=console,
            )
    # The transaction has ended: no lock is held while the plan applied is printed.
    if not console.plan_shown:
        _show_plan(outcome.plan)
    _show_outcome(outcome)


@contextlib.contextmanager
def _showing_refused(console: _Console) -> Iterator[None]:
    """Show the plan that an apply refused (blocked deletions, a change it cannot make) once it has rolled
    back, unless it was shown already, then end with the refusal."""
    try:
        yield
    except NothingApplied as refused:
        if refused.plan is not None and not console.plan_shown:
            _show_plan(refused.plan)
        raise


def _show_outcome(outcome: Outcome) -> None:
    """The line that says what an apply changed, and what keeps the location owner key NOT VALID."""
    if outcome.history_id is None:
        return
    click.echo("\n" + operations.complete_line(outcome))
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


def _write_report(report: Report, path: Path | None) -> None:
    """Write the --report file of `apply --if-same-as`; a failure to write it after COMMIT is a warning."""
    if path is None:
        return
    text = json.dumps(dataclasses.asdict(report), indent=2, ensure_ascii=False) + "\n"
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        message = f"cannot write the report {path}: {error.strerror or error}"
        if not committed():
            raise ReconcilerError(message) from error
        click.echo(f"warning: {message}; the apply was committed", err=True)


def _failure(error: BaseException) -> str:
    if isinstance(error, ReconcilerError):
        return error.message
    if isinstance(error, KeyboardInterrupt | click.Abort):
        return "interrupted" + ("" if committed() else ": nothing was changed (rolled back)")
    if isinstance(error, click.ClickException):
        return error.format_message()
    return f"internal error: {type(error).__name__}: {error}"


def _apply_if_same_as(
    target: Path,
    reviewed_file: Path,
    *,
    report_file: Path | None,
    console: _Console,
    settings: Settings,
    revision: str | None,
    context: ApplyContext,
) -> None:
    """`apply --if-same-as`. The report is written before anything is printed, and on every failure before
    the command exits."""
    report = Report()
    with _showing_refused(console):  # a refused plan is shown once the report is written
        try:
            reviewed = operations.apply_if_same_as(
                settings,
                target,
                reviewed_file,
                report=report,
                revision=revision,
                context=context,
                console=console,
            )
            _write_report(report, report_file)
        except BaseException as error:
            if report.outcome == FAILED:
                report.error = _failure(error)
                try:
                    _write_report(report, report_file)
                except ReconcilerError as unwritten:
                    click.echo(f"warning: {unwritten.message}", err=True)  # the first error is the one to see
            raise
    _show_plan(reviewed.plan)
    if reviewed.outcome is not None:
        _show_outcome(reviewed.outcome)
    if reviewed.differs is not None:
        raise reviewed.differs


@cli.command("show", epilog=NO_DATABASE_EXIT_CODES, short_help="Show a saved plan file again.")
@click.argument("planfile", type=click.Path(path_type=Path, dir_okay=False))
@_format_option(
    PLAN_FORMATS,
    "As plan prints it: text for a terminal, json for programs, markdown for a pull-request comment.",
)
def show_command(planfile: Path, output_format: str) -> None:
    """Print the plan saved in PLANFILE by `plan --out` again, without a database (as `terraform show`)."""
    from reconciler import planfile as planfile_module

    made = planfile_module.reviewed_plan(planfile_module.load(planfile), planfile)
    _print(PLAN_FORMATS, output_format, (made, None))


class _HistoryGroup(_SubGroup):
    """`history` lists the applies; `history show N` shows one."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[OPTIONS] | show N [OPTIONS]")


def _history_text(entries: Sequence[HistoryEntry]) -> str:
    if not entries:
        return "No apply has been recorded."
    lines = []
    for entry in entries:
        pull = f"  {_pull_request(entry)}" if entry.pull_request_number or entry.pull_request_url else ""
        lines.append(
            f"#{entry.id}  {entry.applied_at}  {entry.revision or '(no revision)'}{pull}  {entry.actor}"
        )
        lines.append(f"    {entry.summary}")
    return "\n".join(lines)


HISTORY_FORMATS = _text_or_json(
    _history_text, lambda entries: _json([dataclasses.asdict(e) for e in entries])
)


@cli.group(cls=_HistoryGroup, invoke_without_command=True, epilog=EXIT_CODES)
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many applies to list."
)
@_format(HISTORY_FORMATS)
@database_options
@click.pass_context
def history(ctx: click.Context, settings: Settings, limit: int, output_format: str) -> None:
    """List the latest applies, newest first: when, which revision and pull request, who, and what changed.

    `history show N` shows one apply and its changes.
    """
    from reconciler import apply

    if ctx.invoked_subcommand is not None:
        return
    with _reader(settings) as opened:
        _current(opened)
        entries = apply.history(opened.connection, limit)
    _print(HISTORY_FORMATS, output_format, entries)


def _pull_request(entry: HistoryEntry) -> str:
    """`pull request #17 (https://...)`, or what of it was recorded."""
    from reconciler.output import plan as plan_output

    number = f"#{entry.pull_request_number}" if entry.pull_request_number else ""
    url = f"({plan_output.safe(entry.pull_request_url)})" if entry.pull_request_url else ""
    return " ".join(["pull request", *(part for part in (number, url) if part)])


def _entry_text(entry: HistoryEntry, style: Style) -> str:
    """One apply of the history: who, when, from what, and its changes as the plan showed them."""
    from reconciler.output import plan as plan_output
    from reconciler.plan_document import recorded_plan

    try:
        made = recorded_plan(entry.changes)
    except PlanDocumentError as error:
        raise ReconcilerError(
            f"apply #{entry.id} recorded changes this ocpi-parties cannot read ({error}): "
            "`history show --format json` shows them as recorded"
        ) from error
    pull = _pull_request(entry) if entry.pull_request_number or entry.pull_request_url else "(none)"
    lines = [
        f"Apply #{entry.id}",
        f"  applied at:   {entry.applied_at}",
        f"  revision:     {plan_output.safe(entry.revision or '(none)')}",
        f"  pull request: {pull.removeprefix('pull request ')}",
        f"  actor:        {plan_output.safe(entry.actor)}",
        f"  tool version: {plan_output.safe(entry.tool_version)}",
        "",
    ]
    return "\n".join([*lines, plan_output.render_text(made, style=style)])


ENTRY_FORMATS: dict[str, _Format[HistoryEntry]] = {
    "text": _Format(_entry_text, styled=True),
    "json": _Format(lambda entry, _: _json(dataclasses.asdict(entry))),
}


@history.command("show", epilog=EXIT_CODES)
@click.argument("number", metavar="N", type=click.IntRange(min=1))
@_format(ENTRY_FORMATS)
@database_options
def history_show(settings: Settings, number: int, output_format: str) -> None:
    """Show apply #N: when, which revision and pull request, who, and its changes as the plan showed them."""
    from reconciler import apply

    with _reader(settings) as opened:
        _current(opened)
        entry = apply.history_entry(opened.connection, number)
    if entry is None:
        raise ReconcilerError(f"no apply #{number} in the history of {opened.target.label}")
    _print(ENTRY_FORMATS, output_format, entry)


def _written(files: FilesWritten) -> None:
    from reconciler import importer
    from reconciler.plan_document import number

    written, drafts = files.written, files.drafts
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
    wanted = tuple(parse_identity(text) for text in identities)
    read = operations.read_import(
        settings, roles=tuple(r.upper() for r in roles), identities=wanted, console=_Console()
    )
    for skipped in read.result.skipped:
        click.echo(
            f"warning: {skipped.identity} is not imported: {skipped.reason}; its rows stay as they are, "
            "not managed by ocpi-parties",
            err=True,
        )
    files = operations.write_import(read, directory, force=force, filtered=bool(roles or identities))
    if files is None:
        click.echo(f"{read.label} holds no party rows: nothing to import.")
        return
    _written(files)
    _editor_files(directory)
    if files.default_missing:
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
    done = operations.init(directory, config=config, party=party, name=name, force=force)
    identity = done.draft.identity
    if done.kept_party_file:
        click.echo(
            f"kept {directory}/{done.draft.file_name}, which declares the hosted CPO role of {identity}"
        )
    if done.kept_default_file:
        click.echo(f"kept {directory}/{DEFAULT_FILE}, which names {identity}")
    _written(done.files)
    _editor_files(directory, gitignore=True)
    click.echo(f"Next: `ocpi-parties validate {directory}`, then `ocpi-parties plan {directory}`.")


def _schemas_written(written: Sequence[Written], *, say_unchanged: bool) -> None:
    for schema in written:
        if schema.status == "updated":
            click.echo(f"updated {schema.path}: it differed from the schema of ocpi-parties {__version__}")
        elif schema.status == "wrote":
            click.echo(f"wrote {schema.path}")
        elif say_unchanged:
            click.echo(f"{schema.path} is up to date")


def _editor_files(parties: Path, *, gitignore: bool = False) -> None:
    """The schemas that the party files' modelines name, and (init) the repository's .gitignore."""
    schemas, ignore, added = operations.editor_files(parties, gitignore=gitignore)
    _schemas_written(schemas, say_unchanged=False)
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
    from reconciler import editor

    _schemas_written(editor.write_schemas(directory), say_unchanged=True)


def _roles_text(roles: Sequence[Mapping[str, Any]]) -> str:
    lines = [] if roles else ["No hosted party: this CSMS presents no role of its own."]
    for entry in roles:
        details = entry["business_details"]
        lines.append(f"{entry['country_code']}-{entry['party_id']} {entry['role']}: {details['name']}")
        if "website" in details:
            lines.append(f"    website: {details['website']}")
        if "logo" in details:
            lines.append(f"    logo:    {details['logo']['url']}")
    return "\n".join(lines)


ROLES_FORMATS = _text_or_json(_roles_text, _json)


@cli.command(
    "credentials-roles",
    epilog=NO_DATABASE_EXIT_CODES,
    short_help="Print the OCPI CredentialsRole list of the hosted parties.",
)
@click.argument("path", default="parties", type=click.Path(path_type=Path))
@_format(ROLES_FORMATS)
def credentials_roles(path: Path, output_format: str) -> None:
    """Print the CredentialsRole list (OCPI 2.2.1) of the hosted parties in PATH: what this CSMS's
    credentials endpoint should return in `roles`, each with its business details. Needs no database."""
    roles = operations.credentials_roles(operations.desired_state(path, _Console()))
    _print(ROLES_FORMATS, output_format, roles)


@cli.command(
    "fmt",
    epilog=FMT_EXIT_CODES,
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
    from reconciler.connect import session

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
    from reconciler import migrations, store
    from reconciler.connect import session
    from reconciler.output import database as database_output

    with session(settings, read_only=False, notify=_notify) as opened:
        if version is not None and not yes:
            _confirm_revert(migrations.to_revert(opened.connection, version), version, opened.target.label)
        steps = migrations.migrate(opened.connection, to=version, label=opened.target.label)
        key_valid = None
        if version is None or version >= migrations.latest_version():
            key_valid = store.validate_location_key(opened.connection)
    click.echo(database_output.steps_text(steps, key_valid))


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
    from reconciler import store
    from reconciler.output import database as database_output

    with _reader(settings) as opened:
        result = store.status(opened.connection)
    click.echo(database_output.status_text(result, opened.target.label))


@cli.group(epilog=EXIT_CODES)
def parties() -> None:
    """Read the parties recorded in the database."""


def _database_output() -> ModuleType:
    """reconciler.output.database, imported by the commands that read the database."""
    from reconciler.output import database

    return database


PARTIES_FORMATS: dict[str, _Format[Page[PartyRow]]] = _text_or_json(
    lambda page: _database_output().parties_text(page), lambda page: _database_output().parties_json(page)
)
PARTY_FORMATS: dict[str, _Format[PartyDetails]] = _text_or_json(
    lambda details: _database_output().party_text(details),
    lambda details: _database_output().party_json(details),
)
#: The formats of `locations`: the party with the page of its locations.
LOCATIONS_FORMATS: dict[str, _Format[tuple[Identity, Page[LocationRow]]]] = _text_or_json(
    lambda shown: _database_output().locations_text(*shown),
    lambda shown: _database_output().locations_json(*shown),
)


@parties.command("list", epilog=EXIT_CODES)
@database_options
@click.option("--role", type=_RoleChoice(ROLES, case_sensitive=False))
@_format(PARTIES_FORMATS)
@_OFFSET
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
def parties_list(settings: Settings, role: str | None, output_format: str, offset: int, limit: int) -> None:
    """List party rows (one per role), optionally of one role. Read-only."""
    from reconciler import store

    with _reader(settings) as opened:
        _readable(opened)
        page = store.party_page(opened.connection, role=role, offset=offset, limit=limit)
    _print(PARTIES_FORMATS, output_format, page)


@parties.command("show", epilog=EXIT_CODES)
@database_options
@click.argument("party")
@_format(PARTY_FORMATS)
def parties_show(settings: Settings, party: str, output_format: str) -> None:
    """Show every role of PARTY (e.g. GB-TWK) and its location count. Read-only."""
    from reconciler import store

    identity = parse_identity(party)
    with _reader(settings) as opened:
        _readable(opened)
        details = store.get_party(opened.connection, identity)
    if details is None:
        raise ReconcilerError(f"no party {identity} in the database")
    _print(PARTY_FORMATS, output_format, details)


@cli.command("locations", epilog=EXIT_CODES, short_help="List the locations recorded under a party.")
@database_options
@click.argument("party")
@_format(LOCATIONS_FORMATS)
@_OFFSET
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
def locations_command(settings: Settings, party: str, output_format: str, offset: int, limit: int) -> None:
    """List the locations recorded under PARTY (e.g. GB-TWK, or XX-XXX for MaEVe's orphans). Read-only."""
    from reconciler import store

    identity = parse_identity(party)
    with _reader(settings) as opened:
        _readable(opened)
        page = store.location_page(opened.connection, identity, offset=offset, limit=limit)
    _print(LOCATIONS_FORMATS, output_format, (identity, page))


@cli.command("default", epilog=EXIT_CODES, short_help="Show the default party.")
@database_options
def default_command(settings: Settings) -> None:
    """Show the default party: the CPO that owns every location nobody else claims. Read-only."""
    from reconciler import state

    with _reader(settings) as opened:
        _readable(opened)
        recorded = state.default_recorded(opened.connection)
        identity = state.get_default_party(opened.connection)
    click.echo(_database_output().default_text(identity, recorded))


#: Allocations between two runs of Python's cycle collector while a command runs (Python's default: 700).
#: At 100,000 the collector still took about 0.1 s of a 1.9 s `plan` of 10,000 files; at 1,000,000 it runs
#: a few times per command, and the peak memory of that plan stays the same (134 MiB).
COLLECT_EVERY = 1_000_000


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
    argv = list(sys.argv[1:] if args is None else args)
    detailed = _detailed_exitcode(argv)
    options = _RunOptions()
    forget_commit()
    try:
        cli.main(args=argv, prog_name=prog_name or "ocpi-parties", standalone_mode=False, obj=options)
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
        if options.traceback:
            traceback.print_exception(error)  # with the errors that caused it
        click.echo(f"error: {error.message}", err=True)
        sys.exit(_error_code(error.exit_code, detailed))
    except _OutputLost:
        _output_lost(_command(argv))
    except Exception as error:
        if options.traceback:
            raise
        click.echo(
            f"internal error: {type(error).__name__}: {error}\n"
            "This is a bug in ocpi-parties. Run again with --traceback and report the output.",
            err=True,
        )
        sys.exit(ExitCode.INTERNAL)
    sys.exit(ExitCode.OK)


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


@dataclasses.dataclass(frozen=True)
class _Ending:
    """How a run cut short ends. What happened to the database alone decides the exit code: after an
    apply's COMMIT that is success, with a warning; before it, nothing was changed."""

    after_commit: str
    before_commit: str
    #: The line of any other command, if any.
    other: str | None
    code: ExitCode


#: Ctrl-C (click turns KeyboardInterrupt into Abort). An apply before its COMMIT has rolled back.
_INTERRUPTED = _Ending(
    after_commit="warning: interrupted after the apply was committed: the changes are in the database, only "
    "its output is incomplete; `ocpi-parties history` shows what it changed",
    before_commit="error: interrupted: nothing was changed (rolled back)",
    other="error: interrupted",
    code=ExitCode.INTERRUPTED,
)

#: Standard output was closed (`| head`).
_OUTPUT_LOST = _Ending(
    after_commit="warning: the apply was committed, but standard output was closed (a pipe whose reader has "
    "exited), so part of its output was lost; `ocpi-parties history` shows what it changed",
    before_commit="error: standard output was closed before the apply committed: nothing was changed "
    "(rolled back)",
    other=None,
    code=ExitCode.INVALID,
)


def _interrupted(command: str | None) -> NoReturn:
    _ended_early(command, _INTERRUPTED)


def _output_lost(command: str | None) -> NoReturn:
    """No second error while Python flushes the closed stdout at exit."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    _ended_early(command, _OUTPUT_LOST)


def _ended_early(command: str | None, ending: _Ending) -> NoReturn:
    """Say what happened to the database and exit with its code. Each line goes to stderr where it still can:
    stderr may be a closed pipe too."""
    with contextlib.suppress(OSError):
        if committed():
            click.echo(ending.after_commit, err=True)
            sys.exit(ExitCode.OK)
        message = ending.before_commit if command == "apply" else ending.other
        if message is not None:
            click.echo(message, err=True)
    sys.exit(ending.code)
