// Keep one issue about the difference between MaEVe's database and the party files on main, from the
// scheduled plan of .github/workflows/drift.yml: open it when the plan has changes or drift, update it on
// every later run while they last, and close it with a comment once the database matches again.
//
// The issue is found among the open issues by its hidden marker, and only an issue a bot (the workflow's
// token) wrote counts, so there is never a second open one. A closed issue is never reopened: the next
// episode opens a new issue, and the closed ones stay as the record of the earlier episodes.
// A plan that failed (any exit code but 0 and 2) touches no issue: the failed job says so instead.
//
// Called by actions/github-script from .github/workflows/drift.yml:
//   await require(path)({ github, context, core }, { markdownFile, exitCode, drift })
const fs = require('fs');

const MARKER = '<!-- ocpi-parties-drift -->';
const LABEL = 'ocpi-parties-drift';
const TITLE = 'ocpi-parties: the database differs from the party files on main';

module.exports = async ({ github, context, core }, { markdownFile, exitCode, drift }) => {
  if (!['0', '2'].includes(String(exitCode))) {
    core.info(`the plan failed (exit code ${exitCode}): no issue is opened, updated or closed`);
    return;
  }
  const differs = String(exitCode) === '2' || String(drift) === 'true';
  const runUrl = `${context.serverUrl}/${context.repo.owner}/${context.repo.repo}/actions/runs/${context.runId}`;
  const { owner, repo } = context.repo;
  const open = await github.paginate(github.rest.issues.listForRepo, { owner, repo, state: 'open', per_page: 100 });
  const issue = open.find((i) => !i.pull_request && i.user && i.user.type === 'Bot'
    && i.body && i.body.includes(MARKER));

  if (!differs) {
    if (issue) {
      await github.rest.issues.createComment({
        owner, repo, issue_number: issue.number,
        body: `The database matches the party files on main again ([plan](${runUrl})). Closing.`,
      });
      await github.rest.issues.update({
        owner, repo, issue_number: issue.number, state: 'closed', state_reason: 'completed',
      });
      core.info(`closed ${issue.html_url}`);
    } else {
      core.info('the database matches the party files: no issue to close');
    }
    return;
  }

  const plan = fs.readFileSync(markdownFile, 'utf8').trim();
  const body = `${MARKER}\nThe scheduled plan of main against production finds changes to apply or `
    + 'rows changed in the database outside git. Apply the party files (merge a pull request, or run '
    + '`apply.yml` by hand), or change the files to what the database should keep. This issue is updated '
    + 'on every run and closed when the database matches again.\n\n'
    + `${plan}\n\n<sub>Plan of ${context.sha.slice(0, 12)} made by [this run](${runUrl}).</sub>\n`;
  if (issue) {
    await github.rest.issues.update({ owner, repo, issue_number: issue.number, body });
    core.info(`updated ${issue.html_url}`);
  } else {
    const created = await github.rest.issues.create({ owner, repo, title: TITLE, body, labels: [LABEL] });
    core.info(`opened ${created.data.html_url}`);
  }
};
