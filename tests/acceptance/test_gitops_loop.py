"""The GitOps loop around the workflows: apply only the reviewed plan and report it on the pull request
(apply.yml), catch drift on a schedule with one issue (drift.yml), and tell reviewers what happens next.

The scripts of actions/github-script run under node against a recorded GitHub API double: a fake `github`
that serves canned responses and records every request, checked request by request (no network). The
shell steps run as a runner runs them, against a test database. The steps that need `apply --if-same-as`
are skipped while the CLI does not have it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from maeve_sql import save_party
from test_workflows import BIN, ROOT, run_step, step, tool, workflow

from reconciler import cli
from reconciler.connect import LIBPQ_VARIABLES
from reconciler.database import Connection

SCRIPTS = ROOT / ".github" / "scripts"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


def _has_if_same_as() -> bool:
    apply = cli.cli.commands["apply"]
    return any("--if-same-as" in p.opts for p in apply.params)


needs_if_same_as = pytest.mark.skipif(
    not _has_if_same_as(), reason="the CLI has no `apply --if-same-as` yet (issue 17, CLI part)"
)

# ---------------------------------------------------------------------------------------------- linters


@pytest.mark.parametrize("name", ["apply.yml", "drift.yml"])
def test_the_new_workflows_are_clean_for_actionlint_and_githubs_schema(name: str) -> None:
    path = str(ROOT / ".github" / "workflows" / name)
    for command in (
        [tool("actionlint"), "-shellcheck=", "-pyflakes=", "-no-color", path],
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", path],
    ):
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_apply_asks_only_for_the_permissions_it_uses() -> None:
    apply = workflow("apply.yml")
    assert apply["permissions"] == {"contents": "read", "actions": "read", "pull-requests": "write"}
    download = step(apply, "Download the reviewed plan")
    assert download["uses"].startswith("actions/download-artifact@")
    # The artifact plan.yml uploads, from the run the script found.
    plan_upload = step(workflow("plan.yml"), "Keep the plan file")["with"]
    assert download["with"]["name"] == plan_upload["name"] == "ocpi-parties-plan"
    assert download["with"]["run-id"] == "${{ steps.reviewed.outputs.run-id }}"
    script = step(apply, "Apply")["run"]
    assert "--if-same-as" in script and '--report "$out/report.json"' in script
    assert '--pull-request "$PULL_REQUEST" --pull-request-url "$PULL_REQUEST_URL"' in script
    assert step(apply, "Report on the pull request")["if"].startswith("always() && ")
    assert step(apply, "Fail unless the plan was applied")["if"] == "steps.apply.outputs.exitcode != '0'"


def test_drift_runs_daily_and_by_hand_with_the_read_role_and_may_only_write_issues() -> None:
    drift = workflow("drift.yml")
    assert set(drift["on"]) == {"schedule", "workflow_dispatch"}
    (cron,) = drift["on"]["schedule"]
    minute, hour, *rest = cron["cron"].split()
    assert minute.isdigit() and hour.isdigit() and rest == ["*", "*", "*"]
    assert drift["permissions"] == {"contents": "read", "issues": "write"}
    plan = step(drift, "Plan")
    assert plan["env"]["OCPI_PARTIES_DATABASE_URL"] == "${{ secrets.OCPI_PARTIES_PLAN_DATABASE_URL }}"
    assert "--format markdown --detailed-exitcode" in plan["run"]
    issue = step(drift, "Open, update or close")
    assert issue["if"] == "steps.plan.outputs.exitcode == '0' || steps.plan.outputs.exitcode == '2'"
    assert step(drift, "Fail unless")["run"].rstrip().endswith("exit 1")


# ---------------------------------------------------------------------------------------------- the double

HARNESS = """
const calls = [];
const outputs = {};
const log = [];
const responses = JSON.parse(process.env.RESPONSES);
const endpoint = (name) => {
  const method = async (args) => {
    calls.push([name, args]);
    const queue = responses[name];
    if (!queue || queue.length === 0) throw new Error(`unexpected request ${name}`);
    return { data: queue.shift() };
  };
  method.endpoint = name;
  return method;
};
const group = (prefix) => new Proxy({}, { get: (_, name) => endpoint(`${prefix}.${String(name)}`) });
const github = {
  rest: new Proxy({}, { get: (_, prefix) => group(String(prefix)) }),
  // Octokit's paginate: every page's items in one list (workflow_runs and artifacts unwrapped).
  paginate: async (method, args) => {
    const { data } = await method(args);
    return Array.isArray(data) ? data : data.workflow_runs || data.artifacts || data.items;
  },
};
const context = Object.assign({
  serverUrl: 'https://github.example', repo: { owner: 'o', repo: 'r' }, runId: 7,
  sha: 'fedcba9876543210fedc', eventName: 'push', issue: { number: 12 },
  payload: { pull_request: { head: { sha: '0123456789abcdef' } } },
}, JSON.parse(process.env.CONTEXT));
const core = {
  info: (m) => log.push(['info', m]), warning: (m) => log.push(['warning', m]),
  setOutput: (k, v) => { outputs[k] = v; }, setFailed: (m) => log.push(['failed', m]),
};
require(process.env.SCRIPT)({ github, context, core }, JSON.parse(process.env.OPTIONS))
  .then(() => console.log(JSON.stringify({ calls, outputs, log })))
  .catch((error) => { console.log(JSON.stringify({ calls, outputs, log, error: error.message })); });
"""


def github_double(
    script: str,
    responses: dict[str, list[Any]] | None = None,
    options: dict[str, Any] | None = None,
    **context: Any,
) -> dict[str, Any]:
    """Run a script with the double: the requests it made, its step outputs and its log."""
    if NODE is None:
        pytest.skip("node is not installed")
    done = subprocess.run(
        [NODE, "-e", HARNESS],
        env={
            "PATH": os.environ.get("PATH", ""),
            "SCRIPT": str(SCRIPTS / script),
            "RESPONSES": json.dumps(responses or {}),
            "OPTIONS": json.dumps(options or {}),
            "CONTEXT": json.dumps(context),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    assert "error" not in result, result
    return result


REPO = {"owner": "o", "repo": "r"}
RUN_URL = "https://github.example/o/r/actions/runs/7"

# ---------------------------------------------------------------------------------------------- reviewed plan

PULL = {
    "number": 12,
    "html_url": "https://github.example/o/r/pull/12",
    "merged_at": "2026-01-01T10:00:00Z",
    "merge_commit_sha": "fedcba9876543210fedc",
    "head": {"sha": "0123456789abcdef"},
}


def test_the_reviewed_plan_is_the_newest_successful_plan_run_of_the_merged_head() -> None:
    runs = [
        {"id": 1, "conclusion": "success", "created_at": "2026-01-01T08:00:00Z", "html_url": "r1"},
        {"id": 3, "conclusion": "failure", "created_at": "2026-01-01T09:30:00Z", "html_url": "r3"},
        {"id": 2, "conclusion": "success", "created_at": "2026-01-01T09:00:00Z", "html_url": "r2"},
    ]
    other = {**PULL, "number": 9, "merge_commit_sha": "another"}
    result = github_double(
        "reviewed-plan.js",
        {
            "repos.listPullRequestsAssociatedWithCommit": [[other, PULL]],
            "actions.listWorkflowRuns": [{"workflow_runs": runs}],
            "actions.listWorkflowRunArtifacts": [
                {"artifacts": [{"name": "ocpi-parties-plan", "expired": False}]}
            ],
        },
    )
    assert result["calls"] == [
        ["repos.listPullRequestsAssociatedWithCommit", {**REPO, "commit_sha": "fedcba9876543210fedc"}],
        [
            "actions.listWorkflowRuns",
            {
                **REPO,
                "workflow_id": "plan.yml",
                "event": "pull_request",
                "head_sha": "0123456789abcdef",
                "per_page": 100,
            },
        ],
        ["actions.listWorkflowRunArtifacts", {**REPO, "run_id": 2, "name": "ocpi-parties-plan"}],
    ]
    assert result["outputs"] == {
        "pull-request": "12",
        "pull-request-url": "https://github.example/o/r/pull/12",
        "run-id": "2",
    }


def test_an_expired_artifact_leaves_the_pull_request_without_a_reviewed_plan() -> None:
    runs = [{"id": 2, "conclusion": "success", "created_at": "2026-01-01T09:00:00Z", "html_url": "r2"}]
    result = github_double(
        "reviewed-plan.js",
        {
            "repos.listPullRequestsAssociatedWithCommit": [[PULL]],
            "actions.listWorkflowRuns": [{"workflow_runs": runs}],
            "actions.listWorkflowRunArtifacts": [
                {"artifacts": [{"name": "ocpi-parties-plan", "expired": True}]}
            ],
        },
    )
    assert result["outputs"] == {"pull-request": "12", "pull-request-url": PULL["html_url"]}
    assert any(level == "warning" and "#12 has no reviewed plan" in m for level, m in result["log"])


def test_a_push_without_pull_request_and_a_run_by_hand_have_no_reviewed_plan() -> None:
    direct = github_double("reviewed-plan.js", {"repos.listPullRequestsAssociatedWithCommit": [[]]})
    assert [call[0] for call in direct["calls"]] == ["repos.listPullRequestsAssociatedWithCommit"]
    assert direct["outputs"] == {}
    by_hand = github_double("reviewed-plan.js", eventName="workflow_dispatch")
    assert by_hand["calls"] == [] and by_hand["outputs"] == {}


# ---------------------------------------------------------------------------------------------- apply comment

APPLY_MARKER = "<!-- ocpi-parties-apply -->"
REPORTS: dict[str, dict[str, Any]] = {
    "applied-reviewed": {
        "outcome": "applied-reviewed",
        "history_id": 12,
        "summary": "Apply complete: 2 added, 1 changed, 0 deleted, 1 adopted. Recorded as apply #12.",
        "reviewed_summary": "Plan: 2 to add, 1 to change, 0 to delete, 1 to adopt",
        "current_summary": None,
        "moves": [{"reason": "owner from the files", "to": "GB-TWK", "count": 3}],
        "difference_markdown": None,
        "error": None,
    },
    "applied-current": {
        "outcome": "applied-current",
        "history_id": 13,
        "summary": "Apply complete: 1 added. Recorded as apply #13.",
        "reviewed_summary": "Plan: 1 to add",
        "current_summary": "Plan: 1 to add",
        "moves": [],
        "difference_markdown": None,
        "error": None,
    },
    "different": {
        "outcome": "different",
        "history_id": None,
        "summary": None,
        "reviewed_summary": "Plan: 1 to add",
        "current_summary": "Plan: 1 to add, 1 to change",
        "moves": [],
        "difference_markdown": "| | reviewed | now |\n| --- | --- | --- |\n| change | 0 | 1 |",
        "error": "the plan differs from the reviewed one: nothing was applied",
    },
    "failed": {
        "outcome": "failed",
        "history_id": None,
        "summary": None,
        "reviewed_summary": "Plan: 1 to add",
        "current_summary": None,
        "moves": [],
        "difference_markdown": None,
        "error": "could not connect to the database <db>: timeout",
    },
}


def apply_comment(
    tmp_path: Path, report: dict[str, Any] | None, comments: list[dict[str, Any]], exit_code: str = "0"
) -> list[Any]:
    path = tmp_path / "report.json"
    if report is not None:
        path.write_text(json.dumps(report), encoding="utf-8")
    result = github_double(
        "apply-comment.js",
        {
            "issues.listComments": [comments],
            "issues.createComment": [{"html_url": "u"}],
            "issues.updateComment": [{}],
        },
        {"reportFile": str(path), "exitCode": exit_code, "pullRequest": "12"},
    )
    calls: list[Any] = result["calls"]
    assert calls[0] == ["issues.listComments", {**REPO, "issue_number": 12, "per_page": 100}]
    return calls


def created_body(calls: list[Any]) -> str:
    assert len(calls) == 2 and calls[1][0] == "issues.createComment"
    assert {k: v for k, v in calls[1][1].items() if k != "body"} == {**REPO, "issue_number": 12}
    body: str = calls[1][1]["body"]
    assert body.startswith(f"{APPLY_MARKER}\n### ocpi-parties apply\n\n")
    assert f"by [this run]({RUN_URL})" in body and "Deploy of fedcba987654 " in body
    return body


def test_an_applied_reviewed_plan_is_reported_with_apply_number_summary_moves(
    tmp_path: Path,
) -> None:
    body = created_body(apply_comment(tmp_path, REPORTS["applied-reviewed"], []))
    assert "**Applied as apply #12:** the reviewed plan, unchanged." in body
    assert "\n\nApply complete: 2 added, 1 changed, 0 deleted, 1 adopted. Recorded as apply #12.\n" in body
    assert (
        "| locations | moved to | why |\n| ---: | --- | --- |\n| 3 | GB-TWK | owner from the files |" in body
    )
    assert "Nothing was changed" not in body


def test_the_applied_current_plan_says_the_changes_were_the_same(tmp_path: Path) -> None:
    body = created_body(apply_comment(tmp_path, REPORTS["applied-current"], []))
    assert "**Applied as apply #13:** the current plan." in body
    assert "the changes are the same as the reviewed plan's" in body
    assert "| locations |" not in body


def test_a_different_plan_shows_the_difference_and_that_nothing_was_applied(tmp_path: Path) -> None:
    body = created_body(apply_comment(tmp_path, REPORTS["different"], [], exit_code="5"))
    assert (
        "**Nothing was applied:** the current plan differs from the reviewed one. Nothing was changed."
        in body
    )
    assert "\n\n- reviewed: Plan: 1 to add\n- now: Plan: 1 to add, 1 to change\n" in body
    assert REPORTS["different"]["difference_markdown"] in body
    assert "run the workflow `apply.yml` by hand" in body and "Applied as" not in body


def test_a_failed_apply_shows_the_error_as_text_and_that_nothing_was_changed(tmp_path: Path) -> None:
    body = created_body(apply_comment(tmp_path, REPORTS["failed"], [], exit_code="3"))
    assert "**The apply failed. Nothing was changed.**" in body
    assert "```text\ncould not connect to the database <db>: timeout\n```" in body
    assert f"The [workflow run]({RUN_URL}) has the whole log." in body


def test_an_apply_that_did_not_run_says_so_by_its_exit_code(tmp_path: Path) -> None:
    body = created_body(apply_comment(tmp_path, None, [], exit_code="1"))
    assert "**The apply did not run (exit code 1). Nothing was changed.**" in body


def test_report_text_cannot_put_html_into_the_page(tmp_path: Path) -> None:
    report = {**REPORTS["applied-reviewed"], "summary": "Apply complete: <img src=x>. Recorded as apply #12."}
    report["moves"] = [{"reason": "a | b", "to": "GB-TWK", "count": 1}]
    body = created_body(apply_comment(tmp_path, report, []))
    assert "<img" not in body and "&lt;img src=x&gt;" in body
    assert "| 1 | GB-TWK | a \\| b |" in body


def test_a_new_apply_updates_the_bots_comment_instead_of_adding_another(tmp_path: Path) -> None:
    comments = [
        {"id": 1, "user": {"type": "User"}, "body": f"{APPLY_MARKER} quoted by a reviewer"},
        {"id": 2, "user": {"type": "Bot"}, "body": "<!-- ocpi-parties-plan -->\nthe plan"},
        {"id": 3, "user": {"type": "Bot"}, "body": f"{APPLY_MARKER}\nthe earlier apply", "html_url": "c3"},
    ]
    calls = apply_comment(tmp_path, REPORTS["applied-current"], comments)
    assert [call[0] for call in calls] == ["issues.listComments", "issues.updateComment"]
    update = calls[1][1]
    assert (update["owner"], update["repo"], update["comment_id"]) == ("o", "r", 3)
    assert "**Applied as apply #13:**" in update["body"]


# ---------------------------------------------------------------------------------------------- drift issue

DRIFT_MARKER = "<!-- ocpi-parties-drift -->"
DRIFT_PLAN = "### ocpi-parties plan\n\n**Plan: 0 to add, 1 to change, 0 to delete**\n"
LIST_OPEN = ["issues.listForRepo", {**REPO, "state": "open", "per_page": 100}]


def drift_issue(
    tmp_path: Path, issues: list[dict[str, Any]], exit_code: str, drift: str = "false", **responses: list[Any]
) -> list[Any]:
    path = tmp_path / "plan.md"
    path.write_text(DRIFT_PLAN, encoding="utf-8")
    result = github_double(
        "drift-issue.js",
        {"issues.listForRepo": [issues], **{f"issues.{k}": v for k, v in responses.items()}},
        {"markdownFile": str(path), "exitCode": exit_code, "drift": drift},
    )
    calls: list[Any] = result["calls"]
    return calls


OTHERS = [
    {"number": 4, "user": {"type": "User"}, "body": f"I saw {DRIFT_MARKER} somewhere"},
    {"number": 5, "user": {"type": "Bot"}, "body": f"{DRIFT_MARKER}", "pull_request": {"url": "p"}},
    {"number": 6, "user": {"type": "Bot"}, "body": "dependency update"},
]
OPEN_ISSUE = {"number": 8, "user": {"type": "Bot"}, "body": f"{DRIFT_MARKER}\nold plan", "html_url": "i8"}


def test_changes_open_one_labelled_issue_with_the_plan(tmp_path: Path) -> None:
    calls = drift_issue(tmp_path, OTHERS, "2", create=[{"html_url": "i9"}])
    assert calls[0] == LIST_OPEN
    assert len(calls) == 2 and calls[1][0] == "issues.create"
    created = calls[1][1]
    assert created["labels"] == ["ocpi-parties-drift"]
    assert created["title"] == "ocpi-parties: the database differs from the party files on main"
    assert created["body"].startswith(f"{DRIFT_MARKER}\nThe scheduled plan of main against production")
    assert (
        f"\n\n{DRIFT_PLAN.strip()}\n\n<sub>Plan of fedcba987654 made by [this run]({RUN_URL}).</sub>"
        in (created["body"])
    )


def test_drift_alone_opens_the_issue_too(tmp_path: Path) -> None:
    calls = drift_issue(tmp_path, [], "0", drift="true", create=[{"html_url": "i9"}])
    assert [call[0] for call in calls] == ["issues.listForRepo", "issues.create"]


def test_a_later_run_updates_the_open_issue_and_never_opens_a_second(tmp_path: Path) -> None:
    calls = drift_issue(tmp_path, [*OTHERS, OPEN_ISSUE], "2", update=[{}])
    assert calls[0] == LIST_OPEN
    assert len(calls) == 2 and calls[1][0] == "issues.update"
    update = calls[1][1]
    assert set(update) == {"owner", "repo", "issue_number", "body"} and update["issue_number"] == 8
    assert update["body"].startswith(DRIFT_MARKER) and DRIFT_PLAN.strip() in update["body"]


def test_a_clean_database_closes_the_issue_with_a_comment(tmp_path: Path) -> None:
    calls = drift_issue(tmp_path, [OPEN_ISSUE], "0", createComment=[{}], update=[{}])
    assert calls[1:] == [
        [
            "issues.createComment",
            {
                **REPO,
                "issue_number": 8,
                "body": f"The database matches the party files on main again ([plan]({RUN_URL})). Closing.",
            },
        ],
        ["issues.update", {**REPO, "issue_number": 8, "state": "closed", "state_reason": "completed"}],
    ]


def test_a_clean_database_without_an_issue_changes_nothing(tmp_path: Path) -> None:
    assert drift_issue(tmp_path, OTHERS, "0") == [LIST_OPEN]


@pytest.mark.parametrize("exit_code", ["1", "3", "4", ""])
def test_a_failed_plan_touches_no_issue(tmp_path: Path, exit_code: str) -> None:
    assert drift_issue(tmp_path, [OPEN_ISSUE], exit_code) == []


# ---------------------------------------------------------------------------------------------- plan comment


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            "2",
            "After this pull request is merged into `main`, the workflow `apply.yml` applies this plan "
            "to the environment `production` (a reviewer of the environment may have to approve the "
            "deploy first).",
        ),
        ("0", "Nothing to apply: after this pull request is merged into `main`, the workflow `apply.yml`"),
        ("1", "Nothing can be applied from this plan: fix what failed and push again"),
    ],
)
def test_the_plan_comment_says_what_happens_next(tmp_path: Path, code: str, expected: str) -> None:
    path = tmp_path / "plan.md"
    path.write_text("### ocpi-parties plan\n\n**Plan: 1 to add**\n", encoding="utf-8")
    result = github_double(
        "plan-comment.js",
        {"issues.listComments": [[]], "issues.createComment": [{"html_url": "u"}]},
        {"markdownFile": str(path), "exitCode": code},
    )
    body = result["calls"][1][1]["body"]
    assert body.startswith("<!-- ocpi-parties-plan -->\n### ocpi-parties plan\n\n**Plan: 1 to add**\n")
    assert f"on every push.</sub>\n\n#### What happens next\n\n{expected}" in body


# ---------------------------------------------------------------------------------------------- the shell


@pytest.fixture
def runner(tmp_path: Path, workdir: Path) -> dict[str, str]:
    """A runner's environment: its temp folder, output and summary files, ocpi-parties on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in LIBPQ_VARIABLES and not k.startswith(("OCPI_PARTIES_", "GITHUB_", "RUNNER_"))
    }
    (tmp_path / "runner").mkdir()
    return env | {
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "RUNNER_TEMP": str(tmp_path / "runner"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
    }


def runs(script: str, env: dict[str, str], cwd: Path) -> tuple[int, dict[str, str], str]:
    """One step: a fresh output file, as each step of a job gets."""
    Path(env["GITHUB_OUTPUT"]).unlink(missing_ok=True)
    return run_step(script, env, cwd)


def ocpi_parties(env: dict[str, str], url: str, cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "ocpi-parties"), *args],
        cwd=cwd,
        env=env | {"OCPI_PARTIES_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 2), done.stdout + done.stderr
    return done.stdout


APPLY_STEP = step(workflow("apply.yml"), "Apply")["run"]
FAIL_STEP = step(workflow("apply.yml"), "Fail unless the plan was applied")["run"]
PR_URL = "https://github.example/o/r/pull/12"


def apply_env(runner: dict[str, str], url: str, pull_request: str = "12") -> dict[str, str]:
    return runner | {
        "OCPI_PARTIES_DATABASE_URL": url,
        "REVISION": "c0ffee",
        "ACTOR": "octocat",
        "PULL_REQUEST": pull_request,
        "PULL_REQUEST_URL": PR_URL if pull_request else "",
    }


def review(runner: dict[str, str], url: str, workdir: Path) -> Path:
    """The plan plan.yml made and uploaded, where the download step puts it."""
    reviewed = Path(runner["RUNNER_TEMP"]) / "reviewed"
    reviewed.mkdir()
    ocpi_parties(runner, url, workdir, "plan", "parties", "--out", str(reviewed / "plan.json"))
    return reviewed / "plan.json"


def applies(connection: Connection) -> list[tuple[Any, ...]]:
    """The history rows; none before the first apply has created the table."""
    (table,) = connection.execute("SELECT to_regclass('reconciler_apply_history')").fetchone() or (None,)
    if table is None:
        return []
    return connection.execute(
        "SELECT id, revision, actor FROM reconciler_apply_history ORDER BY id"
    ).fetchall()


def report(runner: dict[str, str]) -> dict[str, Any]:
    path = Path(runner["RUNNER_TEMP"]) / "ocpi-parties" / "report.json"
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def test_without_a_pull_request_the_current_plan_is_applied(
    runner: dict[str, str], live: Connection, database_url: str, workdir: Path
) -> None:
    code, outputs, log = runs(APPLY_STEP, apply_env(runner, database_url, pull_request=""), workdir)
    assert code == 0, log
    assert outputs["exitcode"] == "0"
    assert [row[1:] for row in applies(live)] == [("c0ffee", "octocat (GitHub Actions)")]
    assert database_url not in log


def test_a_pull_request_without_a_reviewed_plan_applies_nothing_and_fails(
    runner: dict[str, str], live: Connection, database_url: str, workdir: Path
) -> None:
    code, outputs, log = runs(APPLY_STEP, apply_env(runner, database_url), workdir)
    assert code == 0, log
    assert outputs["exitcode"] == "1"
    assert "::error::pull request #12 has no reviewed plan" in log
    assert applies(live) == []
    assert not Path(outputs["report"]).exists()  # the comment then says the apply did not run
    code, _, log = runs(FAIL_STEP, runner | {"EXIT_CODE": outputs["exitcode"]}, workdir)
    assert code == 1 and "::error::ocpi-parties apply exited 1" in log


def test_a_missing_secret_fails_the_apply_step(runner: dict[str, str], workdir: Path) -> None:
    code, _, log = runs(APPLY_STEP, apply_env(runner, ""), workdir)
    assert code == 1 and "::error::the secret OCPI_PARTIES_DATABASE_URL is not set" in log


@pytest.mark.parametrize("exit_code", ["1", "3", "4", "5"])
def test_the_last_step_fails_the_job_with_the_exit_code_of_apply(
    exit_code: str, runner: dict[str, str], workdir: Path
) -> None:
    code, _, log = runs(FAIL_STEP, runner | {"EXIT_CODE": exit_code}, workdir)
    assert code == int(exit_code) and f"apply exited {exit_code}" in log


@needs_if_same_as
def test_a_fresh_reviewed_plan_is_applied_exactly(
    runner: dict[str, str], live: Connection, database_url: str, workdir: Path
) -> None:
    review(runner, database_url, workdir)
    code, outputs, log = runs(APPLY_STEP, apply_env(runner, database_url), workdir)
    assert code == 0, log
    assert outputs["exitcode"] == "0"
    done = report(runner)
    assert done["outcome"] == "applied-reviewed" and done["error"] is None
    ((history_id, revision, actor),) = applies(live)
    assert done["history_id"] == history_id and f"apply #{history_id}" in done["summary"]
    assert (revision, actor) == ("c0ffee", "octocat (GitHub Actions)")
    assert done["reviewed_summary"].startswith("Plan: 2 to add, 1 to change")
    assert database_url not in log and database_url not in json.dumps(done)


@needs_if_same_as
def test_a_stale_reviewed_plan_with_the_same_changes_applies_the_current_plan(
    runner: dict[str, str], live: Connection, database_url: str, workdir: Path
) -> None:
    review(runner, database_url, workdir)
    # OCPI registration adds a peer the files do not name: the database changed, the changes did not.
    save_party(live, "CPO", "FR", "ABC", url="https://abc.example/versions")
    code, outputs, log = runs(APPLY_STEP, apply_env(runner, database_url), workdir)
    assert code == 0, log
    assert outputs["exitcode"] == "0"
    done = report(runner)
    assert done["outcome"] == "applied-current"
    ((history_id, _, _),) = applies(live)
    assert done["history_id"] == history_id


@needs_if_same_as
def test_a_stale_reviewed_plan_with_other_changes_applies_nothing_and_exits_5(
    runner: dict[str, str], live: Connection, database_url: str, workdir: Path
) -> None:
    review(runner, database_url, workdir)
    # Another merge landed after the review: the files want another name.
    party = workdir / "parties" / "GB-TWK.yaml"
    party.write_text(
        party.read_text(encoding="utf-8").replace("Thoughtworks EV", "Renamed EV"), encoding="utf-8"
    )
    code, outputs, log = runs(APPLY_STEP, apply_env(runner, database_url), workdir)
    assert code == 0, log
    assert outputs["exitcode"] == "5"
    done = report(runner)
    assert done["outcome"] == "different" and done["history_id"] is None
    assert done["difference_markdown"]
    assert applies(live) == []
    code, _, _ = runs(FAIL_STEP, runner | {"EXIT_CODE": outputs["exitcode"]}, workdir)
    assert code == 5


# ---------------------------------------------------------------------------------------------- drift


DRIFT_STEP = step(workflow("drift.yml"), "Plan")["run"]


def test_the_drift_issue_opens_on_drift_and_closes_once_the_database_is_repaired(
    tmp_path: Path, runner: dict[str, str], live: Connection, database_url: str, workdir: Path
) -> None:
    env = runner | {"OCPI_PARTIES_DATABASE_URL": database_url}
    markdown = Path(runner["RUNNER_TEMP"]) / "ocpi-parties" / "plan.md"

    def drift() -> dict[str, str]:
        code, outputs, log = runs(DRIFT_STEP, env, workdir)
        assert code == 0, log
        assert outputs["markdown"] == str(markdown)
        assert database_url not in log
        return outputs

    # Before the first apply: changes, no drift yet.
    assert drift() | {"markdown": ""} == {"exitcode": "2", "drift": "false", "markdown": ""}
    ocpi_parties(env, database_url, workdir, "apply", "parties", "--auto-approve")
    assert drift()["exitcode"] == "0" and drift()["drift"] == "false"

    # Someone changes a managed row outside git.
    live.execute(
        'UPDATE ocpi_parties SET business_details = \'{"name": "Changed by hand"}\'::jsonb '
        "WHERE country_code = 'GB' AND party_id = 'TWK'"
    )
    outputs = drift()
    assert (outputs["exitcode"], outputs["drift"]) == ("2", "true")
    plan = markdown.read_text(encoding="utf-8")
    assert "Drift since the last apply" in plan
    assert Path(runner["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8").endswith(plan)
    opened = github_double(
        "drift-issue.js",
        {"issues.listForRepo": [[]], "issues.create": [{"html_url": "i9"}]},
        {"markdownFile": str(markdown), "exitCode": outputs["exitcode"], "drift": outputs["drift"]},
    )["calls"]
    assert [call[0] for call in opened] == ["issues.listForRepo", "issues.create"]
    assert plan.strip() in opened[1][1]["body"]

    # The apply puts the files' value back: the next run closes the issue.
    ocpi_parties(env, database_url, workdir, "apply", "parties", "--auto-approve")
    outputs = drift()
    assert (outputs["exitcode"], outputs["drift"]) == ("0", "false")
    issue = {"number": 9, "user": {"type": "Bot"}, "body": opened[1][1]["body"], "html_url": "i9"}
    closed = github_double(
        "drift-issue.js",
        {"issues.listForRepo": [[issue]], "issues.createComment": [{}], "issues.update": [{}]},
        {"markdownFile": str(markdown), "exitCode": outputs["exitcode"], "drift": outputs["drift"]},
    )["calls"]
    assert [call[0] for call in closed] == ["issues.listForRepo", "issues.createComment", "issues.update"]
    assert closed[2][1]["state"] == "closed"


def test_a_failed_drift_plan_is_recorded_for_the_last_step_and_leaves_the_issue(
    runner: dict[str, str], database_url: str, workdir: Path
) -> None:
    (workdir / "parties" / "NL-VLT.yaml").write_text("country_code: NL\nparty_id: [VLT\n", encoding="utf-8")
    code, outputs, log = runs(DRIFT_STEP, runner | {"OCPI_PARTIES_DATABASE_URL": database_url}, workdir)
    assert code == 0, log
    assert (outputs["exitcode"], outputs["drift"]) == ("1", "false")
    drift = workflow("drift.yml")
    assert "exitcode == '0' ||" in step(drift, "Open, update or close")["if"]  # skipped on 1
    code, _, _ = runs(step(drift, "Fail unless")["run"], runner | {"EXIT_CODE": "1"}, workdir)
    assert code == 1


def test_the_drift_step_needs_its_secret(runner: dict[str, str], workdir: Path) -> None:
    code, _, log = runs(DRIFT_STEP, runner | {"OCPI_PARTIES_DATABASE_URL": ""}, workdir)
    assert code == 1 and "::error::the secret OCPI_PARTIES_PLAN_DATABASE_URL is not set" in log


# ---------------------------------------------------------------------------------------------- the docs


def test_the_deployment_guide_names_what_the_workflows_and_scripts_use() -> None:
    guide = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    (cron,) = workflow("drift.yml")["on"]["schedule"]
    minute, hour = cron["cron"].split()[:2]
    assert f"every day at {int(hour):02d}:{int(minute):02d} UTC" in guide
    scripts = {
        name: (SCRIPTS / name).read_text(encoding="utf-8") for name in ("apply-comment.js", "drift-issue.js")
    }
    for marker, script in (
        ("<!-- ocpi-parties-apply -->", "apply-comment.js"),
        ("<!-- ocpi-parties-drift -->", "drift-issue.js"),
    ):
        assert f"`{marker}`" in guide and f"'{marker}'" in scripts[script]
    assert "label `ocpi-parties-drift`" in guide and "'ocpi-parties-drift'" in scripts["drift-issue.js"]
    assert "`actions: read`" in guide and "`contents: read` and `issues: write`" in guide
    table = guide.split("\n## The workflows\n", 1)[1].split("\n\n", 2)[1]
    assert {row.split("`")[1] for row in table.splitlines()[2:]} == {
        f".github/workflows/{p.name}" for p in (ROOT / ".github" / "workflows").glob("*.yml")
    }
