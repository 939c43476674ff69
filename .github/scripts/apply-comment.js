// Report the deploy of a merged pull request on that pull request: one comment, found by a hidden marker
// and updated when the apply runs again, written from the report of
// `ocpi-parties apply --if-same-as REVIEWED --report report.json`. Only comments written by a bot are
// considered, so a reviewer who quotes the marker does not get their comment overwritten.
//
// Called by actions/github-script from .github/workflows/apply.yml:
//   await require(path)({ github, context, core }, { reportFile, exitCode, pullRequest })
const fs = require('fs');

const MARKER = '<!-- ocpi-parties-apply -->';

// Text from the report goes into the page as text: no HTML of its own, no table cell broken by a `|`.
const text = (value) => String(value).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const cell = (value) => text(value).replace(/\|/g, '\\|').replace(/\n/g, ' ');
const block = (value) => `\`\`\`text\n${String(value).replace(/```/g, "'''")}\n\`\`\``;

const readReport = (reportFile, core) => {
  try {
    return JSON.parse(fs.readFileSync(reportFile, 'utf8'));
  } catch (error) {
    core.info(`no report to post: ${error.message}`);
    return null;
  }
};

const moves = (report) => {
  if (!report.moves || report.moves.length === 0) return [];
  return [
    '| locations | moved to | why |',
    '| ---: | --- | --- |',
    ...report.moves.map((m) => `| ${cell(m.count)} | ${cell(m.to)} | ${cell(m.reason)} |`),
  ];
};

const HEADLINES = {
  'applied-reviewed': (r) => `**Applied as apply #${r.history_id}:** the reviewed plan, unchanged.`,
  'applied-current': (r) => `**Applied as apply #${r.history_id}:** the current plan. The database or the `
    + 'files changed after the review, but the changes are the same as the reviewed plan\'s.',
  'nothing-to-apply': () => '**Nothing to apply:** the database already matches the party files (the '
    + 'reviewed changes were applied before). Nothing was changed.',
  different: () => '**Nothing was applied:** the current plan differs from the reviewed one. Nothing was '
    + 'changed.',
  failed: () => '**The apply failed. Nothing was changed.**',
};

const body = (report, exitCode, runUrl, sha) => {
  const lines = [MARKER, '### ocpi-parties apply', ''];
  if (!report || !HEADLINES[report.outcome]) {
    lines.push(`**The apply did not run (exit code ${exitCode}). Nothing was changed.** `
      + `The [workflow run](${runUrl}) says why.`);
  } else {
    lines.push(HEADLINES[report.outcome](report));
    if (report.summary) lines.push('', text(report.summary));
    const moved = moves(report);
    if (moved.length && report.outcome.startsWith('applied')) lines.push('', ...moved);
    if (report.outcome === 'different') {
      lines.push('', `- reviewed: ${text(report.reviewed_summary || '')}`);
      if (report.current_summary) lines.push(`- now: ${text(report.current_summary)}`);
      if (report.difference_markdown) lines.push('', report.difference_markdown.trim());
      lines.push('', 'Look at the difference, then run the workflow `apply.yml` by hand (Run workflow) to '
        + 'apply the current plan, or open a pull request that changes the files.');
    }
    if (report.error) lines.push('', block(report.error));
    if (report.outcome === 'failed' || report.outcome === 'different') {
      lines.push('', `The [workflow run](${runUrl}) has the whole log.`);
    }
  }
  lines.push('', `<sub>Deploy of ${sha.slice(0, 12)} by [this run](${runUrl}); this comment is updated when `
    + 'the apply runs again.</sub>', '');
  return lines.join('\n');
};

module.exports = async ({ github, context, core }, { reportFile, exitCode, pullRequest }) => {
  const runUrl = `${context.serverUrl}/${context.repo.owner}/${context.repo.repo}/actions/runs/${context.runId}`;
  const report = readReport(reportFile, core);
  const comment = body(report, exitCode, runUrl, context.sha);
  const { owner, repo } = context.repo;
  const issue_number = Number(pullRequest);
  const comments = await github.paginate(github.rest.issues.listComments, { owner, repo, issue_number, per_page: 100 });
  const previous = comments.find((c) => c.user && c.user.type === 'Bot' && c.body && c.body.startsWith(MARKER));
  if (previous) {
    await github.rest.issues.updateComment({ owner, repo, comment_id: previous.id, body: comment });
    core.info(`updated the apply comment ${previous.html_url}`);
  } else {
    const created = await github.rest.issues.createComment({ owner, repo, issue_number, body: comment });
    core.info(`posted the apply comment ${created.data.html_url}`);
  }
};
