"""The problems of one file, each reported where it stands in the file."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from reconciler.load import JsonPath, LoadedFile
from reconciler.model import Problem, Severity

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def format_path(path: JsonPath) -> str:
    """('roles', 0, 'business_details') -> '$.roles[0].business_details'."""
    text = "$"
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _NAME.fullmatch(part):
            text += f".{part}"
        else:
            text += f"[{json.dumps(part)}]"
    return text


@dataclass
class FileProblems:
    """The problems found in one loaded file so far, in the order found."""

    loaded: LoadedFile
    found: list[Problem] = field(default_factory=list)

    def add(
        self, path: JsonPath, code: str, message: str, *, key: bool = False, warning: bool = False
    ) -> None:
        """Report a problem at the value at `path` (at its key, with key=True)."""
        self.found.append(
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
        """Whether any of them is an error."""
        return any(p.severity is Severity.ERROR for p in self.found)
