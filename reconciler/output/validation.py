"""Render the result of `validate` as text, JSON or GitHub workflow commands. Only strings; no printing."""

from __future__ import annotations

import json

from reconciler.model import Problem, Severity
from reconciler.output import Style, plain
from reconciler.validate import ValidationResult

#: Version of the JSON document `validate --format json` prints. Raised on any incompatible change.
JSON_FORMAT_VERSION = 1


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def summary(result: ValidationResult, *, strict: bool = False) -> str:
    errors, warnings = len(result.errors), len(result.warnings)
    counts = f"{_plural(result.files_checked, 'file')} checked: {_plural(errors, 'error')}, " + _plural(
        warnings, "warning"
    )
    if errors or (strict and warnings):
        return f"{counts}. Invalid."
    return f"{counts}. Valid."


def _location(problem: Problem) -> str:
    return f"{problem.source}: {problem.path}: " if problem.path else f"{problem.source}: "


def render_text(result: ValidationResult, *, strict: bool = False, style: Style = plain) -> str:
    """`file:line:col: $.path: message`, one problem a line, then a summary line."""
    lines = []
    for problem in result.problems:
        if problem.severity is Severity.WARNING:
            lines.append(f"{_location(problem)}{style('warning:', 'yellow')} {problem.message}")
        else:
            lines.append(f"{_location(problem)}{style(problem.message, 'red')}")
    lines.append(summary(result, strict=strict))
    return "\n".join(lines)


def render_json(result: ValidationResult, *, strict: bool = False) -> str:
    """A stable document described in the README ("validate --format json")."""
    document = {
        "format_version": JSON_FORMAT_VERSION,
        "valid": not result.errors and not (strict and result.warnings),
        "files_checked": result.files_checked,
        "error_count": len(result.errors),
        "warning_count": len(result.warnings),
        "problems": [
            {
                "severity": problem.severity.value,
                "code": problem.code,
                "file": problem.source.file,
                "line": problem.source.line or None,
                "column": problem.source.column or None,
                "path": problem.path or None,
                "message": problem.message,
            }
            for problem in result.problems
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(result: ValidationResult, *, strict: bool = False) -> str:
    """GitHub Actions workflow commands, so each problem shows inline on the pull request's files."""
    lines = []
    for problem in result.problems:
        level = "warning" if problem.severity is Severity.WARNING and not strict else "error"
        properties = [f"file={_escape_property(problem.source.file)}"]
        if problem.source.line:
            properties.append(f"line={problem.source.line}")
            properties.append(f"col={problem.source.column}")
        properties.append(f"title={_escape_property(f'ocpi-parties validate ({problem.code})')}")
        message = f"{problem.path}: {problem.message}" if problem.path else problem.message
        lines.append(f"::{level} {','.join(properties)}::{_escape_data(message)}")
    lines.append(summary(result, strict=strict))
    return "\n".join(lines)
