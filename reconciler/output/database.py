"""What the database commands show: parties, locations, the default party, `db status` and `db migrate`.

Pure functions from store values to text or JSON; the command line prints what they return.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from reconciler.changes import PartyRow, details_problem
from reconciler.migrations import Step
from reconciler.model import Identity
from reconciler.output.plan import safe, value_text
from reconciler.secret import hide_secrets
from reconciler.store import LocationRow, Page, PartyDetails, Status

#: What the text shows for business details or a default party that an unmigrated database does not record.
NOT_RECORDED = "(not recorded yet: run `ocpi-parties db migrate`)"


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
    if not row.details_recorded:
        return "(not recorded yet)"
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
        # A hosted row that ocpi-parties created without a url holds '' (the column is NOT NULL): absent.
        "url": hide_secrets(row.url) or None,
        "business_details": row.business_details,
        "managed": row.how,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def _iso(when: datetime | None) -> str | None:
    """A time read from the database (every row read has its times) in ISO 8601."""
    return None if when is None else when.isoformat()


def _paging(page: Page[Any]) -> dict[str, Any]:
    return {"offset": page.offset, "limit": page.limit, "total": page.total, "next_offset": page.next_offset}


def showing(page: Page[Any], noun: str) -> list[str]:
    """`showing 51–100 of 1,234 party rows` (an en dash, as in print), and the next page's offset."""  # noqa: RUF002
    if page.offset == 0 and page.next_offset is None:
        return []  # every row is shown
    first, last = page.offset + 1, page.offset + len(page.rows)
    line = f"showing {first:,}–{last:,} of {page.total:,} {noun}"  # noqa: RUF001
    if page.next_offset is not None:
        line += f"; the next page: --offset {page.next_offset}"
    return [line]


def _not_recorded(rows: Sequence[PartyRow]) -> list[str]:
    if rows and not rows[0].details_recorded:
        return [f"Business details: {NOT_RECORDED}."]
    return []


def parties_text(page: Page[PartyRow]) -> str:
    rows = page.rows
    if not rows:
        return (
            "No parties."
            if page.total == 0
            else f"No parties from offset {page.offset:,} (of {page.total:,})."
        )
    body = [(str(r.identity), safe(r.role), r.how or "no", _name(r), safe(hide_secrets(r.url))) for r in rows]
    return "\n".join(
        [
            _table(("PARTY", "ROLE", "MANAGED", "NAME", "URL"), body),
            *_odd_rows(rows),
            *_not_recorded(rows),
            *showing(page, "party rows"),
        ]
    )


def parties_json(page: Page[PartyRow]) -> str:
    """The page; `business_details_recorded` is false before `db migrate` adds the column (all null)."""
    document = {
        **_paging(page),
        "business_details_recorded": all(r.details_recorded for r in page.rows),
        "parties": [_party_json(r) for r in page.rows],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def _logo(business: Mapping[str, Any]) -> str | None:
    """The logo's url, category and size as one line, or None when the details have no logo object."""
    logo = business.get("logo")
    if not isinstance(logo, Mapping):
        return None
    parts = [safe(str(logo.get("url", "?")))]
    if logo.get("category"):
        parts.append(safe(str(logo["category"])))
    if logo.get("width") and logo.get("height"):
        parts.append(f"{safe(str(logo['width']))}x{safe(str(logo['height']))}")
    return "  ".join(parts)


def party_text(details: PartyDetails) -> str:
    default = " (default party)" if details.is_default else ""
    lines = [f"{details.identity}{default}"]
    if not details.default_recorded:
        lines.append(f"  default party: {NOT_RECORDED}")
    for row in details.roles:
        lines.append(f"  {safe(row.role)}")
        if row.details_recorded:
            lines.append(f"    name:     {_name(row)}")
        else:
            lines.append(f"    business details: {NOT_RECORDED}")
        business = _business(row)
        if business.get("website"):
            lines.append(f"    website:  {safe(str(business['website']))}")
        logo = _logo(business)
        if logo is not None:
            lines.append(f"    logo:     {logo}")
        lines.append(f"    url:      {safe(hide_secrets(row.url))}")
        lines.append(f"    managed:  {row.how or 'no (written by MaEVe or by hand)'}")
        updated = row.updated_at.isoformat(sep=" ", timespec="seconds") if row.updated_at else "-"
        lines.append(f"    updated:  {updated}")
    lines.append(f"  locations: {details.locations}")
    return "\n".join([*lines, *_odd_rows(details.roles)])


def party_json(details: PartyDetails) -> str:
    """`is_default` is null, and `business_details_recorded` false, where the database does not record them
    yet (before `db migrate`)."""
    document = {
        "party": str(details.identity),
        "is_default": details.is_default if details.default_recorded else None,
        "business_details_recorded": all(r.details_recorded for r in details.roles),
        "locations": details.locations,
        "roles": [_party_json(r) for r in details.roles],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def locations_text(identity: Identity, page: Page[LocationRow]) -> str:
    rows, offset = page.rows, page.offset
    if not rows:
        if offset and page.total:
            return f"No locations recorded under {identity} from offset {offset:,} (of {page.total:,})."
        return f"No locations recorded under {identity}."
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
    return "\n".join([_table(("ID", "NAME", "CITY", "COUNTRY", "OWNED"), body), *showing(page, "locations")])


def locations_json(identity: Identity, page: Page[LocationRow]) -> str:
    document = {
        "party": str(identity),
        **_paging(page),
        "locations": [
            {
                "id": r.id,
                "owned": r.owned,
                "name": r.name or None,
                "city": r.city or None,
                "country": r.country or None,
                "updated_at": r.updated_at.isoformat(),
            }
            for r in page.rows
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def default_text(identity: Identity | None, recorded: bool = True) -> str:
    if not recorded:
        return f"Default party: {NOT_RECORDED}."
    return str(identity) if identity else "No default party is set."


def _migration_lines(status: Status) -> list[str]:
    """Each migration, applied (when) or pending, then those only a newer ocpi-parties knows."""
    width = max(len(state.migration.label) for state in status.migrations)
    lines = []
    for state in status.migrations:
        if state.applied is None:
            mark = "pending"
        else:
            mark = f"applied {state.applied.applied_at:%Y-%m-%d %H:%M:%S}"
            if state.changed:
                mark += " (the shipped file differs from the applied one)"
        lines.append(f"  {state.migration.label.ljust(width)}  {mark}")
    lines += [
        f"  {version:04d} (unknown to this version: applied by a newer ocpi-parties)"
        for version in status.unknown_migrations
    ]
    return lines


def _missing_lines(status: Status) -> list[str]:
    """What applied migrations made that is gone from the database, and what to run."""
    pending = len(status.pending)
    if not status.missing:
        return [f"  {pending} pending: run `ocpi-parties db migrate`" if pending else "  up to date"]
    lines = [
        "  Missing (applied, but gone from the database: MaEVe's own migrations may have dropped and "
        "created its tables again):"
    ]
    lines += [
        f"    {migration.label}: missing {', '.join(map(str, objects))}"
        for migration, objects in status.missing
    ]
    waiting = f"{pending} pending; " if pending else ""
    return [*lines, f"  {waiting}run `ocpi-parties db migrate` to restore what is missing"]


def _default_party(status: Status) -> str:
    if status.default_party is None:
        return "none"
    if status.default_is_cpo:
        return str(status.default_party)
    return f"{status.default_party} (no CPO row: locations cannot land on it)"


def status_text(status: Status, label: str) -> str:
    """`db status`: the migrations, the default party, and the counts of parties and locations."""
    return "\n".join(
        [
            f"Database: {label}",
            "Migrations:",
            *_migration_lines(status),
            *_missing_lines(status),
            f"Default party: {_default_party(status)}",
            f"Parties: {status.parties} rows, {status.managed} managed, {status.unmanaged} not managed",
            f"Locations: {status.locations}, {status.orphans} orphan (no CPO party)",
            f"Location owner key: {status.location_key}",
        ]
    )


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
