-- The backup catalog API: `pgmaint backup` writes maint.backups only through these
-- functions (maint_admin has no INSERT or UPDATE on the table). They are SECURITY
-- DEFINER, owned by the deploying role, and enforce the life cycle of a row:
--
--   backup_start -> running --backup_finish--> completed --record_verification--> verified | failed
--                           \-> failed (dump never completed; cannot be verified)
--
-- Every write names the journaled run making it (maint.run_start), which must be
-- running in the calling session: so a row is created, finished and pruned only by the
-- session holding the `backup` task lock, and verified only by a `backup` or
-- `backup-verify` run. Rows record the run and session_user that created and verified them.

-- maint._backup_check_run(p_run_id bigint, p_tasks text[]) -> void
--   Raises unless run p_run_id is a running run of one of p_tasks opened by this session.
CREATE OR REPLACE FUNCTION maint._backup_check_run(p_run_id bigint, p_tasks text[])
    RETURNS void
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run maint.runs;
BEGIN
    IF p_run_id IS NULL THEN
        RAISE EXCEPTION 'a backup catalog write needs the id of the run making it (maint.run_start)'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    v_run := maint._own_run(p_run_id);   -- running, and this session's
    IF NOT (v_run.task = ANY (p_tasks)) THEN
        RAISE EXCEPTION 'run % is a run of task %, not of %', p_run_id, v_run.task,
            pg_catalog.array_to_string(p_tasks, ' or ')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- maint._backup_row(p_id bigint) -> maint.backups: the row, locked; raises when missing.
CREATE OR REPLACE FUNCTION maint._backup_row(p_id bigint)
    RETURNS maint.backups
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row maint.backups;
BEGIN
    SELECT * INTO v_row FROM maint.backups WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no backup with id % in maint.backups', pg_catalog.quote_nullable(p_id)
            USING ERRCODE = 'no_data_found';
    END IF;
    RETURN v_row;
END
$$;

-- maint._backup_finished(p_id bigint, p_path text, p_action text) -> maint.backups
--   Row p_id, locked, when it is this catalog's backup at p_path (else NULL: a backup of
--   another database, or from before the catalog was reset); raises when it is still
--   running or failed before its dump was complete, as p_action (verified, pruned) needs
--   a finished one.
CREATE OR REPLACE FUNCTION maint._backup_finished(p_id bigint, p_path text, p_action text)
    RETURNS maint.backups
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row maint.backups;
BEGIN
    SELECT * INTO v_row FROM maint.backups WHERE id = p_id FOR UPDATE;
    IF NOT FOUND OR v_row.path IS DISTINCT FROM p_path THEN
        RETURN NULL;
    END IF;
    IF v_row.status = 'running' THEN
        RAISE EXCEPTION 'backup % is still running: only a finished backup can be %', p_id, p_action
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN v_row;
END
$$;

-- maint._backup_check_detail(p_detail jsonb, p_what text) -> void
--   A detail document must be a JSON object (or NULL).
CREATE OR REPLACE FUNCTION maint._backup_check_detail(p_detail jsonb, p_what text)
    RETURNS void
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_detail IS NOT NULL AND pg_catalog.jsonb_typeof(p_detail) <> 'object' THEN
        RAISE EXCEPTION '% detail must be a JSON object, not %', p_what, pg_catalog.jsonb_typeof(p_detail)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- maint.backup_start(p_run_id bigint, p_format text, p_detail jsonb) -> maint.backups
--   A new 'running' row for the backup run p_run_id (task backup, this session).
CREATE OR REPLACE FUNCTION maint.backup_start(
    p_run_id bigint,
    p_format text,
    p_detail jsonb DEFAULT '{}'::jsonb
)
    RETURNS maint.backups
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row maint.backups;
BEGIN
    PERFORM maint._backup_check_run(p_run_id, ARRAY['backup']);
    IF p_format IS NULL OR p_format NOT IN ('custom', 'directory') THEN
        RAISE EXCEPTION 'invalid backup format %: expected custom or directory',
            pg_catalog.quote_nullable(p_format)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM maint._backup_check_detail(p_detail, 'backup');
    INSERT INTO maint.backups (format, server_version, verify_level, detail, run_id, created_by)
    VALUES (p_format, pg_catalog.current_setting('server_version'), 'none',
            coalesce(p_detail, '{}'::jsonb), p_run_id, session_user)
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;

-- maint._backup_running(p_run_id bigint, p_id bigint) -> maint.backups
--   Row p_id, locked, checked to be 'running' and to belong to run p_run_id.
CREATE OR REPLACE FUNCTION maint._backup_running(p_run_id bigint, p_id bigint)
    RETURNS maint.backups
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row maint.backups;
BEGIN
    PERFORM maint._backup_check_run(p_run_id, ARRAY['backup']);
    v_row := maint._backup_row(p_id);
    IF v_row.status <> 'running' THEN
        RAISE EXCEPTION 'backup % is already % (finished %): a finished backup cannot change its outcome',
            p_id, v_row.status, v_row.finished_at
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF v_row.run_id IS DISTINCT FROM p_run_id THEN
        RAISE EXCEPTION 'backup % was started by run %, not by run %', p_id,
            coalesce(v_row.run_id::text, '(unknown)'), p_run_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN v_row;
END
$$;

-- maint.backup_progress(p_run_id, p_id, p_path, p_pg_dump_version) -> void
--   While the backup runs: where it goes (set once) and which pg_dump makes it.
--   NULL leaves a value as it is.
CREATE OR REPLACE FUNCTION maint.backup_progress(
    p_run_id bigint,
    p_id bigint,
    p_path text DEFAULT NULL,
    p_pg_dump_version text DEFAULT NULL
)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row maint.backups;
BEGIN
    v_row := maint._backup_running(p_run_id, p_id);
    IF p_path = '' OR p_pg_dump_version = '' THEN
        RAISE EXCEPTION 'path and pg_dump version must not be empty strings (NULL keeps the current value)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_path IS NOT NULL AND v_row.path IS NOT NULL AND p_path <> v_row.path THEN
        RAISE EXCEPTION 'backup % already has path %; it cannot move to %', p_id,
            pg_catalog.quote_literal(v_row.path), pg_catalog.quote_literal(p_path)
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE maint.backups
       SET path = coalesce(p_path, path),
           pg_dump_version = coalesce(p_pg_dump_version, pg_dump_version)
     WHERE id = p_id;
END
$$;

-- maint.backup_finish(p_run_id, p_id, p_status, p_bytes, p_manifest_sha256, p_error, p_detail)
--   -> maint.backups. Closes a running backup: 'completed' (needs its path, size and
--   manifest sha256, no error) or 'failed' (needs the error). p_detail is merged into
--   detail (the keys 'verify', 'pruned_at' and 'pruned_by' are the kit's own).
CREATE OR REPLACE FUNCTION maint.backup_finish(
    p_run_id bigint,
    p_id bigint,
    p_status text,
    p_bytes bigint DEFAULT NULL,
    p_manifest_sha256 text DEFAULT NULL,
    p_error text DEFAULT NULL,
    p_detail jsonb DEFAULT NULL
)
    RETURNS maint.backups
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row maint.backups;
BEGIN
    IF p_status IS NULL OR p_status NOT IN ('completed', 'failed') THEN
        RAISE EXCEPTION 'invalid outcome % for a backup: expected completed or failed',
            pg_catalog.quote_nullable(p_status)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM maint._backup_check_detail(p_detail, 'backup');
    v_row := maint._backup_running(p_run_id, p_id);
    IF p_status = 'completed' THEN
        IF v_row.path IS NULL THEN
            RAISE EXCEPTION 'backup % has no path: set it with maint.backup_progress before completing it', p_id
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        IF p_bytes IS NULL OR p_bytes < 0 THEN
            RAISE EXCEPTION 'a completed backup needs its size in bytes (>= 0), not %',
                pg_catalog.quote_nullable(p_bytes)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF p_manifest_sha256 IS NULL OR p_manifest_sha256 !~ '^[0-9a-f]{64}$' THEN
            RAISE EXCEPTION 'a completed backup needs the sha256 of its manifest (64 lower-case hex digits), not %',
                pg_catalog.quote_nullable(p_manifest_sha256)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF p_error IS NOT NULL THEN
            RAISE EXCEPTION 'a completed backup has no error (got %)', pg_catalog.quote_literal(p_error)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    ELSIF p_error IS NULL OR pg_catalog.btrim(p_error) = '' THEN
        RAISE EXCEPTION 'a failed backup needs the error that failed it'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE maint.backups
       SET status = p_status,
           finished_at = pg_catalog.clock_timestamp(),
           bytes = CASE WHEN p_status = 'completed' THEN p_bytes ELSE bytes END,
           manifest_sha256 = CASE WHEN p_status = 'completed' THEN p_manifest_sha256 END,
           error = p_error,
           detail = detail || (coalesce(p_detail, '{}'::jsonb) - 'verify' - 'pruned_at' - 'pruned_by')
     WHERE id = p_id
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;

-- maint.backup_record_verification(p_run_id, p_id, p_path, p_level, p_ok, p_result, p_detail)
--   -> boolean. Records a verification of backup p_id: 'verified' when p_ok, else
--   'failed' with p_result as the error. Only a backup whose dump completed (status
--   completed or verified, or failed by an earlier verification) can be verified.
--   Returns false, changing nothing, when this catalog has no backup p_id at p_path
--   (a backup of another database, or from before the catalog was reset).
CREATE OR REPLACE FUNCTION maint.backup_record_verification(
    p_run_id bigint,
    p_id bigint,
    p_path text,
    p_level text,
    p_ok boolean,
    p_result text,
    p_detail jsonb DEFAULT NULL
)
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row maint.backups;
BEGIN
    PERFORM maint._backup_check_run(p_run_id, ARRAY['backup', 'backup-verify']);
    IF p_level IS NULL OR p_level NOT IN ('list', 'read', 'restore') THEN
        RAISE EXCEPTION 'invalid verify level %: expected list, read or restore',
            pg_catalog.quote_nullable(p_level)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_ok IS NULL OR p_result IS NULL OR pg_catalog.btrim(p_result) = '' THEN
        RAISE EXCEPTION 'a verification needs its outcome (ok true or false) and a result text'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM maint._backup_check_detail(p_detail, 'verification');
    v_row := maint._backup_finished(p_id, p_path, 'verified');
    IF v_row.id IS NULL THEN
        RETURN false;
    END IF;
    IF v_row.status = 'failed' AND v_row.manifest_sha256 IS NULL THEN
        RAISE EXCEPTION 'backup % failed before its dump was complete (%): there is nothing to verify',
            p_id, coalesce(v_row.error, 'no error recorded')
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE maint.backups
       SET status = CASE WHEN p_ok THEN 'verified' ELSE 'failed' END,
           verify_level = p_level,
           verify_result = p_result,
           verified_at = pg_catalog.clock_timestamp(),
           verified_by = session_user,
           error = CASE WHEN p_ok THEN NULL ELSE p_result END,
           detail = detail || pg_catalog.jsonb_build_object('verify', coalesce(p_detail, '{}'::jsonb))
     WHERE id = p_id;
    RETURN true;
END
$$;

-- maint.backup_mark_pruned(p_run_id bigint, p_id bigint, p_path text) -> boolean
--   Notes in detail (pruned_at, pruned_by) that retention deleted backup p_id's files.
--   False, changing nothing, when this catalog has no backup p_id at p_path.
CREATE OR REPLACE FUNCTION maint.backup_mark_pruned(p_run_id bigint, p_id bigint, p_path text)
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM maint._backup_check_run(p_run_id, ARRAY['backup']);
    IF (maint._backup_finished(p_id, p_path, 'pruned')).id IS NULL THEN
        RETURN false;
    END IF;
    UPDATE maint.backups
       SET detail = detail || pg_catalog.jsonb_build_object(
               'pruned_at', pg_catalog.to_char(pg_catalog.clock_timestamp() AT TIME ZONE 'UTC',
                                               'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'pruned_by', session_user)
     WHERE id = p_id;
    RETURN true;
END
$$;

-- maint.backup_fail_stale(p_run_id bigint) -> integer
--   Marks the 'running' rows of this database not belonging to run p_run_id as failed
--   ("abandoned") and returns how many. Only a running backup run of this session may
--   call it, and it holds the backup task lock: no other backup of this database can be
--   in progress, so such rows belong to runs that died.
CREATE OR REPLACE FUNCTION maint.backup_fail_stale(p_run_id bigint)
    RETURNS integer
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    PERFORM maint._backup_check_run(p_run_id, ARRAY['backup']);
    UPDATE maint.backups AS b
       SET status = 'failed', finished_at = pg_catalog.clock_timestamp(),
           error = 'abandoned: the run ended without recording its outcome'
     WHERE b.status = 'running'
       AND b.database = pg_catalog.current_database()
       AND b.run_id IS DISTINCT FROM p_run_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;

-- maint.backup_system_identifier() -> text
--   This server's system identifier (pg_control_system()), in decimal: the directory that
--   holds its backups (<root>/<system identifier>/<database>/), so two servers that each
--   have a database `app` never share one. A standby has its primary's identifier: its
--   backups are the same cluster's.
CREATE OR REPLACE FUNCTION maint.backup_system_identifier()
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.system_identifier::text FROM pg_catalog.pg_control_system() AS s
$$;

COMMENT ON FUNCTION maint._backup_check_detail(jsonb, text) IS 'Internal: a detail document must be a JSON object';
COMMENT ON FUNCTION maint.backup_start(bigint, text, jsonb) IS 'Open a running row in the backup catalog for a backup run';
COMMENT ON FUNCTION maint.backup_progress(bigint, bigint, text, text) IS 'Record the path and pg_dump version of a running backup';
COMMENT ON FUNCTION maint.backup_finish(bigint, bigint, text, bigint, text, text, jsonb) IS 'Close a running backup as completed or failed';
COMMENT ON FUNCTION maint.backup_record_verification(bigint, bigint, text, text, boolean, text, jsonb) IS 'Record the outcome of a backup verification (verified or failed)';
COMMENT ON FUNCTION maint.backup_mark_pruned(bigint, bigint, text) IS 'Note that retention deleted the files of a backup';
COMMENT ON FUNCTION maint.backup_fail_stale(bigint) IS 'Mark running backups whose run ended as failed (abandoned)';
COMMENT ON FUNCTION maint.backup_system_identifier() IS 'This server''s system identifier: the directory of its backups';

GRANT EXECUTE ON FUNCTION
    maint.backup_start(bigint, text, jsonb),
    maint.backup_progress(bigint, bigint, text, text),
    maint.backup_finish(bigint, bigint, text, bigint, text, text, jsonb),
    maint.backup_record_verification(bigint, bigint, text, text, boolean, text, jsonb),
    maint.backup_mark_pruned(bigint, bigint, text),
    maint.backup_fail_stale(bigint)
TO maint_admin;

GRANT EXECUTE ON FUNCTION maint.backup_system_identifier() TO maint_monitor;
