"""What the history records beside the changes: the pull request (migration 0007) and the revision, from
--revision or GITHUB_SHA, else from git when the party files are in a git work tree."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import Run

from reconciler import git
from reconciler.database import Connection

ROOT = Path(__file__).parents[2]


def _git(repository: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repository), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository whose one commit holds the shipped parties, as the working directory."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    for variable in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "parties", tmp_path / "parties")
    (tmp_path / "README.md").write_text("party repository\n")
    _git(tmp_path, "init", "--quiet")
    _git(tmp_path, "add", ".")
    _git(
        tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "parties"
    )
    return tmp_path


def _recorded(connection: Connection) -> list[tuple[object, ...]]:
    return connection.execute(
        "SELECT revision, pull_request_number, pull_request_url FROM reconciler_apply_history ORDER BY id"
    ).fetchall()


def test_the_revision_is_heads_commit_and_dirty_only_for_changes_under_the_path(repository: Path) -> None:
    head = _git(repository, "rev-parse", "HEAD")
    assert git.revision(repository / "parties") == head
    (repository / "README.md").write_text("changed outside the parties directory\n")
    assert git.revision(repository / "parties") == head
    (repository / "parties" / "NL-VLT.yaml").write_text("# edited, not committed\n")
    assert git.revision(repository / "parties") == f"{head}-dirty"
    _git(repository, "checkout", "--quiet", "--", "parties")
    (repository / "parties" / "XX-NEW.yaml").write_text("# untracked\n")
    assert git.revision(repository / "parties") == f"{head}-dirty"


def test_no_revision_outside_a_work_tree_or_without_git(
    tmp_path: Path, repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    assert git.revision(outside) is None
    _git(repository, "init", "--quiet", str(repository / "empty"))
    assert git.revision(repository / "empty") is None  # a repository without a commit
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    assert git.revision(repository / "parties") is None


def test_apply_records_the_git_revision_and_the_pull_request(
    run: Run, live: Connection, database_url: str, repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = _git(repository, "rev-parse", "HEAD")
    monkeypatch.setenv("OCPI_PARTIES_PULL_REQUEST", "42")
    monkeypatch.setenv("OCPI_PARTIES_PULL_REQUEST_URL", "https://github.com/example/parties/pull/42")
    code, _, err = run("apply", "parties", "--auto-approve", "--database-url", database_url)
    assert code == 0, err
    assert _recorded(live) == [(head, 42, "https://github.com/example/parties/pull/42")]


def test_revision_option_wins_over_git_and_a_dirty_tree_is_recorded(
    run: Run, live: Connection, database_url: str, repository: Path
) -> None:
    head = _git(repository, "rev-parse", "HEAD")
    vlt = repository / "parties" / "NL-VLT.yaml"
    vlt.write_text(vlt.read_text().replace("name: Voltkaart", "name: Voltkaart B.V."))
    assert run("apply", "--auto-approve", "--database-url", database_url, "--revision", "v1")[0] == 0
    vlt.write_text(vlt.read_text().replace("name: Voltkaart B.V.", "name: Voltkaart N.V."))
    assert run("apply", "--auto-approve", "--database-url", database_url)[0] == 0
    assert _recorded(live) == [("v1", None, None), (f"{head}-dirty", None, None)]


def test_a_pull_request_number_must_be_a_positive_number(run: Run, database_url: str) -> None:
    code, _, err = run("apply", "--pull-request", "x", "--auto-approve", "--database-url", database_url)
    assert code == 2 and "--pull-request" in err
