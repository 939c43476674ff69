"""What validate reads from a loaded file: secrets left out, codes in canonical case, as new data.

The loaded file is never changed: `normalise` copies a mapping or list the first time something in it changes
and shares everything else with the loaded data, so a file without secrets or codes to fix costs no copy.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from reconciler.load import JsonPath, LoadedFile, parse_text
from reconciler.model import Problem
from reconciler.secret import hide_url_secrets, url_secrets
from reconciler.validate.problems import FileProblems

_SECRET_KEY = re.compile(r"^(token|.*_token|token_.*|password|secret)$", re.IGNORECASE)


@dataclass(frozen=True)
class Normalised:
    """A file's data as validate reads it, and the problems found on the way (in the order found)."""

    data: Any
    problems: tuple[Problem, ...]


class CaseField(NamedTuple):
    """A case-insensitive field (a CiString of OCPI): its path and the case it is read in."""

    path: JsonPath
    upper: bool


def normalise(loaded: LoadedFile, *, default: bool = False) -> Normalised:
    """`loaded`'s data without secrets, with codes in canonical case (of a default-party file: default=True).

    Keys that would hold a secret are reported and left out, so the schema stays quiet about them; a URL
    that carries a credential is reported and the credential hidden; a code in another case, or an unquoted
    code that YAML reads as a number, is read as the canonical text with a warning.
    """
    problems = FileProblems(loaded)
    copy = _Copy(loaded.data)
    _leave_out_secrets(problems, copy)
    _hide_url_secrets(problems, copy)
    if isinstance(copy.data, dict):
        for field in list(case_fields(copy.data, default=default)):
            _canonical_case(problems, copy, field)
    return Normalised(copy.data, tuple(problems.found))


def read_back(text: str, file: str, *, default: bool = False) -> Any | Problem:
    """The data `validate` reads from `text`: codes in canonical case, unquoted numbers as the text written.

    What `fmt` compares before and after formatting: a file must declare the same thing in either form.
    """
    loaded = parse_text(text, file)
    return loaded if isinstance(loaded, Problem) else normalise(loaded, default=default).data


def case_fields(data: dict[str, Any], *, default: bool = False) -> Iterator[CaseField]:
    """The case-insensitive fields present in a party file's data (a default-party file's: default=True)."""
    if default:
        if "default_party" in data:
            yield CaseField(("default_party",), True)
        return
    for key in ("country_code", "party_id"):
        if key in data:
            yield CaseField((key,), True)
    yield from _logo_type(data, ())
    moved = data.get("moved_from")
    for index in range(len(moved) if isinstance(moved, list) else 0):
        yield CaseField(("moved_from", index), True)
    roles = data.get("roles")
    for index, role in enumerate(roles if isinstance(roles, list) else ()):
        if isinstance(role, dict):
            if "role" in role:
                yield CaseField(("roles", index, "role"), True)
            yield from _logo_type(role, ("roles", index))


def holder(data: Any, path: JsonPath) -> Any:
    """The mapping or list in `data` that holds the value at `path` (not the document itself)."""
    for part in path[:-1]:
        data = data[part]
    return data


def _logo_type(data: dict[str, Any], path: JsonPath) -> Iterator[CaseField]:
    details = data.get("business_details")
    logo = details.get("logo") if isinstance(details, dict) else None
    if isinstance(logo, dict) and "type" in logo:
        yield CaseField((*path, "business_details", "logo", "type"), False)


class _Copy:
    """The loaded data, copied where it changes: each mapping or list at most once, the first time a value
    in it changes. The copies are kept here by id, which also keeps those ids from being reused."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self._made: dict[int, Any] = {}

    def set(self, path: JsonPath, value: Any) -> None:
        if path:
            self._holder(path)[path[-1]] = value
        else:
            self.data = value

    def delete(self, path: JsonPath) -> None:
        del self._holder(path)[path[-1]]

    def _holder(self, path: JsonPath) -> Any:
        """The container holding the value at `path`, made this copy's own along with those above it."""
        self.data = self._own(self.data)
        container = self.data
        for part in path[:-1]:
            child = self._own(container[part])
            container[part] = child
            container = child
        return container

    def _own(self, container: Any) -> Any:
        if id(container) in self._made:
            return container
        made = dict(container) if isinstance(container, dict) else list(container)
        self._made[id(made)] = made
        return made


@functools.cache
def _is_secret_key(key: str) -> bool:
    """Whether a key would hold a secret; asked once per spelling (files repeat the same few keys)."""
    return _SECRET_KEY.match(key) is not None


def _secret_keys(loaded: LoadedFile) -> list[JsonPath]:
    """The paths of the keys that would hold a secret, in document order; none inside another one.

    The loader recorded every key's path, in document order, so this needs no walk through the data.
    """
    found: list[JsonPath] = []
    for path in loaded.key_marks:
        key = path[-1]
        if not (isinstance(key, str) and _is_secret_key(key)):
            continue
        if not any(path[: len(outer)] == outer for outer in found):
            found.append(path)
    return found


def _leave_out_secrets(problems: FileProblems, copy: _Copy) -> None:
    for path in _secret_keys(problems.loaded):
        problems.add(
            path,
            "secret-in-git",
            "OCPI tokens and other secrets never belong in git: the CSMS exchanges tokens through "
            "OCPI credentials registration and keeps them in its database",
            key=True,
        )
        copy.delete(path)


def _credential_urls(data: Any, path: JsonPath, found: list[tuple[JsonPath, str, list[str]]]) -> None:
    """Every string in the mapping or list `data` (at `path`) that is a URL carrying a credential, with its
    path and where the credential is, in document order. A path is built only for what is found."""
    for key, value in data.items() if isinstance(data, dict) else enumerate(data):
        if isinstance(value, str):
            where = url_secrets(value)
            if where:
                found.append(((*path, key), value, where))
        elif isinstance(value, dict | list):
            _credential_urls(value, (*path, key), found)


def _hide_url_secrets(problems: FileProblems, copy: _Copy) -> None:
    """Report URLs that carry a credential (user info, `?token=...`) and hide it.

    The same family as a `token:` key: a secret in a URL is a secret in git. What counts is one definition
    (`reconciler.secret`), shared with the plan's rendering; the message names where the secret is, never
    the secret, and the value is hidden before any later check could quote it.
    """
    data = copy.data
    found_urls: list[tuple[JsonPath, str, list[str]]] = []
    if isinstance(data, str):
        where = url_secrets(data)
        found_urls = [((), data, where)] if where else []
    elif isinstance(data, dict | list):
        _credential_urls(data, (), found_urls)
    for path, value, found in found_urls:
        problems.add(
            path,
            "secret-in-git",
            f"this URL carries a credential ({', '.join(found)}): OCPI tokens and other secrets never belong "
            "in git; write the URL without it (the CSMS exchanges tokens through OCPI credentials "
            "registration and keeps them in its database)",
        )
        copy.set(path, hide_url_secrets(value, user=False))


def _canonical_case(problems: FileProblems, copy: _Copy, field: CaseField) -> None:
    """CiString: case-insensitive. Read the field in canonical case, warning when the file differs.

    An unquoted value that YAML reads as a number (`party_id: 007`) is taken as the text written, with a
    warning to quote it, since the file name already spells the identity out.
    """
    path, upper = field
    value = holder(copy.data, path)[path[-1]]
    written = problems.loaded.plain_text.get(path)
    if (
        not isinstance(value, str)
        and written is not None
        and not isinstance(value, bool)
        and value is not None
    ):
        value = written
        copy.set(path, value)
        problems.add(
            path,
            "unquoted",
            f"{written} is read as the text {written!r}; put it in quotes so every YAML reader agrees",
            warning=True,
        )
    if not isinstance(value, str):
        return
    canonical = value.upper() if upper else value.lower()
    if canonical != value:
        copy.set(path, canonical)
        case = "upper" if upper else "lower"
        problems.add(
            path,
            "case",
            f"{value!r} is read as {canonical!r}: OCPI compares it without regard to case; "
            f"write it in {case} case",
            warning=True,
        )
