"""Check one file: load it, read it as validate does, apply its schema and the rules inside one file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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
