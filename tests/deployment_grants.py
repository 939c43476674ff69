"""The database roles and grants of docs/deployment.md, as its SQL block writes them.

Shared by the deployment test (tests/acceptance/test_deployment.py) and the least-privilege tests
(tests/reliability/test_privileges.py), so each can run alone.
"""

from __future__ import annotations

import re
from pathlib import Path

DEPLOYMENT = (Path(__file__).parent.parent / "docs" / "deployment.md").read_text(encoding="utf-8")
ROLES = ("ocpi_parties_plan", "ocpi_parties_apply")


def grants_block() -> str:
    """The SQL block of "The database roles and their grants", as written."""
    section = DEPLOYMENT.split("## The database roles and their grants", 1)[1]
    block = re.search(r"```sql\n(.*?)```", section, re.S)
    assert block is not None
    return block.group(1)
