-- CALL maint.purge_history(keep, keep_cron_details, dry_run)
--   The monthly trim: the archive of removed rows past each rule's archive_keep
--   (maint.purge_archive), health history
--   samples (task purge_health_history), events (task purge_events), the run journal (maint.purge_runs), and pg_cron's
--   cron.job_run_details when pg_cron lives in this database (elsewhere
--   `pgmaint schedule install` trims it there with a job of its own). The batched parts are
--   journaled as their own tasks and run last: a procedure that commits cannot be wrapped
--   in an exception handler, so when one of them fails the job stops there and pg_cron
--   records it as failed. A failure of the cron.job_run_details trim is raised at the end.
--   Call outside a transaction block.
-- It commits, so it cannot carry SET search_path: it pins search_path with set_config()
-- at the start of every transaction instead.
CREATE OR REPLACE PROCEDURE maint.purge_history(
    keep interval DEFAULT '90 days',
    keep_cron_details interval DEFAULT '30 days',
    dry_run boolean DEFAULT true
)
    LANGUAGE plpgsql
AS $$
DECLARE
    v_failed text[] := '{}';
    v_count bigint;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF keep IS NULL OR keep < interval '0' OR keep_cron_details IS NULL OR keep_cron_details < interval '0' THEN
        RAISE EXCEPTION 'keep and keep_cron_details must be non-negative intervals'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF dry_run IS NULL THEN
        RAISE EXCEPTION 'dry_run must be true or false' USING ERRCODE = 'null_value_not_allowed';
    END IF;

    IF (SELECT s.in_this_database AND s.extension_installed FROM maint.cron_status() AS s) THEN
        BEGIN
            IF dry_run THEN
                EXECUTE 'SELECT count(*) FROM cron.job_run_details WHERE end_time < now() - $1'
                    INTO v_count USING keep_cron_details;
                RAISE NOTICE 'purge_history (dry run): % pg_cron run details would be deleted', v_count;
            ELSE
                EXECUTE 'DELETE FROM cron.job_run_details WHERE end_time < now() - $1'
                    USING keep_cron_details;
                GET DIAGNOSTICS v_count = ROW_COUNT;
                RAISE NOTICE 'purge_history: deleted % pg_cron run details', v_count;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            v_failed := v_failed || ('cron.job_run_details: ' || SQLERRM);
        END;
    END IF;
    -- the archive goes by each rule's archive_keep, whole runs at a time
    CALL maint.purge_archive(dry_run => dry_run);
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    CALL maint._purge_batched('purge_health_history', 'keep', keep,
                              dry_run, 10000, interval '15 minutes', interval '2 seconds');
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    CALL maint._purge_batched('purge_events', 'keep', keep,
                              dry_run, 10000, interval '15 minutes', interval '2 seconds');
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    CALL maint.purge_runs(keep => keep, dry_run => dry_run);
    IF pg_catalog.cardinality(v_failed) > 0 THEN
        RAISE EXCEPTION 'purge_history: % part(s) failed: %', pg_catalog.cardinality(v_failed),
            pg_catalog.array_to_string(v_failed, '; ');
    END IF;
END
$$;
COMMENT ON PROCEDURE maint.purge_history(interval, interval, boolean) IS
    'Monthly trim of archive, run journal, health history and pg_cron run details (dry run by default)';
GRANT EXECUTE ON PROCEDURE maint.purge_history(interval, interval, boolean) TO maint_admin;
