-- CALL maint.apply_retention(dry_run, only_table, time_limit, lock_timeout, max_fraction, force,
--                         scheduled_rules, override_window)
--   Remove rows older than each retention policy allows (partitions dropped when possible): every enabled retention rule (or only those on only_table), as one run of
--   task 'retention'.
--   dry_run       true (default): count and journal what would go, change nothing
--   only_table    a table name (as in regclass input); NULL = all tables
--   time_limit    no new batch starts after this long; the run ends 'partial'
--   lock_timeout  per batch; a batch that cannot get its locks is retried 3 times,
--                 then the rule is skipped (run 'partial') without blocking anyone
--   max_fraction  refuse a rule that would remove more than this fraction of its table
--   force         true: remove even beyond max_fraction
--   scheduled_rules  false: leave out rules with their own cadence (maint.set_rule_schedule;
--                 the kind's default job passes false, each such rule has its own job)
--   override_window  the reason for an emergency run outside the task's maintenance
--                 window (journaled with who ran it); NULL: outside its window the task is
--                 journaled as skipped
--   Removed rows go to maint.archive (unless the rule says archive off) in the same
--   transaction as the delete; CALL maint.undo_run(run_id) puts them back. Call it
--   outside a transaction block (it commits between batches). Raises at the end when a
--   rule failed or was refused, after journaling, so pg_cron records the job as failed.
-- It commits, so it cannot carry SET search_path: it pins search_path with set_config()
-- at the start of every transaction instead.
CREATE OR REPLACE PROCEDURE maint.apply_retention(
    dry_run boolean DEFAULT true,
    only_table text DEFAULT NULL,
    time_limit interval DEFAULT '10 minutes',
    lock_timeout interval DEFAULT '2 seconds',
    max_fraction numeric DEFAULT 0.5,
    force boolean DEFAULT false,
    scheduled_rules boolean DEFAULT true,
    override_window text DEFAULT NULL
)
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    CALL maint._cleanup_execute('retention', ARRAY['retention'], dry_run, only_table,
                                time_limit, lock_timeout, max_fraction, force, NULL,
                                scheduled_rules, override_window);
END
$$;
COMMENT ON PROCEDURE maint.apply_retention(boolean, text, interval, interval, numeric, boolean, boolean, text) IS
    'Remove rows older than each retention policy allows (partitions dropped when possible) (batched, archived, dry run by default)';
GRANT EXECUTE ON PROCEDURE maint.apply_retention(boolean, text, interval, interval, numeric, boolean, boolean, text) TO maint_admin;
