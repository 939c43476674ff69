"""Check one file: load it, read it as validate does, apply its schema and the rules inside one file."""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from reconciler.interrupt import ctrl_c_held
from reconciler.load import load_file, parse_text
from reconciler.model import Declared, Identity, Party, Problem, Severity, Tombstone
from reconciler.validate.build import default_from, party_from
from reconciler.validate.names import DEFAULT_FILE
from reconciler.validate.normalise import normalise
from reconciler.validate.problems import FileProblems
from reconciler.validate.schema import DEFAULT_SCHEMA, PARTY_SCHEMA, schema_problems


@dataclass(frozen=True)
class Checked:
    """One file checked: its problems in the order found, and what it declares when it has no errors."""

    problems: tuple[Problem, ...]
    #: A party file's party (None for a deleted one, whose tombstone is in `tombstones`).
    party: Party | None = None
    tombstones: tuple[Tombstone, ...] = ()
    #: The default-party file's default party.
    default: Declared[Identity] | None = None

    @property
    def failed(self) -> bool:
        """Whether any problem is an error."""
        return any(p.severity is Severity.ERROR for p in self.problems)


def check_file(file: str, *, text: str | None = None, path: str | Path | None = None) -> Checked:
    """Check one file, named `file` in messages: `text` when given (a file not yet written), else the file
    at `path` (by default at `file`).

    The file's name says what it holds: `default-party.yaml` names the default party, any other file is a
    party file, whose name must match the identity it declares.
    """
    where = file if path is None else path
    loaded = parse_text(text, file) if text is not None else load_file(where, file)
    if isinstance(loaded, Problem):
        return Checked((loaded,))
    name = os.path.basename(where)
    default = name == DEFAULT_FILE
    normalised = normalise(loaded, default=default)
    problems = FileProblems(loaded, list(normalised.problems))
    for found in schema_problems(normalised.data, DEFAULT_SCHEMA if default else PARTY_SCHEMA):
        problems.add(found.path, "schema", found.message, key=found.key)
    if default:
        named = default_from(problems, normalised.data)
        return Checked(tuple(problems.found), default=named)
    party, tombstones = party_from(problems, normalised.data, name)
    return Checked(tuple(problems.found), party, tuple(tombstones))


#: From this many files on, `check_files` checks the second half in a forked process, where the machine has
#: a second CPU: at 10,000 files, validate took 0.84 s instead of 1.12 s in the README's benchmark (plan and
#: apply read every file too). Below it the fork and the pickled results cost more than they save.
PARALLEL_FROM = 1_000


def check_files(jobs: Sequence[tuple[str, str]]) -> list[Checked]:
    """`check_file(file, path=path)` of each (file, path) in `jobs`, in order.

    With many files and a CPU to spare, a forked copy of this process checks the second half and sends its
    results back through a pipe while this one checks the first; if the copy fails in any way, this process
    checks its half too. Either way the results are the ones `check_file` gives
    (tests/unit/test_check_files.py).
    """
    if len(jobs) < PARALLEL_FROM or not _forkable():
        return _checked(jobs)
    half = len(jobs) // 2
    try:
        with _forked(jobs[half:]) as forked:
            first = _checked(jobs[:half])
            second = forked.results()
    except _NoFork:
        return _checked(jobs)
    return first + (second if second is not None else _checked(jobs[half:]))


def _checked(jobs: Sequence[tuple[str, str]]) -> list[Checked]:
    return [check_file(file, path=path) for file, path in jobs]


def _forkable() -> bool:
    """Linux, a second CPU, and no other thread (a forked copy of a threaded process may deadlock)."""
    return (
        sys.platform == "linux"
        and len(os.sched_getaffinity(0)) > 1
        # Every thread of the process, also those that C extensions start (threading sees only its own).
        and len(os.listdir("/proc/self/task")) == 1
    )


class _NoFork(Exception):
    """No process or pipe to spare (a container's limits, say): this process checks every file."""


@contextlib.contextmanager
def _forked(jobs: Sequence[tuple[str, str]]) -> Iterator[_Forked]:
    """A forked copy of this process checking `jobs`; stopped if need be and always reaped on leaving.

    Ctrl-C is held back from the fork until the copy has the default handler, which ends it at once (Python's
    would raise KeyboardInterrupt into the caller's code in the copy), and until the copy is in hand here,
    so that an interrupted run still reaps it.
    """
    try:
        reader, writer = os.pipe()
    except OSError as error:
        raise _NoFork from error
    forked: _Forked | None = None
    try:
        with ctrl_c_held():  # a Ctrl-C held back is raised on leaving, with the copy already in hand
            try:
                pid = os.fork()
            except OSError as error:
                os.close(reader)
                os.close(writer)
                raise _NoFork from error
            if pid == 0:  # pragma: no cover - the copy; tests compare what it sends with check_file's results
                _copy(jobs, reader, writer)
            forked = _Forked(pid, reader)
            os.close(writer)
        yield forked
    finally:
        if forked is not None:
            forked.end()


def _copy(jobs: Sequence[tuple[str, str]], reader: int, writer: int) -> NoReturn:  # pragma: no cover
    """The forked copy: check `jobs`, send the results, and end without going back into the caller's code
    (no cleanup, no atexit, no buffered output of the parent)."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        os.close(reader)
        payload = _payload(jobs)
        with os.fdopen(writer, "wb") as out:
            out.write(payload)
        code = 0
    finally:
        os._exit(code)


@dataclass
class _Forked:
    """The forked copy, and the pipe its pickled results come back in."""

    pid: int
    reader: int
    reaped: bool = False

    def results(self) -> list[Checked] | None:
        """The copy's results, or None when it failed (nothing, or not all, came back)."""
        with os.fdopen(self.reader, "rb") as source:
            self.reader = -1
            payload = source.read()
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:  # reaped already (the caller ignores SIGCHLD): its exit code is unknown
            self.reaped = True
            return None
        self.reaped = True
        if os.waitstatus_to_exitcode(status) != 0:
            return None
        try:
            results = pickle.loads(payload)  # from our own copy, through a pipe only it and we hold
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError):
            return None
        return results if isinstance(results, list) else None

    def end(self) -> None:
        """Close the pipe; stop and reap the copy if this process was interrupted before it had."""
        if self.reader >= 0:
            os.close(self.reader)
            self.reader = -1
        if not self.reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):  # reaped already when the caller ignores SIGCHLD
                os.waitpid(self.pid, 0)
            self.reaped = True


def _payload(jobs: Sequence[tuple[str, str]]) -> bytes:
    """What the forked copy sends back: its results, pickled."""
    return pickle.dumps(_checked(jobs), protocol=pickle.HIGHEST_PROTOCOL)
