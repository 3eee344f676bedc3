-- Per-task advisory locks: the same task never runs twice at once in one database.
--
-- The locks are session-level (pg_try_advisory_lock), because a transaction-level lock
-- is released by the first COMMIT of a procedure that works in batches. Key: the
-- two-int form (class 1835100526 = 'main', object = hashtext('pgmaint:' || task)),
-- which shows in pg_locks as classid / objid / objsubid = 2.

-- maint._task_lock_key(p_task text) -> integer: the second half of the lock key.
CREATE OR REPLACE FUNCTION maint._task_lock_key(p_task text)
    RETURNS integer
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.hashtext('pgmaint:' || p_task)
$$;

-- maint.task_lock_holder(p_task text) -> integer: pid of the session holding the task's
-- lock in this database, NULL when nobody does.
CREATE OR REPLACE FUNCTION maint.task_lock_holder(p_task text)
    RETURNS integer
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.pid
      FROM pg_catalog.pg_locks AS l
     WHERE l.locktype = 'advisory'
       AND l.granted
       AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d
                          WHERE d.datname = pg_catalog.current_database())
       AND l.classid = 1835100526::oid
       AND l.objid = (maint._task_lock_key(p_task)::bigint & 4294967295)::oid
       AND l.objsubid = 2
     LIMIT 1
$$;

-- maint.try_task_lock(p_task text) -> boolean: take the task's session lock without
-- waiting; false when another session holds it. Taking it again in the session that
-- already holds it returns true without stacking a second lock.
CREATE OR REPLACE FUNCTION maint.try_task_lock(p_task text)
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_task IS NULL OR p_task = '' THEN
        RAISE EXCEPTION 'task name must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF maint.task_lock_holder(p_task) = pg_catalog.pg_backend_pid() THEN
        RETURN true;
    END IF;
    RETURN pg_catalog.pg_try_advisory_lock(1835100526, maint._task_lock_key(p_task));
END
$$;

-- maint.task_unlock(p_task text) -> boolean: release the task's lock held by this
-- session (every stacked level of it); false when this session did not hold it.
CREATE OR REPLACE FUNCTION maint.task_unlock(p_task text)
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF maint.task_lock_holder(p_task) IS DISTINCT FROM pg_catalog.pg_backend_pid() THEN
        RETURN false;
    END IF;
    -- a lock stacked by a direct pg_try_advisory_lock call stays visible until every
    -- level is released
    WHILE maint.task_lock_holder(p_task) = pg_catalog.pg_backend_pid() LOOP
        PERFORM pg_catalog.pg_advisory_unlock(1835100526, maint._task_lock_key(p_task));
    END LOOP;
    RETURN true;
END
$$;

COMMENT ON FUNCTION maint.try_task_lock(text) IS 'Take the session-level advisory lock of a pgmaint task without waiting';
COMMENT ON FUNCTION maint.task_unlock(text) IS 'Release the task lock held by this session';
COMMENT ON FUNCTION maint.task_lock_holder(text) IS 'pid holding the lock of a pgmaint task, or NULL';
GRANT EXECUTE ON FUNCTION maint.task_lock_holder(text) TO maint_monitor;
GRANT EXECUTE ON FUNCTION maint._task_lock_key(text) TO maint_monitor;
GRANT EXECUTE ON FUNCTION maint.try_task_lock(text), maint.task_unlock(text) TO maint_admin;
