"""docs/troubleshooting.md lists every message the tool can print when something goes wrong.

A static check of the source: every error the package constructs (ReconcilerError and each subclass of it,
found in the source, so a new module's errors are checked without touching this test) or rewords
(`error.reworded(...)`), every message that `map_error` composes, and every line written to standard error
with `click.echo(..., err=True)` or kept, as an argument given by name, to be written there later (starting
`error: ` or `warning: `). Each
message is reduced to its key, the first run of literal words (up to six) in it, without what is filled in
at run time; the key must appear on the page. Backticks and line breaks do not count on either side.
The problems that validate reports in party files are listed by their problem code, each with what to do.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PAGE = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
SOURCES = sorted((ROOT / "reconciler").glob("**/*.py"))


@dataclass(frozen=True)
class Message:
    where: str
    parts: tuple[str, ...]  # the literal runs of the message, in order

    @property
    def key(self) -> str:
        runs = [re.findall(r"\S+", part.replace("`", "")) for part in self.parts]
        words = next((run for run in runs if len(run) >= 2), next((run for run in runs if run), []))
        return " ".join(words[:6])


def _literals(node: ast.expr) -> list[str] | None:
    """The literal runs of a message: a string, an f-string, or several joined with +; None if it is none."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        runs, current = [], ""
        for value in node.values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                current += value.value
            else:
                runs.append(current)
                current = ""
        return [*runs, current]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literals(node.left), _literals(node.right)
        if left is not None and right is not None:
            return [*left[:-1], left[-1] + right[0], *right[1:]]
        return left or right
    return None


def _error_classes(trees: list[ast.Module]) -> set[str]:
    names = {"ReconcilerError"}
    grew = True
    while grew:
        found = {
            node.name
            for tree in trees
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef)
            and any(isinstance(base, ast.Name) and base.id in names for base in node.bases)
        }
        grew = not found <= names
        names |= found
    return names


def _called(function: ast.expr) -> set[str]:
    """The names a call may call: `f(...)`, `module.f(...)`, or either class of `(A if lost else B)(...)`."""
    if isinstance(function, ast.IfExp):
        return _called(function.body) | _called(function.orelse)
    return {function.id if isinstance(function, ast.Name) else getattr(function, "attr", "")}


def _kept_messages(node: ast.AST) -> list[ast.expr]:
    """Messages kept as data to be printed later: the arguments, given by name, that start as the lines on
    stderr do (`error: `, `warning: `)."""
    if not isinstance(node, ast.Call):
        return []
    found = []
    for keyword in node.keywords:
        parts = _literals(keyword.value)
        if parts and parts[0].startswith(("error: ", "warning: ")):
            found.append(keyword.value)
    return found


def _no_cover(source: list[str], node: ast.AST) -> bool:
    """Code that coverage is told never runs (the line itself, or the `if` just above it)."""
    line = getattr(node, "lineno", 1)
    return any("pragma: no cover" in text for text in source[max(line - 2, 0) : line])


def messages() -> Iterator[Message]:
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in SOURCES}
    errors = _error_classes(list(trees.values()))
    for path, tree in trees.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(tree):
            found: ast.expr | None = None
            if isinstance(node, ast.Call) and node.args:
                names = _called(node.func)
                to_stderr = any(
                    k.arg == "err" and getattr(k.value, "value", None) is True for k in node.keywords
                )
                if names & (errors | {"reworded"}) or ("echo" in names and to_stderr):
                    found = node.args[0]
            elif (
                path.name == "database.py"
                and isinstance(node, ast.Assign)
                and any(getattr(t, "id", "") == "message" for t in node.targets)
            ):
                found = node.value  # map_error composes its messages before it wraps them
            kept = _kept_messages(node) if found is None else []
            for message in [found] if found is not None else kept:
                parts = _literals(message)
                if parts is not None and not _no_cover(lines, node):
                    yield Message(f"{path.relative_to(ROOT)}:{message.lineno}", tuple(parts))


def _flat(text: str) -> str:
    return " ".join(text.replace("`", "").split())


ALL = list(messages())


def test_the_source_scan_finds_the_messages() -> None:
    keys = {m.key for m in ALL}
    assert len(ALL) >= 40
    assert "stale plan: the database changed since" in keys
    assert "another apply (or db migrate) is" in keys
    assert "was migrated by a newer ocpi-parties" in keys, "the key skips what is filled in at run time"
    assert all(m.key for m in ALL), [m.where for m in ALL if not m.key]


@pytest.mark.parametrize("message", ALL, ids=lambda m: m.key)
def test_every_message_is_on_the_troubleshooting_page(message: Message) -> None:
    assert _flat(message.key) in _flat(PAGE), (
        f"{message.where}: '{message.key}' is not in docs/troubleshooting.md"
    )


def test_every_problem_code_of_validate_says_what_to_do() -> None:
    from reconciler.model import PROBLEM_CODES

    section = PAGE.split("\n## Problems in party files\n", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, re.M)) == set(PROBLEM_CODES)


def test_the_exit_codes_on_the_page_are_the_tools() -> None:
    from reconciler.errors import ExitCode

    table = PAGE.split("\n## ", 1)[0]
    assert {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.M)} == {int(c) for c in ExitCode} - {
        0
    }
