-- CALL maint.purge_runs(keep, dry_run, batch_size, time_limit, lock_timeout)
--   Journal retention: deletes finished maint.runs rows older than `keep`.
--   keep          runs finished before now() - keep go (default 90 days; '0' = all finished)
--   dry_run       true (default): only count and journal what would go
--   batch_size    rows per batch; each batch is its own transaction (keyset on id)
--   time_limit    stop starting new batches after this long; the run ends 'partial'
--   lock_timeout  per batch; a batch that cannot get its locks is retried 3 times,
--                 then the run fails without having waited in front of anyone
--   Itself journaled as task 'purge_runs'. The journal is the kit's own record, so
--   purged rows are not archived. Call it outside an explicit transaction block
--   (it commits between batches): from psql, psycopg with autocommit, or pg_cron.
-- It commits, so it cannot carry SET search_path: it pins search_path with set_config()
-- at the start of every transaction instead.
CREATE OR REPLACE PROCEDURE maint.purge_runs(
    keep interval DEFAULT '90 days',
    dry_run boolean DEFAULT true,
    batch_size integer DEFAULT 5000,
    time_limit interval DEFAULT '5 minutes',
    lock_timeout interval DEFAULT '2 seconds'
)
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    -- finished_at < cutoff never matches a run still going (finished_at is NULL)
    CALL maint._purge_batched('purge_runs', 'keep', keep, dry_run,
                              batch_size, time_limit, lock_timeout);
END
$$;
COMMENT ON PROCEDURE maint.purge_runs(interval, boolean, integer, interval, interval) IS
    'Journal retention: delete finished maint.runs rows older than keep, in batches (dry run by default)';
GRANT EXECUTE ON PROCEDURE maint.purge_runs(interval, boolean, integer, interval, interval) TO maint_admin;
