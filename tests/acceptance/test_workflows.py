"""The GitHub Actions workflows and the composite action: linted, valid against GitHub's schemas, and doing
what docs/deployment.md says.

actionlint checks the workflows and, through the `uses: ./` step of ci.yml, the inputs of action.yml;
check-jsonschema checks both against GitHub's JSON Schemas. The shell of the plan steps runs here for real
against a test database, the way a runner runs it, and the comment script runs under node when present.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.connect import LIBPQ_VARIABLES
from reconciler.database import Connection

ROOT = Path(__file__).parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTION = ROOT / "action.yml"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[test]'"
    return found


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    if True in document:  # YAML 1.1 reads the key `on` as true
        document["on"] = document.pop(True)
    return document


def workflow(name: str) -> dict[str, Any]:
    return load(WORKFLOWS / name)


def steps(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "runs" in document:
        yield from document["runs"]["steps"]
    for job in document.get("jobs", {}).values():
        yield from job.get("steps", [])


def step(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in steps(document) if s.get("name", "").startswith(name))


FILES = [*sorted(WORKFLOWS.glob("*.yml")), ACTION]


# ---------------------------------------------------------------------------------------------- linters


def assert_clean(*command: str) -> None:
    """Run a linter in the repository's root: it must exit 0."""
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_finds_nothing() -> None:
    # Without shellcheck and pyflakes, so the result does not depend on what else is installed.
    assert_clean(tool("actionlint"), "-shellcheck=", "-pyflakes=", "-no-color")


def test_actionlint_does_report_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ secret.X }}\n"
    )
    done = subprocess.run(
        [tool("actionlint"), "-shellcheck=", "-pyflakes=", "-no-color", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1 and 'undefined variable "secret"' in done.stdout


def test_ci_runs_the_composite_action_so_actionlint_checks_its_inputs() -> None:
    assert any(s.get("uses") == "./" for s in steps(workflow("ci.yml")))


@pytest.mark.parametrize(
    ("schema", "paths"),
    [("vendor.github-workflows", sorted(WORKFLOWS.glob("*.yml"))), ("vendor.github-actions", [ACTION])],
)
def test_the_files_match_githubs_json_schemas(schema: str, paths: list[Path]) -> None:
    assert paths
    assert_clean(tool("check-jsonschema"), "--builtin-schema", schema, *map(str, paths))


def test_the_workflows_are_the_four_documented() -> None:
    assert {p.name for p in WORKFLOWS.glob("*")} == {"ci.yml", "plan.yml", "apply.yml", "drift.yml"}


# ---------------------------------------------------------------------------------------------- semantics


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_action_is_pinned_at_least_by_major_version(path: Path) -> None:
    for used in (s["uses"] for s in steps(load(path)) if "uses" in s):
        assert used == "./" or re.fullmatch(
            r"[\w.-]+/[\w.-]+@v\d+(\.\d+)*|[\w.-]+/[\w.-]+@[0-9a-f]{40}", used
        )


def _strings(node: Any, where: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*where, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, (*where, str(index)))
    elif isinstance(node, str):
        yield where, node


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_secrets_reach_commands_only_through_env_and_are_never_printed(path: Path) -> None:
    for where, text in _strings(load(path)):
        if "secrets." in text:
            assert where[-2] == "env" and re.fullmatch(r"\$\{\{ secrets\.[A-Z_]+ \}\}", text), where
        if where[-1] == "run":
            for line in text.splitlines():
                if re.search(r"\$\{?(OCPI_PARTIES_DATABASE_URL|DATABASE_URL_INPUT)", line):
                    # Only tested for being empty, or handed on in the environment.
                    assert re.search(
                        r"\[ -[zn] \"\$\{?(OCPI_PARTIES_DATABASE_URL|DATABASE_URL_INPUT)"
                        r"|^ *export OCPI_PARTIES_DATABASE_URL=\"\$DATABASE_URL_INPUT\"$",
                        line,
                    ), line
                assert "${{ inputs." not in line, f"an input reaches the shell as code, not data: {line}"


def test_plan_runs_on_pull_requests_that_change_parties_or_schemas() -> None:
    plan = workflow("plan.yml")
    assert set(plan["on"]) == {"pull_request"}
    assert plan["on"]["pull_request"]["paths"] == ["parties/**", "schema/**"]
    assert plan["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert "ocpi-parties validate --format github parties" in step(plan, "Validate")["run"]
    script = step(plan, "Plan")["run"]
    assert "--detailed-exitcode" in script and "--format markdown" in script and "--out" in script
    assert step(plan, "Post the plan")["uses"].startswith("actions/github-script@")
    assert step(plan, "Keep the plan file")["uses"].startswith("actions/upload-artifact@")
    assert step(plan, "Validate")["continue-on-error"] is True, "a stale comment must not stay"
    assert step(plan, "Fail unless")["if"].startswith("steps.validate.outcome == 'failure' || (")


def test_apply_runs_after_merge_one_at_a_time_in_a_protected_environment() -> None:
    apply = workflow("apply.yml")
    assert apply["on"]["push"]["branches"] == ["main"]
    assert apply["concurrency"]["group"] and apply["concurrency"]["cancel-in-progress"] is False
    (job,) = apply["jobs"].values()
    assert job["environment"] == "production"
    script = step(apply, "Apply")["run"]
    assert "ocpi-parties apply parties --auto-approve" in script and '--revision "$REVISION"' in script
    assert step(apply, "Apply")["env"]["REVISION"] == "${{ github.sha }}"


def test_ci_runs_the_steps_of_ci_run_with_a_postgres_15_service() -> None:
    ci = workflow("ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    job = ci["jobs"]["test"]
    assert job["services"]["postgres"]["image"] == "postgres:15"
    runs = {part for s in job["steps"] for part in s.get("run", "").split(" && ")}
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    variable = "OCPI_PARTIES_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres "
    commands = [
        line.removeprefix(variable)
        for line in script.splitlines()
        if line.startswith((".venv/bin/", "python3 -m venv", variable))
    ]
    assert len(commands) == 6
    for command in commands:
        assert set(command.split(" && ")) <= runs, command
    last = job["steps"][-1]
    assert last["env"]["OCPI_PARTIES_TEST_DATABASE_URL"] == "postgresql://postgres@127.0.0.1:5432/postgres"


def test_the_action_installs_from_its_own_checkout_and_takes_the_url_as_data() -> None:
    action = load(ACTION)
    assert set(action["inputs"]) >= {"command", "path", "database-url", "revision"}
    assert action["runs"]["using"] == "composite"
    assert (
        'pip install --disable-pip-version-check --quiet "$GITHUB_ACTION_PATH"'
        in step(action, "Install")["run"]
    )
    assert step(action, "ocpi-parties")["env"]["DATABASE_URL_INPUT"] == "${{ inputs.database-url }}"


# ---------------------------------------------------------------------------------------------- the shell


@pytest.fixture
def runner(tmp_path: Path, workdir: Path) -> Iterator[dict[str, str]]:
    """A runner's environment: its temp folder, output and summary files, ocpi-parties on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in LIBPQ_VARIABLES and not k.startswith(("OCPI_PARTIES_", "GITHUB_", "RUNNER_"))
    }
    (tmp_path / "runner").mkdir()
    env |= {
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "RUNNER_TEMP": str(tmp_path / "runner"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
    }
    yield env


def run_step(script: str, env: dict[str, str], cwd: Path) -> tuple[int, dict[str, str], str]:
    """Run a `run:` script as GitHub runs it (bash -eo pipefail): exit code, step outputs, output."""
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = Path(env["GITHUB_OUTPUT"])
    lines = output.read_text(encoding="utf-8").splitlines() if output.exists() else []
    return done.returncode, dict(line.split("=", 1) for line in lines), done.stdout + done.stderr


def plan_steps() -> list[tuple[str, dict[str, str]]]:
    plan = step(workflow("plan.yml"), "Plan")
    action = step(load(ACTION), "ocpi-parties")
    return [
        (plan["run"], {"REVISION": "c0ffee"}),
        (
            action["run"],
            {"COMMAND": "plan", "PARTIES": "parties", "REVISION": "c0ffee", "ALLOW_DELETE": "false"},
        ),
    ]


PLAN_STEPS = pytest.mark.parametrize(("script", "env"), plan_steps(), ids=["plan.yml", "action.yml"])


def _url_variable(script: str) -> str:
    return "DATABASE_URL_INPUT" if "DATABASE_URL_INPUT" in script else "OCPI_PARTIES_DATABASE_URL"


@PLAN_STEPS
def test_plan_with_changes_exits_2_and_the_step_passes(
    script: str,
    env: dict[str, str],
    *,
    runner: dict[str, str],
    live: Connection,
    database_url: str,
    workdir: Path,
) -> None:
    code, outputs, log = run_step(script, runner | env | {_url_variable(script): database_url}, workdir)
    assert code == 0, log
    assert outputs["exitcode"] == "2"
    folder = Path(runner["RUNNER_TEMP"]) / "ocpi-parties"
    markdown = (folder / "plan.md").read_text(encoding="utf-8")
    assert markdown.startswith(
        "### ocpi-parties plan\n\n**Plan: 2 to add, 1 to change, 0 to delete, 1 to adopt;"
    )
    assert Path(runner["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8") == markdown
    saved = json.loads((folder / "plan.json").read_text(encoding="utf-8"))
    assert saved["revision"] == "c0ffee"
    assert database_url not in log and database_url not in (folder / "plan.json").read_text(encoding="utf-8")


@PLAN_STEPS
def test_a_failed_plan_is_recorded_for_the_last_step_to_fail_the_job(
    script: str, env: dict[str, str], *, runner: dict[str, str], database_url: str, workdir: Path
) -> None:
    (workdir / "parties" / "NL-VLT.yaml").write_text("country_code: NL\nparty_id: [VLT\n", encoding="utf-8")
    code, outputs, log = run_step(script, runner | env | {_url_variable(script): database_url}, workdir)
    assert code == 0, log
    assert outputs["exitcode"] == "1"
    assert "nothing was planned" in log
    if "validate --format github" in script:  # the action's plan annotates the problems itself
        assert "::error file=parties/NL-VLT.yaml" in log


@PLAN_STEPS
@pytest.mark.parametrize("failure", ["no parties directory", "malformed database URL"])
def test_a_plan_that_fails_on_its_command_line_never_reports_changes(
    script: str,
    env: dict[str, str],
    failure: str,
    *,
    runner: dict[str, str],
    database_url: str,
    workdir: Path,
) -> None:
    """Exit 2 means changes under --detailed-exitcode: a usage error exits 1, which the step records."""
    url = database_url
    if failure == "no parties directory":
        shutil.rmtree(workdir / "parties")
    else:
        url = "postgresql://u@db/maeve?nosuch=1"
    code, outputs, log = run_step(script, runner | env | {_url_variable(script): url}, workdir)
    assert code == 0, log
    assert outputs["exitcode"] == "1", log
    assert outputs.get("has-changes", "false") == "false"
    assert (
        "no such file or directory"
        if failure == "no parties directory"
        else "is not a valid connection string"
    ) in log


@PLAN_STEPS
def test_a_missing_database_secret_fails_the_step(
    script: str, env: dict[str, str], runner: dict[str, str], workdir: Path
) -> None:
    code, _, log = run_step(script, runner | env | {_url_variable(script): ""}, workdir)
    assert code == 1
    assert "::error::" in log


def test_the_fail_steps_fail_on_every_exit_code_but_0_and_2() -> None:
    for document, output in ((workflow("plan.yml"), "steps.plan"), (load(ACTION), "steps.run")):
        last = step(document, "Fail unless")
        assert f"{output}.outputs.exitcode != '0' && {output}.outputs.exitcode != '2'" in " ".join(
            last["if"].split()
        )
        assert last["run"].rstrip().endswith("exit 1")


# ---------------------------------------------------------------------------------------------- the comment

COMMENT_HARNESS = """
const calls = [];
const comments = JSON.parse(process.env.COMMENTS);
const github = {
  paginate: async (method, args) => { calls.push(['list', args.issue_number]); return comments; },
  rest: { issues: {
    listComments: 'listComments',
    updateComment: async (args) => { calls.push(['update', args.comment_id, args.body]); },
    createComment: async (args) => { calls.push(['create', args.issue_number, args.body]);
                                     return { data: { html_url: 'u' } }; },
  } },
};
const context = {
  serverUrl: 'https://github.example', repo: { owner: 'o', repo: 'r' }, runId: 7, sha: 'merge',
  issue: { number: 12 }, payload: { pull_request: { head: { sha: '0123456789abcdef' } } },
};
const core = { info: () => {} };
require(process.env.SCRIPT)({ github, context, core }, {
  markdownFile: process.env.MARKDOWN, exitCode: process.env.CODE, tag: process.env.TAG,
}).then(() => console.log(JSON.stringify(calls)));
"""


def comment_calls(tmp_path: Path, comments: list[dict[str, Any]], markdown: str | None, **env: str) -> Any:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    path = tmp_path / "plan.md"
    if markdown is not None:
        path.write_text(markdown, encoding="utf-8")
    done = subprocess.run(
        [node, "-e", COMMENT_HARNESS],
        env={
            "PATH": os.environ.get("PATH", ""),
            "COMMENTS": json.dumps(comments),
            "SCRIPT": str(ROOT / ".github" / "scripts" / "plan-comment.js"),
            "MARKDOWN": str(path),
            "CODE": "2",
            "TAG": "",
        }
        | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


MARKER = "<!-- ocpi-parties-plan -->"


def test_the_first_plan_creates_the_comment(tmp_path: Path) -> None:
    calls = comment_calls(tmp_path, [], "### ocpi-parties plan\n\n**Plan: 1 to add**\n")
    assert calls[0] == ["list", 12]
    action, issue, body = calls[1]
    assert (action, issue) == ("create", 12)
    assert body.startswith(
        f"{MARKER}\n### ocpi-parties plan\n\n**Plan: 1 to add**\n\n<sub>Plan of 0123456789ab"
    )
    assert "https://github.example/o/r/actions/runs/7" in body


def test_a_later_plan_updates_the_bots_comment_and_leaves_a_reviewers_quote_alone(tmp_path: Path) -> None:
    comments = [
        {"id": 1, "user": {"type": "User"}, "body": f"{MARKER} quoted by a reviewer"},
        {"id": 2, "user": {"type": "Bot"}, "body": f"{MARKER}\nold plan"},
        {"id": 3, "user": {"type": "Bot"}, "body": "another bot"},
    ]
    calls = comment_calls(tmp_path, comments, "### ocpi-parties plan\n\n**No changes.**\n")
    assert [call[:2] for call in calls] == [["list", 12], ["update", 2]]
    assert "No changes." in calls[1][2]


def test_a_failed_plan_replaces_the_comment_instead_of_leaving_an_old_plan(tmp_path: Path) -> None:
    comments = [{"id": 2, "user": {"type": "Bot"}, "body": f"{MARKER}\nold plan"}]
    calls = comment_calls(tmp_path, comments, None, CODE="3")
    assert calls[1][:2] == ["update", 2]
    assert "**The plan failed (exit code 3).**" in calls[1][2] and "old plan" not in calls[1][2]


def test_a_plan_that_failed_after_printing_says_so_by_its_exit_code(tmp_path: Path) -> None:
    markdown = "### ocpi-parties plan\n\n**Plan: 0 to add, 0 to change, 1 to delete** (1 blocked)\n"
    calls = comment_calls(tmp_path, [], markdown, CODE="1")
    assert "**Plan: 0 to add" in calls[1][2] and "**The plan failed (exit code 1).**" in calls[1][2]
    for code in ("0", "2"):
        assert "failed" not in comment_calls(tmp_path, [], markdown, CODE=code)[1][2]


def test_a_tag_keeps_the_comments_of_two_plans_apart(tmp_path: Path) -> None:
    comments = [{"id": 2, "user": {"type": "Bot"}, "body": f"{MARKER}\nplan of another database"}]
    calls = comment_calls(tmp_path, comments, "### ocpi-parties plan\n", TAG="staging")
    assert calls[1][:2] == ["create", 12]
    assert calls[1][2].startswith("<!-- ocpi-parties-plan staging -->\n")
