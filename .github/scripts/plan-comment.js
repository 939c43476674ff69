// Post the Markdown plan of `ocpi-parties plan --format markdown` on the pull request as one comment, and
// update that comment on every later run instead of adding another. The comment is found by a hidden
// marker; only comments written by a bot (the workflow's token) are considered, so a reviewer who quotes
// the marker does not get their comment overwritten.
//
// Called by actions/github-script from .github/workflows/plan.yml and from action.yml:
//   await require(path)({ github, context, core }, { markdownFile, exitCode, tag })
const fs = require('fs');

const MARKER = '<!-- ocpi-parties-plan -->';

module.exports = async ({ github, context, core }, { markdownFile, exitCode, tag = '' }) => {
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
  const body = `${marker}\n${plan}\n\n<sub>Plan of ${head.slice(0, 12)} made by [this run](${runUrl}); `
    + 'this comment is updated on every push.</sub>\n';

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
