// Post the Markdown plan of `ocpi-parties plan --format markdown` on the pull request as one comment, and
// update that comment on every later run instead of adding another. The comment is found by a hidden
// marker; only comments written by a bot (the workflow's token) are considered, so a reviewer who quotes
// the marker does not get their comment overwritten.
//
// Called by actions/github-script from .github/workflows/plan.yml and from action.yml:
//   await require(path)({ github, context, core }, { markdownFile, exitCode, tag })
// The options applyWorkflow and environment name the deploy in "What happens next" (defaults: this
// repository's apply.yml and its environment production).
const fs = require('fs');

const MARKER = '<!-- ocpi-parties-plan -->';

// What the deploy does with this plan once the pull request is merged (docs/deployment.md).
const whatHappensNext = (exitCode, applyWorkflow, environment) => {
  const code = String(exitCode);
  let next;
  if (code === '2') {
    next = `After this pull request is merged into \`main\`, the workflow \`${applyWorkflow}\` applies this `
      + `plan to the environment \`${environment}\` (a reviewer of the environment may have to approve the `
      + 'deploy first). If the database changes before then, it applies the current plan only when its '
      + 'changes are the same as this one\'s; otherwise it applies nothing and says so on this pull request.';
  } else if (code === '0') {
    next = `Nothing to apply: after this pull request is merged into \`main\`, the workflow \`${applyWorkflow}\` `
      + `finds the database of \`${environment}\` as the files want it and changes nothing.`;
  } else {
    next = 'Nothing can be applied from this plan: fix what failed and push again; the plan runs on every push.';
  }
  return `#### What happens next\n\n${next}`;
};

module.exports = async ({ github, context, core }, {
  markdownFile, exitCode, tag = '', applyWorkflow = 'apply.yml', environment = 'production',
}) => {
  const marker = tag ? `<!-- ocpi-parties-plan ${tag} -->` : MARKER;
  const runUrl = `${context.serverUrl}/${context.repo.owner}/${context.repo.repo}/actions/runs/${context.runId}`;
  const head = context.payload.pull_request ? context.payload.pull_request.head.sha : context.sha;
  let plan = '';
  try {
    plan = fs.readFileSync(markdownFile, 'utf8').trim();
  } catch (error) {
    core.info(`no plan to post: ${error.message}`);
  }
  // Only the exit code tells a plan from a failure (plan --detailed-exitcode: 0 no changes, 2 changes).
  const failed = `**The plan failed (exit code ${exitCode}).** The [workflow run](${runUrl}) says why.`;
  if (!plan) {
    plan = `### ocpi-parties plan\n\n${failed}`;
  } else if (!['0', '2'].includes(String(exitCode))) {
    plan = `${plan}\n\n${failed}`;
  }
  const next = whatHappensNext(exitCode, applyWorkflow, environment);
  const body = `${marker}\n${plan}\n\n<sub>Plan of ${head.slice(0, 12)} made by [this run](${runUrl}); `
    + `this comment is updated on every push.</sub>\n\n${next}\n`;

  const { owner, repo } = context.repo;
  const issue_number = context.issue.number;
  const comments = await github.paginate(github.rest.issues.listComments, { owner, repo, issue_number, per_page: 100 });
  const previous = comments.find((c) => c.user && c.user.type === 'Bot' && c.body && c.body.startsWith(marker));
  if (previous) {
    await github.rest.issues.updateComment({ owner, repo, comment_id: previous.id, body });
    core.info(`updated the plan comment ${previous.html_url}`);
  } else {
    const created = await github.rest.issues.createComment({ owner, repo, issue_number, body });
    core.info(`posted the plan comment ${created.data.html_url}`);
  }
};
