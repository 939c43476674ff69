"""Checking many files in two processes gives what checking them one by one gives (validate/file.py)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from reconciler.validate import file as file_module
from reconciler.validate import validate_path
from reconciler.validate.file import check_file, check_files

EXAMPLES = Path(__file__).parents[1] / "examples"
CASES = sorted(p / "parties" for p in EXAMPLES.glob("*/*") if (p / "parties").is_dir())

pytestmark = pytest.mark.skipif(
    not file_module._forkable(), reason="needs Linux, two CPUs and no other thread"
)


def _jobs(directory: Path) -> list[tuple[str, str]]:
    return [(f"parties/{p.name}", str(p)) for p in sorted(directory.iterdir()) if p.is_file()]


@pytest.fixture
def parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every directory of two files or more is checked in two processes."""
    monkeypatch.setattr(file_module, "PARALLEL_FROM", 2)


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_a_directory_checked_in_two_processes_validates_as_in_one(
    case: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = validate_path(case, "parties")
    monkeypatch.setattr(file_module, "PARALLEL_FROM", 2)
    assert validate_path(case, "parties") == one


def test_many_files_valid_and_invalid_come_back_in_order(tmp_path: Path, parallel: None) -> None:
    for number in range(40):
        text = f"country_code: GB\nparty_id: A{number:02d}\nkind: hosted\nroles:\n  - role: CPO\n"
        if number % 7 == 0:
            text += "token: s3cret\n"  # a problem, reported where it stands
        (tmp_path / f"GB-A{number:02d}.yaml").write_text(text, encoding="utf-8")
    jobs = _jobs(tmp_path)
    assert check_files(jobs) == [check_file(file, path=path) for file, path in jobs]


def test_when_the_copy_fails_this_process_checks_its_half(
    tmp_path: Path, parallel: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(6):
        (tmp_path / f"GB-B{number:02d}.yaml").write_text(f"country_code: GB\nparty_id: B{number:02d}\n")
    jobs = _jobs(tmp_path)

    def broken(_: object) -> bytes:
        raise RuntimeError("the copy fails")

    monkeypatch.setattr(file_module, "_payload", broken)
    assert check_files(jobs) == [check_file(file, path=path) for file, path in jobs]
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # the copy was reaped: no child is left


def test_without_a_process_to_spare_this_process_checks_them_all(
    tmp_path: Path, parallel: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(4):
        (tmp_path / f"GB-D{number:02d}.yaml").write_text(f"country_code: GB\nparty_id: D{number:02d}\n")
    jobs = _jobs(tmp_path)

    def no_process(*_: object) -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_process)
    open_before = len(os.listdir("/proc/self/fd"))
    assert check_files(jobs) == [check_file(file, path=path) for file, path in jobs]
    assert len(os.listdir("/proc/self/fd")) == open_before  # the pipe was closed again


def test_a_process_with_another_thread_checks_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    started = threading.Event()
    stop = threading.Event()

    def wait() -> None:
        started.set()
        stop.wait()

    other = threading.Thread(target=wait)
    other.start()
    try:
        started.wait()
        assert not file_module._forkable()
    finally:
        stop.set()
        other.join()


def test_a_few_files_are_checked_in_this_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "GB-C01.yaml").write_text("country_code: GB\nparty_id: C01\n")

    def no_fork(*_: object) -> None:
        raise AssertionError("forked for one file")

    monkeypatch.setattr(file_module, "_forked", no_fork)
    assert check_files(_jobs(tmp_path)) == [check_file("parties/GB-C01.yaml", path=tmp_path / "GB-C01.yaml")]


def test_a_caller_that_ignores_sigchld_gets_the_same_results(tmp_path: Path, parallel: None) -> None:
    """With SIGCHLD ignored the kernel reaps the copy itself: its results are not trusted, this process
    checks the second half too."""
    for number in range(6):
        (tmp_path / f"GB-E{number:02d}.yaml").write_text(f"country_code: GB\nparty_id: E{number:02d}\n")
    jobs = _jobs(tmp_path)
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        assert check_files(jobs) == [check_file(file, path=path) for file, path in jobs]
    finally:
        signal.signal(signal.SIGCHLD, previous)


def test_the_signal_mask_is_put_back_as_it_was(tmp_path: Path, parallel: None) -> None:
    for number in range(4):
        (tmp_path / f"GB-F{number:02d}.yaml").write_text(f"country_code: GB\nparty_id: F{number:02d}\n")
    jobs = _jobs(tmp_path)
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    check_files(jobs)
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # a caller that holds it back
    try:
        check_files(jobs)
        assert signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
