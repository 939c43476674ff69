"""Paths the user gives and paths the parties directory holds: what is read, what is written, what refused."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from conftest import Run

from reconciler.database import Connection
from reconciler.planfile import PLAN_FILE_VERSION, load
from reconciler.validate import validate_path

ROOT = Path(__file__).parents[2]


# plan --out


@pytest.mark.parametrize("kind", ["symlink", "fifo", "device"])
def test_plan_out_refuses_what_is_not_a_regular_file(
    run: Run, connection: Connection, database_url: str, workdir: Path, kind: str
) -> None:
    """The rename that saves a plan would replace a link, a pipe or (as root) /dev/stdout with a file."""
    target = workdir / "plan.json"
    if kind == "symlink":
        (workdir / "elsewhere.json").write_text("keep me\n")
        target.symlink_to("elsewhere.json")
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        # A device node of its own (like /dev/null): never the system's, which an unfixed plan replaced.
        try:
            os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("creating a device node needs root")
    code, out, err = run("plan", "--database-url", database_url, "--out", str(target))
    assert code == 2 and out == ""
    what = {
        "symlink": "a symbolic link",
        "fifo": "a device, pipe or socket",
        "device": "a device, pipe or socket",
    }
    assert f"error: --out {target} is {what[kind]}, not a regular file" in err
    if kind == "symlink":
        assert target.is_symlink() and (workdir / "elsewhere.json").read_text() == "keep me\n"
    elif kind == "fifo":
        assert target.is_fifo()
    else:
        assert target.is_char_device()
    assert not [p for p in workdir.iterdir() if p.name.endswith(".tmp")]


def test_plan_out_replaces_a_regular_file(
    run: Run, connection: Connection, database_url: str, workdir: Path
) -> None:
    (workdir / "plan.json").write_text("old\n")
    assert run("plan", "--database-url", database_url, "--out", "plan.json")[0] == 0
    assert json.loads((workdir / "plan.json").read_text())["plan_file_version"] == PLAN_FILE_VERSION
    assert oct((workdir / "plan.json").stat().st_mode & 0o777) != oct(0o600)
    assert sorted(p.name for p in workdir.iterdir()) == ["parties", "plan.json"]


# a plan made from a path holding ':'


@pytest.mark.parametrize("folder", ["team:a", "C:\\work"])
def test_a_plan_from_a_path_with_a_colon_applies(
    run: Run, connection: Connection, database_url: str, workdir: Path, folder: str
) -> None:
    (workdir / folder).mkdir()
    shutil.move(workdir / "parties", workdir / folder / "parties")
    parties = f"{folder}/parties"
    code, _, err = run("plan", parties, "--database-url", database_url, "--out", "plan.json")
    assert code == 0, err
    saved = load(workdir / "plan.json")
    assert saved.desired == validate_path(workdir / parties, parties).state
    assert saved.desired.default_source.file == f"{parties}/default-party.yaml"
    code, out, err = run("apply", "plan.json", "--database-url", database_url)
    assert code == 0, err
    assert "Apply complete" in out


def test_a_plan_file_stores_sources_as_objects(run: Run, workdir: Path, tmp_path: Path) -> None:
    from reconciler.planfile import save

    state = validate_path(workdir / "parties", "parties").state
    assert state is not None
    save(
        tmp_path / "plan.json",
        desired=state,
        fingerprint="f",
        allow_delete=False,
        revision=None,
        created_at="2026-01-01T00:00:00+00:00",
        rendered={},
    )
    document = json.loads((tmp_path / "plan.json").read_text())
    assert PLAN_FILE_VERSION == 3
    assert document["desired"]["default_source"] == {
        "file": "parties/default-party.yaml",
        "line": 3,
        "column": 16,
    }


# the wrong kind of path


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
@pytest.mark.parametrize("command", ["validate", "plan", "apply", "fmt"])
def test_a_device_is_a_usage_error(run: Run, workdir: Path, command: str, device: str) -> None:
    """fmt too: /dev/zero, read as a file, never ends."""
    code, out, err = run(command, device)
    assert code == 2 and out == ""
    assert f"error: {device} is neither a party file nor a parties directory" in err


@pytest.mark.parametrize("command", ["validate", "fmt"])
def test_a_fifo_is_a_usage_error(run: Run, workdir: Path, command: str) -> None:
    os.mkfifo(workdir / "pipe")
    code, out, err = run(command, "pipe")
    assert code == 2 and out == ""
    assert "error: pipe is neither a party file nor a parties directory (a device, pipe or socket)" in err


def test_plan_of_a_party_file_asks_for_the_directory(run: Run, workdir: Path) -> None:
    code, out, err = run("plan", "parties/GB-TWK.yaml")
    assert code == 2 and out == ""
    assert "error: parties/GB-TWK.yaml is a file: plan and apply need the parties directory" in err
    assert "invalid (0 errors)" not in err


def test_apply_of_a_party_file_asks_for_the_directory(run: Run, workdir: Path) -> None:
    code, out, err = run("apply", "parties/GB-TWK.yaml", "--auto-approve")
    assert code == 1 and out == ""
    assert (
        "error: parties/GB-TWK.yaml is not a plan file written by `ocpi-parties plan --out`: apply takes "
        "such a plan file, or the parties directory (default: parties/), never a single party file"
    ) in err


# symbolic links in the parties directory


def _codes(parties: Path) -> dict[str, tuple[str, str]]:
    result = validate_path(parties, "parties")
    return {p.source.file: (p.code, p.message) for p in result.problems}


def test_a_broken_or_looping_link_is_unreadable(workdir: Path) -> None:
    parties = workdir / "parties"
    (parties / "DE-BRK.yaml").symlink_to("DE-NOT.yaml")
    (parties / "DE-LOP.yaml").symlink_to("DE-LOP.yaml")
    codes = _codes(parties)
    assert codes["parties/DE-BRK.yaml"][0] == "unreadable"
    assert codes["parties/DE-LOP.yaml"][0] == "unreadable"
    assert "the symbolic link is broken" in codes["parties/DE-BRK.yaml"][1]


def test_a_link_out_of_the_repository_is_not_read(
    workdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    parties = workdir / "parties"
    (parties / "DE-PRC.yaml").symlink_to("/proc/self/status")
    outside = tmp_path_factory.mktemp("outside") / "DE-OUT.yaml"
    outside.write_text((parties / "GB-TWK.yaml").read_text().replace("GB", "DE").replace("TWK", "OUT"))
    (parties / "DE-OUT.yaml").symlink_to(outside)
    result = validate_path(parties, "parties")
    codes = {p.source.file: (p.code, p.message) for p in result.problems}
    for name in ("DE-PRC.yaml", "DE-OUT.yaml"):
        code, message = codes[f"parties/{name}"]
        assert code == "unreadable"
        assert message.startswith("not read: the symbolic link leads out of the repository")
    assert not any("VmRSS" in p.message or "Pid" in p.message for p in result.problems)


def test_a_link_inside_the_repository_is_read(workdir: Path) -> None:
    shared = workdir / "shared"
    shared.mkdir()
    (workdir / "parties" / "GB-TWK.yaml").rename(shared / "GB-TWK.yaml")
    (workdir / "parties" / "GB-TWK.yaml").symlink_to(shared / "GB-TWK.yaml")
    assert validate_path(workdir / "parties", "parties").state is not None
