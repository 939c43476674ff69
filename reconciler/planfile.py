"""Saved plans (`plan --out FILE`, `apply FILE`): what was reviewed, and how to tell that it still holds.

A plan file is one JSON document holding the desired state the plan was computed from (so apply needs no
party files), a digest of that state, the fingerprint of the database facts it relied on, the revision, and
the rendered plan for people and tools. It holds no secret: party files have none, and tokens are never read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.errors import ReconcilerError
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
#: (hosted or partner), which decides whether apply may create, write or delete its row.
PLAN_FILE_VERSION = 2


class PlanFileError(ReconcilerError):
    """A plan file that cannot be used: unreadable, of another version, or stale."""


def _source(text: str) -> Source:
    file, _, rest = text.partition(":")
    line, _, column = rest.partition(":")
    return Source(file, int(line or 0), int(column or 0))


def _identity(text: str) -> Identity:
    identity = Identity.parse(text)
    if identity is None:
        raise PlanFileError(f"plan file: {text!r} is not a party identity")
    return identity


def desired_to_json(desired: DesiredState) -> dict[str, Any]:
    """The desired state as plain JSON, with the source position of each declaration."""
    return {
        "default_party": str(desired.default_party),
        "default_source": str(desired.default_source),
        "parties": [
            {
                "identity": str(party.identity),
                "url": party.url,
                "source": str(party.source),
                "roles": [
                    {
                        "role": r.role,
                        "kind": str(r.kind),
                        "business_details": r.business_details.to_ocpi(),
                        "source": str(r.source),
                    }
                    for r in party.roles
                ],
                "moved_from": [{"identity": str(m.value), "source": str(m.source)} for m in party.moved_from],
                "locations": [{"id": c.value, "source": str(c.source)} for c in party.locations],
            }
            for party in desired.parties
        ],
        "tombstones": [
            {"identity": str(t.identity), "role": t.role, "source": str(t.source)} for t in desired.tombstones
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
        raise PlanFileError(f"plan file: the desired state is malformed ({error})") from None


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
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        temporary.replace(path)
    except OSError as error:
        raise PlanFileError(f"cannot write the plan file {path}: {error.strerror or error}") from None


def load(path: Path) -> SavedPlan:
    """Read a plan file; refuse one from another file version or whose content was altered."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PlanFileError(f"cannot read the plan file {path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PlanFileError(f"{path} is not a plan file written by `ocpi-parties plan --out`") from None
    if not isinstance(document, dict) or "plan_file_version" not in document:
        raise PlanFileError(f"{path} is not a plan file written by `ocpi-parties plan --out`")
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
    )
