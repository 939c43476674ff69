"""Check a party directory: every file against its JSON Schema, then the rules that span files.

`validate_path` collects every problem in every file before it returns; it never raises for bad input. When
there are no errors it also returns the `DesiredState` the files declare, for `plan` and `apply`.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jsonschema_rs

from reconciler.errors import UsageError
from reconciler.load import JsonPath, LoadedFile, load_file, parse_text
from reconciler.model import (
    CPO,
    NAME_NEEDED,
    ROLES,
    BusinessDetails,
    Declared,
    DesiredState,
    Identity,
    Image,
    Kind,
    Party,
    PartyRole,
    Problem,
    Severity,
    Source,
    Tombstone,
)
from reconciler.secret import hide_url_secrets, url_secrets

if TYPE_CHECKING:
    import jsonschema

DEFAULT_FILE = "default-party.yaml"
PARTY_SCHEMA = "party.schema.json"
DEFAULT_SCHEMA = "default-party.schema.json"

_PARTY_FILE = re.compile(r"^([A-Za-z]{2})-([A-Za-z0-9]{3})\.(yaml|yml)$", re.IGNORECASE)
_SPACE = re.compile(r"\s")
#: URLs that `_is_url` accepts without asking urlsplit: http(s), a host name, an optional port and a plain
#: path. Most party URLs have this shape; anything else takes the full check.
_PLAIN_URL = re.compile(
    r"https?://[A-Za-z0-9][A-Za-z0-9.-]*(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?"
)
_SECRET_KEY = re.compile(r"^(token|.*_token|token_.*|password|secret)$", re.IGNORECASE)
_COMMON_COUNTRY_MISTAKES = {"UK": "GB", "EL": "GR"}
_HOSTED = "this CSMS operates it: a CPO whose row ocpi-parties creates"
_PARTNER = "a roaming peer that connects through OCPI credentials registration, which creates its rows"
#: What to write, for the required keys and enums whose values need saying.
_REQUIRED_HINTS = {
    "kind": f"say who operates the party: kind: hosted ({_HOSTED}) or kind: partner ({_PARTNER})"
}
_ENUM_HINTS = {"kind": f"hosted ({_HOSTED}) or partner ({_PARTNER})"}
_PATTERN_HINTS = {
    "party ID": "three upper-case letters or digits, for example TWK",
    "image type": "a file type in lower-case letters and digits, for example png",
    "default party": "write <country_code>-<party_id>, for example GB-TWK",
    "identity": "write <country_code>-<party_id>, for example PT-CPO",
}


def schema_directory() -> Path:
    """The JSON Schemas: inside the installed wheel, or `schema/` of the source tree."""
    packaged = Path(__file__).parent / "_data" / "schema"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "schema"


def _is_url(value: object) -> bool:
    """The `uri` format of the schemas: an http or https URL with a host name."""
    if not isinstance(value, str):
        return True
    return _PLAIN_URL.fullmatch(value) is not None or _is_split_url(value)


def _is_split_url(value: str) -> bool:
    if not value.isascii() or _SPACE.search(value):
        return False
    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


@functools.cache
def _schema(name: str) -> Any:
    return json.loads((schema_directory() / name).read_text(encoding="utf-8"))


@functools.cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    """jsonschema words the problems of a file that jsonschema-rs rejects. Imported here, on the first such
    file: it takes about a tenth of a second to import, which a run over valid files never needs."""
    from jsonschema import Draft202012Validator, FormatChecker

    checker = FormatChecker(formats=())
    checker.checks("uri")(_is_url)
    return Draft202012Validator(_schema(name), format_checker=checker)


@functools.cache
def _fast_validator(name: str) -> jsonschema_rs.Validator:
    """The same schema and `uri` check, compiled by jsonschema-rs: it tells a valid file about ten times
    faster than jsonschema, which still words every problem of a file that is not valid."""
    return jsonschema_rs.validator_for(_schema(name), validate_formats=True, formats={"uri": _is_url})


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


def format_path(path: JsonPath) -> str:
    """('roles', 0, 'business_details') -> '$.roles[0].business_details'."""
    text = "$"
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            text += f".{part}"
        else:
            text += f"[{json.dumps(part)}]"
    return text


@dataclass
class _FileCheck:
    """The problems of one file and helpers to report them at the right place."""

    loaded: LoadedFile
    #: The loaded data, which the checks normalise in place.
    data: Any = None
    problems: list[Problem] = field(default_factory=list)

    def add(
        self, path: JsonPath, code: str, message: str, *, key: bool = False, warning: bool = False
    ) -> None:
        self.problems.append(
            Problem(
                self.loaded.source(path, key=key),
                code,
                message,
                format_path(path),
                Severity.WARNING if warning else Severity.ERROR,
            )
        )

    @property
    def failed(self) -> bool:
        return any(p.severity is Severity.ERROR for p in self.problems)


def _secret_keys(loaded: LoadedFile) -> list[JsonPath]:
    """The paths of the keys that would hold a secret, in document order; none inside another one.

    The loader recorded every key's path, in document order, so this needs no walk through the data.
    """
    found: list[JsonPath] = []
    for path in loaded.key_marks:
        key = path[-1]
        if not (isinstance(key, str) and _SECRET_KEY.match(key)):
            continue
        if not any(path[: len(outer)] == outer for outer in found):
            found.append(path)
    return found


def _remove_secrets(check: _FileCheck) -> None:
    """Report keys that would hold a secret and drop them from the data, so the schema stays quiet."""
    for path in _secret_keys(check.loaded):
        check.add(
            path,
            "secret-in-git",
            "OCPI tokens and other secrets never belong in git: the CSMS exchanges tokens through "
            "OCPI credentials registration and keeps them in its database",
            key=True,
        )
        parent = check.data
        for part in path[:-1]:
            parent = parent[part]
        del parent[path[-1]]


def _strings(data: Any, path: JsonPath = ()) -> Iterator[tuple[JsonPath, str]]:
    """Every string value in `data` with its path, in document order."""
    if isinstance(data, str):
        yield path, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _strings(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _strings(value, (*path, index))


def _refuse_url_secrets(check: _FileCheck) -> None:
    """Report URLs that carry a credential (user info, `?token=...`) and hide it in the data.

    The same family as a `token:` key: a secret in a URL is a secret in git. What counts is one definition
    (`reconciler.secret`), shared with the plan's rendering; the message names where the secret is, never
    the secret, and the value is hidden before any later check could quote it.
    """
    for path, value in list(_strings(check.data)):
        if _PLAIN_URL.fullmatch(value) is not None:
            continue  # no user info, no query: nothing to look at
        found = url_secrets(value)
        if not found:
            continue
        check.add(
            path,
            "secret-in-git",
            f"this URL carries a credential ({', '.join(found)}): OCPI tokens and other secrets never belong "
            "in git; write the URL without it (the CSMS exchanges tokens through OCPI credentials "
            "registration and keeps them in its database)",
        )
        hidden = hide_url_secrets(value, user=False)
        if not path:
            check.data = hidden
            continue
        parent = check.data
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = hidden


def _normalise(check: _FileCheck, field: _CaseField) -> None:
    """CiString: case-insensitive. Rewrite the field in canonical case, warning when the file differs.

    An unquoted value that YAML reads as a number (`party_id: 007`) is taken as the text written, with a
    warning to quote it, since the file name already spells the identity out.
    """
    parent, last, path, upper = field
    if isinstance(parent, dict) and last not in parent:
        return
    value = parent[last]
    written = check.loaded.plain_text.get(path)
    if (
        not isinstance(value, str)
        and written is not None
        and not isinstance(value, bool)
        and value is not None
    ):
        value = parent[last] = written
        check.add(
            path,
            "unquoted",
            f"{written} is read as the text {written!r}; put it in quotes so every YAML reader agrees",
            warning=True,
        )
    if not isinstance(value, str):
        return
    canonical = value.upper() if upper else value.lower()
    if canonical != value:
        parent[last] = canonical
        case = "upper" if upper else "lower"
        check.add(
            path,
            "case",
            f"{value!r} is read as {canonical!r}: OCPI compares it without regard to case; "
            f"write it in {case} case",
            warning=True,
        )


def _label(error: jsonschema.ValidationError) -> str:
    """The schema title as a noun in a sentence: 'Image type' -> 'image type', 'OCPI role' stays."""
    title = str(error.schema.get("title", "value")) if isinstance(error.schema, dict) else "value"
    return title if title[1:2].isupper() else title[:1].lower() + title[1:]


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return "text"
    if value is None:
        return "nothing"
    return "a number" if isinstance(value, int | float) and not isinstance(value, bool) else "true/false"


def _choices(label: str, values: list[str]) -> str:
    """The values an enum allows, with what they mean where that needs saying."""
    return _ENUM_HINTS.get(label) or "one of " + ", ".join(values)


def _type_message(error: jsonschema.ValidationError, label: str) -> str:
    expected = error.validator_value
    if expected == "string" and isinstance(error.schema, dict) and "enum" in error.schema:
        # One message for a value that is not even text where a listed word is expected; quoting it
        # would not help, so the enum's own message is left out (see `_schema_problems`).
        return f"{label} must be {_choices(label, error.schema['enum'])}, not {_kind(error.instance)}"
    if expected == "string" and isinstance(error.instance, bool | int | float):
        return f"{json.dumps(error.instance)} is not text: put it in quotes"
    if expected == "object":
        if error.instance is None:
            return f"{label} is empty: give its keys or remove it"
        return f"{label} must be a mapping of keys, not {_kind(error.instance)}"
    if expected == "array":
        return f"{label} must be a list (lines starting with '- '), not {_kind(error.instance)}"
    return (
        f"{label} must be {'a whole number' if expected == 'integer' else expected}, not {error.instance!r}"
    )


def _schema_problems(check: _FileCheck, data: Any, schema_name: str) -> None:
    if _fast_validator(schema_name).is_valid(data):
        return
    reported_required: set[JsonPath] = set()
    for error in _validator(schema_name).iter_errors(data):
        path: JsonPath = tuple(error.absolute_path)
        kind = error.validator
        title = _label(error)
        if kind == "additionalProperties" and isinstance(error.instance, dict):
            known = list(error.schema.get("properties", {}))
            for key in sorted(set(error.instance) - set(known)):
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; allowed here: {', '.join(known)}"
                check.add((*path, key), "schema", f"unknown key {key!r}{hint}", key=True)
            continue
        if kind == "enum" and len(error.validator_value) > 20:
            suggestion = _COMMON_COUNTRY_MISTAKES.get(str(error.instance))
            hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
            message = f"{error.instance!r} is not an assigned ISO 3166-1 alpha-2 country code{hint}"
        elif kind == "enum":
            if not isinstance(error.instance, str) and error.schema.get("type") == "string":
                continue  # the type's message names the allowed values
            message = (
                f"{error.instance!r} is not a valid {title}; use {_choices(title, error.validator_value)}"
            )
        elif kind == "type":
            message = _type_message(error, title)
        elif kind == "maxLength":
            message = (
                f"{title} is too long: {len(error.instance)} characters, at most {error.validator_value}"
            )
        elif kind == "minLength":
            message = f"{title} is empty"
        elif kind == "pattern":
            message = (
                f"{error.instance!r} is not a valid {title}: {_PATTERN_HINTS.get(title, 'see the schema')}"
            )
        elif kind == "required":
            if path in reported_required or not isinstance(error.instance, dict):
                continue
            reported_required.add(path)
            missing = [key for key in error.validator_value if key not in error.instance]
            message = f"missing required key{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
            hints = [_REQUIRED_HINTS[key] for key in missing if key in _REQUIRED_HINTS]
            if hints:
                message += f"; {'; '.join(hints)}"
        elif kind == "uniqueItems" and isinstance(error.instance, list):
            seen: list[Any] = []
            for index, item in enumerate(error.instance):
                if item in seen:
                    check.add((*path, index), "schema", f"{item!r} is listed twice")
                seen.append(item)
            continue
        elif kind == "minItems":
            message = f"{title} must not be empty: list at least one"
        else:
            message = error.message
        check.add(path, "schema", message)


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


_TOMBSTONE_KEEPS = ("country_code", "party_id", "deleted")


def _party_from(check: _FileCheck, data: Any, file_name: str) -> tuple[Party | None, list[Tombstone]]:
    """Rules inside one party file that the schema cannot express.

    Returns the Party and the tombstones the file declares when it is valid. The rules look only at the parts
    that are well formed, so they report alongside schema errors.
    """
    if not isinstance(data, dict):
        return None, []
    country_code, party_id = data.get("country_code"), data.get("party_id")
    identity = (
        Identity(country_code, party_id)
        if isinstance(country_code, str) and isinstance(party_id, str)
        else None
    )
    expected = f"{identity}.yaml"
    if identity is not None and _PARTY_FILE.match(expected) and file_name != expected:
        check.add(
            ("party_id",),
            "file-name",
            f"the file name {file_name} does not match the party {identity} declared in it: "
            f"rename the file to {expected}",
        )
    if data.get("deleted") is True:
        for key in data:
            if key not in _TOMBSTONE_KEEPS:
                check.add(
                    (key,),
                    "deleted-with-content",
                    f"a deleted party declares only {', '.join(_TOMBSTONE_KEEPS)}: remove {key}",
                    key=True,
                )
        if check.failed or identity is None:
            return None, []
        return None, [Tombstone(identity, None, check.loaded.source(("deleted",)))]
    _placeholder_names(check, data)
    roles, tombstones = _roles_from(check, data, identity, _kind_of(data))
    if check.failed or identity is None:
        return None, []
    url = data.get("url")
    moved = [
        Declared(parsed, check.loaded.source(("moved_from", index)))
        for index, text in enumerate(data.get("moved_from", []))
        if (parsed := Identity.parse(text)) is not None
    ]
    owned = [
        Declared(location, check.loaded.source(("locations", index)))
        for index, location in enumerate(data.get("locations", []))
    ]
    party = Party(
        identity,
        tuple(roles),
        url if isinstance(url, str) else None,
        check.loaded.source(),
        tuple(moved),
        tuple(owned),
    )
    return party, tombstones


def _placeholder_names(check: _FileCheck, data: dict[str, Any]) -> None:
    """Warn at each business name that is still the placeholder `init --party` writes without --name."""
    entries = data.get("roles")
    places: list[tuple[JsonPath, Any]] = [(("business_details",), data.get("business_details"))]
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if isinstance(entry, dict):
            places.append((("roles", index, "business_details"), entry.get("business_details")))
    for place, details in places:
        name = details.get("name") if isinstance(details, dict) else None
        if isinstance(name, str) and name.strip().casefold() == NAME_NEEDED:
            check.add(
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


def _hosted_not_cpo(check: _FileCheck, where: JsonPath, name: str, own_kind: bool) -> None:
    """Only a CPO can be hosted: report a hosted role of another kind where its kind is written."""
    if own_kind:
        path: JsonPath = (*where, "kind")
        said = ""
    else:
        path = (*where, "role")
        said = f" (the file's kind: hosted, line {check.loaded.source(('kind',)).line})"
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
    check.add(
        path, "hosted-not-cpo", f"role {name} is hosted{said}, but only a CPO can be hosted: {why}. {fix}"
    )


def _roles_from(
    check: _FileCheck, data: dict[str, Any], identity: Identity | None, file_kind: Kind | None
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
            line = check.loaded.source(("roles", first[name])).line
            check.add(
                (*where, "role"),
                "duplicate-role",
                f"role {name} is declared twice (first at line {line}); "
                "each (role, country_code, party_id) is one database row",
            )
            continue
        first[name] = index
        own = entry.get("business_details")
        if entry.get("deleted") is True:
            extra = [key for key in ("kind", "business_details") if key in entry]
            for key in extra:
                check.add(
                    (*where, key),
                    "deleted-with-content",
                    f"role {name} is marked deleted: remove its {key}",
                    key=True,
                )
            if not extra and identity is not None:
                tombstones.append(Tombstone(identity, name, check.loaded.source(where)))
            continue
        kind = _kind_of(entry) if "kind" in entry else file_kind
        if kind is Kind.HOSTED and name != CPO and name in ROLES:  # the schema reports unknown roles
            _hosted_not_cpo(check, where, name, "kind" in entry)
        details = _merged_details(shared, own if isinstance(own, dict) else {})
        if details is None:
            check.add(
                where,
                "missing-name",
                f"role {name} has no business_details.name: give one in this role or in the shared "
                "business_details at the top of the file",
            )
            continue
        # Without a valid kind the schema has reported an error, and no Party is made of these roles.
        roles.append(PartyRole(name, details, check.loaded.source(where), kind or Kind.PARTNER))
    return roles, tombstones


#: A case-insensitive field: its parent mapping or list, its key or index there, its path, and True for
#: upper case (False for lower).
_CaseField = tuple[Any, str | int, JsonPath, bool]


def _mapping_at(data: Any, *keys: str) -> dict[str, Any] | None:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else None


def _logo_type(data: Any, path: JsonPath) -> Iterator[_CaseField]:
    logo = _mapping_at(data, "business_details", "logo")
    if logo is not None:
        yield logo, "type", (*path, "business_details", "logo", "type"), False


def _party_case_fields(data: dict[str, Any]) -> Iterator[_CaseField]:
    """The case-insensitive fields of a party file whose parents exist; `_normalise` skips absent ones."""
    yield data, "country_code", ("country_code",), True
    yield data, "party_id", ("party_id",), True
    yield from _logo_type(data, ())
    moved = data.get("moved_from")
    for index in range(len(moved) if isinstance(moved, list) else 0):
        yield moved, index, ("moved_from", index), True
    roles = data.get("roles")
    for index, role in enumerate(roles if isinstance(roles, list) else ()):
        if isinstance(role, dict):
            yield role, "role", ("roles", index, "role"), True
            yield from _logo_type(role, ("roles", index))


def _default_case_fields(data: dict[str, Any]) -> Iterator[_CaseField]:
    yield data, "default_party", ("default_party",), True


def _check_file(
    loaded: LoadedFile | Problem,
    schema_name: str,
    case_fields: Callable[[dict[str, Any]], Iterator[_CaseField]],
) -> _FileCheck | Problem:
    """Report secrets in a loaded file, read codes in canonical case and check the schema.

    The check takes the file's data over and normalises it in place: every caller hands it a file it has just
    loaded, whose values the loader built afresh (an alias yields a copy, never a shared value).
    """
    if isinstance(loaded, Problem):
        return loaded
    check = _FileCheck(loaded, data=loaded.data)
    _remove_secrets(check)
    _refuse_url_secrets(check)
    if isinstance(check.data, dict):
        for case_field in case_fields(check.data):
            _normalise(check, case_field)
    _schema_problems(check, check.data, schema_name)
    return check


def _party_check(
    check: _FileCheck | Problem, file_name: str
) -> tuple[list[Problem], Party | None, list[Tombstone]]:
    if isinstance(check, Problem):
        return [check], None, []
    party, tombstones = _party_from(check, check.data, file_name)
    return check.problems, party, tombstones


def check_party_file(path: Path, file: str) -> tuple[list[Problem], Party | None, list[Tombstone]]:
    """All problems of one party file, and the Party and tombstones it declares when it has no errors."""
    return _check_party_path(path, path.name, file)


def _check_party_path(
    path: str | Path, name: str, file: str
) -> tuple[list[Problem], Party | None, list[Tombstone]]:
    return _party_check(_check_file(load_file(path, file), PARTY_SCHEMA, _party_case_fields), name)


def check_party_text(text: str, file_name: str) -> tuple[list[Problem], Party | None, list[Tombstone]]:
    """`check_party_file` of text not yet written, as the file `file_name` (e.g. `GB-TWK.yaml`)."""
    loaded = parse_text(text, file_name)
    return _party_check(_check_file(loaded, PARTY_SCHEMA, _party_case_fields), file_name)


def check_default_file(path: Path, file: str) -> tuple[list[Problem], tuple[Identity, Source] | None]:
    """All problems of the default-party file, and the identity it names (with its position)."""
    check = _check_file(load_file(path, file), DEFAULT_SCHEMA, _default_case_fields)
    if isinstance(check, Problem):
        return [check], None
    if check.failed:
        return check.problems, None
    identity = Identity.parse(check.data["default_party"])
    assert identity is not None  # the schema's pattern guarantees the shape
    return check.problems, (identity, check.loaded.source(("default_party",)))


def _unknown_entry(entry: Path, file: str) -> Problem:
    if entry.is_dir():
        message = "folders are not read: party files go directly under the parties directory"
    elif entry.name.lower().endswith(".yml") and (
        _PARTY_FILE.match(entry.name) or entry.name.lower() == "default-party.yml"
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
        link = _followed_link(Path(entry_path), _display(shown, name), repository)
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


def _display(directory_text: str, name: str) -> str:
    return f"{directory_text.rstrip('/')}/{name}" if directory_text not in ("", ".") else name


def validate_path(path: Path, display: str | None = None) -> ValidationResult:
    """Validate a parties directory (every file plus the rules across files) or a single file."""
    shown = display if display is not None else str(path)
    if not path.exists():
        raise UsageError(f"{shown}: no such file or directory")
    if not path.is_file() and not path.is_dir():
        raise UsageError(
            f"{shown} is neither a party file nor a parties directory (a device, pipe or socket): "
            "give the parties directory"
        )
    if path.is_file():
        if path.name == DEFAULT_FILE:
            problems, _ = check_default_file(path, shown)
        else:
            problems, _, _ = check_party_file(path, shown)
        return ValidationResult(tuple(sorted(problems, key=Problem.sort_key)), 1)
    return _validate_directory(path, shown)


def _validate_directory(directory: Path, shown: str) -> ValidationResult:
    problems: list[Problem] = []
    parties: dict[Identity, Party] = {}
    named: dict[Identity, str] = {}  # identity from the file name -> file, valid or not
    default: tuple[Identity, Source] | None = None
    default_file_seen = False
    tombstones: list[Tombstone] = []
    checked = 0
    for name, entry_path, is_file, refused in _listing(directory, shown):
        file = _display(shown, name)
        match = _PARTY_FILE.match(name)
        if refused is not None:
            problems.append(refused)
            continue
        if is_file and name == DEFAULT_FILE:
            checked += 1
            default_file_seen = True
            found, default = check_default_file(Path(entry_path), file)
            problems.extend(found)
        elif is_file and name.endswith(".yaml"):
            checked += 1
            named_identity = Identity(match.group(1).upper(), match.group(2).upper()) if match else None
            if named_identity is not None and named_identity in named:
                # Only file names that differ in case can name the same identity twice.
                problems.append(
                    Problem(
                        Source(file),
                        "duplicate-identity",
                        f"party {named_identity} is already declared in {named[named_identity]}: "
                        "keep one file per party",
                    )
                )
                continue
            if named_identity is not None:
                named[named_identity] = file
            found, party, found_tombstones = _check_party_path(entry_path, name, file)
            problems.extend(found)
            tombstones.extend(found_tombstones)
            if party is not None:
                parties[party.identity] = party
        else:
            problems.append(_unknown_entry(Path(entry_path), file))
    problems.extend(
        _default_problems(
            shown,
            seen=default_file_seen,
            default=default,
            parties=parties,
            named=named,
            tombstones=tombstones,
        )
    )
    problems.extend(_move_problems(parties))
    problems.sort(key=Problem.sort_key)
    state = None
    if default is not None and not any(p.severity is Severity.ERROR for p in problems):
        state = DesiredState(
            tuple(parties[i] for i in sorted(parties)),
            default[0],
            default[1],
            tuple(sorted(tombstones, key=lambda t: (t.identity, t.role or ""))),
        )
    return ValidationResult(tuple(problems), checked, state)


def _default_problems(
    shown: str,
    *,
    seen: bool,
    default: tuple[Identity, Source] | None,
    parties: dict[Identity, Party],
    named: dict[Identity, str],
    tombstones: list[Tombstone],
) -> list[Problem]:
    if not seen:
        return [
            Problem(
                Source(_display(shown, DEFAULT_FILE)),
                "no-default-party",
                f"no default party: create {_display(shown, DEFAULT_FILE)} with `default_party: CC-PID` "
                "naming the CPO that owns every location no other party claims",
            )
        ]
    if default is None:
        return []
    identity, source = default
    party = parties.get(identity)
    deleted = next((t for t in tombstones if t.identity == identity and t.role is None), None)
    if deleted is not None:
        return [
            Problem(
                source,
                "default-party-not-cpo",
                f"the default party {identity} is marked deleted at {deleted.source}: "
                "name another default party first",
                "$.default_party",
            )
        ]
    if party is None:
        if identity in named:
            return []  # that party's file is invalid and already reported
        return [
            Problem(
                source,
                "default-party-undeclared",
                f"the default party {identity} is not declared: add {_display(shown, f'{identity}.yaml')}",
                "$.default_party",
            )
        ]
    cpo = party.role(CPO)
    if cpo is None:
        return [
            Problem(
                source,
                "default-party-not-cpo",
                f"the default party {identity} does not hold the CPO role (it holds "
                f"{', '.join(r.role for r in party.roles)}): locations can only belong to a CPO",
                "$.default_party",
            )
        ]
    if not cpo.hosted:
        return [
            Problem(
                source,
                "default-party-not-cpo",
                f"the default party {identity} is a partner (its CPO role at {cpo.source} is kind: partner): "
                "the default party owns every location no other party claims, so it must be a CPO this CSMS "
                "hosts; name a hosted CPO, or declare this one `kind: hosted` if this CSMS operates it",
                "$.default_party",
            )
        ]
    return []


def _move_problems(parties: dict[Identity, Party]) -> list[Problem]:
    """moved_from and locations across files: only onto a hosted CPO, each claimed once, never from a live
    CPO."""
    problems: list[Problem] = []
    moved_to: dict[Identity, tuple[Party, Source]] = {}
    owned_by: dict[str, tuple[Party, Source]] = {}

    def add(source: Source, path: str, code: str, message: str) -> None:
        problems.append(Problem(source, code, message, path))

    for identity in sorted(parties):
        party = parties[identity]
        claims = [(f"$.moved_from[{i}]", d.source) for i, d in enumerate(party.moved_from)]
        claims += [(f"$.locations[{i}]", d.source) for i, d in enumerate(party.locations)]
        if claims and not party.hosted_cpo:
            path, source = claims[0]
            if party.role(CPO) is None:
                message = f"{identity} does not hold the CPO role: only a CPO can own locations"
            else:
                message = (
                    f"{identity}'s CPO role is a partner: only a CPO this CSMS hosts (kind: hosted) can "
                    "claim locations or take them over with moved_from; a partner's CPO row owns just the "
                    "locations recorded under its own identity"
                )
            add(source, path.split("[")[0], "move-to-non-cpo", message)
        for index, moved in enumerate(party.moved_from):
            path, other = f"$.moved_from[{index}]", parties.get(moved.value)
            if moved.value == identity:
                add(moved.source, path, "move-conflict", f"{identity} cannot be moved from itself")
            elif other is not None and (other_cpo := other.role(CPO)) is not None:
                origin = moved.value
                if any(back.value == identity for back in other.moved_from):
                    message = f"cycle of moves: {identity} moves from {origin} and {origin} from {identity}"
                elif not other_cpo.hosted:
                    message = (
                        f"{origin} is a partner CPO declared in {other.source.file}: the locations recorded "
                        "under it belong to its CPO row, which OCPI registration owns"
                    )
                else:
                    message = (
                        f"{origin} is a CPO declared in {other.source.file}: its locations stay with it; "
                        "mark it deleted (deleted: true) to move them"
                    )
                add(moved.source, path, "move-conflict", message)
            elif moved.value in moved_to:
                first, where = moved_to[moved.value]
                add(
                    moved.source,
                    path,
                    "move-conflict",
                    f"{moved.value} is already moved to {first.identity} at {where}",
                )
            else:
                moved_to[moved.value] = (party, moved.source)
        for index, location in enumerate(party.locations):
            if location.value in owned_by:
                first, where = owned_by[location.value]
                add(
                    location.source,
                    f"$.locations[{index}]",
                    "move-conflict",
                    f"location {location.value!r} is already claimed by {first.identity} at {where}",
                )
            else:
                owned_by[location.value] = (party, location.source)
    return problems


def party_case_fields(data: dict[str, Any], *, default: bool = False) -> Iterator[_CaseField]:
    """The case-insensitive fields of a party file (or of the default-party file, with default=True)."""
    return _default_case_fields(data) if default else _party_case_fields(data)


def read_back(text: str, file: str, *, default: bool = False) -> Any | Problem:
    """The data `validate` reads from `text`: codes in canonical case, unquoted numbers as the text written.

    What `fmt` compares before and after formatting: a file must declare the same thing in either form.
    """
    schema, fields = (DEFAULT_SCHEMA, _default_case_fields) if default else (PARTY_SCHEMA, _party_case_fields)
    check = _check_file(parse_text(text, file), schema, fields)
    return check if isinstance(check, Problem) else check.data
