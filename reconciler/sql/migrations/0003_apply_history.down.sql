DROP TABLE IF EXISTS reconciler_apply_history;
