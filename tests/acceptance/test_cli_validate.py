"""`ocpi-parties validate` end to end, as a user runs it: real processes, every format and exit code."""

from __future__ import annotations

import gc
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import terminal
import yaml
from conftest import Run

import reconciler
from reconciler import cli as cli_module
from reconciler.errors import ExitCode, ReconcilerError
from reconciler.model import ROLES

ROOT = Path(__file__).parents[2]
EXE = shutil.which("ocpi-parties", path=str(Path(sys.executable).parent)) or "ocpi-parties"
BAD = ROOT / "tests" / "examples" / "invalid"


def run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_shipped_example_is_valid() -> None:
    done = run("validate", "parties/")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "5 files checked: 0 errors, 0 warnings. Valid.\n"


def test_default_path_is_parties() -> None:
    assert run("validate").stdout == "5 files checked: 0 errors, 0 warnings. Valid.\n"


def test_python_dash_m_runs_the_same_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "parties"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "5 files checked: 0 errors, 0 warnings. Valid.\n")
    version = subprocess.run(
        [sys.executable, "-m", "reconciler", "--version"], capture_output=True, text=True, check=False
    )
    # The version is written once, in reconciler/__init__.py; the installed metadata reads it from there.
    assert version.stdout == f"ocpi-parties, version {importlib.metadata.version('ocpi-parties')}\n"
    assert version.stdout == f"ocpi-parties, version {reconciler.__version__}\n"


def test_invalid_text_exit_1() -> None:
    done = run("validate", "parties", cwd=BAD / "website-not-url")
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "parties/GB-ABC.yaml:6:12: $.business_details.website: 'htp:/x' is not a 'uri'",
        "3 files checked: 1 error, 0 warnings. Invalid.",
    ]


def test_json_format_is_stable() -> None:
    done = run("validate", "--format", "json", "parties", cwd=BAD / "duplicate-role")
    assert done.returncode == 1
    document = json.loads(done.stdout)
    assert document == {
        "format_version": 1,
        "valid": False,
        "files_checked": 3,
        "error_count": 1,
        "warning_count": 1,
        "problems": [
            {
                "severity": "warning",
                "code": "case",
                "file": "parties/GB-ABC.yaml",
                "line": 9,
                "column": 11,
                "path": "$.roles[2].role",
                "message": "'cpo' is read as 'CPO': OCPI compares it without regard to case; "
                "write it in upper case",
            },
            {
                "severity": "error",
                "code": "duplicate-role",
                "file": "parties/GB-ABC.yaml",
                "line": 9,
                "column": 11,
                "path": "$.roles[2].role",
                "message": "role CPO is declared twice (first at line 7); "
                "each (role, country_code, party_id) is one database row",
            },
        ],
    }


def test_json_format_for_a_file_level_problem_has_null_position() -> None:
    document = json.loads(run("validate", "--format", "json", "parties", cwd=BAD / "unknown-file").stdout)
    assert document["problems"][0]["line"] is None and document["problems"][0]["path"] is None


def test_json_valid() -> None:
    document = json.loads(run("validate", "--format", "json").stdout)
    assert (document["valid"], document["problems"], document["files_checked"]) == (True, [], 5)


def test_github_format_annotates_inline_and_escapes() -> None:
    done = run("validate", "--format", "github", "parties", cwd=BAD / "website-not-url")
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        "::error file=parties/GB-ABC.yaml,line=6,col=12,title=ocpi-parties validate (schema)::"
        "$.business_details.website: 'htp:/x' is not a 'uri'"
    )
    warning = run(
        "validate", "--format", "github", "parties", cwd=ROOT / "tests/examples/valid/lower-case-codes"
    )
    assert warning.returncode == 0
    assert warning.stdout.startswith("::warning file=parties/GB-ABC.yaml,line=1,col=15,")


def test_github_escapes_newlines_and_percent(tmp_path: Path) -> None:
    from reconciler.model import Problem, Source
    from reconciler.output.validation import render_github
    from reconciler.validate import ValidationResult

    problem = Problem(Source("a,b:c.yaml", 1, 2), "schema", "100% bad\nsecond line")
    rendered = render_github(ValidationResult((problem,), 1))
    assert rendered.splitlines()[0] == (
        "::error file=a%2Cb%3Ac.yaml,line=1,col=2,title=ocpi-parties validate (schema)::"
        "100%25 bad%0Asecond line"
    )


def test_strict_turns_warnings_into_failure() -> None:
    case = ROOT / "tests/examples/valid/lower-case-codes"
    assert run("validate", "parties", cwd=case).returncode == 0
    strict = run("validate", "--strict", "parties", cwd=case)
    assert strict.returncode == 1
    assert strict.stdout.endswith("0 errors, 5 warnings. Invalid.\n")
    assert (
        json.loads(run("validate", "--strict", "--format", "json", "parties", cwd=case).stdout)["valid"]
        is False
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "no-such-dir"], "error: no-such-dir: no such file or directory"),
        (["validate", "--format", "xml"], "Invalid value for '--format'"),
        (["validate", "--bogus"], "No such option '--bogus'"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_help_documents_exit_codes() -> None:
    for args in (["--help"], ["validate", "--help"]):
        out = run(*args).stdout
        for line in ("0   success", "1   invalid input", "2   usage error", "70  internal error"):
            assert line in out


def test_top_level_help_lists_every_exit_code() -> None:
    out = run("--help").stdout
    listed = {int(code) for code in re.findall(r"^ +(\d+) +\S", out, re.M)}
    assert listed == {int(code) for code in ExitCode}
    assert "4   apply: another apply" in out


def test_unexpected_error_exit_70_and_points_to_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli_module, "validate_path", broken)
    with pytest.raises(SystemExit) as exited:
        cli_module.main(["validate", str(ROOT / "parties")])
    assert exited.value.code == 70
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: boom" in err and "--traceback" in err
    with pytest.raises(RuntimeError, match="boom"):
        cli_module.main(["--traceback", "validate", str(ROOT / "parties")])
    with pytest.raises(RuntimeError, match="boom"):  # after the command too, where people add it
        cli_module.main(["validate", str(ROOT / "parties"), "--traceback"])


def test_traceback_shows_an_expected_error_with_its_cause(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unreadable(*_: object) -> None:
        try:
            raise OSError("the disk is gone")
        except OSError as error:
            raise ReconcilerError("cannot read the parties") from error

    monkeypatch.setattr(cli_module, "validate_path", unreadable)
    with pytest.raises(SystemExit) as exited:
        cli_module.main(["validate", str(ROOT / "parties")])
    assert exited.value.code == ExitCode.INVALID
    assert capsys.readouterr().err == "error: cannot read the parties\n"
    for args in (["--traceback", "validate", "parties"], ["validate", "parties", "--traceback"]):
        with pytest.raises(SystemExit) as exited:
            cli_module.main(args)
        assert exited.value.code == ExitCode.INVALID
        err = capsys.readouterr().err
        assert "OSError: the disk is gone" in err and "direct cause of the following exception" in err
        assert err.endswith("ReconcilerError: cannot read the parties\nerror: cannot read the parties\n")


def test_the_program_options_stand_after_a_command_of_a_group_too(run: Run) -> None:
    code, _, err = run(
        "db", "status", "--no-color", "--traceback", "--database-url", "postgresql://u@127.0.0.1:1/x"
    )
    assert code == ExitCode.DATABASE
    assert "Traceback (most recent call last)" in err and err.endswith("Connection refused\n")


def _on_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run with stdout on a pseudo-terminal and return what it printed."""
    environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | env
    return terminal.on_terminal([EXE, *args], cwd, environment)


def test_colour_only_on_a_terminal_and_never_with_no_color() -> None:
    case = BAD / "website-not-url"
    assert "\x1b[" in _on_terminal(["validate", "parties"], case, {})
    assert "\x1b[" not in _on_terminal(["validate", "parties"], case, {"NO_COLOR": "1"})
    assert "\x1b[" not in run("validate", "parties", cwd=case).stdout


def test_output_into_a_closed_pipe_is_quiet() -> None:
    done = subprocess.run(
        f"'{EXE}' validate --format json parties | head -c 1",
        shell=True,
        cwd=BAD / "many-problems-one-file",
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Traceback" not in done.stderr


def test_pre_commit_hook_validates_a_party_repository(tmp_path: Path) -> None:
    """The hook runs as pre-commit runs it: its entry, split like a shell, in the party repository's root."""
    hooks = {
        hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text("utf-8"))
    }
    hook = hooks["ocpi-parties-validate"]
    assert hook["pass_filenames"] is False
    watched = re.compile(hook["files"])
    assert watched.search("parties/GB-TWK.yaml") and watched.search("schema/party.schema.json")
    assert not watched.search("README.md")
    program, *args = shlex.split(hook["entry"])
    assert program == "ocpi-parties"
    shutil.copytree(ROOT / "parties", tmp_path / "parties")
    assert run(*args, cwd=tmp_path).returncode == 0
    (tmp_path / "parties" / "GB-TWK.yaml").write_text("country_code: GB\n", encoding="utf-8")
    failed = run(*args, cwd=tmp_path)
    assert failed.returncode == 1 and "parties/GB-TWK.yaml" in failed.stdout


def test_a_command_collects_cycles_less_often_and_restores_the_threshold(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = gc.get_threshold()
    during: list[tuple[int, ...]] = []
    real_validate_path = cli_module.validate_path

    def validate_path(*args: Any, **kwargs: Any) -> Any:
        during.append(gc.get_threshold())
        return real_validate_path(*args, **kwargs)

    monkeypatch.setattr(cli_module, "validate_path", validate_path)
    code, _, _ = run("validate", str(ROOT / "parties"))
    assert code == 0
    assert during == [(cli_module.COLLECT_EVERY, *before[1:])]
    assert gc.get_threshold() == before


@pytest.mark.parametrize("command", [("parties", "list"), ("import",)])
def test_role_options_list_the_roles_in_upper_case_and_take_any_case(command: tuple[str, ...]) -> None:
    out = run(*command, "--help").stdout
    assert "--role [CPO|EMSP|HUB|NAP|NSP|OTHER|SCSP]" in out
    choice = cli_module._RoleChoice(ROLES, case_sensitive=False)
    assert [choice.convert(text, None, None) for text in ("emsp", "Cpo", "SCSP")] == ["EMSP", "CPO", "SCSP"]


def test_ctrl_c_while_two_processes_check_the_files_ends_both(tmp_path: Path) -> None:
    """From PARALLEL_FROM files on, a forked copy checks half of them: Ctrl-C (SIGINT to the process group,
    as a terminal sends it) ends both, with the usual message and exit code, and leaves no process behind."""
    import signal
    import time

    from reconciler.validate import file as file_module

    if not file_module._forkable():
        pytest.skip("needs Linux and two CPUs")
    parties = tmp_path / "parties"
    parties.mkdir()
    (parties / "default-party.yaml").write_text("default_party: GB-A0000\n")
    body = "kind: hosted\nroles:\n  - role: CPO\n    business_details:\n      name: Party {n}\n"
    for n in range(4 * file_module.PARALLEL_FROM):
        (parties / f"GB-A{n:04d}.yaml").write_text(
            f"country_code: GB\nparty_id: A{n:04d}\n" + body.format(n=n)
        )
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "validate", str(parties)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(_children(process.pid)) == 0 and process.poll() is None:
        time.sleep(0.01)  # until the copy is checking its half
    copies = _children(process.pid)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert copies, "no forked copy was seen"
    assert process.returncode == ExitCode.INTERRUPTED, err.decode()
    assert err.decode().strip().splitlines()[-1].startswith("error: interrupted")
    for pid in copies:  # ended and reaped: no process left, not even a zombie
        assert not Path(f"/proc/{pid}").exists()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []
