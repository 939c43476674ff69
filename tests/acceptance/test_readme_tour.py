"""README's "A 5-minute tour" is real: each command runs, and prints what the README shows.

The commands and their expected output are read from the README's ```console blocks of that section, in
order: a line starting with `$ ` is a command (a `<<'EOF'` here-document takes the lines up to `EOF`), the
lines after it are what it prints, standard error and output together as a terminal shows them. They run
one after the other with bash in a fresh copy of the example repository (`parties/`, `schema/`), on a
fresh embedded database, with no OCPI_PARTIES_*, PG* or GITHUB_* variable set, as a newcomer would run them.
`.venv/bin/ocpi-parties` there starts this test's own interpreter.

What is normalised, because it differs from run to run, and nothing else:
- timestamps (`2026-12-01T20:09:46+00:00`, `2026-12-01 20:09:43`), on both sides;
- the copy's folder, shown in the README as /home/me/ocpi-parties;
- the user@host that history records when no actor is given, shown as me@laptop.

Two conventions of the README are applied: the line saying which database a command uses is shown only for
the first command, so it is dropped from the output of any command whose expected output lacks it; and a
line `...` stands for one or more lines that the README leaves out.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.connect import LIBPQ_VARIABLES

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SHOWN_FOLDER = "/home/me/ocpi-parties"
SHOWN_ACTOR = "me@laptop"
#: The commit of the checkout, as the README shows it (apply records it as the revision of the party files).
SHOWN_COMMIT = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
NOTICE = "ocpi-parties: using the embedded PostgreSQL database in "
_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[+-]\d\d:\d\d)?")


@dataclass(frozen=True)
class Step:
    command: str
    expected: str


def tour_section() -> str:
    section = README.split("\n## A 5-minute tour\n", 1)[1]
    return section.split("\n## ", 1)[0]


def tour_steps(text: str) -> list[Step]:
    """The commands of every ```console block, each with the lines it is expected to print."""
    found: list[Step] = []
    for block in re.findall(r"^```console\n(.*?)^```$", text, re.S | re.M):
        lines = block.splitlines()
        index = 0
        while index < len(lines):
            line = lines[index]
            assert line.startswith("$ "), f"output before any command: {line!r}"
            command = [line[2:]]
            index += 1
            heredoc = re.search(r"<<'(\w+)'$", line)
            if heredoc:
                end = lines.index(heredoc.group(1), index)
                command += [*lines[index:end], lines[end]]
                index = end + 1
            output = []
            while index < len(lines) and not lines[index].startswith("$ "):
                output.append(lines[index])
                index += 1
            found.append(Step("\n".join(command), "\n".join(output)))
    return found


def normalised(text: str) -> str:
    return _TIME.sub("<time>", text.rstrip("\n"))


def matches(actual: str, expected: str) -> bool:
    """Whether `actual` is `expected`, where a line `...` in `expected` stands for one or more lines."""
    pattern = "\n".join(r"(?:.*\n)*.*" if line == "..." else re.escape(line) for line in expected.split("\n"))
    return re.fullmatch(pattern, actual) is not None


@pytest.fixture
def checkout() -> Iterator[Path]:
    """A copy of the example repository in a folder others may traverse (as root, the server runs as another
    user that must reach the data folder inside it)."""
    folder = Path(tempfile.mkdtemp(prefix="ocpi-parties-tour-"))
    folder.chmod(0o755)
    try:
        for name in ("parties", "schema"):
            shutil.copytree(ROOT / name, folder / name)
        launcher = folder / ".venv" / "bin" / "ocpi-parties"
        launcher.parent.mkdir(parents=True)
        launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m reconciler "$@"\n', encoding="utf-8")
        launcher.chmod(0o755)
        # A checkout is a git work tree: apply records its commit as the revision of the party files.
        git = ["git", "-C", str(folder), "-c", "user.name=me", "-c", "user.email=me@example.com"]
        subprocess.run([*git, "init", "--quiet"], check=True)
        subprocess.run([*git, "add", "parties", "schema"], check=True)
        subprocess.run([*git, "commit", "--quiet", "-m", "the example"], check=True)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_tour_is_read_from_the_readme() -> None:
    commands = [step.command.split("\n")[0] for step in tour_steps(tour_section())]
    assert commands == [
        ".venv/bin/ocpi-parties db init --sample-data",
        ".venv/bin/ocpi-parties validate",
        ".venv/bin/ocpi-parties plan --out plan.json",
        ".venv/bin/ocpi-parties apply plan.json",
        ".venv/bin/ocpi-parties plan",
        "cat >> parties/ES-CPO.yaml <<'EOF'",
        ".venv/bin/ocpi-parties plan",
        ".venv/bin/ocpi-parties apply --auto-approve",
        ".venv/bin/ocpi-parties locations ES-CPO",
        ".venv/bin/ocpi-parties parties list",
        ".venv/bin/ocpi-parties history",
    ]


def test_the_matcher_takes_dots_for_left_out_lines_only() -> None:
    assert matches("a\nb\nc\nd", "a\n...\nd")
    assert not matches("a\nd", "a\n...\nd")
    assert not matches("a\nb\nc", "a\nb")
    assert not matches("a.b", "a\\.b")


def test_every_command_of_the_tour_prints_what_the_readme_shows(checkout: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in LIBPQ_VARIABLES and not k.startswith(("OCPI_PARTIES_", "PG", "GITHUB_"))
    }
    env["PYTHONUNBUFFERED"] = "1"  # standard error and output interleaved as on a terminal
    actor = f"{getpass.getuser()}@{socket.gethostname()}"
    steps = tour_steps(tour_section())
    for step in steps:
        done = subprocess.run(
            ["bash", "-c", step.command],
            cwd=checkout,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{step.command}\n{done.stdout}"
        commit = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        actual = (
            done.stdout.replace(str(checkout), SHOWN_FOLDER)
            .replace(actor, SHOWN_ACTOR)
            .replace(commit, SHOWN_COMMIT)
        )
        lines = actual.split("\n")
        uses_database = step.command.startswith(".venv/bin/") and not step.command.endswith(" validate")
        assert any(line.startswith(NOTICE) for line in lines) == uses_database, step.command
        if NOTICE not in step.expected:
            actual = "\n".join(line for line in lines if not line.startswith(NOTICE))
        assert matches(normalised(actual), normalised(step.expected)), (
            f"$ {step.command}\n--- README\n{step.expected}\n--- printed\n{actual}"
        )
