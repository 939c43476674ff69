"""What an editor needs in a party repository: the JSON Schemas the files' modelines name, and a .gitignore.

Every party file that `init` and `import` write starts with `# yaml-language-server:
$schema=../schema/<name>.schema.json`, so the schemas belong in `schema/` next to the parties directory.
They are the tool's: written from the installed package (`validate.schema_directory`, the one place that
finds them), and replaced when they differ, so that after an upgrade the editor checks what `validate` checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.validate import DEFAULT_SCHEMA, PARTY_SCHEMA, schema_directory

SCHEMAS = (PARTY_SCHEMA, DEFAULT_SCHEMA)
#: What `init` puts in the repository's .gitignore: a saved plan and the embedded database's folder.
IGNORED = ("plan.json", ".ocpi-parties/")
_IGNORE_HEADER = "# Written by ocpi-parties init: a saved plan and the embedded PostgreSQL database."


@dataclass(frozen=True)
class Written:
    path: str  # as shown to the user
    status: str  # "wrote", "updated" or "unchanged"


def beside(parties: Path, name: str) -> Path:
    """`name` in the folder that holds the parties directory: where `../<name>` of a party file points."""
    return Path(os.path.normpath(parties / ".." / name))


def schema_texts() -> dict[str, str]:
    """The packaged JSON Schemas, by file name."""
    folder = schema_directory()
    return {name: (folder / name).read_text(encoding="utf-8") for name in SCHEMAS}


def write_schemas(directory: Path) -> list[Written]:
    """Write the schemas into `directory`: absent ones written, different ones replaced, equal ones kept."""
    if directory.exists() and not directory.is_dir():
        raise ReconcilerError(f"{directory} is not a directory: the JSON Schemas go into a folder")
    directory.mkdir(parents=True, exist_ok=True)
    done = []
    for name, text in schema_texts().items():
        path = directory / name
        before = path.read_text(encoding="utf-8") if path.is_file() else None
        if before == text:
            done.append(Written(str(path), "unchanged"))
            continue
        temporary = path.with_name(f".{name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
        done.append(Written(str(path), "wrote" if before is None else "updated"))
    return done


def extend_gitignore(path: Path) -> list[str]:
    """Add the entries of IGNORED that `path` (a .gitignore, created if absent) lacks; return those added."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    present = {line.strip() for line in text.splitlines()}
    missing = [entry for entry in IGNORED if entry not in present and f"/{entry}" not in present]
    if missing:
        if text and not text.endswith("\n"):
            text += "\n"
        header = [] if _IGNORE_HEADER in present else [_IGNORE_HEADER]
        path.write_text(text + "\n".join([*header, *missing]) + "\n", encoding="utf-8")
    return missing
