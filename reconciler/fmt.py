"""`ocpi-parties fmt`: every party file in one canonical form, comments kept, as `terraform fmt` does.

The canonical form of a party file:

- keys in the order of the schema (`PARTY_KEYS`, `ROLE_KEYS`, `DETAIL_KEYS`, `LOGO_KEYS`), keys the schema
  does not know after them in the order written;
- codes in the case `validate` reads them in (country_code, party_id, roles, moved_from and default_party in
  upper case, the logo type in lower case), and an unquoted code that YAML reads as a number (`007`) as the
  text written;
- text plain where every YAML reader (YAML 1.1 editors, `validate`'s YAML 1.2) reads it back as that text,
  else in double quotes; block style, mappings indented by two spaces and list items by two;
- comments where they were, except that a comment on a line of its own stays after the key above it.

The file is read by ruamel.yaml's round-trip loader, which keeps comments, changed in place and written again.
A result that would not read back (with `validate`'s loader) as the file did is refused, never written.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.anchor import Anchor
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, PlainScalarString

from reconciler.load import CoreResolver, decode, parse_text, read_file
from reconciler.model import Problem, Source
from reconciler.validate import DEFAULT_FILE, PARTY_FILE, case_fields, holder, read_back, require_party_path

#: Key orders of the canonical form: the order of the properties in schema/party.schema.json.
PARTY_KEYS = (
    "country_code",
    "party_id",
    "kind",
    "url",
    "business_details",
    "roles",
    "moved_from",
    "locations",
    "deleted",
)
ROLE_KEYS = ("role", "kind", "business_details", "deleted")
DETAIL_KEYS = ("name", "website", "logo")
LOGO_KEYS = ("url", "thumbnail", "category", "type", "width", "height")

_PLAIN = re.compile(r"^[^\W_][\w .,'&()/:+@%~=?!*-]*$")
_STR_TAG = "tag:yaml.org,2002:str"
#: How YAML 1.1 readers (editors, other tools) and `validate` (YAML 1.2 core) resolve plain scalars.
_READERS = (yaml.resolver.Resolver(), CoreResolver())


def plain_ok(value: str) -> bool:
    """Whether `value` may be written without quotes: every YAML reader reads it back as this text.

    Not `yes`, `null`, `007` or `1e3`, which readers take for other values, and nothing that a plain scalar
    cannot hold (indicators, `: `, ` #`, trailing spaces or colons, line breaks).
    """
    if not _PLAIN.match(value) or value.endswith((" ", ":")) or ": " in value or " #" in value:
        return False
    resolved = (r.resolve(yaml.ScalarNode, value, (True, False)) for r in _READERS)  # type: ignore[no-untyped-call]
    return all(tag == _STR_TAG for tag in resolved)


@dataclass(frozen=True)
class Formatted:
    """One file's canonical text, or the problem that keeps it from being formatted."""

    file: str
    raw: bytes
    canonical: str | Problem

    @property
    def changed(self) -> bool:
        """Whether writing the canonical text would change the file (a byte order mark counts)."""
        return isinstance(self.canonical, str) and self.canonical.encode("utf-8") != self.raw


def _yaml() -> YAML:
    handler = YAML(typ="rt")
    handler.indent(mapping=2, sequence=4, offset=2)
    handler.width = 4096  # never fold a long name or url onto a second line
    handler.allow_unicode = True
    handler.preserve_quotes = False
    return handler


def _order(mapping: CommentedMap, keys: tuple[str, ...]) -> None:
    rank = {key: index for index, key in enumerate(keys)}
    wanted = sorted(mapping, key=lambda key: rank.get(key, len(keys)))  # stable: unknown keys as written
    if list(mapping) != wanted:
        for key in wanted:
            mapping.move_to_end(key)


def _mappings(node: Any, key: str) -> Iterator[CommentedMap]:
    found = node.get(key) if isinstance(node, CommentedMap) else None
    if isinstance(found, CommentedMap):
        yield found


def _reorder(data: CommentedMap) -> None:
    _order(data, PARTY_KEYS)
    parents = [data]
    roles = data.get("roles")
    if isinstance(roles, CommentedSeq):
        for role in roles:
            if isinstance(role, CommentedMap):
                _order(role, ROLE_KEYS)
                parents.append(role)
    for parent in parents:
        for details in _mappings(parent, "business_details"):
            _order(details, DETAIL_KEYS)
            for logo in _mappings(details, "logo"):
                _order(logo, LOGO_KEYS)


def _codes(data: CommentedMap, plain_text: dict[Any, str], default: bool) -> None:
    """Codes in the case validate reads them in; an unquoted number in a code as the text written."""
    for path, upper in case_fields(data, default=default):
        parent, last = holder(data, path), path[-1]
        value = parent[last]
        written = plain_text.get(path)
        if written is not None and not isinstance(value, str | bool) and value is not None:
            value = written
        if isinstance(value, str):
            parent[last] = value.upper() if upper else value.lower()


def _anchor(value: Any) -> str | None:
    """The anchor (&name) a scalar was written with, without making one as ruamel.yaml's `anchor` does."""
    anchor = getattr(value, Anchor.attrib, None)
    return anchor.value if anchor is not None and anchor.value else None


def _comment_into_block(sequence: CommentedSeq, index: int, item: Any) -> None:
    """The comment after a flow mapping item (`- {role: CPO}  # ...`) onto the line of its last key.

    ruamel.yaml keeps it with the list item, and once the mapping is written in block style it would write it
    between the `-` and the first key, where it no longer reads back.
    """
    entry = sequence.ca.items.get(index)
    flow_mapping = isinstance(item, CommentedMap) and bool(item) and item.fa.flow_style()
    if not flow_mapping or not entry or entry[0] is None:
        return
    last = list(item)[-1]
    target = item.ca.items.setdefault(last, [None, None, None, None])
    if target[2] is None and not isinstance(item[last], CommentedMap | CommentedSeq):
        target[2], entry[0] = entry[0], None


def _styled(value: Any, seen: dict[int, tuple[Any, Any]]) -> Any:
    """Block style for collections, one quoting rule for text, decimal integers; anchors and aliases kept."""
    if id(value) in seen:  # an alias: the value its anchor gave, so that it is written as *name again
        return seen[id(value)][1]
    if isinstance(value, CommentedMap | CommentedSeq):
        _style_collection(value, seen)
        result = value
    else:
        result = _styled_scalar(value)
    seen[id(value)] = (value, result)  # the value is kept alive so that its id is not reused
    return result


def _style_collection(value: CommentedMap | CommentedSeq, seen: dict[int, tuple[Any, Any]]) -> None:
    # An empty one stays `[]` or `{}`: ruamel.yaml writes an empty block collection as a flow one anyway,
    # after a comment on the key's line when there is one, which no longer reads back.
    if value:
        value.fa.set_block_style()
    else:
        value.fa.set_flow_style()
    if isinstance(value, CommentedMap):
        for key in value:
            value[key] = _styled(value[key], seen)
        return
    for index, item in enumerate(value):
        _comment_into_block(value, index, item)
    for index, item in enumerate(value):
        value[index] = _styled(item, seen)


def _styled_scalar(value: Any) -> Any:
    if isinstance(value, str):
        name = _anchor(value)
        if not plain_ok(value):
            return DoubleQuotedScalarString(value, anchor=name)
        return PlainScalarString(value, anchor=name) if name else str(value)
    if isinstance(value, int) and not isinstance(value, bool) and _anchor(value) is None:
        return int(value)
    return value


def canonical_text(text: str, file: str, *, default: bool = False) -> str | Problem:
    """The canonical form of a party file's text (of the default-party file with default=True).

    A problem, as `validate` reports it, when the text is no YAML the loader reads, or (never expected) when
    the canonical text would not read back as the same party. A comment after a flow collection (`{...}`)
    can take ruamel.yaml a second pass to settle, so the text is formatted until it no longer changes.
    """
    loaded = parse_text(text, file)
    if isinstance(loaded, Problem):
        return loaded
    expected = read_back(text, file, default=default)
    result = text
    for _ in range(_PASSES):
        formatted = _once(result, file, dict(loaded.plain_text) if result is text else {}, default=default)
        if isinstance(formatted, Problem):
            return formatted
        if read_back(formatted, file, default=default) != expected:
            return Problem(
                Source(file, 1, 1),
                "fmt-refused",
                "fmt cannot write this file in canonical form without changing what it declares: "
                "it is left as it is; please report it",
            )
        if formatted == result:
            break
        result = formatted
    return _comment_lost(text, result, file) or result


#: A comment as fmt counts them: `#` at the start of a line or after a space, to the end of the line. A value
#: such as `name: "No #1"` counts too, the same before and after, as it is kept.
_COMMENT = re.compile(r"(?:^|(?<=\s))#[^\n]*", re.MULTILINE)


def _comment_lost(text: str, result: str, file: str) -> Problem | None:
    """A problem when a comment of `text` is missing from `result`: ruamel.yaml drops a few (see below)."""
    kept = Counter(match.rstrip() for match in _COMMENT.findall(result))
    for match in _COMMENT.finditer(text):
        comment = match.group().rstrip()
        if kept[comment] > 0:
            kept[comment] -= 1
            continue
        line = text.count("\n", 0, match.start()) + 1
        column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
        return Problem(
            Source(file, line, column),
            "fmt-comment",
            "fmt would lose this comment (ruamel.yaml drops some comments between the items of a list "
            "written in flow style, such as `- {role: CPO}`): write that list in block style, then run fmt",
        )
    return None


#: Passes of the formatter at most: one, and one more when a comment moved (see `canonical_text`).
_PASSES = 4


def _once(text: str, file: str, plain_text: dict[Any, str], *, default: bool) -> str | Problem:
    handler = _yaml()
    try:
        data = handler.load(text)
    except YAMLError as error:  # pragma: no cover - validate's loader refuses what ruamel.yaml does
        mark = getattr(error, "problem_mark", None)
        where = Source(file, mark.line + 1, mark.column + 1) if mark is not None else Source(file, 1, 1)
        return Problem(where, "yaml-syntax", f"invalid YAML: {getattr(error, 'problem', None) or error}")
    if isinstance(data, CommentedMap):
        _codes(data, plain_text, default)
        if not default:
            _reorder(data)
    data = _styled(data, {})
    out = io.StringIO()
    handler.dump(data, out)
    return out.getvalue()


def is_default_file(path: Path) -> bool:
    return path.name.lower() in (DEFAULT_FILE, "default-party.yml")


def party_files(path: Path) -> list[Path]:
    """The files fmt formats: PATH itself, or the party files and default-party file in the directory PATH.

    Symbolic links are left alone (their targets may be outside the repository), as are other files: validate
    reports them.
    """
    if not path.is_dir():
        return [path]
    return sorted(
        entry
        for entry in path.iterdir()
        if not entry.name.startswith(".")
        and not entry.is_symlink()
        and entry.is_file()
        and (PARTY_FILE.match(entry.name) or is_default_file(entry))
    )


def format_file(path: Path, file: str) -> Formatted:
    """Read `path` (shown as `file`) and work out its canonical text; nothing is written."""
    raw = read_file(path, file)
    if isinstance(raw, Problem):
        return Formatted(file, b"", raw)
    text = decode(raw, file)
    if isinstance(text, Problem):
        return Formatted(file, raw, text)
    return Formatted(file, raw, canonical_text(text, file, default=is_default_file(path)))


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step: a reader sees the old file or the new one, never half of it.

    A symbolic link stays one: the file it leads to is replaced.
    """
    path = path.resolve()
    mode = path.stat().st_mode & 0o7777
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def format_path(path: Path, shown: str, *, write: bool) -> tuple[list[str], list[Problem]]:
    """Format PATH (a file, or the party files of a directory); with write=False, only look.

    Returns the files not in canonical form (rewritten when `write`) and the problems of those that cannot be
    formatted, which are left as they are. Each file is replaced in one step, so none is ever half-written.
    """
    require_party_path(path, shown)
    changed: list[str] = []
    problems: list[Problem] = []
    for file_path in party_files(path):
        file = shown if file_path == path else f"{shown.rstrip('/')}/{file_path.name}"
        formatted = format_file(file_path, file)
        if isinstance(formatted.canonical, Problem):
            problems.append(formatted.canonical)
        elif formatted.changed:
            if write:
                write_atomically(file_path, formatted.canonical)
            changed.append(file)
    return changed, problems
