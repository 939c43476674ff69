"""Read one YAML file into plain data, keeping the line and column of every key and value.

The loader is strict where YAML is surprising: it rejects duplicate keys, non-text keys, merge keys, custom
tags, several documents in one file, tabs in indentation and bytes that are not UTF-8. Scalars follow the YAML
1.2 core schema, so `country_code: NO` is the text "NO" (Norway), not `false`. Aliases are followed, but a
file that expands past `MAX_NODES` values or nests deeper than `MAX_DEPTH` is refused, so an alias bomb costs
nothing. Failures are returned as `Problem` values, never raised.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

from reconciler.model import Problem, Source

MAX_FILE_BYTES = 1 << 20
MAX_NODES = 10_000
MAX_DEPTH = 32

#: A JSON path as a tuple of keys and indexes; () is the document itself.
JsonPath = tuple[str | int, ...]


class Mark(Protocol):
    """Where the parser saw a node: 0-based line and column (PyYAML's and libyaml's marks)."""

    @property
    def line(self) -> int: ...

    @property
    def column(self) -> int: ...


_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


class CoreResolver(BaseResolver):
    """YAML 1.2 core schema: only true/false are booleans; no sexagesimal numbers, no timestamps."""


CoreResolver.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
CoreResolver.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
CoreResolver.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
CoreResolver.add_implicit_resolver(_NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])


class _ComposingResolver(CoreResolver):
    """CoreResolver's tags, told with one lookup per scalar: the parser asks for the tag of every node.

    A fast path that pays for itself: BaseResolver.resolve walks its resolver lists for each of the ~290,000
    nodes of 10,000 party files, which made `validate` 5-8% slower. It reads CoreResolver's own table, so the
    tags cannot drift; tests/unit/test_load.py checks it tags every scalar and collection as CoreResolver
    does, and that CoreResolver has no resolver this lookup leaves out (a `None` first character, a path
    resolver).
    """

    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is not ScalarNode:
            return _SEQ if kind is SequenceNode else _MAP
        if implicit[0]:
            for tag, pattern in IMPLICIT_RESOLVERS.get(value[:1], ()):
                if pattern.match(value):
                    return tag
        return _STR

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        """No path resolvers are registered: nothing to track."""

    def ascend_resolver(self) -> None:
        """No path resolvers are registered: nothing to track."""


#: CoreResolver's implicit resolvers by the first character of a plain scalar.
IMPLICIT_RESOLVERS: dict[str, list[tuple[str, re.Pattern[str]]]] = CoreResolver.yaml_implicit_resolvers


if yaml.__with_libyaml__:
    from yaml.cyaml import CParser  # type: ignore[attr-defined]

    class _Composer(CParser, _ComposingResolver):
        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            _ComposingResolver.__init__(self)

else:  # pragma: no cover - PyYAML built without libyaml

    class _Composer(  # type: ignore[no-redef]
        yaml.reader.Reader,
        yaml.scanner.Scanner,
        yaml.parser.Parser,
        yaml.composer.Composer,
        _ComposingResolver,
    ):
        def __init__(self, text: str) -> None:
            yaml.reader.Reader.__init__(self, text)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            _ComposingResolver.__init__(self)


@dataclass(frozen=True)
class LoadedFile:
    """A parsed file: its data as plain JSON-like values and where each value and key stands.

    Positions are kept as the parser's marks and made into a `Source` only when asked for: most values of a
    valid file are never reported.
    """

    file: str
    data: Any
    value_marks: Mapping[JsonPath, Mark]
    key_marks: Mapping[JsonPath, Mark]
    #: The source text of unquoted scalars that were not read as text (`007` read as 7), by path.
    plain_text: Mapping[JsonPath, str] = field(default_factory=dict)

    def source(self, path: JsonPath = (), *, key: bool = False) -> Source:
        """Where the value at `path` stands (or its key, with key=True); the nearest parent if unknown."""
        marks = self.key_marks if key else self.value_marks
        if key and path not in marks:
            marks = self.value_marks
        for end in range(len(path), -1, -1):
            found = marks.get(path[:end])
            if found is not None:
                return _source(self.file, found)
        return Source(self.file, 1, 1)


def _source(file: str, mark: Mark) -> Source:
    return Source(file, mark.line + 1, mark.column + 1)


class _Refused(Exception):
    def __init__(self, node: Node, code: str, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.code = code


class _Builder:
    """Turns a composed YAML node graph into Python values, recording positions and enforcing the limits."""

    def __init__(self, file: str, root: Node) -> None:
        self.file = file
        self.root = root
        self.count = 0
        self.value_marks: dict[JsonPath, Mark] = {}
        self.key_marks: dict[JsonPath, Mark] = {}
        self.plain_text: dict[JsonPath, str] = {}

    def source(self, node: Node) -> Source:
        return _source(self.file, node.start_mark)

    def build(self, node: Node, path: JsonPath) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            hint = ": anchors and aliases (&name, *name) repeat it too often" if _has_alias(self.root) else ""
            raise _Refused(node, "too-large", f"the document expands to more than {MAX_NODES:,} values{hint}")
        if len(path) > MAX_DEPTH:
            hint = " (an alias refers to itself)" if _has_alias(self.root) else ""
            raise _Refused(node, "too-deep", f"values nest more than {MAX_DEPTH} levels deep{hint}")
        self.value_marks[path] = node.start_mark
        if isinstance(node, ScalarNode):
            if "\x00" in node.value:
                raise _nul(node)
            if node.tag == _STR:
                return node.value
            if not node.style:
                self.plain_text[path] = node.value
            return self._scalar(node)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                raise _Refused(node, "yaml-tag", f"the tag {_tag(node)} is not allowed in party files")
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        raise _Refused(node, "yaml-syntax", "unsupported YAML node")  # pragma: no cover

    def _mapping(self, node: MappingNode, path: JsonPath) -> dict[str, Any]:
        if node.tag != _MAP:
            raise _Refused(node, "yaml-tag", f"the tag {_tag(node)} is not allowed in party files")
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
                shown = key_node.value if isinstance(key_node, ScalarNode) else "a collection"
                raise _Refused(
                    key_node, "key-not-text", f"key {shown!s} is not text: quote it, or use a text key"
                )
            key = key_node.value
            if "\x00" in key:
                raise _nul(key_node)
            if key == "<<" and not key_node.style:
                raise _Refused(key_node, "merge-key", "merge keys (<<) are not supported: write the keys out")
            key_path = (*path, key)
            if key in result:
                raise _Refused(
                    key_node,
                    "duplicate-key",
                    f"duplicate key {key!r} (first at line {self.key_marks[key_path].line + 1})",
                )
            self.key_marks[key_path] = key_node.start_mark
            result[key] = self.build(value_node, key_path)
        return result

    def _scalar(self, node: ScalarNode) -> Any:
        text: str = node.value
        try:
            if node.tag == _NULL:
                return None
            if node.tag == _BOOL:
                return text.lower() == "true"
            if node.tag == _INT:
                lowered = text.lower()
                if lowered.startswith(("0o", "0x")):
                    return int(lowered, 0)
                return int(text, 10)
            if node.tag == _FLOAT:
                number = float(text.replace(".inf", "inf").replace(".Inf", "inf").replace(".INF", "inf"))
                if math.isnan(number) or math.isinf(number):
                    raise _Refused(node, "yaml-value", f"{text} is not a usable number")
                return number
        except ValueError as error:
            raise _Refused(
                node, "yaml-value", f"{text!r} is not a valid {node.tag.rsplit(':', 1)[-1]}"
            ) from error
        raise _Refused(node, "yaml-tag", f"the tag {_tag(node)} is not allowed in party files")


def _nul(node: ScalarNode) -> _Refused:
    """YAML lets a quoted scalar hold U+0000 (`"\\0"`), but PostgreSQL stores it in no text or jsonb value."""
    return _Refused(
        node, "yaml-value", "the text holds a NUL character (\\0), which the database cannot store"
    )


def _has_alias(root: Node) -> bool:
    """Whether the document reaches a node twice: through an alias (*name) of an anchored one (&name).

    Asked only to word a refusal, so building the values keeps no record of the nodes it has seen.
    """
    seen: set[int] = set()
    waiting = [root]
    while waiting:
        node = waiting.pop()
        if id(node) in seen:
            return True
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            waiting.extend(node.value)
        elif isinstance(node, MappingNode):
            waiting.extend(value for pair in node.value for value in pair)
    return False


def _tag(node: Node) -> str:
    return node.tag.replace("tag:yaml.org,2002:", "!!")


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def decode(raw: bytes, file: str) -> str | Problem:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        head = raw[: error.start].decode("utf-8", errors="replace")
        line, column = _position(head, len(head))
        return Problem(
            Source(file, line, column),
            "not-utf8",
            f"the file is not UTF-8: byte 0x{raw[error.start]:02x} cannot be decoded; save it as UTF-8",
        )
    return text.removeprefix("\ufeff")


def _tab_in_indentation(text: str, file: str) -> Problem | None:
    if "\t" not in text:
        return None
    for number, line in enumerate(text.splitlines(), start=1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent and line.strip():
            return Problem(
                Source(file, number, indent.index("\t") + 1),
                "tab",
                "tab character in indentation: YAML indents with spaces",
            )
    return None


def _syntax_problem(error: yaml.YAMLError, file: str, text: str) -> Problem:
    if isinstance(error, yaml.reader.ReaderError):
        line, column = _position(text, error.position)
        char = error.character if isinstance(error.character, int) else ord(error.character)
        return Problem(
            Source(file, line, column), "yaml-syntax", f"invalid YAML: character U+{char:04X} is not allowed"
        )
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    detail = f"{problem} ({context})" if context else problem
    return Problem(Source(file, line, column), "yaml-syntax", f"invalid YAML: {detail}")


def parse_text(text: str, file: str) -> LoadedFile | Problem:
    """Parse YAML text (already decoded) into a `LoadedFile`, or the first problem that prevents it."""
    node = _tab_in_indentation(text, file) or _compose(text, file)
    if isinstance(node, Problem):
        return node
    builder = _Builder(file, node)
    try:
        data = builder.build(node, ())
    except _Refused as refused:
        return Problem(builder.source(refused.node), refused.code, str(refused))
    return LoadedFile(file, data, builder.value_marks, builder.key_marks, builder.plain_text)


def _compose(text: str, file: str) -> Node | Problem:
    """The node graph of the one YAML document in `text`."""
    composer = _Composer(text)
    try:
        node = composer.get_node() if composer.check_node() else None
        if node is None:
            return Problem(Source(file, 1, 1), "empty-file", "the file is empty")
        if composer.check_node():
            return _second_document(composer.get_node(), text, file)
    except yaml.YAMLError as error:
        return _syntax_problem(error, file, text)
    finally:
        composer.dispose()
    return node


def _second_document(second: Node | None, text: str, file: str) -> Problem:
    """Point at the `---` that starts the second document rather than at its content."""
    line = second.start_mark.line + 1 if second is not None else 1
    lines = text.splitlines()
    line = next((n for n in range(min(line, len(lines)), 0, -1) if lines[n - 1].startswith("---")), line)
    return Problem(
        Source(file, line, 1),
        "multiple-documents",
        "more than one YAML document (---): a party file holds exactly one",
    )


def read_file(path: str | Path, file: str) -> bytes | Problem:
    """The bytes of `path` (named `file` in messages), never more than MAX_FILE_BYTES of them read: a larger
    file, or a device that never ends, is a problem."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            raw = b""
            if size <= MAX_FILE_BYTES:
                # As much as the file says it holds, plus one byte to see whether it holds more (a device, a
                # file being written): then on up to the limit. A buffer of the limit each time cost 0.15 s
                # over 10,000 files.
                raw = handle.read(size + 1)
                if len(raw) > size:
                    raw += handle.read(MAX_FILE_BYTES + 1 - len(raw))
    except OSError as error:
        return Problem(Source(file), "unreadable", f"cannot read the file: {error.strerror or error}")
    if size > MAX_FILE_BYTES or len(raw) > MAX_FILE_BYTES:
        shown = f"{size:,} bytes" if size > MAX_FILE_BYTES else f"more than {MAX_FILE_BYTES:,} bytes"
        limit = f"party files are limited to {MAX_FILE_BYTES:,}"
        return Problem(Source(file, 1, 1), "too-large", f"the file is {shown}; {limit}")
    return raw


def load_file(path: str | Path, file: str) -> LoadedFile | Problem:
    """Read and parse `path`; `file` is the name used in messages (usually the path as the user gave it)."""
    raw = read_file(path, file)
    if isinstance(raw, Problem):
        return raw
    text = decode(raw, file)
    if isinstance(text, Problem):
        return text
    return parse_text(text, file)
