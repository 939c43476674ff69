"""One error base class and the exit codes the command line documents.

Every failure the tool expects is a `ReconcilerError`; its subclass is its category and carries the exit code
it maps to. Every `ReconcilerError` class of the package is defined here (internal control flow, such as
`cli._OutputLost` or `load._Refused`, stays where it is raised and caught). `cli.main` turns one into a line
on stderr.
Anything else is a bug and gets `ExitCode.INTERNAL`.
"""

from __future__ import annotations

import copy
import textwrap
from enum import IntEnum
from typing import TYPE_CHECKING, ClassVar, Self

if TYPE_CHECKING:
    from reconciler.changes import Plan


class ExitCode(IntEnum):
    """Exit codes of `ocpi-parties`, documented in `--help` (generated from `MEANINGS`) and the README."""

    OK = 0
    #: The input is invalid (validate found problems), or the command failed for a reason it explains.
    INVALID = 1
    #: The command line itself is wrong: unknown option, missing argument, bad path. With
    #: `plan --detailed-exitcode` every error exits INVALID instead, so that 2 means CHANGES only.
    USAGE = 2
    #: `plan --detailed-exitcode` only: the plan has changes. Same number as USAGE, as in Terraform.
    CHANGES = 2
    #: The database could not be reached, refused the login, timed out, lacks MaEVe's tables or the
    #: reconciler's migrations.
    DATABASE = 3
    #: apply: another apply (or `db migrate`) held the lock for longer than --lock-timeout.
    BUSY = 4
    #: apply --if-same-as: the reviewed plan is stale and the current plan's changes differ from it; nothing
    #: was applied.
    DIFFERS = 5
    #: A bug in ocpi-parties: the message points to `--traceback`.
    INTERNAL = 70
    #: Ctrl-C (SIGINT): 128 + 2, as a shell reports a process that SIGINT ended.
    INTERRUPTED = 130


#: What each exit code means, in the order `--help` lists them: the one table every epilog is made from (a
#: command's help may word a code for what that command does). CHANGES shares its number with USAGE, so it has
#: its own entry (iterating `ExitCode` skips it).
MEANINGS: dict[str, str] = {
    "OK": "success",
    "INVALID": "invalid input, or the command failed for the reason it prints",
    "USAGE": "usage error (unknown option, missing path)",
    "CHANGES": "plan --detailed-exitcode: the plan has changes (every error then exits 1)",
    "DATABASE": "database unreachable, login refused, timed out, without MaEVe's tables or not migrated",
    "BUSY": "apply: another apply (or db migrate) held the lock longer than --lock-timeout; nothing was "
    "changed",
    "DIFFERS": "apply --if-same-as: the plan differs from the reviewed one: nothing was applied",
    "INTERNAL": "internal error: run again with --traceback and report it",
    "INTERRUPTED": "interrupted (Ctrl-C)",
}

#: The exit codes of the commands that open no database.
WITHOUT_DATABASE = ("OK", "INVALID", "USAGE", "INTERNAL", "INTERRUPTED")
#: The exit codes of the commands that read or write the database, except apply's lock.
WITH_DATABASE = ("OK", "INVALID", "USAGE", "DATABASE", "INTERNAL", "INTERRUPTED")

#: Help text lines are wrapped at this width (click does not wrap an epilog marked \\b).
_HELP_WIDTH = 100


def exit_codes_help(names: tuple[str, ...] = tuple(MEANINGS), **meanings: str) -> str:
    """The `Exit codes:` epilog of a command's `--help`: the codes `names` from `MEANINGS`, in its order,
    each in the command's own words where `meanings` gives them."""
    lines = ["\b", "Exit codes:"]
    for name, meaning in MEANINGS.items():
        if name in names:
            text = f"{int(ExitCode[name]):<4}{meanings.get(name, meaning)}"
            lines += textwrap.wrap(text, _HELP_WIDTH, initial_indent="  ", subsequent_indent="      ")
    return "\n".join(lines) + "\n"


class ReconcilerError(Exception):
    """An expected failure: its message is shown on one line and the process exits with `exit_code`.

    The exit code is the class's: each category of failure is a subclass (UsageError, DatabaseError, Busy,
    DiffersError...), never an argument.
    """

    exit_code: ClassVar[ExitCode] = ExitCode.INVALID

    def __init__(self, message: str) -> None:
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self.args[0])

    def reworded(self, message: str) -> Self:
        """The same failure (its class, exit code and attributes) in other words; raise it `from` self."""
        error = copy.copy(self)
        error.args = (message,)
        return error


class UsageError(ReconcilerError):
    """The command line asks for something that cannot be done (a missing directory, say)."""

    exit_code = ExitCode.USAGE


class DatabaseError(ReconcilerError):
    """The database could not be reached, refused the login, timed out or lacks MaEVe's tables or the
    reconciler's migrations (or a newer ocpi-parties migrated it)."""

    exit_code = ExitCode.DATABASE


class DiffersError(ReconcilerError):
    """apply --if-same-as: the reviewed plan is stale and the current plan's changes differ from it."""

    exit_code = ExitCode.DIFFERS


class StoreError(ReconcilerError):
    """A store operation that cannot be done as asked (unknown party, not a CPO, ...); exit code 1."""


class PlanFileError(ReconcilerError):
    """A plan file that cannot be used: unreadable, of another version, or stale."""


class PlanDocumentError(ValueError):
    """A plan document that `plan_from_document` cannot read (the callers word it as their own error)."""


class NothingApplied(ReconcilerError):
    """apply refused before anything was written; the message says why and that nothing was changed.

    `plan` is the plan that was refused (refused or blocked changes), for the caller to show after the
    rollback; None when the refusal came before a plan could be trusted (a stale plan, a busy lock).
    """

    def __init__(self, message: str, *, plan: Plan | None = None) -> None:
        super().__init__(message)
        self.plan = plan


class StalePlan(NothingApplied):
    """The database (or the files) changed since the plan was made."""


class Busy(NothingApplied):
    """Another apply (or `db migrate`) holds the lock."""

    exit_code = ExitCode.BUSY


class _Applied:
    """Whether an apply has committed in this run of the command line.

    `apply` records its COMMIT here; the command line's error handler reads it, so that a failure after the
    commit (a closed standard output, Ctrl-C while the summary is printed) does not report as failed an apply
    the database holds.
    """

    committed = False


def record_commit() -> None:
    _Applied.committed = True


def committed() -> bool:
    return _Applied.committed


def forget_commit() -> None:
    _Applied.committed = False
