"""Running a command with its standard output on a real pseudo-terminal, as a person's terminal is."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path


def on_terminal(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run `command` with stdout on a pseudo-terminal (stdin and stderr closed); what it printed there."""
    main, child = pty.openpty()
    process = subprocess.Popen(
        command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=child, stderr=subprocess.DEVNULL, env=env
    )
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(main)
    return b"".join(chunks).decode()
