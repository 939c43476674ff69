"""What the files of a parties directory are called."""

from __future__ import annotations

import re

#: The file naming the default party.
DEFAULT_FILE = "default-party.yaml"
#: A party file: `<country_code>-<party_id>.yaml` (`.yml` is read only to say that it should be renamed).
PARTY_FILE = re.compile(r"^([A-Za-z]{2})-([A-Za-z0-9]{3})\.(yaml|yml)$", re.IGNORECASE)


def shown_path(directory: str, name: str) -> str:
    """How a file of the directory the user gave as `directory` is named in messages."""
    return f"{directory.rstrip('/')}/{name}" if directory not in ("", ".") else name
