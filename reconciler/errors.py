"""One error base class and the exit codes the command line documents.

Every failure the tool expects is a `ReconcilerError` (or a subclass) carrying the exit code it maps to;
`cli.main` turns it into one line on stderr. Anything else is a bug and gets `EXIT_INTERNAL`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of `ocpi-parties`, documented in `--help` and the README."""

    OK = 0
    #: The input is invalid (validate found problems), or the command failed for a reason it explains.
    INVALID = 1
    #: The command line itself is wrong: unknown option, missing argument, bad path.
    USAGE = 2
    #: `plan --detailed-exitcode` only: the plan has changes. Same number as USAGE, as in Terraform.
    CHANGES = 2
    #: The database could not be reached, refused the login, timed out, lacks MaEVe's tables or the
    #: reconciler's migrations.
    DATABASE = 3
    #: apply: another apply (or `db migrate`) held the lock for longer than --lock-timeout.
    BUSY = 4
    #: A bug in ocpi-parties: the message points to `--traceback`.
    INTERNAL = 70


class ReconcilerError(Exception):
    """An expected failure: its message is shown on one line and the process exits with `exit_code`."""

    exit_code: int = ExitCode.INVALID

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageError(ReconcilerError):
    """The command line asks for something that cannot be done (a missing directory, say)."""

    exit_code = ExitCode.USAGE
