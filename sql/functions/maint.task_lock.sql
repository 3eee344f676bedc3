-- Task locks: the same task never runs twice at once in one database.
--
-- A lock is a row of maint.task_locks that names the session holding it, so only the
-- kit's own functions can take one: a plain advisory lock would let any role that can
-- connect squat a task's key and block the kit. The holding session also keeps a
-- session-level advisory lock (1835100527, holder_key) with a fresh key, which is how the
-- kit tells a live holder from a session that died (its advisory locks vanish with it,
-- and a later session that happens to get the same pid does not hold that key). Taking
-- the row with FOR UPDATE NOWAIT keeps two sessions from taking it at the same moment; a
-- task that runs in one transaction holds that row lock to its end. The locks are
-- session-level because a transaction-level lock would be released by the first COMMIT
-- of a procedure that works in batches.

-- maint._task_holder(p_task text) -> TABLE(pid integer, role text, application text, since timestamptz)
--   Who holds a task's lock: the recorded holder while its session lives, else a session
--   whose transaction is taking or holding the lock row right now; no row when nobody.
CREATE OR REPLACE FUNCTION maint._task_holder(p_task text)
    RETURNS TABLE(pid integer, role text, application text, since timestamptz)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row maint.task_locks;
    v_xmax xid;
BEGIN
    SELECT * INTO v_row FROM maint.task_locks AS t WHERE t.task = p_task;
    IF v_row.holder_pid IS NOT NULL AND EXISTS (
        SELECT 1 FROM pg_catalog.pg_locks AS l
         WHERE l.locktype = 'advisory' AND l.granted AND l.pid = v_row.holder_pid
           AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = pg_catalog.current_database())
           AND l.classid = 1835100527::oid AND l.objid = v_row.holder_key::oid AND l.objsubid = 2) THEN
        pid := v_row.holder_pid;
        role := v_row.holder_role;
        application := v_row.holder_application;
        since := v_row.acquired_at;
        RETURN NEXT;
        RETURN;
    END IF;
    -- a transaction that has the row locked (a one-transaction task, or a taker right now)
    SELECT t.xmax INTO v_xmax FROM maint.task_locks AS t WHERE t.task = p_task;
    IF v_xmax IS NOT NULL AND v_xmax::text <> '0' THEN
        RETURN QUERY
        SELECT l.pid, a.usename::text, a.application_name, a.xact_start
          FROM pg_catalog.pg_locks AS l
          LEFT JOIN pg_catalog.pg_stat_activity AS a ON a.pid = l.pid
         WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
           AND l.transactionid = v_xmax AND l.pid <> pg_catalog.pg_backend_pid()
         LIMIT 1;
    END IF;
END
$$;

-- maint.task_lock_holder(p_task text) -> integer: pid of the session holding the task's
-- lock in this database, NULL when nobody does.
CREATE OR REPLACE FUNCTION maint.task_lock_holder(p_task text)
    RETURNS integer
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT h.pid FROM maint._task_holder(p_task) AS h LIMIT 1
$$;

-- maint.try_task_lock(p_task text) -> boolean: take the task's lock without waiting;
-- false when another session holds it. Taking it again in the session that already holds
-- it returns true. SECURITY DEFINER: maint.task_locks is written only here.
CREATE OR REPLACE FUNCTION maint.try_task_lock(p_task text)
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_key integer;
    v_holder integer;
BEGIN
    IF p_task IS NULL OR p_task !~ '^[a-z][a-z0-9_.:-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid task name %: use lower-case letters, digits, _ . : -',
            pg_catalog.quote_nullable(p_task)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Never wait. The row is locked with SKIP LOCKED, in this transaction itself (not in a
    -- subtransaction), so another session sees its xmax as this transaction's id and
    -- maint._task_holder can name the holder. A task's first lock inserts its row.
    PERFORM FROM maint.task_locks AS t WHERE t.task = p_task FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM maint.task_locks AS t WHERE t.task = p_task) THEN
            RETURN false;  -- another transaction has the row
        END IF;
        PERFORM pg_catalog.set_config('lock_timeout', '50ms', true);
        BEGIN
            INSERT INTO maint.task_locks (task) VALUES (p_task) ON CONFLICT (task) DO NOTHING;
        EXCEPTION WHEN lock_not_available THEN
            RETURN false;  -- another transaction is inserting it
        END;
        PERFORM FROM maint.task_locks AS t WHERE t.task = p_task FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
    END IF;
    v_holder := maint.task_lock_holder(p_task);
    IF v_holder = pg_catalog.pg_backend_pid() THEN
        RETURN true;
    ELSIF v_holder IS NOT NULL THEN
        RETURN false;
    END IF;
    -- markers of this session left by transactions that rolled back: release them
    PERFORM pg_catalog.pg_advisory_unlock(1835100527, l.objid::bigint::integer)
       FROM pg_catalog.pg_locks AS l
      WHERE l.locktype = 'advisory' AND l.pid = pg_catalog.pg_backend_pid()
        AND l.classid = 1835100527::oid AND l.objsubid = 2
        AND NOT EXISTS (SELECT 1 FROM maint.task_locks AS t
                         WHERE t.holder_pid = l.pid AND t.holder_key = l.objid::bigint::integer);
    -- a fresh marker; a key squatted by another session is simply skipped
    LOOP
        v_key := pg_catalog.nextval('maint.task_lock_keys')::integer;
        EXIT WHEN pg_catalog.pg_try_advisory_lock(1835100527, v_key);
    END LOOP;
    UPDATE maint.task_locks AS t
       SET holder_pid = pg_catalog.pg_backend_pid(), holder_key = v_key, holder_role = SESSION_USER,
           holder_application = pg_catalog.current_setting('application_name'),
           acquired_at = pg_catalog.clock_timestamp()
     WHERE t.task = p_task;
    RETURN true;
END
$$;

-- maint.task_unlock(p_task text) -> boolean: release the task's lock held by this
-- session; false when this session did not hold it.
CREATE OR REPLACE FUNCTION maint.task_unlock(p_task text)
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row maint.task_locks;
BEGIN
    SELECT * INTO v_row FROM maint.task_locks AS t WHERE t.task = p_task;
    IF v_row.holder_pid IS DISTINCT FROM pg_catalog.pg_backend_pid() THEN
        RETURN false;
    END IF;
    PERFORM pg_catalog.pg_advisory_unlock(1835100527, v_row.holder_key);
    UPDATE maint.task_locks AS t
       SET holder_pid = NULL, holder_key = NULL, holder_role = NULL, holder_application = NULL, acquired_at = NULL
     WHERE t.task = p_task;
    RETURN true;
END
$$;

COMMENT ON FUNCTION maint._task_holder(text) IS 'Internal: who holds a task lock (pid, role, application, since)';
COMMENT ON FUNCTION maint.try_task_lock(text) IS 'Take the lock of a pgmaint task without waiting';
COMMENT ON FUNCTION maint.task_unlock(text) IS 'Release the task lock held by this session';
COMMENT ON FUNCTION maint.task_lock_holder(text) IS 'pid holding the lock of a pgmaint task, or NULL';
GRANT EXECUTE ON FUNCTION maint.task_lock_holder(text), maint._task_holder(text) TO maint_monitor;
GRANT EXECUTE ON FUNCTION maint.try_task_lock(text), maint.task_unlock(text) TO maint_admin;
