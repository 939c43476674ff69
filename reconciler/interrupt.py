"""Holding Ctrl-C back around code that must not be interrupted halfway.

A Ctrl-C that arrives while it is held back waits, and is raised as KeyboardInterrupt as soon as the block
ends. Where the platform has no signal masks (Windows), nothing is held back.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def ctrl_c_held() -> Iterator[None]:
    """SIGINT blocked for this thread inside the block; the mask found is put back on leaving."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - Windows
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
