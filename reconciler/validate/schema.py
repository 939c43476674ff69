"""The JSON Schemas of the party files: where they are, the two engines that apply them, and the words for
what they find.

jsonschema-rs tells a valid file about ten times faster than jsonschema; jsonschema, imported only for a file
that is not valid, yields every problem with what is needed to word it. Both read the same schema and the same
`uri` check (`is_url`), and tests/unit/test_validate.py checks that they accept the same documents. Each
schema keyword's problems are worded by one function of `_WORDING`.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jsonschema_rs

from reconciler.interrupt import ctrl_c_held
from reconciler.load import JsonPath

if TYPE_CHECKING:
    import jsonschema

PARTY_SCHEMA = "party.schema.json"
DEFAULT_SCHEMA = "default-party.schema.json"

_SPACE = re.compile(r"\s")
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
    package = Path(__file__).parent.parent
    packaged = package / "_data" / "schema"
    return packaged if packaged.is_dir() else package.resolve().parent / "schema"


#: URLs of the plainest shape, accepted without parsing: at 10,000 files, parsing every URL with `urlsplit`
#: made `validate` 7-11% slower. Every URL it accepts passes `is_split_url` too (tests/unit/test_validate.py).
PLAIN_URL = re.compile(
    r"https?://[A-Za-z0-9][A-Za-z0-9.-]*(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?"
)


def is_url(value: object) -> bool:
    """The `uri` format of the schemas: an http or https URL with a host name (other values: the type's)."""
    if not isinstance(value, str):
        return True
    return PLAIN_URL.fullmatch(value) is not None or is_split_url(value)


def is_split_url(value: str) -> bool:
    """The one definition of a valid URL, by `urlsplit`: ASCII, no white space, http(s), a host name."""
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
def plain_validator(name: str) -> jsonschema.Draft202012Validator:
    """jsonschema, which words the problems of a file that jsonschema-rs rejects. Imported here, on the first
    such file: it takes about a tenth of a second to import, which a run over valid files never needs."""
    from jsonschema import Draft202012Validator, FormatChecker

    checker = FormatChecker(formats=())
    checker.checks("uri")(is_url)
    return Draft202012Validator(_schema(name), format_checker=checker)


@functools.cache
def fast_validator(name: str) -> jsonschema_rs.Validator:
    """The same schema and `uri` check, compiled by jsonschema-rs: it tells a valid file about ten times
    faster than jsonschema."""
    return jsonschema_rs.validator_for(_schema(name), validate_formats=True, formats={"uri": is_url})


@dataclass(frozen=True)
class SchemaProblem:
    """A problem the schema finds, in words: at the value at `path`, or at its key with key=True."""

    path: JsonPath
    message: str
    key: bool = False


def _fast_is_valid(schema_name: str, data: Any) -> bool:
    """jsonschema-rs's verdict (compiling the validator first), with Ctrl-C held back until it is given.

    jsonschema-rs runs Python code (`is_url`) from Rust and may drop an exception raised there: a Ctrl-C that
    landed while it compiled was printed as "Exception ignored in: 'uri'" and left a validator that found
    every URL invalid, so an interrupted validate ended with exit 1 and false problems. Held back, the
    Ctrl-C is raised here once jsonschema-rs has returned.
    """
    with ctrl_c_held():
        return fast_validator(schema_name).is_valid(data)


def schema_problems(data: Any, schema_name: str) -> list[SchemaProblem]:
    """Every problem the schema `schema_name` finds in `data`, worded for the file's author."""
    if _fast_is_valid(schema_name, data):
        return []
    found: list[SchemaProblem] = []
    required_at: set[JsonPath] = set()
    for error in plain_validator(schema_name).iter_errors(data):
        failed = _failed(error)
        if failed.keyword == "required":
            # Keys are required twice at the top (always, and unless deleted): one message per mapping.
            if failed.path in required_at:
                continue
            required_at.add(failed.path)
        found.extend(_WORDING.get(failed.keyword, _as_jsonschema_says)(failed))
    return found


@dataclass(frozen=True)
class _Failed:
    """One schema keyword that a value does not meet, as jsonschema reports it."""

    keyword: str
    path: JsonPath
    #: The value that does not meet it.
    instance: Any
    #: The (sub)schema that holds the keyword, and the keyword's value there.
    schema: Mapping[str, Any]
    expected: Any
    #: jsonschema's own words.
    message: str

    @property
    def title(self) -> str:
        """The schema title as a noun in a sentence: 'Image type' -> 'image type', 'OCPI role' stays."""
        title = str(self.schema.get("title", "value"))
        return title if title[1:2].isupper() else title[:1].lower() + title[1:]

    def at(self, message: str) -> list[SchemaProblem]:
        return [SchemaProblem(self.path, message)]


def _failed(error: jsonschema.ValidationError) -> _Failed:
    return _Failed(
        keyword=str(error.validator),
        path=tuple(error.absolute_path),
        instance=error.instance,
        schema=error.schema if isinstance(error.schema, Mapping) else {},
        expected=error.validator_value,
        message=error.message,
    )


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


def _as_jsonschema_says(failed: _Failed) -> list[SchemaProblem]:
    return failed.at(failed.message)


def _unknown_keys(failed: _Failed) -> list[SchemaProblem]:
    if not isinstance(failed.instance, dict):
        return _as_jsonschema_says(failed)
    known = list(failed.schema.get("properties", {}))
    found: list[SchemaProblem] = []
    for key in sorted(set(failed.instance) - set(known)):
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; allowed here: {', '.join(known)}"
        found.append(SchemaProblem((*failed.path, key), f"unknown key {key!r}{hint}", key=True))
    return found


def _not_listed(failed: _Failed) -> list[SchemaProblem]:
    if len(failed.expected) > 20:  # the country codes
        suggestion = _COMMON_COUNTRY_MISTAKES.get(str(failed.instance))
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        return failed.at(f"{failed.instance!r} is not an assigned ISO 3166-1 alpha-2 country code{hint}")
    if not isinstance(failed.instance, str) and failed.schema.get("type") == "string":
        return []  # the type's message names the allowed values
    choices = _choices(failed.title, failed.expected)
    return failed.at(f"{failed.instance!r} is not a valid {failed.title}; use {choices}")


def _wrong_type(failed: _Failed) -> list[SchemaProblem]:
    expected, title, instance = failed.expected, failed.title, failed.instance
    if expected == "string" and "enum" in failed.schema:
        # One message for a value that is not even text where a listed word is expected; quoting it
        # would not help, so the enum's own message is left out (see `_not_listed`).
        message = f"{title} must be {_choices(title, failed.schema['enum'])}, not {_kind(instance)}"
    elif expected == "string" and isinstance(instance, bool | int | float):
        message = f"{json.dumps(instance)} is not text: put it in quotes"
    elif expected == "object" and instance is None:
        message = f"{title} is empty: give its keys or remove it"
    elif expected == "object":
        message = f"{title} must be a mapping of keys, not {_kind(instance)}"
    elif expected == "array":
        message = f"{title} must be a list (lines starting with '- '), not {_kind(instance)}"
    else:
        message = (
            f"{title} must be {'a whole number' if expected == 'integer' else expected}, not {instance!r}"
        )
    return failed.at(message)


def _too_long(failed: _Failed) -> list[SchemaProblem]:
    length = len(failed.instance)
    return failed.at(f"{failed.title} is too long: {length} characters, at most {failed.expected}")


def _empty_text(failed: _Failed) -> list[SchemaProblem]:
    return failed.at(f"{failed.title} is empty")


def _not_matching(failed: _Failed) -> list[SchemaProblem]:
    hint = _PATTERN_HINTS.get(failed.title, "see the schema")
    return failed.at(f"{failed.instance!r} is not a valid {failed.title}: {hint}")


def _missing_keys(failed: _Failed) -> list[SchemaProblem]:
    if not isinstance(failed.instance, dict):
        return []
    missing = [key for key in failed.expected if key not in failed.instance]
    message = f"missing required key{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    hints = [_REQUIRED_HINTS[key] for key in missing if key in _REQUIRED_HINTS]
    if hints:
        message += f"; {'; '.join(hints)}"
    return failed.at(message)


def _listed_twice(failed: _Failed) -> list[SchemaProblem]:
    if not isinstance(failed.instance, list):
        return _as_jsonschema_says(failed)
    found: list[SchemaProblem] = []
    seen: list[Any] = []
    for index, item in enumerate(failed.instance):
        if item in seen:
            found.append(SchemaProblem((*failed.path, index), f"{item!r} is listed twice"))
        seen.append(item)
    return found


def _empty_list(failed: _Failed) -> list[SchemaProblem]:
    return failed.at(f"{failed.title} must not be empty: list at least one")


#: Schema keyword -> its problems in words; a keyword not listed is worded as jsonschema words it.
_WORDING: dict[str, Callable[[_Failed], list[SchemaProblem]]] = {
    "additionalProperties": _unknown_keys,
    "enum": _not_listed,
    "type": _wrong_type,
    "maxLength": _too_long,
    "minLength": _empty_text,
    "pattern": _not_matching,
    "required": _missing_keys,
    "uniqueItems": _listed_twice,
    "minItems": _empty_list,
}
