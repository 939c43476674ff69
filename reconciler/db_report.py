"""Render what the database commands read: parties, locations, the default party and `db status`.

Pure functions from store values to text or JSON; the command line prints what they return.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.migrations import Step
from reconciler.model import Identity
from reconciler.plan import details_problem
from reconciler.render import safe, value_text
from reconciler.store import LocationRow, PartyDetails, PartyRow, Status


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (header, *rows)
    ]
    return "\n".join(lines)


def _business(row: PartyRow) -> Mapping[str, Any]:
    """The row's business details when they are an object; any other stored value counts as none."""
    details = row.business_details
    return details if isinstance(details, Mapping) else {}


def _name(row: PartyRow) -> str:
    if details_problem(row.business_details) is not None:
        return "?"
    return safe(str(_business(row).get("name", "-")))


def _odd_rows(rows: Sequence[PartyRow]) -> list[str]:
    """One note per row whose business_details is not an object: which row, and what it holds instead."""
    notes = []
    for row in rows:
        problem = details_problem(row.business_details)
        if problem is not None:
            shown = value_text(row.business_details)
            notes.append(
                f"note: {row.identity} {safe(row.role)} (row id {row.id}): {problem}: {shown}; a party file "
                "that declares the role replaces it on apply"
            )
    return notes


def _party_json(row: PartyRow) -> dict[str, Any]:
    return {
        "party": str(row.identity),
        "country_code": row.identity.country_code,
        "party_id": row.identity.party_id,
        "role": row.role,
        "url": row.url,
        "business_details": row.business_details,
        "managed": row.managed,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def parties_text(rows: Sequence[PartyRow]) -> str:
    if not rows:
        return "No parties."
    body = [(str(r.identity), safe(r.role), r.managed or "no", _name(r), safe(r.url)) for r in rows]
    return "\n".join([_table(("PARTY", "ROLE", "MANAGED", "NAME", "URL"), body), *_odd_rows(rows)])


def parties_json(rows: Sequence[PartyRow], offset: int, limit: int) -> str:
    document = {"offset": offset, "limit": limit, "parties": [_party_json(r) for r in rows]}
    return json.dumps(document, indent=2, ensure_ascii=False)


def party_text(details: PartyDetails) -> str:
    lines = [f"{details.identity}{' (default party)' if details.is_default else ''}"]
    for row in details.roles:
        lines.append(f"  {safe(row.role)}")
        lines.append(f"    name:     {_name(row)}")
        business = _business(row)
        if business.get("website"):
            lines.append(f"    website:  {safe(str(business['website']))}")
        lines.append(f"    url:      {safe(row.url)}")
        lines.append(f"    managed:  {row.managed or 'no (written by MaEVe or by hand)'}")
        lines.append(f"    updated:  {row.updated_at:%Y-%m-%d %H:%M:%S}")
    lines.append(f"  locations: {details.locations}")
    return "\n".join([*lines, *_odd_rows(details.roles)])


def party_json(details: PartyDetails) -> str:
    document = {
        "party": str(details.identity),
        "is_default": details.is_default,
        "locations": details.locations,
        "roles": [_party_json(r) for r in details.roles],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def locations_text(identity: Identity, rows: Sequence[LocationRow], offset: int) -> str:
    if not rows:
        return f"No locations recorded under {identity}" + (f" from offset {offset}." if offset else ".")
    body = [
        (
            safe(r.id),
            safe(r.name or "-"),
            safe(r.city or "-"),
            safe(r.country or "-"),
            "yes" if r.owned else "no (orphan)",
        )
        for r in rows
    ]
    return _table(("ID", "NAME", "CITY", "COUNTRY", "OWNED"), body)


def locations_json(identity: Identity, rows: Sequence[LocationRow], offset: int, limit: int) -> str:
    document = {
        "party": str(identity),
        "offset": offset,
        "limit": limit,
        "locations": [
            {
                "id": r.id,
                "owned": r.owned,
                "name": r.name,
                "city": r.city,
                "country": r.country,
                "updated_at": r.updated_at.isoformat(),
            }
            for r in rows
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def default_text(identity: Identity | None) -> str:
    return str(identity) if identity else "No default party is set."


def status_text(status: Status, label: str) -> str:
    lines = [f"Database: {label}", "Migrations:"]
    width = max(len(state.migration.label) for state in status.migrations)
    for state in status.migrations:
        if state.applied is None:
            mark = "pending"
        else:
            mark = f"applied {state.applied.applied_at:%Y-%m-%d %H:%M:%S}"
            if state.changed:
                mark += " (the shipped file differs from the applied one)"
        lines.append(f"  {state.migration.label.ljust(width)}  {mark}")
    for version in status.unknown_migrations:
        lines.append(f"  {version:04d} (unknown to this version: applied by a newer ocpi-parties)")
    if status.missing:
        lines.append(
            "  Missing (applied, but gone from the database: MaEVe's own migrations may have dropped and "
            "created its tables again):"
        )
        for migration, objects in status.missing:
            lines.append(f"    {migration.label}: missing {', '.join(map(str, objects))}")
    pending = len(status.pending)
    if status.missing:
        waiting = f"{pending} pending; " if pending else ""
        lines.append(f"  {waiting}run `ocpi-parties db migrate` to restore what is missing")
    elif pending:
        lines.append(f"  {pending} pending: run `ocpi-parties db migrate`")
    else:
        lines.append("  up to date")
    if status.default_party is None:
        default = "none"
    elif status.default_is_cpo:
        default = str(status.default_party)
    else:
        default = f"{status.default_party} (no CPO row: locations cannot land on it)"
    lines += [
        f"Default party: {default}",
        f"Parties: {status.parties} rows, {status.managed} managed, {status.unmanaged} not managed",
        f"Locations: {status.locations}, {status.orphans} orphan (no CPO party)",
        f"Location owner key: {status.location_key}",
    ]
    return "\n".join(lines)


_VERB = {"up": "applied ", "down": "reverted", "restore": "restored"}


def steps_text(steps: Sequence[Step], key_valid: bool | None) -> str:
    if not steps:
        lines = ["Nothing to do: the database is at the requested version."]
    else:
        lines = [f"{_VERB[step.direction]} {step.migration.label} ({step.seconds:.2f} s)" for step in steps]
    if key_valid is True:
        lines.append("Location owner key: valid.")
    elif key_valid is False:
        lines.append("Location owner key: not valid yet (orphan locations remain; apply moves them).")
    return "\n".join(lines)
