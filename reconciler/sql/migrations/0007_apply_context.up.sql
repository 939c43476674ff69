-- Which pull request an apply came from, beside the revision: the deploy job records the merged pull request
-- whose reviewed plan it applied, so `history` links an apply to its review.
ALTER TABLE reconciler_apply_history ADD COLUMN IF NOT EXISTS pull_request_number integer;
ALTER TABLE reconciler_apply_history ADD COLUMN IF NOT EXISTS pull_request_url text;
