"""Plain data shared by every stage: where a value stands in a file, problems found, and the desired state.

All classes are frozen dataclasses with no behaviour beyond formatting, so later stages (plan, render, apply)
can be tested with values built by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any, Generic, TypeVar

T = TypeVar("T")

CPO = "CPO"
#: The roles of OCPI 2.2.1, in the order the party files and the import list them.
ROLES = ("CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP")

_IDENTITY = re.compile(r"^([A-Za-z]{2})-([A-Za-z0-9]{3})$")


@dataclass(frozen=True, order=True)
class Identity:
    """An OCPI party identity: country_code + party_id, written `GB-TWK`.

    Upper case where it comes from the files (`parse`, and validation, read every code in canonical case);
    an identity read from the database keeps the row's spelling, since MaEVe and OCPI registration may write
    `gb-twk`. Rows match the files case-insensitively: `changes.row_key`.
    """

    country_code: str
    party_id: str

    def __str__(self) -> str:
        return f"{self.country_code}-{self.party_id}"

    @classmethod
    def parse(cls, text: str) -> Identity | None:
        """`gb-twk` -> Identity('GB', 'TWK'); None when the text is not of that shape."""
        match = _IDENTITY.match(text)
        if match is None:
            return None
        return cls(match.group(1).upper(), match.group(2).upper())


@dataclass(frozen=True)
class Source:
    """Where something stands: a file and a 1-based line and column."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file


class Kind(StrEnum):
    """Who operates a party role, and so who owns its `ocpi_parties` row.

    HOSTED: this CSMS operates it (a CPO whose locations live in this database); ocpi-parties creates and
    owns its row. PARTNER: a roaming peer that connects through OCPI credentials registration, which owns
    the row and its url + token; ocpi-parties never creates, reverts or deletes such a row.
    """

    HOSTED = "hosted"
    PARTNER = "partner"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One finding of `validate`. `code` is a stable identifier (documented in the README)."""

    source: Source
    code: str
    message: str
    #: JSON path of the value concerned, e.g. `$.roles[0].business_details.website`; "" when none applies.
    path: str = ""
    severity: Severity = Severity.ERROR

    def sort_key(self) -> tuple[str, int, int]:
        """By position; problems at the same position keep the order they were found in."""
        return (self.source.file, self.source.line, self.source.column)


@dataclass(frozen=True)
class Image:
    """OCPI Image (used for a party's logo)."""

    url: str
    category: str
    type: str
    thumbnail: str | None = None
    width: int | None = None
    height: int | None = None

    def to_ocpi(self) -> dict[str, Any]:
        data: dict[str, Any] = {"url": self.url}
        if self.thumbnail is not None:
            data["thumbnail"] = self.thumbnail
        data["category"] = self.category
        data["type"] = self.type
        if self.width is not None:
            data["width"] = self.width
        if self.height is not None:
            data["height"] = self.height
        return data


@dataclass(frozen=True)
class BusinessDetails:
    """OCPI BusinessDetails: what the database stores for one party role."""

    name: str
    website: str | None = None
    logo: Image | None = None

    def to_ocpi(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        if self.website is not None:
            data["website"] = self.website
        if self.logo is not None:
            data["logo"] = self.logo.to_ocpi()
        return data


@dataclass(frozen=True)
class PartyRole:
    """One declared (role, country_code, party_id): one row of `ocpi_parties`."""

    role: str
    business_details: BusinessDetails
    source: Source = field(default=Source(""), compare=False)
    kind: Kind = Kind.HOSTED

    @property
    def hosted(self) -> bool:
        return self.kind is Kind.HOSTED


@dataclass(frozen=True)
class Declared(Generic[T]):
    """A value from a file and where it was written (the position takes no part in equality)."""

    value: T
    source: Source = field(default=Source(""), compare=False)


@dataclass(frozen=True)
class Party:
    """One party file: an identity, its OCPI versions URL, its roles and the locations it takes over."""

    identity: Identity
    roles: tuple[PartyRole, ...]
    url: str | None = None
    source: Source = field(default=Source(""), compare=False)
    #: Identities whose recorded locations belong to this party (`moved_from:`).
    moved_from: tuple[Declared[Identity], ...] = ()
    #: Location ids this party owns wherever they are recorded now (`locations:`).
    locations: tuple[Declared[str], ...] = ()

    def role(self, name: str) -> PartyRole | None:
        return next((r for r in self.roles if r.role == name), None)

    @property
    def hosted_cpo(self) -> bool:
        """The party holds a hosted CPO role: it may own locations here, be the default, claim and move."""
        role = self.role(CPO)
        return role is not None and role.hosted


@dataclass(frozen=True)
class Tombstone:
    """`deleted: true` in a file: delete one role of an identity, or every role when `role` is None."""

    identity: Identity
    role: str | None = None
    source: Source = field(default=Source(""), compare=False)


@dataclass(frozen=True)
class DesiredState:
    """Everything the files declare, after validation: what the database should hold."""

    parties: tuple[Party, ...]
    default_party: Identity
    default_source: Source = field(default=Source(""), compare=False)
    tombstones: tuple[Tombstone, ...] = ()

    @cached_property
    def _by_identity(self) -> dict[Identity, Party]:
        found: dict[Identity, Party] = {}
        for party in self.parties:
            found.setdefault(party.identity, party)
        return found

    def party(self, identity: Identity) -> Party | None:
        """The party declaring `identity`, from a table built on first use (apply asks once per change)."""
        return self._by_identity.get(identity)


#: The business name `init --party` writes without --name: validate warns while a file still holds it.
NAME_NEEDED = "business name needed"

#: Every problem code `validate` can report, with what it means. The README's table lists the same codes.
PROBLEM_CODES: dict[str, str] = {
    "unreadable": "the file cannot be read (permissions, a broken link)",
    "too-large": "the file is over 1 MiB, or its aliases expand to more than 10,000 values",
    "too-deep": "values nest more than 32 levels deep (or an alias refers to itself)",
    "not-utf8": "the file has bytes that are not UTF-8",
    "tab": "a tab character in indentation",
    "yaml-syntax": "the file is not valid YAML, or holds a forbidden control character",
    "yaml-tag": "an explicit tag (!!binary, !custom) that party files do not use",
    "yaml-value": "a tagged value that is not what its tag says (!!int abc), or .inf/.nan",
    "empty-file": "the file has no content",
    "multiple-documents": "more than one YAML document (---) in one file",
    "duplicate-key": "the same key twice in one mapping",
    "key-not-text": "a key that is a number, true/false, null or a collection",
    "merge-key": "a YAML merge key (<<)",
    "secret-in-git": "a token, password or secret key, or a URL with a credential: these never belong in git",
    "schema": "the value breaks the JSON Schema (type, limit, enum, unknown or missing key)",
    "unquoted": "warning: a code written as a bare number (party_id: 007); it is read as the text written",
    "case": "warning: a case-insensitive code written in the wrong case; it is read in canonical case",
    "placeholder-name": "warning: a business name still the placeholder `init` writes without --name",
    "duplicate-role": "the same role twice in one party file",
    "missing-name": "a role ends up with no business_details.name, shared or its own",
    "file-name": "the file name is not <country_code>-<party_id>.yaml of the party it declares",
    "duplicate-identity": "two files (names differing only in case) declare the same party",
    "unknown-file": "a file or folder under parties/ that is neither a party file nor default-party.yaml",
    "no-default-party": "parties/default-party.yaml is missing",
    "default-party-undeclared": "the default party names a party that no file declares",
    "default-party-not-cpo": "the default party does not hold a hosted CPO role",
    "deleted-with-content": "a tombstone (deleted: true) still declaring a kind, roles, details or locations",
    "hosted-not-cpo": "a role other than CPO declared hosted: MaEVe pushes locations to every EMSP row",
    "move-to-non-cpo": "moved_from or locations on a party that does not hold a hosted CPO role",
    "move-conflict": "an identity or location claimed by two parties, a move from a live CPO, or a cycle",
}
