// Find the plan that reviewers saw for the commit that was pushed to main: the merged pull request of that
// commit, the newest successful run of plan.yml for the pull request's head commit, and that run's artifact
// `ocpi-parties-plan` (plan.json and plan.md, as plan.yml uploaded them).
//
// Called by actions/github-script from .github/workflows/apply.yml:
//   await require(path)({ github, context, core })
// Outputs: pull-request and pull-request-url when the commit is a merged pull request's; run-id when that
// pull request's reviewed plan can still be downloaded (actions/download-artifact takes it from there).
const ARTIFACT = 'ocpi-parties-plan';
const PLAN_WORKFLOW = 'plan.yml';

module.exports = async ({ github, context, core }) => {
  const { owner, repo } = context.repo;
  if (context.eventName !== 'push') {
    core.info(`${context.eventName}: no pull request, the current plan is applied`);
    return;
  }
  const { data: pulls } = await github.rest.repos.listPullRequestsAssociatedWithCommit({
    owner, repo, commit_sha: context.sha,
  });
  // The pull request that this push merged: its merge commit is the pushed commit (merge, squash and rebase
  // all set merge_commit_sha to the commit they put on main).
  const pull = pulls.find((p) => p.merged_at && p.merge_commit_sha === context.sha);
  if (!pull) {
    core.info(`${context.sha} is not the merge of a pull request: the current plan is applied`);
    return;
  }
  core.setOutput('pull-request', String(pull.number));
  core.setOutput('pull-request-url', pull.html_url);
  const runs = await github.paginate(github.rest.actions.listWorkflowRuns, {
    owner, repo, workflow_id: PLAN_WORKFLOW, event: 'pull_request', head_sha: pull.head.sha, per_page: 100,
  });
  const newestFirst = runs
    .filter((run) => run.conclusion === 'success')
    .sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  for (const run of newestFirst) {
    const { data } = await github.rest.actions.listWorkflowRunArtifacts({
      owner, repo, run_id: run.id, name: ARTIFACT,
    });
    if (data.artifacts.some((artifact) => !artifact.expired)) {
      core.setOutput('run-id', String(run.id));
      core.info(`the reviewed plan of #${pull.number} (${pull.head.sha.slice(0, 12)}): ${run.html_url}`);
      return;
    }
  }
  core.warning(`#${pull.number} has no reviewed plan: no successful ${PLAN_WORKFLOW} run of `
    + `${pull.head.sha.slice(0, 12)} kept the artifact ${ARTIFACT}`);
};
