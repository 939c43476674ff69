"""Validate a parties directory (every file, then the rules across files) or a single file.

`validate_path` collects every problem in every file before it returns; it never raises for bad input. When
there are no errors it also returns the `DesiredState` the files declare, for `plan` and `apply`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import UsageError
from reconciler.model import Declared, DesiredState, Identity, Party, Problem, Severity, Source, Tombstone
from reconciler.validate.file import Checked, check_file, check_files
from reconciler.validate.names import DEFAULT_FILE, PARTY_FILE, shown_path
from reconciler.validate.rules import default_problems, move_problems


@dataclass(frozen=True)
class ValidationResult:
    problems: tuple[Problem, ...]
    files_checked: int
    #: What the files declare; None when there are errors or when a single file was checked.
    state: DesiredState | None = None

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.WARNING)


def require_party_path(path: Path, shown: str) -> None:
    """Refuse (UsageError) a path that is no file and no directory: missing, a device, pipe or socket."""
    if not path.exists():
        raise UsageError(f"{shown}: no such file or directory")
    if not path.is_file() and not path.is_dir():
        raise UsageError(
            f"{shown} is neither a party file nor a parties directory (a device, pipe or socket): "
            "give the parties directory"
        )


def validate_path(path: Path, display: str | None = None) -> ValidationResult:
    """Validate a parties directory (every file plus the rules across files) or a single file."""
    shown = display if display is not None else str(path)
    require_party_path(path, shown)
    if path.is_file():
        checked = check_file(shown, path=path)
        return ValidationResult(tuple(sorted(checked.problems, key=Problem.sort_key)), 1)
    return _validate_directory(path, shown)


@dataclass
class _Directory:
    """What the files of a parties directory declare, as they are checked one by one."""

    problems: list[Problem]
    parties: dict[Identity, Party]
    #: Identity from the file name -> the file, valid or not.
    named: dict[Identity, str]
    tombstones: list[Tombstone]
    default: Declared[Identity] | None = None
    default_file_seen: bool = False
    checked: int = 0

    def first_of_its_identity(self, name: str, file: str) -> bool:
        """Whether the party file `name` is the first to name its identity; a later one is a problem."""
        match = PARTY_FILE.match(name)
        identity = Identity(match.group(1).upper(), match.group(2).upper()) if match else None
        if identity is None:
            return True
        if identity in self.named:
            # Only file names that differ in case can name the same identity twice.
            self.problems.append(
                Problem(
                    Source(file),
                    "duplicate-identity",
                    f"party {identity} is already declared in {self.named[identity]}: "
                    "keep one file per party",
                )
            )
            return False
        self.named[identity] = file
        return True

    def add(self, default: bool, checked: Checked) -> None:
        """What one checked file declares, and its problems."""
        self.problems.extend(checked.problems)
        if default:
            self.default_file_seen = True
            self.default = checked.default
            return
        self.tombstones.extend(checked.tombstones)
        if checked.party is not None:
            self.parties[checked.party.identity] = checked.party


def _validate_directory(directory: Path, shown: str) -> ValidationResult:
    found = _Directory([], {}, {}, [])
    jobs: list[tuple[str, str]] = []
    for name, entry_path, is_file, refused in _listing(directory, shown):
        file = shown_path(shown, name)
        if refused is not None:
            found.problems.append(refused)
        elif is_file and name == DEFAULT_FILE:
            found.checked += 1
            jobs.append((file, entry_path))
        elif is_file and name.endswith(".yaml"):
            found.checked += 1
            if found.first_of_its_identity(name, file):
                jobs.append((file, entry_path))
        else:
            found.problems.append(_unknown_entry(Path(entry_path), file))
    for (_, entry_path), checked in zip(jobs, check_files(jobs), strict=True):
        found.add(os.path.basename(entry_path) == DEFAULT_FILE, checked)
    problems = found.problems
    problems.extend(
        default_problems(
            shown,
            seen=found.default_file_seen,
            default=found.default,
            parties=found.parties,
            named=found.named,
            tombstones=found.tombstones,
        )
    )
    problems.extend(move_problems(found.parties))
    problems.sort(key=Problem.sort_key)
    state = None
    if found.default is not None and not any(p.severity is Severity.ERROR for p in problems):
        state = DesiredState(
            tuple(found.parties[i] for i in sorted(found.parties)),
            found.default.value,
            found.default.source,
            tuple(sorted(found.tombstones, key=lambda t: (t.identity, t.role or ""))),
        )
    return ValidationResult(tuple(problems), found.checked, state)


def _unknown_entry(entry: Path, file: str) -> Problem:
    if entry.is_dir():
        message = "folders are not read: party files go directly under the parties directory"
    elif entry.name.lower().endswith(".yml") and (
        PARTY_FILE.match(entry.name) or entry.name.lower() == "default-party.yml"
    ):
        message = f"party files end in .yaml: rename it to {entry.stem}.yaml"
    else:
        message = (
            "not a party file: name party files <country_code>-<party_id>.yaml (for example GB-TWK.yaml) "
            f"and the default party file {DEFAULT_FILE}"
        )
    return Problem(Source(file), "unknown-file", message)


def _listing(directory: Path, shown: str) -> list[tuple[str, str, bool, Problem | None]]:
    """The entries of the parties directory, hidden ones left out: name, path, whether it is a file to read,
    and why it is not read when it is a link named like a party file that cannot or may not be followed."""
    with os.scandir(directory) as listing:
        # The listing tells files apart without a stat per entry; only a symbolic link is looked into.
        found = sorted(
            (entry.name, entry.path, entry.is_symlink(), entry.is_file(follow_symlinks=False))
            for entry in listing
            if not entry.name.startswith(".")
        )
    repository = directory.resolve().parent if any(is_link for _, _, is_link, _ in found) else directory
    entries: list[tuple[str, str, bool, Problem | None]] = []
    for name, entry_path, is_link, is_file in found:
        if not is_link:
            entries.append((name, entry_path, is_file, None))
            continue
        link = _followed_link(Path(entry_path), shown_path(shown, name), repository)
        if not isinstance(link, Problem):
            entries.append((name, entry_path, link, None))
        elif name.lower().endswith((".yaml", ".yml")):
            entries.append((name, entry_path, False, link))
        else:
            entries.append((name, entry_path, False, None))
    return entries


def _followed_link(entry: Path, file: str, repository: Path) -> bool | Problem:
    """Whether a symbolic link in the parties directory leads to a file that may be read.

    A broken or looping link cannot be read; a link that leads out of the repository (the parties directory's
    parent) is not read at all, so that validate never reports the keys of a file such as /proc/self/status.
    """
    try:
        target = entry.resolve(strict=True)
    except (OSError, RuntimeError) as error:  # RuntimeError: a loop, before Python 3.13
        reason = getattr(error, "strerror", None) or "the link loops"
        return Problem(
            Source(file), "unreadable", f"cannot read the file: the symbolic link is broken ({reason})"
        )
    if not target.is_relative_to(repository):
        return Problem(
            Source(file),
            "unreadable",
            f"not read: the symbolic link leads out of the repository ({repository}): link to a file inside "
            "it, or copy the file in",
        )
    return target.is_file()
