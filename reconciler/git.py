"""The revision of the party files when they are in a git work tree: what `apply` records outside CI."""

from __future__ import annotations

import subprocess
from pathlib import Path

#: git answers these in milliseconds; a hung git (a network file system, say) must not hold up an apply.
_TIMEOUT = 10


def _git(path: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", "-C", str(path), *args],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None


def revision(path: Path) -> str | None:
    """`git rev-parse HEAD` of the work tree holding `path`, with `-dirty` when anything under `path` is not
    committed (changed, staged or untracked): what was applied is then not that commit. None when git is not
    installed, `path` is in no work tree, or the repository has no commit yet."""
    head = _git(path, "rev-parse", "--verify", "--quiet", "HEAD")
    if head is None or head.returncode != 0 or not head.stdout.strip():
        return None
    status = _git(path, "status", "--porcelain", "--", ".")
    dirty = status is not None and status.returncode == 0 and bool(status.stdout.strip())
    return head.stdout.strip() + ("-dirty" if dirty else "")
