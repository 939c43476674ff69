-- Back to 0006: the history forgets the pull requests of its applies.
ALTER TABLE reconciler_apply_history DROP COLUMN IF EXISTS pull_request_url;
ALTER TABLE reconciler_apply_history DROP COLUMN IF EXISTS pull_request_number;
