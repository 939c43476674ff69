"""Party files for a deployment that already runs: from its database (`import`), from MaEVe's config (`init`).

Both build a `Draft` of each file, render it as YAML the way a person writes a party file, and check the
text with the same validation `validate` runs before anything is written: a file is written only when it
validates and reads back as exactly the rows it was made from. Tokens are never read, so never written.
Nothing here changes the database.

Each role's `kind` comes from whether its row holds OCPI credentials (`role_kind`): a row registration
wrote is a partner's, whose url the file leaves to registration; a credential-less CPO row is one
ocpi-parties created for a hosted party.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.changes import PartyRow, details_problem
from reconciler.database import Connection
from reconciler.errors import ReconcilerError
from reconciler.fmt import DETAIL_KEYS, LOGO_KEYS, canonical_text, plain_ok
from reconciler.model import CPO, NAME_NEEDED, ROLES, Identity, Kind
from reconciler.output.plan import value_text
from reconciler.state import get_default_party, party_rows
from reconciler.validate import check_file

#: The roles a party file may declare, in the order files list them.
_CODE = re.compile(r"^[A-Z]{2}$")
_PARTY_ID = re.compile(r"^[A-Z0-9]{3}$")
_DETAIL_KEYS = DETAIL_KEYS
_LOGO_KEYS = LOGO_KEYS
NAME_UNKNOWN = "not recorded in the database: write the party's business name"
NAME_NEEDED_NOTE = "a placeholder: write the party's business name, which OCPI peers see"
HOSTED_NOTE = "this CSMS operates it: ocpi-parties creates its row and owns it"
PARTNER_NOTE = "a roaming peer: OCPI registration creates its rows, with their url and token"
AWAITING_NOTE = (
    "its row holds no OCPI credentials (an earlier ocpi-parties made it): awaiting OCPI registration"
)
URL_LEFT_OUT = (
    "Its url is OCPI registration's, like its token: not written here. A url here would be what plan "
    "expects registration to record."
)


@dataclass(frozen=True)
class Role:
    role: str
    #: The role's own business details: only the fields that differ from the shared ones.
    details: Mapping[str, Any] = field(default_factory=dict)
    #: True when the name is the identity, standing in for a name the database does not hold.
    name_unknown: bool = False
    kind: Kind = Kind.HOSTED
    #: A partner role whose row holds no credentials: a leftover that awaits OCPI registration.
    awaiting: bool = False

    @property
    def kind_note(self) -> str:
        if self.awaiting:
            return AWAITING_NOTE
        return HOSTED_NOTE if self.kind is Kind.HOSTED else PARTNER_NOTE


@dataclass(frozen=True)
class Draft:
    """One party file before it is rendered."""

    identity: Identity
    roles: tuple[Role, ...]
    url: str | None = None
    shared: Mapping[str, Any] = field(default_factory=dict)
    shared_name_unknown: bool = False
    header: tuple[str, ...] = ()
    #: The shared name is the placeholder NAME_NEEDED: `init` was given no name.
    name_needed: bool = False

    @property
    def file_name(self) -> str:
        return f"{self.identity}.yaml"

    def expected(self) -> dict[str, dict[str, Any]]:
        """Each role's merged business details, as the database will hold them after apply."""
        return {role.role: {**self.shared, **role.details} for role in self.roles}

    @property
    def kind(self) -> Kind:
        """The file's kind: its first role's; a role of another kind (or awaiting) says its own."""
        return self.roles[0].kind

    def own_kind(self, role: Role) -> bool:
        """Whether `role` gets a `kind:` line of its own, because it differs from the file's first role."""
        first = self.roles[0]
        return (role.kind, role.awaiting) != (first.kind, first.awaiting)


@dataclass(frozen=True)
class Skipped:
    identity: str
    reason: str


@dataclass(frozen=True)
class ImportResult:
    drafts: tuple[Draft, ...]
    skipped: tuple[Skipped, ...]


# ---------------------------------------------------------------------------------------------------------
# From the database


def read_party_rows(connection: Connection) -> tuple[list[PartyRow], Identity | None]:
    """Every party row without its token (business details None before migrating), and the default party."""
    return party_rows(connection, times=False), get_default_party(connection)


def _identity_problem(country_code: str, party_id: str, roles: Iterable[str]) -> str | None:
    if not _CODE.match(country_code):
        return f"country_code {country_code!r} is not two upper-case letters"
    if not _PARTY_ID.match(party_id):
        return f"party_id {party_id!r} is not three upper-case letters or digits"
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        return f"role {unknown[0]!r} is not an OCPI 2.2.1 role ({', '.join(ROLES)})"
    return None


def role_kind(row: PartyRow) -> tuple[Kind, bool]:
    """A row's kind, and whether it awaits registration, from whether it holds OCPI credentials.

    Registration wrote a row that holds credentials: a partner's. A credential-less CPO row is one that
    ocpi-parties created for a hosted party. A credential-less row of another role is what an earlier
    ocpi-parties created for a partner: still a partner, awaiting registration (only a CPO can be hosted).
    """
    if row.credentials:
        return Kind.PARTNER, False
    if row.role == CPO:
        return Kind.HOSTED, False
    return Kind.PARTNER, True


def _shared(details: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The fields every role holds with the same value."""
    first, *others = details
    return {k: v for k, v in first.items() if all(k in other and other[k] == v for other in others)}


def draft_from_rows(identity: Identity, rows: Sequence[PartyRow]) -> Draft:
    """One identity's rows (one per role) -> its party file: details shared where all roles agree."""
    ordered = sorted(rows, key=lambda r: ROLES.index(r.role))
    details = [dict(r.business_details or {}) for r in ordered]
    known = [d for d in details if "name" in d]
    if len(known) == len(details):
        shared, shared_unknown = _shared(details), False
    elif not known:  # no role has a name: the identity stands in, once, for all of them
        shared, shared_unknown = {**_shared(details), "name": str(identity)}, True
    else:  # some roles have a name, others not: each role carries its own
        shared, shared_unknown = {}, False
    roles = []
    for row, own in zip(ordered, details, strict=True):
        unknown = not shared_unknown and "name" not in own and "name" not in shared
        named = {**own, "name": str(identity)} if unknown else own
        kind, awaiting = role_kind(row)
        roles.append(
            Role(row.role, {k: v for k, v in named.items() if k not in shared}, unknown, kind, awaiting)
        )
    # Only a party whose every role is hosted (its CPO row, created by ocpi-parties) gets a url: a partner's
    # url belongs to OCPI registration, with its token.
    hosted = all(role.kind is Kind.HOSTED for role in roles)
    urls = {r.url for r in ordered}
    url = urls.pop() if hosted and len(urls) == 1 and "" not in urls else None
    origin = {r.managed for r in ordered}
    how = (
        "managed by ocpi-parties"
        if origin == {True}
        else "written by OCPI registration"
        if origin == {False}
        else "partly managed by ocpi-parties"
    )
    header: tuple[str, ...] = (f"Imported from the database by `ocpi-parties import`: {how}.",)
    if not hosted and urls - {""}:
        header += (URL_LEFT_OUT,)
    return Draft(identity, tuple(roles), url, shared, shared_unknown, header)


def _details_problem(rows: Sequence[PartyRow]) -> str | None:
    """Why rows cannot be imported as they are: a stored business_details that is no JSON object."""
    for row in rows:
        problem = details_problem(row.business_details)
        if problem is not None:
            shown = value_text(row.business_details)
            where = f"its {row.role} row (id {'?' if row.id is None else row.id})"
            return f"{where} holds {shown}: {problem}; write its party file by hand"
    return None


def plan_import(
    rows: Sequence[PartyRow],
    *,
    roles: Sequence[str] = (),
    identities: Sequence[Identity] = (),
) -> ImportResult:
    """Group party rows per identity (as each row spells it) into drafts; report identities no party file
    can declare."""
    grouped: dict[tuple[str, str], list[PartyRow]] = defaultdict(list)
    for row in rows:
        if roles and row.role not in roles:
            continue
        if identities and row.identity not in identities:
            continue
        grouped[(row.identity.country_code, row.identity.party_id)].append(row)
    drafts: list[Draft] = []
    skipped: list[Skipped] = []
    for (country_code, party_id), group in sorted(grouped.items()):
        group.sort(key=lambda r: r.role)
        problem = _identity_problem(country_code, party_id, (r.role for r in group)) or _details_problem(
            group
        )
        if problem is not None:
            skipped.append(Skipped(f"{country_code}-{party_id}", problem))
            continue
        made = checked(draft_from_rows(Identity(country_code, party_id), group))
        if isinstance(made, Skipped):
            skipped.append(made)
        else:
            drafts.append(made)
    return ImportResult(tuple(drafts), tuple(skipped))


# ---------------------------------------------------------------------------------------------------------
# From MaEVe's config


def _toml_value(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ReconcilerError(
            f"{where}: [ocpi] has no {key} (MaEVe's own party is [ocpi] country_code and party_id)"
        )
    return value.strip()


def draft_from_maeve_config(path: Path, shown: str, *, name: str | None = None) -> Draft:
    """MaEVe's `[ocpi]` country_code/party_id -> the own party's file, holding the CPO role."""
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ReconcilerError(f"{shown}: cannot read the file: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise ReconcilerError(f"{shown}: the file is not UTF-8 text") from error
    except tomllib.TOMLDecodeError as error:
        raise ReconcilerError(f"{shown}: invalid TOML: {error}") from error
    ocpi = config.get("ocpi")
    if not isinstance(ocpi, dict):
        raise ReconcilerError(
            f"{shown}: no [ocpi] section, which holds MaEVe's own country_code and party_id"
        )
    country_code = _toml_value(ocpi, "country_code", shown).upper()
    party_id = _toml_value(ocpi, "party_id", shown).upper()
    problem = _identity_problem(country_code, party_id, [CPO])
    if problem is not None:
        raise ReconcilerError(f"{shown}: [ocpi] {problem}")
    api = config.get("api")
    org_name = api.get("org_name") if isinstance(api, dict) else None
    header: tuple[str, ...] = (f"This CSMS's own charge point operator: [ocpi] in {Path(shown).name}.",)
    if name is None and isinstance(org_name, str) and org_name.strip():
        name = org_name.strip()
        header += (f"Its name is [api] org_name in {Path(shown).name}.",)
    return own_party_draft(Identity(country_code, party_id), name, header)


def own_party_draft(identity: Identity, name: str | None, header: tuple[str, ...] = ()) -> Draft:
    """The CSMS's own party: the CPO role, named `name` or, until someone writes it, a placeholder that
    validate warns about."""
    return Draft(
        identity,
        (Role(CPO, kind=Kind.HOSTED),),
        None,
        {"name": name or NAME_NEEDED},
        header=header or ("This CSMS's own charge point operator.",),
        name_needed=not name,
    )


def names_default(path: Path, identity: Identity) -> bool:
    """Whether `path` is a valid default-party file that names `identity`."""
    if not path.is_file():
        return False
    found = check_file(path.name, path=path)
    return not found.problems and found.default is not None and found.default.value == identity


def declared_cpo(path: Path) -> bool:
    """Whether `path` is a valid party file that declares a hosted CPO role (what the default party needs)."""
    if not path.is_file():
        return False
    found = check_file(path.name, path=path)
    return not found.failed and found.party is not None and found.party.hosted_cpo


# ---------------------------------------------------------------------------------------------------------
# Rendering and checking


def _scalar(value: Any) -> str:
    """A YAML scalar that reads back as `value`: plain where that is unambiguous, else double-quoted."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(value)
    return value if plain_ok(value) else json.dumps(value, ensure_ascii=False)


def _canonical(text: str, file_name: str, *, default: bool = False) -> str:
    """`text` in the form `ocpi-parties fmt` writes, so that `fmt --check` passes on what import writes."""
    formatted = canonical_text(text, file_name, default=default)
    return formatted if isinstance(formatted, str) else text  # check() reports why the text is refused


def _details_lines(details: Mapping[str, Any], indent: str, name_unknown: bool) -> list[str]:
    lines = []
    for key in _DETAIL_KEYS:
        if key not in details:
            continue
        value = details[key]
        if key == "logo" and isinstance(value, Mapping):
            lines.append(f"{indent}logo:")
            lines.extend(f"{indent}  {k}: {_scalar(value[k])}" for k in _LOGO_KEYS if k in value)
        elif key == "name" and name_unknown:
            lines.append(f"{indent}name: {_scalar(value)}  # {NAME_UNKNOWN}")
        elif key == "name" and value == NAME_NEEDED:
            lines.append(f"{indent}name: {_scalar(value)}  # {NAME_NEEDED_NOTE}")
        else:
            lines.append(f"{indent}{key}: {_scalar(value)}")
    return lines


def render(draft: Draft) -> str:
    """The party file, keys in the order the README's example uses."""
    lines = ["# yaml-language-server: $schema=../schema/party.schema.json"]
    lines.extend(f"# {line}" for line in draft.header)
    lines.append(f"country_code: {_scalar(draft.identity.country_code)}")
    lines.append(f"party_id: {_scalar(draft.identity.party_id)}")
    lines.append(f"kind: {draft.kind}  # {draft.roles[0].kind_note}")
    if draft.url is not None:
        lines.append(f"url: {_scalar(draft.url)}")
    if draft.shared:
        shared_word = "  # shared by every role below" if len(draft.roles) > 1 else ""
        lines.append(f"business_details:{shared_word}")
        lines.extend(_details_lines(draft.shared, "  ", draft.shared_name_unknown))
    lines.append("roles:")
    for role in draft.roles:
        lines.append(f"  - role: {role.role}")
        if draft.own_kind(role):
            lines.append(f"    kind: {role.kind}  # {role.kind_note}")
        if role.details:
            lines.append("    business_details:")
            lines.extend(_details_lines(role.details, "      ", role.name_unknown))
    return _canonical("\n".join(lines) + "\n", draft.file_name)


def render_default(identity: Identity) -> str:
    text = (
        "# yaml-language-server: $schema=../schema/default-party.schema.json\n"
        "# The CPO that owns every location no other party claims: this CSMS's own party.\n"
        f"default_party: {identity}\n"
    )
    return _canonical(text, "default-party.yaml", default=True)


def check(draft: Draft, text: str) -> str | None:
    """None when `text` validates and declares exactly the draft; else the first reason it does not."""
    found = check_file(draft.file_name, text=text)
    party, problems = found.party, list(found.problems)
    problems = [p for p in problems if p.code != "placeholder-name"]  # init's, until someone writes a name
    if problems:
        first = problems[0]
        return f"{first.path}: {first.message}" if first.path else first.message
    if party is None:  # pragma: no cover - no problem always comes with a party
        return "the file declares no party"
    got = {role.role: role.business_details.to_ocpi() for role in party.roles}
    kinds = {role.role: role.kind for role in party.roles}
    if (
        got != draft.expected()
        or kinds != {role.role: role.kind for role in draft.roles}
        or party.url != draft.url
        or party.identity != draft.identity
    ):
        return "the file would not read back as the database rows it was made from"
    return None


def checked(draft: Draft) -> Draft | Skipped:
    """The draft when its file validates; without its url when only the url is refused; else why not."""
    problem = check(draft, render(draft))
    if problem is not None and draft.url is not None and problem.startswith("$.url:"):
        reason = problem.removeprefix("$.url: ")
        note = f"Its url in the database is refused here ({reason}); the rows keep it."
        without = dataclasses.replace(draft, url=None, header=(*draft.header, note))
        if check(without, render(without)) is None:
            return without
    if problem is not None:
        return Skipped(str(draft.identity), problem)
    return draft


# ---------------------------------------------------------------------------------------------------------
# Writing


def _existing(directory: Path) -> dict[str, Path]:
    """Files in `directory` by lower-case name, so `gb-twk.yaml` counts as GB-TWK.yaml."""
    if not directory.is_dir():
        return {}
    return {entry.name.lower(): entry for entry in directory.iterdir()}


def write_files(directory: Path, shown: str, files: Mapping[str, str], *, force: bool) -> list[str]:
    """Write every file or none: without `force`, an existing file (in any case) refuses them all."""
    if directory.exists() and not directory.is_dir():
        raise ReconcilerError(f"{shown} is not a directory")
    existing = _existing(directory)
    taken = [existing[name.lower()] for name in files if name.lower() in existing]
    if taken and not force:
        names = ", ".join(f"{shown.rstrip('/')}/{path.name}" for path in taken)
        raise ReconcilerError(
            f"{names} already exist{'s' if len(taken) == 1 else ''}: nothing was written (--force overwrites)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    for path in taken:
        path.unlink()
    written = []
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
        written.append(f"{shown.rstrip('/')}/{name}")
    return written
