-- CALL maint.purge_archive(older_than, dry_run, batch_size, time_limit, lock_timeout)
--   Trims maint.archive: rows archived before now() - older_than go (after that the
--   runs that removed them can no longer be undone). Keyset batches on id, each its own
--   transaction; journaled as task 'purge_archive'. dry_run (default true) only counts.
-- It commits, so it cannot carry SET search_path: _purge_batched pins search_path with
-- set_config() in every transaction.
CREATE OR REPLACE PROCEDURE maint.purge_archive(
    older_than interval DEFAULT '30 days',
    dry_run boolean DEFAULT true,
    batch_size integer DEFAULT 10000,
    time_limit interval DEFAULT '5 minutes',
    lock_timeout interval DEFAULT '2 seconds'
)
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    CALL maint._purge_batched('purge_archive', 'older_than', older_than,
                              dry_run, batch_size, time_limit, lock_timeout);
END
$$;
COMMENT ON PROCEDURE maint.purge_archive(interval, boolean, integer, interval, interval) IS
    'Trim maint.archive: delete rows archived before now() - older_than, in batches (dry run by default)';
GRANT EXECUTE ON PROCEDURE maint.purge_archive(interval, boolean, integer, interval, interval) TO maint_admin;
