"""Saved plans (`plan --out FILE`, `apply FILE`): what was reviewed, and how to tell that it still holds.

A plan file is one JSON document holding the desired state the plan was computed from (so apply needs no
party files), a digest of that state, the fingerprint of the database facts it relied on, the revision, and
the rendered plan for people and tools. It holds no secret: party files have none, and tokens are never read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler import __version__, plan_document
from reconciler.changes import Plan
from reconciler.errors import PlanDocumentError, PlanFileError, UsageError
from reconciler.model import (
    BusinessDetails,
    Declared,
    DesiredState,
    Identity,
    Image,
    Kind,
    Party,
    PartyRole,
    Source,
    Tombstone,
)

#: Version of the plan file layout; apply refuses files of another version. 2: each role says its `kind`
#: (hosted or partner), which decides whether apply may create, write or delete its row. 3: a source is an
#: object `{"file", "line", "column"}`, not its display text, which a path holding `:` made ambiguous.
PLAN_FILE_VERSION = 3


def _source_json(source: Source) -> dict[str, Any]:
    return {"file": source.file, "line": source.line, "column": source.column}


def _source(data: Mapping[str, Any]) -> Source:
    """A source as `_source_json` wrote it: never parsed from text, so a file name may hold any character."""
    file, line, column = data["file"], data["line"], data["column"]
    if not isinstance(file, str) or type(line) is not int or type(column) is not int:
        raise ValueError(f"{dict(data)!r} is not a source position")
    return Source(file, line, column)


def _identity(text: str) -> Identity:
    identity = Identity.parse(text)
    if identity is None:
        raise PlanFileError(f"plan file: {text!r} is not a party identity")
    return identity


def desired_to_json(desired: DesiredState) -> dict[str, Any]:
    """The desired state as plain JSON, with the source position of each declaration."""
    return {
        "default_party": str(desired.default_party),
        "default_source": _source_json(desired.default_source),
        "parties": [
            {
                "identity": str(party.identity),
                "url": party.url,
                "source": _source_json(party.source),
                "roles": [
                    {
                        "role": r.role,
                        "kind": str(r.kind),
                        "business_details": r.business_details.to_ocpi(),
                        "source": _source_json(r.source),
                    }
                    for r in party.roles
                ],
                "moved_from": [
                    {"identity": str(m.value), "source": _source_json(m.source)} for m in party.moved_from
                ],
                "locations": [{"id": c.value, "source": _source_json(c.source)} for c in party.locations],
            }
            for party in desired.parties
        ],
        "tombstones": [
            {"identity": str(t.identity), "role": t.role, "source": _source_json(t.source)}
            for t in desired.tombstones
        ],
    }


def _details(data: Mapping[str, Any]) -> BusinessDetails:
    logo = data.get("logo")
    return BusinessDetails(
        data["name"],
        data.get("website"),
        Image(
            logo["url"],
            logo["category"],
            logo["type"],
            logo.get("thumbnail"),
            logo.get("width"),
            logo.get("height"),
        )
        if logo
        else None,
    )


def desired_from_json(data: Mapping[str, Any]) -> DesiredState:
    """The inverse of `desired_to_json`."""
    try:
        return DesiredState(
            tuple(
                Party(
                    _identity(party["identity"]),
                    tuple(
                        PartyRole(
                            r["role"], _details(r["business_details"]), _source(r["source"]), Kind(r["kind"])
                        )
                        for r in party["roles"]
                    ),
                    party["url"],
                    _source(party["source"]),
                    tuple(
                        Declared(_identity(m["identity"]), _source(m["source"])) for m in party["moved_from"]
                    ),
                    tuple(Declared(c["id"], _source(c["source"])) for c in party["locations"]),
                )
                for party in data["parties"]
            ),
            _identity(data["default_party"]),
            _source(data["default_source"]),
            tuple(
                Tombstone(_identity(t["identity"]), t["role"], _source(t["source"]))
                for t in data["tombstones"]
            ),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise PlanFileError(f"plan file: the desired state is malformed ({error})") from error


def desired_digest(desired: DesiredState) -> str:
    """A digest of what the files mean, not where they say it: moving a line does not change it."""
    document = desired_to_json(desired)
    document.pop("default_source")
    for party in document["parties"]:
        party.pop("source")
        for item in (*party["roles"], *party["moved_from"], *party["locations"]):
            item.pop("source")
    for tombstone in document["tombstones"]:
        tombstone.pop("source")
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class SavedPlan:
    desired: DesiredState
    desired_digest: str
    fingerprint: str
    allow_delete: bool
    revision: str | None
    tool_version: str
    created_at: str
    #: The plan as `plan_document.plan_document` made it when it was saved: what the reviewers saw.
    rendered: Mapping[str, Any] = field(default_factory=dict)


def save(
    path: Path,
    *,
    desired: DesiredState,
    fingerprint: str,
    allow_delete: bool,
    revision: str | None,
    created_at: str,
    rendered: Mapping[str, Any],
) -> None:
    """Write the plan file (atomically: a reader never sees half a file)."""
    document = {
        "plan_file_version": PLAN_FILE_VERSION,
        "tool_version": __version__,
        "created_at": created_at,
        "revision": revision,
        "allow_delete": allow_delete,
        "desired_digest": desired_digest(desired),
        "fingerprint": fingerprint,
        "desired": desired_to_json(desired),
        "plan": rendered,
    }
    check_target(path)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    try:
        # A fresh temporary file of our own (never one that someone placed there), renamed over the target.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(handle, 0o666 & ~umask)  # as an ordinary new file, not mkstemp's 0600
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
            check_target(path)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as error:
        raise PlanFileError(f"cannot write the plan file {path}: {error.strerror or error}") from error


def check_target(path: Path) -> None:
    """Refuse to save a plan over anything but a regular file: the rename would replace a symbolic link, a
    device such as /dev/stdout or a named pipe with a file, where the user meant to write through it."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise PlanFileError(f"cannot write the plan file {path}: {error.strerror or error}") from error
    if stat.S_ISREG(mode):
        return
    what = (
        "a symbolic link"
        if stat.S_ISLNK(mode)
        else "a directory"
        if stat.S_ISDIR(mode)
        else "a device, pipe or socket"
    )
    raise UsageError(
        f"--out {path} is {what}, not a regular file: plan writes the plan file only to a new or regular "
        "file; give another path"
    )


def _not_a_plan_file(path: Path) -> PlanFileError:
    return PlanFileError(
        f"{path} is not a plan file written by `ocpi-parties plan --out`: apply takes such a plan file, or "
        "the parties directory (default: parties/), never a single party file"
    )


def reviewed_plan(saved: SavedPlan, path: Path) -> Plan:
    """The plan the file shows its reviewers, read back from the document saved in it."""
    if not saved.rendered:
        raise PlanFileError(f"{path} holds no plan to show: run plan again")
    try:
        return plan_document.plan_from_document(saved.rendered)
    except PlanDocumentError as error:
        raise PlanFileError(f"{path} holds a plan that cannot be read ({error}): run plan again") from error


def load(path: Path) -> SavedPlan:
    """Read a plan file; refuse one from another file version or whose content was altered."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PlanFileError(f"cannot read the plan file {path}: {error.strerror or error}") from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _not_a_plan_file(path) from error
    if not isinstance(document, dict) or "plan_file_version" not in document:
        raise _not_a_plan_file(path)
    if document["plan_file_version"] != PLAN_FILE_VERSION:
        raise PlanFileError(
            f"{path} was made by ocpi-parties {document.get('tool_version', '?')} (plan file version "
            f"{document['plan_file_version']}); this is {__version__} (version {PLAN_FILE_VERSION}): "
            "run plan again"
        )
    desired = desired_from_json(document.get("desired", {}))
    if desired_digest(desired) != document.get("desired_digest"):
        raise PlanFileError(f"{path} was altered after it was made: run plan again")
    return SavedPlan(
        desired,
        document["desired_digest"],
        str(document.get("fingerprint", "")),
        bool(document.get("allow_delete", False)),
        document.get("revision"),
        str(document.get("tool_version", "")),
        str(document.get("created_at", "")),
        document["plan"] if isinstance(document.get("plan"), dict) else {},
    )
