-- Health checks on sessions, transactions and locks (pg_stat_activity, pg_locks,
-- pg_prepared_xacts). They need pg_read_all_stats (pg_monitor) to see other roles'
-- sessions; without it they add an 'unknown' row saying how many they could not see.

-- connections: client backends vs the slots usable by non-superusers.
CREATE OR REPLACE FUNCTION maint.health_connections(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(x.st, 'cluster', 'connections',
               pg_catalog.format('%s of %s connection slots usable by non-superusers are in use (%s%%; '
                                 'max_connections %s, superuser_reserved_connections %s)',
                                 x.used, x.usable, x.pct, x.maxc, x.reserved),
               x.pct,
               'close idle sessions, put a connection pooler (pgbouncer) in front, or raise max_connections',
               NULL,
               pg_catalog.jsonb_build_object('used', x.used, 'usable', x.usable, 'by_state', x.by_state))
      FROM (
        SELECT u.used, u.by_state, s.maxc, s.reserved, s.maxc - s.reserved AS usable,
               round(100.0 * u.used / greatest(s.maxc - s.reserved, 1), 1) AS pct,
               maint._health_level(round(100.0 * u.used / greatest(s.maxc - s.reserved, 1), 1),
                                   p_cfg.warn, p_cfg.crit) AS st
          FROM (SELECT coalesce(sum(b.n), 0) AS used,
                       pg_catalog.jsonb_object_agg(b.state, b.n) AS by_state
                  FROM (SELECT coalesce(a.state, 'hidden') AS state, count(*) AS n
                          FROM pg_catalog.pg_stat_activity AS a
                         WHERE a.backend_type = 'client backend'
                         GROUP BY 1) AS b) AS u,
               (SELECT pg_catalog.current_setting('max_connections')::integer AS maxc,
                       pg_catalog.current_setting('superuser_reserved_connections')::integer AS reserved) AS s
      ) AS x
     WHERE x.st <> 'ok'
    UNION ALL
    SELECT h FROM maint._health_hidden_sessions() AS h
$$;

-- maint._health_aged_sessions(p_kind, p_cfg) -> the other sessions whose age passes the
-- check's thresholds, with that age (s) and the status it earns. p_kind picks the clock:
--   idle_in_transaction  idle in a transaction, since the last state change
--   transaction          client sessions with an open transaction, since it began
--   query                active client statements, since the statement began
CREATE OR REPLACE FUNCTION maint._health_aged_sessions(p_kind text, p_cfg maint.check_config)
    RETURNS TABLE (pid integer, usename name, application_name text, datname name, state text,
                   query text, client_addr inet, xact_start timestamptz, query_start timestamptz,
                   wait_event_type text, wait_event text, age_s numeric, st text)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.pid, a.usename, a.application_name, a.datname, a.state, a.query, a.client_addr,
           a.xact_start, a.query_start, a.wait_event_type, a.wait_event, s.age_s, s.st
      FROM pg_catalog.pg_stat_activity AS a
     CROSS JOIN LATERAL (
           SELECT round(extract(epoch FROM pg_catalog.clock_timestamp() - CASE p_kind
                      WHEN 'idle_in_transaction' THEN a.state_change
                      WHEN 'transaction' THEN a.xact_start
                      ELSE a.query_start END)::numeric, 1) AS age_s) AS t
     CROSS JOIN LATERAL (
           SELECT t.age_s, maint._health_level(t.age_s, p_cfg.warn, p_cfg.crit) AS st) AS s
     WHERE a.pid <> pg_catalog.pg_backend_pid()
       AND CASE p_kind
               WHEN 'idle_in_transaction' THEN a.state IN ('idle in transaction', 'idle in transaction (aborted)')
               WHEN 'transaction' THEN a.xact_start IS NOT NULL AND a.backend_type = 'client backend'
               WHEN 'query' THEN a.state = 'active' AND a.backend_type = 'client backend'
           END
       AND s.st <> 'ok'
$$;

-- idle_in_transaction: sessions idle inside an open transaction, by seconds idle.
CREATE OR REPLACE FUNCTION maint.health_idle_in_transaction(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(x.st, 'session', 'pid ' || x.pid,
               pg_catalog.format('session %s (user %s, application %L, database %s) has been %s for %s s; '
                                 'last statement: %s',
                                 x.pid, x.usename, x.application_name, x.datname, x.state, x.age_s,
                                 pg_catalog.left(x.query, 200)),
               x.age_s,
               'commit or roll back in the application; set idle_in_transaction_session_timeout',
               pg_catalog.format('SELECT pg_catalog.pg_terminate_backend(%s);', x.pid),
               pg_catalog.jsonb_build_object('pid', x.pid, 'user', x.usename, 'database', x.datname,
                                             'application_name', x.application_name,
                                             'client_addr', x.client_addr, 'xact_start', x.xact_start))
      FROM maint._health_aged_sessions('idle_in_transaction', p_cfg) AS x
    UNION ALL
    SELECT h FROM maint._health_hidden_sessions() AS h
$$;

-- long_transaction: transactions open longer than the thresholds.
CREATE OR REPLACE FUNCTION maint.health_long_transaction(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(x.st, 'session', 'pid ' || x.pid,
               pg_catalog.format('session %s (user %s, application %L, database %s, %s) has had a '
                                 'transaction open for %s s; current or last statement: %s',
                                 x.pid, x.usename, x.application_name, x.datname, x.state, x.age_s,
                                 pg_catalog.left(x.query, 200)),
               x.age_s,
               'find out why the transaction stays open; long transactions hold locks and keep VACUUM '
               'from removing dead rows',
               pg_catalog.format('SELECT pg_catalog.pg_terminate_backend(%s);', x.pid),
               pg_catalog.jsonb_build_object('pid', x.pid, 'user', x.usename, 'database', x.datname,
                                             'state', x.state, 'xact_start', x.xact_start))
      FROM maint._health_aged_sessions('transaction', p_cfg) AS x
    UNION ALL
    SELECT h FROM maint._health_hidden_sessions() AS h
$$;

-- long_query: active statements running longer than the thresholds.
CREATE OR REPLACE FUNCTION maint.health_long_query(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(x.st, 'session', 'pid ' || x.pid,
               pg_catalog.format('session %s (user %s, application %L, database %s) has been running '
                                 'one statement for %s s: %s',
                                 x.pid, x.usename, x.application_name, x.datname, x.age_s,
                                 pg_catalog.left(x.query, 200)),
               x.age_s,
               'look at the plan (EXPLAIN) and at what the statement waits for; cancel it if it is runaway',
               pg_catalog.format('SELECT pg_catalog.pg_cancel_backend(%s);', x.pid),
               pg_catalog.jsonb_build_object('pid', x.pid, 'user', x.usename, 'database', x.datname,
                                             'wait_event_type', x.wait_event_type,
                                             'wait_event', x.wait_event, 'query_start', x.query_start))
      FROM maint._health_aged_sessions('query', p_cfg) AS x
    UNION ALL
    SELECT h FROM maint._health_hidden_sessions() AS h
$$;

-- blocked_sessions: sessions waiting for a lock another session holds.
CREATE OR REPLACE FUNCTION maint.health_blocked_sessions(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(x.st, 'session', 'pid ' || x.pid,
               pg_catalog.format('session %s (user %s, database %s) has waited %s s for %s held or queued '
                                 'by session(s) %s; statement: %s',
                                 x.pid, x.usename, x.datname, x.age_s,
                                 coalesce(x.lockdesc, 'a lock'), pg_catalog.array_to_string(x.blockers, ', '),
                                 pg_catalog.left(x.query, 200)),
               x.age_s,
               'find what the blocking session(s) are doing (idle in transaction? long DDL?) and end it; '
               'give DDL a lock_timeout',
               NULL,
               pg_catalog.jsonb_build_object('pid', x.pid, 'blocked_by', pg_catalog.to_jsonb(x.blockers),
                                             'lock', x.lockdesc, 'database', x.datname))
      FROM (
        SELECT a.pid, a.usename, a.datname, a.query, b.blockers, s.age_s,
               (SELECT pg_catalog.format('a %s on %s %s', l.mode, l.locktype,
                           coalesce(l.relation::pg_catalog.regclass::text, l.transactionid::text, ''))
                  FROM pg_catalog.pg_locks AS l
                 WHERE l.pid = a.pid AND NOT l.granted LIMIT 1) AS lockdesc,
               maint._health_level(s.age_s, p_cfg.warn, p_cfg.crit) AS st
          FROM pg_catalog.pg_stat_activity AS a,
               LATERAL (SELECT pg_catalog.pg_blocking_pids(a.pid) AS blockers) AS b,
               LATERAL (SELECT round(extract(epoch FROM pg_catalog.clock_timestamp()
                                     - coalesce(a.query_start, a.state_change))::numeric, 1) AS age_s) AS s
         WHERE a.wait_event_type = 'Lock' AND pg_catalog.cardinality(b.blockers) > 0
      ) AS x
     WHERE x.st <> 'ok'
    UNION ALL
    SELECT h FROM maint._health_hidden_sessions() AS h
$$;

-- lock_queue: a session that waits for a lock (typically DDL wanting ACCESS EXCLUSIVE)
-- while other sessions queue behind it: the value is the number of victims queued
-- (transitively) behind it; chain depth >= params.crit_depth is critical.
CREATE OR REPLACE FUNCTION maint.health_lock_queue(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE waiting AS (
        SELECT a.pid, pg_catalog.pg_blocking_pids(a.pid) AS blockers
          FROM pg_catalog.pg_stat_activity AS a
         WHERE a.wait_event_type = 'Lock'
    ), edges AS (
        SELECT b AS blocker, w.pid AS waiter FROM waiting AS w, pg_catalog.unnest(w.blockers) AS b
    ), down AS (   -- everyone queued (transitively) behind each waiting session
        SELECT e.blocker AS head, e.waiter, 1 AS depth, ARRAY[e.blocker, e.waiter] AS path
          FROM edges AS e
         WHERE e.blocker IN (SELECT w.pid FROM waiting AS w)
        UNION ALL
        SELECT d.head, e.waiter, d.depth + 1, d.path || e.waiter
          FROM down AS d JOIN edges AS e ON e.blocker = d.waiter
         WHERE NOT e.waiter = ANY (d.path) AND d.depth < 50
    ), up AS (      -- how deep each waiting session sits below a session that is not waiting
        SELECT e.waiter AS pid, e.blocker AS root, 1 AS depth, ARRAY[e.waiter, e.blocker] AS path
          FROM edges AS e
        UNION ALL
        SELECT u.pid, e.blocker, u.depth + 1, u.path || e.blocker
          FROM up AS u JOIN edges AS e ON e.waiter = u.root
         WHERE NOT e.blocker = ANY (u.path) AND u.depth < 50
    ), heads AS (
        SELECT d.head, count(DISTINCT d.waiter) AS victims, max(d.depth) AS below,
               pg_catalog.array_agg(DISTINCT d.waiter) AS victim_pids
          FROM down AS d GROUP BY d.head
    ), x AS (
        SELECT h.head, h.victims, h.victim_pids, a.usename, a.datname, a.query,
               w.blockers,
               coalesce((SELECT max(u.depth) FROM up AS u WHERE u.pid = h.head), 0) + h.below AS depth,
               (SELECT pg_catalog.format('%s on %s', l.mode,
                           coalesce(l.relation::pg_catalog.regclass::text, l.locktype))
                  FROM pg_catalog.pg_locks AS l WHERE l.pid = h.head AND NOT l.granted LIMIT 1) AS wants
          FROM heads AS h
          JOIN waiting AS w ON w.pid = h.head
          LEFT JOIN pg_catalog.pg_stat_activity AS a ON a.pid = h.head
    ), y AS (
        SELECT x.*,
               CASE WHEN x.depth >= coalesce((p_cfg.params ->> 'crit_depth')::integer, 3) THEN 'critical'
                    ELSE maint._health_level(x.victims, p_cfg.warn, p_cfg.crit) END AS st
          FROM x
    )
    SELECT maint._health_row(y.st, 'session', 'pid ' || y.head,
               pg_catalog.format('session %s (user %s, database %s) waits for %s behind session(s) %s, and '
                                 '%s session(s) queue behind it (chain depth %s); statement: %s',
                                 y.head, y.usename, y.datname, coalesce(y.wants, 'a lock'),
                                 pg_catalog.array_to_string(y.blockers, ', '), y.victims, y.depth,
                                 pg_catalog.left(y.query, 200)),
               y.victims,
               'cancel the waiting statement (usually DDL) to release the queue, end the session it waits '
               'for, and run DDL with a short lock_timeout and retries',
               pg_catalog.format('SELECT pg_catalog.pg_cancel_backend(%s);', y.head),
               pg_catalog.jsonb_build_object('pid', y.head, 'waits_for', pg_catalog.to_jsonb(y.blockers),
                                             'victims', pg_catalog.to_jsonb(y.victim_pids),
                                             'depth', y.depth, 'wants', y.wants))
      FROM y
     WHERE y.st <> 'ok'
    UNION ALL
    SELECT h FROM maint._health_hidden_sessions() AS h
$$;

-- prepared_transactions: two-phase transactions left prepared (they hold locks and the
-- xmin horizon until someone commits or rolls them back).
CREATE OR REPLACE FUNCTION maint.health_prepared_transactions(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(x.st, 'prepared transaction', x.gid,
               pg_catalog.format('prepared transaction %L (owner %s, database %s, xid %s) has been open for %s s',
                                 x.gid, x.owner, x.database, x.transaction, x.age_s),
               x.age_s,
               'commit or roll it back from its database once you know whether its work should stay '
               '(the transaction manager that prepared it may be gone)',
               pg_catalog.format('ROLLBACK PREPARED %L;  -- in database %I', x.gid, x.database),
               pg_catalog.jsonb_build_object('gid', x.gid, 'database', x.database, 'owner', x.owner,
                                             'prepared', x.prepared, 'xid_age', pg_catalog.age(x.transaction)))
      FROM (
        SELECT p.*, s.age_s, maint._health_level(s.age_s, p_cfg.warn, p_cfg.crit) AS st
          FROM pg_catalog.pg_prepared_xacts AS p,
               LATERAL (SELECT round(extract(epoch FROM pg_catalog.clock_timestamp() - p.prepared)::numeric, 1)
                               AS age_s) AS s
      ) AS x
     WHERE x.st <> 'ok'
$$;

-- xmin_horizon: who holds back the oldest xmin (what VACUUM may not clean up): backends,
-- prepared transactions, replication slots and standbys (hot_standby_feedback).
CREATE OR REPLACE FUNCTION maint.health_xmin_horizon(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH holders AS (
        SELECT 'backend' AS kind, 'pid ' || a.pid AS name,
               pg_catalog.age(a.backend_xmin) AS xmin_age,
               pg_catalog.format('session %s (user %s, application %L, database %s, %s)',
                                 a.pid, a.usename, a.application_name, a.datname, a.state) AS who,
               pg_catalog.format('SELECT pg_catalog.pg_terminate_backend(%s);', a.pid) AS fix
          FROM pg_catalog.pg_stat_activity AS a
         WHERE a.backend_xmin IS NOT NULL AND a.pid <> pg_catalog.pg_backend_pid()
        UNION ALL
        SELECT 'backend', 'pid ' || a.pid, pg_catalog.age(a.backend_xid),
               pg_catalog.format('session %s (user %s, application %L, database %s, %s)',
                                 a.pid, a.usename, a.application_name, a.datname, a.state),
               pg_catalog.format('SELECT pg_catalog.pg_terminate_backend(%s);', a.pid)
          FROM pg_catalog.pg_stat_activity AS a
         WHERE a.backend_xid IS NOT NULL AND a.backend_xmin IS NULL
           AND a.pid <> pg_catalog.pg_backend_pid()
        UNION ALL
        SELECT 'prepared transaction', p.gid, pg_catalog.age(p.transaction),
               pg_catalog.format('prepared transaction %L (database %s)', p.gid, p.database),
               pg_catalog.format('ROLLBACK PREPARED %L;  -- in database %I', p.gid, p.database)
          FROM pg_catalog.pg_prepared_xacts AS p
        UNION ALL
        SELECT 'replication slot', s.slot_name,
               greatest(pg_catalog.age(s.xmin), pg_catalog.age(s.catalog_xmin)),
               pg_catalog.format('replication slot %s (%s, %s)', s.slot_name, s.slot_type,
                                 CASE WHEN s.active THEN 'active' ELSE 'inactive' END),
               pg_catalog.format('SELECT pg_catalog.pg_drop_replication_slot(%L);', s.slot_name)
          FROM pg_catalog.pg_replication_slots AS s
         WHERE s.xmin IS NOT NULL OR s.catalog_xmin IS NOT NULL
        UNION ALL
        SELECT 'standby', coalesce(r.application_name, '') || ' pid ' || r.pid, pg_catalog.age(r.backend_xmin),
               pg_catalog.format('standby %L (%s) via hot_standby_feedback', r.application_name, r.client_addr),
               NULL
          FROM pg_catalog.pg_stat_replication AS r
         WHERE r.backend_xmin IS NOT NULL
    ), x AS (
        SELECT h.*, maint._health_level(h.xmin_age, p_cfg.warn, p_cfg.crit) AS st,
               pg_catalog.row_number() OVER (ORDER BY h.xmin_age DESC) AS rank
          FROM holders AS h
    )
    SELECT maint._health_row(x.st, x.kind, x.name,
               pg_catalog.format('%s holds the xmin horizon %s transactions back: VACUUM cannot remove rows '
                                 'deleted or updated since then%s',
                                 x.who, x.xmin_age, CASE WHEN x.rank = 1 THEN ' (the oldest holder)' ELSE '' END),
               x.xmin_age,
               'end the holder: commit/terminate the session, resolve the prepared transaction, drop or '
               'reconnect the slot or standby',
               x.fix,
               pg_catalog.jsonb_build_object('holder', x.kind, 'rank', x.rank))
      FROM x
     WHERE x.st <> 'ok'
    UNION ALL
    SELECT h FROM maint._health_hidden_sessions() AS h
$$;

GRANT EXECUTE ON FUNCTION
    maint._health_aged_sessions(text, maint.check_config),
    maint.health_connections(maint.check_config),
    maint.health_idle_in_transaction(maint.check_config),
    maint.health_long_transaction(maint.check_config),
    maint.health_long_query(maint.check_config),
    maint.health_blocked_sessions(maint.check_config),
    maint.health_lock_queue(maint.check_config),
    maint.health_prepared_transactions(maint.check_config),
    maint.health_xmin_horizon(maint.check_config)
TO maint_monitor;
