"""Run one ocpi-parties command in this process, timing every SQL statement it executes.

    python -m benchmarks.probe TIMINGS.json validate|plan|apply ARGS...

The command is `reconciler.cli.main`, exactly as the `ocpi-parties` console script runs it; the only addition
is a clock around `psycopg.Cursor.execute`. At exit, TIMINGS.json holds one `[statement, seconds]` pair per
statement (the statement's first 80 characters, whitespace folded), so the benchmark can tell how long the
location moves took inside an apply that it timed as a whole.

    python -m benchmarks.probe TIMINGS.json --load-files DIR

is the reference for loading the files: it reads and parses every YAML file in DIR with PyYAML's fastest
loader and does nothing else.
"""

from __future__ import annotations

import atexit
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml


def _head(query: Any, cursor: Any) -> str:
    text = query.as_string(cursor.connection) if hasattr(query, "as_string") else query
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return " ".join(str(text).split())[:80]


def _instrument(timings: list[tuple[str, float]]) -> None:
    import psycopg

    execute = psycopg.Cursor.execute

    def timed(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(self, query, *args, **kwargs)
        finally:
            timings.append((_head(query, self), time.perf_counter() - started))

    psycopg.Cursor.execute = timed  # type: ignore[method-assign]


def load_files(directory: Path) -> int:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loaded = 0
    for path in sorted(directory.glob("*.yaml")):
        yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # a safe loader
        loaded += 1
    return loaded


def main(argv: list[str]) -> None:
    out, args = Path(argv[0]), argv[1:]
    timings: list[tuple[str, float]] = []

    def write() -> None:
        out.write_text(json.dumps(timings))

    atexit.register(write)
    if args[0] == "--load-files":
        load_files(Path(args[1]))
        return
    _instrument(timings)
    from reconciler.cli import main as cli

    cli(args, prog_name="ocpi-parties")


if __name__ == "__main__":
    main(sys.argv[1:])
