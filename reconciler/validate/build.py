"""What one checked file declares (a Party, tombstones, the default party), and the rules inside one file
that the schema cannot express.

The rules look only at the parts that are well formed, so they report alongside the schema's problems; the
file declares something only when it has no errors at all.
"""

from __future__ import annotations

from typing import Any

from reconciler.load import JsonPath
from reconciler.model import (
    CPO,
    NAME_NEEDED,
    ROLES,
    BusinessDetails,
    Declared,
    Identity,
    Image,
    Kind,
    Party,
    PartyRole,
    Tombstone,
)
from reconciler.validate.names import PARTY_FILE
from reconciler.validate.problems import FileProblems

_TOMBSTONE_KEEPS = ("country_code", "party_id", "deleted")


def default_from(problems: FileProblems, data: Any) -> Declared[Identity] | None:
    """The default party a default-party file names, and where; None when the file has errors."""
    value = data.get("default_party") if isinstance(data, dict) else None
    identity = Identity.parse(value) if isinstance(value, str) else None
    if problems.failed or identity is None:  # the schema has reported why
        return None
    return Declared(identity, problems.loaded.source(("default_party",)))


def party_from(problems: FileProblems, data: Any, file_name: str) -> tuple[Party | None, list[Tombstone]]:
    """The Party and the tombstones a party file named `file_name` declares; none when it has errors."""
    if not isinstance(data, dict):
        return None, []
    identity = _identity(problems, data, file_name)
    if data.get("deleted") is True:
        return None, _deleted_party(problems, data, identity)
    _placeholder_names(problems, data)
    roles, tombstones = _roles_from(problems, data, identity, _kind_of(data))
    if problems.failed or identity is None:
        return None, []
    url = data.get("url")
    moved = [
        Declared(parsed, problems.loaded.source(("moved_from", index)))
        for index, text in enumerate(data.get("moved_from", []))
        if (parsed := Identity.parse(text)) is not None
    ]
    owned = [
        Declared(location, problems.loaded.source(("locations", index)))
        for index, location in enumerate(data.get("locations", []))
    ]
    party = Party(
        identity,
        tuple(roles),
        url if isinstance(url, str) else None,
        problems.loaded.source(),
        tuple(moved),
        tuple(owned),
    )
    return party, tombstones


def _identity(problems: FileProblems, data: dict[str, Any], file_name: str) -> Identity | None:
    """The identity the file declares, reported when the file is named for another one."""
    country_code, party_id = data.get("country_code"), data.get("party_id")
    if not (isinstance(country_code, str) and isinstance(party_id, str)):
        return None
    identity = Identity(country_code, party_id)
    expected = f"{identity}.yaml"
    if PARTY_FILE.match(expected) and file_name != expected:
        problems.add(
            ("party_id",),
            "file-name",
            f"the file name {file_name} does not match the party {identity} declared in it: "
            f"rename the file to {expected}",
        )
    return identity


def _deleted_party(
    problems: FileProblems, data: dict[str, Any], identity: Identity | None
) -> list[Tombstone]:
    for key in data:
        if key not in _TOMBSTONE_KEEPS:
            problems.add(
                (key,),
                "deleted-with-content",
                f"a deleted party declares only {', '.join(_TOMBSTONE_KEEPS)}: remove {key}",
                key=True,
            )
    if problems.failed or identity is None:
        return []
    return [Tombstone(identity, None, problems.loaded.source(("deleted",)))]


def _placeholder_names(problems: FileProblems, data: dict[str, Any]) -> None:
    """Warn at each business name that is still the placeholder `init --party` writes without --name."""
    entries = data.get("roles")
    places: list[tuple[JsonPath, Any]] = [(("business_details",), data.get("business_details"))]
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if isinstance(entry, dict):
            places.append((("roles", index, "business_details"), entry.get("business_details")))
    for place, details in places:
        name = details.get("name") if isinstance(details, dict) else None
        if isinstance(name, str) and name.strip().casefold() == NAME_NEEDED:
            problems.add(
                (*place, "name"),
                "placeholder-name",
                f"the business name is still the placeholder {NAME_NEEDED!r} that `init` wrote: write the "
                "party's business name, which OCPI peers see",
                warning=True,
            )


def _kind_of(data: dict[str, Any]) -> Kind | None:
    """The `kind` of a mapping when it is a valid one (the schema reports any other)."""
    value = data.get("kind")
    return Kind(value) if value in tuple(Kind) else None


def _hosted_not_cpo(problems: FileProblems, where: JsonPath, name: str, own_kind: bool) -> None:
    """Only a CPO can be hosted: report a hosted role of another kind where its kind is written."""
    if own_kind:
        path: JsonPath = (*where, "kind")
        said = ""
    else:
        path = (*where, "role")
        said = f" (the file's kind: hosted, line {problems.loaded.source(('kind',)).line})"
    if name == "EMSP":
        why = (
            "MaEVe pushes every new location to every EMSP row with that row's url and token, and a hosted "
            "row holds none: the push fails, and the partners after it never get the location"
        )
    else:
        why = (
            f"this CSMS operates only CPO roles; a peer's {name} row is written by OCPI registration with "
            "the url and token MaEVe uses to reach it"
        )
    fix = (
        "Declare it `kind: partner`"
        if own_kind
        else "Make the file's kind partner, or give this role `kind: partner`"
    )
    problems.add(
        path, "hosted-not-cpo", f"role {name} is hosted{said}, but only a CPO can be hosted: {why}. {fix}"
    )


def _roles_from(
    problems: FileProblems, data: dict[str, Any], identity: Identity | None, file_kind: Kind | None
) -> tuple[list[PartyRole], list[Tombstone]]:
    shared = data.get("business_details")
    shared = shared if isinstance(shared, dict) else {}
    roles: list[PartyRole] = []
    tombstones: list[Tombstone] = []
    first: dict[str, int] = {}
    entries = data.get("roles")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        name = entry.get("role") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            continue
        where = ("roles", index)
        if name in first:
            line = problems.loaded.source(("roles", first[name])).line
            problems.add(
                (*where, "role"),
                "duplicate-role",
                f"role {name} is declared twice (first at line {line}); "
                "each (role, country_code, party_id) is one database row",
            )
            continue
        first[name] = index
        if entry.get("deleted") is True:
            tombstones.extend(_deleted_role(problems, entry, where, name, identity))
            continue
        role = _role(problems, entry, where, name, shared=shared, file_kind=file_kind)
        if role is not None:
            roles.append(role)
    return roles, tombstones


def _deleted_role(
    problems: FileProblems, entry: dict[str, Any], where: JsonPath, name: str, identity: Identity | None
) -> list[Tombstone]:
    extra = [key for key in ("kind", "business_details") if key in entry]
    for key in extra:
        problems.add(
            (*where, key),
            "deleted-with-content",
            f"role {name} is marked deleted: remove its {key}",
            key=True,
        )
    if extra or identity is None:
        return []
    return [Tombstone(identity, name, problems.loaded.source(where))]


def _role(
    problems: FileProblems,
    entry: dict[str, Any],
    where: JsonPath,
    name: str,
    *,
    shared: dict[str, Any],
    file_kind: Kind | None,
) -> PartyRole | None:
    kind = _kind_of(entry) if "kind" in entry else file_kind
    if kind is Kind.HOSTED and name != CPO and name in ROLES:  # the schema reports unknown roles
        _hosted_not_cpo(problems, where, name, "kind" in entry)
    own = entry.get("business_details")
    details = _merged_details(shared, own if isinstance(own, dict) else {})
    if details is None:
        problems.add(
            where,
            "missing-name",
            f"role {name} has no business_details.name: give one in this role or in the shared "
            "business_details at the top of the file",
        )
        return None
    # Without a valid kind the schema has reported an error, and no Party is made of these roles.
    return PartyRole(name, details, problems.loaded.source(where), kind or Kind.PARTNER)


def _merged_details(shared: dict[str, Any], own: dict[str, Any]) -> BusinessDetails | None:
    merged = {**shared, **own}
    if "name" not in merged:
        return None
    logo = merged.get("logo")
    if not isinstance(merged["name"], str) or not (logo is None or isinstance(logo, dict)):
        return BusinessDetails(str(merged["name"]))  # a schema error is already reported
    if logo is not None and not all(k in logo for k in ("url", "category", "type")):
        logo = None  # a schema error is already reported
    return BusinessDetails(
        name=merged["name"],
        website=merged.get("website"),
        logo=Image(
            url=logo["url"],
            category=logo["category"],
            type=logo["type"],
            thumbnail=logo.get("thumbnail"),
            width=logo.get("width"),
            height=logo.get("height"),
        )
        if logo is not None
        else None,
    )
