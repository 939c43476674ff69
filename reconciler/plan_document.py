"""The plan as data: its versioned JSON document, its summary line, and the plan read back from either.

`plan --format json` prints the document, a plan file saves it (`planfile`) and the apply history records its
`changes`; `plan_from_document` reads each back, to be shown again (`output.plan`) or compared, never applied.
docs/plan-format.md describes every key. Values that came from the database are written with the password
of a URL (`https://user:pw@host`) hidden.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, assert_never

from reconciler.changes import (
    AdoptParty,
    AwaitRegistration,
    Change,
    CreateParty,
    DeleteParty,
    Drift,
    FieldChange,
    LocationGroup,
    LocationOwners,
    MoveLocations,
    MoveReason,
    PartyRow,
    Plan,
    ReleaseParty,
    RunMigrations,
    SetDefaultParty,
    SetLocationRules,
    UpdateParty,
)
from reconciler.errors import PlanDocumentError
from reconciler.model import Identity, Source
from reconciler.secret import hide_secrets

#: Version of the document `plan_document` returns. Raised on any incompatible change (docs/plan-format.md).
PLAN_FORMAT_VERSION = 2

#: The whole summary when there is nothing to apply and no deletion is blocked.
NO_CHANGES = "No changes. The database matches the party files."


def public_value(value: Any) -> Any:
    """`value` as JSON data (mappings to dicts, sequences to lists) with URL passwords hidden."""
    if isinstance(value, str):
        return hide_secrets(value)
    if isinstance(value, Mapping):
        return {str(key): public_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [public_value(item) for item in value]
    if isinstance(value, Identity):
        return str(value)
    return value


def number(count: int, noun: str, plural: str | None = None) -> str:
    """`1 location`, `2 locations`, `1,500 identities` (with `plural` where adding an s is wrong)."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def summary(plan: Plan) -> str:
    """`Plan: 2 to add, 1 to change, 0 to delete, 1 to adopt; 1,234 locations to move.` or NO_CHANGES.

    Releases and partners awaiting registration are counted only when there are any.
    """
    if not plan.has_changes and not plan.blocked:
        if plan.awaiting:
            waiting = number(len(plan.awaiting), "partner role")
            return f"{NO_CHANGES[:-1]}; {waiting} awaiting OCPI registration."
        return NO_CHANGES
    counts = plan.counts
    text = f"Plan: {counts.to_add:,} to add, {counts.to_change:,} to change, {counts.to_delete:,} to delete, "
    text += f"{counts.to_adopt:,} to adopt"
    if counts.to_release:
        text += f", {counts.to_release:,} to release"
    text += f"; {number(counts.locations_to_move, 'location')} to move"
    if plan.awaiting:
        text += f"; {len(plan.awaiting):,} awaiting registration"
    if counts.migrations_to_run:
        text += f"; {number(counts.migrations_to_run, 'migration')} to run"
    if plan.blocked:
        text += f"; {number(len(plan.blocked), 'deletion')} blocked"
    return text + "."


def _source_document(source: Source) -> dict[str, Any] | None:
    if not source.file:
        return None
    return {"file": source.file, "line": source.line or None, "column": source.column or None}


def _changes_document(changes: Sequence[FieldChange]) -> list[dict[str, Any]]:
    return [
        {"field": c.field, "before": public_value(c.before), "after": public_value(c.after)} for c in changes
    ]


def _create_document(change: CreateParty) -> dict[str, Any]:
    return {
        "action": "create",
        "identity": str(change.identity),
        "role": change.role,
        "url": public_value(change.url),
        "business_details": public_value(change.business_details),
        "source": _source_document(change.source),
    }


def _update_document(change: AdoptParty | UpdateParty) -> dict[str, Any]:
    return {
        "action": "adopt" if isinstance(change, AdoptParty) else "update",
        "identity": str(change.identity),
        "role": change.role,
        "changes": _changes_document(change.changes),
        "source": _source_document(change.source),
    }


def _delete_document(change: DeleteParty) -> dict[str, Any]:
    return {
        "action": "delete",
        "identity": str(change.identity),
        "role": change.role,
        "reason": change.reason,
        "blocked": change.blocked,
    }


def _release_document(change: ReleaseParty) -> dict[str, Any]:
    return {
        "action": "release",
        "identity": str(change.identity),
        "role": change.role,
        "reason": change.reason,
    }


def _rules_document(change: SetLocationRules) -> dict[str, Any]:
    return {
        "action": "set_location_rules",
        "claims": {key: str(value) for key, value in sorted(change.claims.items())},
        "moved_from": {str(k): str(v) for k, v in sorted(change.moved_from.items())},
        "claims_before": change.claims_before,
        "moved_from_before": change.moved_from_before,
    }


def _default_document(change: SetDefaultParty) -> dict[str, Any]:
    return {
        "action": "set_default_party",
        "before": str(change.before) if change.before else None,
        "after": str(change.after),
    }


def _move_document(change: MoveLocations) -> dict[str, Any]:
    return {
        "action": "move_locations",
        "reason": change.reason,
        "to": str(change.to),
        "count": change.count,
        "groups": [
            {
                "identity": str(g.owner),
                "recorded": str(g.recorded) if g.recorded else None,
                "owned": g.owned,
                "count": g.count,
            }
            for g in change.groups
        ],
        "location_ids": list(change.location_ids),
        "source": _source_document(change.source),
    }


def change_document(change: Change) -> dict[str, Any]:
    """One change as the plan document writes it."""
    match change:
        case CreateParty():
            document = _create_document(change)
        case AdoptParty() | UpdateParty():
            document = _update_document(change)
        case DeleteParty():
            document = _delete_document(change)
        case ReleaseParty():
            document = _release_document(change)
        case SetLocationRules():
            document = _rules_document(change)
        case RunMigrations():
            document = {"action": "run_migrations", "migrations": list(change.migrations)}
        case SetDefaultParty():
            document = _default_document(change)
        case MoveLocations():
            document = _move_document(change)
        case _:
            assert_never(change)
    return document


def plan_document(plan: Plan) -> dict[str, Any]:
    """The plan as JSON data, keys in a fixed order; docs/plan-format.md describes every key."""
    return {
        "format_version": PLAN_FORMAT_VERSION,
        "has_changes": plan.has_changes,
        "summary": {
            "text": summary(plan),
            "to_add": plan.counts.to_add,
            "to_change": plan.counts.to_change,
            "to_delete": plan.counts.to_delete,
            "to_adopt": plan.counts.to_adopt,
            "to_release": plan.counts.to_release,
            "awaiting_registration": len(plan.awaiting),
            "locations_to_move": plan.counts.locations_to_move,
            "migrations_to_run": plan.counts.migrations_to_run,
            "deletions_blocked": len(plan.blocked),
        },
        "changes": [change_document(c) for c in plan.changes],
        "unmanaged": [
            {"identity": str(r.identity), "role": r.role, "url": public_value(r.url)} for r in plan.unmanaged
        ],
        "drift": [
            {
                "identity": str(d.identity),
                "role": d.role,
                "missing": d.missing,
                "changes": _changes_document(d.changes),
            }
            for d in plan.drift
        ],
        "awaiting_registration": [
            {"identity": str(a.identity), "role": a.role, "source": _source_document(a.source)}
            for a in plan.awaiting
        ],
        "warnings": list(plan.warnings),
        "refused": list(plan.refused),
        "notes": list(plan.notes),
        "locations": {
            "recorded": plan.owners.recorded,
            "unowned_now": plan.owners.unowned_now,
            "unowned_after": plan.owners.unowned_after,
        },
    }


# ---------------------------------------------------------------------------------------------- reading


def _identity_of(text: Any) -> Identity:
    """An identity as `plan_document` wrote it, spelled as it was (a row's identity may be in lower case)."""
    if not isinstance(text, str) or "-" not in text:
        raise PlanDocumentError(f"{text!r} is not a party identity")
    country_code, _, party_id = text.partition("-")
    return Identity(country_code, party_id)


def _source_of(data: Any) -> Source:
    if data is None:
        return Source("")
    return Source(str(data["file"]), int(data.get("line") or 0), int(data.get("column") or 0))


def _field_changes_of(items: Any) -> tuple[FieldChange, ...]:
    return tuple(FieldChange(str(c["field"]), c["before"], c["after"]) for c in items)


def _create_of(data: Mapping[str, Any]) -> CreateParty:
    return CreateParty(
        _identity_of(data["identity"]),
        str(data["role"]),
        data["url"],
        data["business_details"],
        _source_of(data["source"]),
    )


def _update_of(data: Mapping[str, Any]) -> AdoptParty | UpdateParty:
    kind = AdoptParty if data["action"] == "adopt" else UpdateParty
    return kind(
        _identity_of(data["identity"]),
        str(data["role"]),
        _field_changes_of(data["changes"]),
        _source_of(data["source"]),
    )


def _delete_of(data: Mapping[str, Any]) -> DeleteParty:
    return DeleteParty(
        _identity_of(data["identity"]), str(data["role"]), str(data["reason"]), bool(data["blocked"])
    )


def _release_of(data: Mapping[str, Any]) -> ReleaseParty:
    return ReleaseParty(_identity_of(data["identity"]), str(data["role"]), str(data["reason"]))


def _rules_of(data: Mapping[str, Any]) -> SetLocationRules:
    return SetLocationRules(
        {str(k): _identity_of(v) for k, v in data["claims"].items()},
        {_identity_of(k): _identity_of(v) for k, v in data["moved_from"].items()},
        int(data.get("claims_before", 0)),
        int(data.get("moved_from_before", 0)),
    )


def _migrations_of(data: Mapping[str, Any]) -> RunMigrations:
    return RunMigrations(tuple(str(name) for name in data["migrations"]))


def _default_of(data: Mapping[str, Any]) -> SetDefaultParty:
    before = data["before"]
    return SetDefaultParty(_identity_of(before) if before is not None else None, _identity_of(data["after"]))


def _move_of(data: Mapping[str, Any]) -> MoveLocations:
    return MoveLocations(
        MoveReason(data["reason"]),
        _identity_of(data["to"]),
        tuple(
            LocationGroup(
                _identity_of(g["recorded"]) if g["recorded"] is not None else None,
                _identity_of(g["identity"]),
                int(g["count"]),
                bool(g["owned"]),
            )
            for g in data["groups"]
        ),
        tuple(str(i) for i in data["location_ids"]),
        _source_of(data["source"]),
    )


#: The reader of each `action` that `change_document` writes.
_READERS: dict[str, Callable[[Mapping[str, Any]], Change]] = {
    "create": _create_of,
    "adopt": _update_of,
    "update": _update_of,
    "delete": _delete_of,
    "release": _release_of,
    "set_location_rules": _rules_of,
    "run_migrations": _migrations_of,
    "set_default_party": _default_of,
    "move_locations": _move_of,
}


def change_of(data: Mapping[str, Any]) -> Change:
    """The inverse of `change_document`, for rendering: row ids are not in the document and stay unknown."""
    reader = _READERS.get(data["action"])
    if reader is None:
        raise PlanDocumentError(f"unknown action {data['action']!r}")
    return reader(data)


def plan_from_document(document: Mapping[str, Any]) -> Plan:
    """The plan a `plan_document` describes: the inverse of `plan_document` as far as rendering goes.

    Row ids and what the database held besides are not in the document, so the plan read back renders as the
    original did in every format, and can be compared and shown, but never applied. A document of only
    `changes` (as the apply history records them) reads as a plan with nothing else to say.
    Raises PlanDocumentError when the document is not one `plan_document` could have written.
    """
    try:
        version = document.get("format_version", PLAN_FORMAT_VERSION)
        if version != PLAN_FORMAT_VERSION:
            raise PlanDocumentError(f"plan format version {version!r}; this is {PLAN_FORMAT_VERSION}")
        locations = document.get("locations") or {}
        return Plan(
            changes=tuple(change_of(c) for c in document.get("changes", [])),
            unmanaged=tuple(
                PartyRow(_identity_of(r["identity"]), str(r["role"]), r["url"], None, False)
                for r in document.get("unmanaged", [])
            ),
            drift=tuple(
                Drift(
                    _identity_of(d["identity"]),
                    str(d["role"]),
                    _field_changes_of(d["changes"]),
                    bool(d["missing"]),
                )
                for d in document.get("drift", [])
            ),
            notes=tuple(str(n) for n in document.get("notes", [])),
            owners=LocationOwners(
                int(locations.get("recorded", 0)),
                int(locations.get("unowned_now", 0)),
                int(locations.get("unowned_after", 0)),
            ),
            awaiting=tuple(
                AwaitRegistration(_identity_of(a["identity"]), str(a["role"]), _source_of(a["source"]))
                for a in document.get("awaiting_registration", [])
            ),
            warnings=tuple(str(w) for w in document.get("warnings", [])),
            refused=tuple(str(r) for r in document.get("refused", [])),
        )
    except PlanDocumentError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise PlanDocumentError(
            f"the plan document is malformed ({type(error).__name__}: {error})"
        ) from error


#: The order of OCPI BusinessDetails' fields, as the files' values are written (`BusinessDetails.to_ocpi`).
_OCPI_ORDER = {key: index for index, key in enumerate(("name", "website", "logo", "url", "thumbnail"))}
_OCPI_ORDER.update(category=5, type=6, width=7, height=8)


def _ocpi_ordered(value: Any) -> Any:
    """Business details with their fields in OCPI's order again (unknown keys after them, as they come)."""
    if not isinstance(value, Mapping):
        return value
    keys = sorted(value, key=lambda key: _OCPI_ORDER.get(key, len(_OCPI_ORDER)))
    return {key: _ocpi_ordered(value[key]) for key in keys}


def recorded_plan(changes: Sequence[Mapping[str, Any]]) -> Plan:
    """The plan of the changes an apply recorded in its history (`plan_document(plan)["changes"]`).

    PostgreSQL's jsonb keeps an object's keys in an order of its own, so the values the files gave (a
    created row's business details, what an update sets) get their fields back in OCPI's order, the order
    the plan showed them in; the values read from the database were in jsonb's order already.
    """
    ordered = []
    for recorded in changes:
        change = dict(recorded)
        if change.get("action") == "create":
            change["business_details"] = _ocpi_ordered(change.get("business_details"))
        if change.get("action") in ("adopt", "update") and isinstance(change.get("changes"), list):
            change["changes"] = [
                {**item, "after": _ocpi_ordered(item.get("after"))} if isinstance(item, Mapping) else item
                for item in change["changes"]
            ]
        ordered.append(change)
    return plan_from_document({"changes": ordered})


def comparable(change: Mapping[str, Any]) -> dict[str, Any]:
    """A change of a plan document without where the files declare it: moving a line changes no change."""
    return {key: value for key, value in change.items() if key != "source"}


def same_changes(reviewed: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Two plan documents make the same changes: the same change list in the same order, with the same
    values and move counts; the source positions, and what the plans say besides their changes, aside."""
    return [comparable(c) for c in reviewed.get("changes", [])] == [
        comparable(c) for c in current.get("changes", [])
    ]
