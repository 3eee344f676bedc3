-- Size and growth, locks per transaction and settings drift (migration 0100; docs/health.md
-- "Size and growth").
--
-- The sampler. maint._health_record (the 5-minute health job) calls maint._health_samples,
-- which stores the server's changed settings at every call and, at most once per
-- params.sample_every of the database_size check, a size sample; maint.take_size_sample()
-- takes one now. Both run as the kit's owner (SECURITY DEFINER: maint_admin and
-- maint_runner cannot write the kit's tables) and see what the owner may see: the catalog
-- (pg_class is readable by everyone, sizes need no privilege on a table), this database's
-- size, and the settings pg_settings shows the owner.
--
-- Locks: pg_total_relation_size and pg_relation_size open the relation (its TOAST table and
-- indexes too) with ACCESS SHARE, released at once, so they wait behind an ACCESS EXCLUSIVE
-- lock held or queued (ALTER TABLE, VACUUM FULL, TRUNCATE, DROP in an open transaction).
-- The sampler therefore ranks relations on the catalog's page counts (pg_class.relpages,
-- kept by VACUUM, ANALYZE and CREATE INDEX: no lock; a table is a candidate when its heap,
-- TOAST table or an index is among the largest, and every partitioned table is), measures
-- only the few candidates (twice params.tables / params.indexes by their estimate, plus
-- what was among the largest within params.carry), each in its own subtransaction with a
-- 100 ms lock_timeout, and leaves a relation it cannot lock out of the sample (named in
-- size_samples.skipped); after 10 such relations it measures no more. A relation dropped
-- meanwhile is left out (the size functions return NULL). pg_database_size reads the
-- directory and takes no lock. Any other error becomes a 'failed' sample row: the health
-- job never fails because of it.
--
-- The checks run with the caller's rights: database_size reads pg_database_size (CONNECT
-- or pg_read_all_stats; only when it has thresholds), relation_size, growth_rate and
-- growth_forecast read the samples (maint_monitor may), transaction_locks reads pg_locks
-- and pg_stat_activity, and settings_drift reads maint.settings_history.

-- maint._size_params() -> jsonb: the sampler's settings, the params of the database_size
-- check over their defaults (sample_every, keep, tables, indexes, carry).
CREATE OR REPLACE FUNCTION maint._size_params()
    RETURNS jsonb
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT '{"sample_every": "1 day", "keep": "400 days", "tables": 50, "indexes": 50, "carry": "30 days"}'::jsonb
           || coalesce((SELECT c.params FROM maint.check_config AS c WHERE c.check_name = 'database_size'),
                       '{}'::jsonb)
$$;

-- maint._settings_record() -> integer
--   Appends to maint.settings_history each server setting whose value or pending restart
--   differs from its last row there (every setting on the first call: the baseline), and
--   returns how many. Left out: what a session sets for itself (sources client, session,
--   interactive, test) or gets from its role (user, database user: they depend on who
--   samples), and the transaction_* and per-connection settings. The values of settings
--   whose name contains conninfo, command, passphrase, password (not password_encryption),
--   secret or key are stored as a sha256 digest: enough to see a change, nothing to read.
--   Called with maint.size_samples locked (one sampler at a time).
CREATE OR REPLACE FUNCTION maint._settings_record()
    RETURNS integer
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH cur AS (
        SELECT s.name, s.unit, s.source, coalesce(s.pending_restart, false) AS pending_restart, m.masked,
               CASE WHEN m.masked
                    THEN 'sha256:' || pg_catalog.encode(pg_catalog.sha256(
                             pg_catalog.convert_to(coalesce(s.setting, ''), 'UTF8')), 'hex')
                    ELSE s.setting END AS setting
          FROM pg_catalog.pg_settings AS s
         CROSS JOIN LATERAL (
               SELECT s.name ~* '(conninfo|command|passphrase|secret|key)'
                      OR (s.name ~* 'password' AND s.name <> 'password_encryption') AS masked) AS m
         WHERE s.source NOT IN ('client', 'session', 'interactive', 'test', 'user', 'database user')
           AND s.name NOT IN ('transaction_isolation', 'transaction_read_only', 'transaction_deferrable',
                              'application_name', 'client_encoding', 'search_path')
    ), last AS (
        SELECT DISTINCT ON (h.name) h.name, h.setting, h.pending_restart
          FROM maint.settings_history AS h
         ORDER BY h.name, h.id DESC
    ), ins AS (
        INSERT INTO maint.settings_history (name, setting, unit, source, pending_restart, masked)
        SELECT c.name, c.setting, c.unit, c.source, c.pending_restart, c.masked
          FROM cur AS c
          LEFT JOIN last AS l ON l.name = c.name
         WHERE l.name IS NULL
            OR l.setting IS DISTINCT FROM c.setting
            OR l.pending_restart <> c.pending_restart
        RETURNING 1
    )
    SELECT count(*)::integer FROM ins
$$;

-- maint._size_sample(p_source text) -> bigint
--   Takes one size sample now and returns its maint.size_samples id: the database
--   (pg_database_size), then the tables (heap, TOAST and indexes: pg_total_relation_size;
--   a partitioned table as the sum of its partitions) and indexes (pg_relation_size) that
--   are the params.tables / params.indexes largest, plus those that were among the
--   largest in a sample of the last params.carry (their growth stays visible when they
--   drop out). Candidates come from pg_class.relpages (no lock); see the notes at the top
--   for the locks. Then it trims samples older than params.keep, and the settings history
--   too (keeping each setting's last value before that). On any error the sample is a
--   row with status 'failed' and the error. Called with maint.size_samples locked.
CREATE OR REPLACE FUNCTION maint._size_sample(p_source text)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
    SET lock_timeout = '100ms'
AS $$
DECLARE
    v_params jsonb;
    v_started timestamptz := pg_catalog.clock_timestamp();
    v_tables integer;
    v_indexes integer;
    v_carry interval;
    v_keep interval;
    v_id bigint;
    v_c record;
    v_bytes bigint;
    v_kind text[];
    v_object text[];
    v_parent text[];
    v_size bigint[];
    v_rows bigint[];
    v_carried boolean[];
    v_skipped jsonb := '[]'::jsonb;
    v_locked integer := 0;
    v_n integer;
    v_msg text;
    v_state text;
BEGIN
    BEGIN
        v_params := maint._size_params();
        v_tables := greatest(coalesce((v_params ->> 'tables')::integer, 50), 0);
        v_indexes := greatest(coalesce((v_params ->> 'indexes')::integer, 50), 0);
        v_carry := coalesce((v_params ->> 'carry')::interval, interval '0');
        v_keep := (v_params ->> 'keep')::interval;

        v_kind := ARRAY['database'];
        v_object := ARRAY[pg_catalog.current_database()::text];
        v_parent := ARRAY[NULL::text];
        v_size := ARRAY[pg_catalog.pg_database_size(pg_catalog.current_database())];
        v_rows := ARRAY[NULL::bigint];
        v_carried := ARRAY[false];

        FOR v_c IN
            WITH RECURSIVE carried AS (   -- among the largest in a recent sample, by name now
                SELECT k.kind, pg_catalog.to_regclass(k.object)::oid AS oid
                  FROM (SELECT DISTINCT h.kind, h.object FROM maint.size_history AS h
                         WHERE h.top AND h.kind <> 'database'
                           AND h.sampled_at > pg_catalog.now() - v_carry) AS k
            ), ranked AS (   -- the largest heaps, TOAST tables and indexes by the catalog's page counts
                             -- (not the cluster's shared catalogs: pg_database_size leaves them out too)
                (SELECT c.oid, 'r'::"char" AS relkind FROM pg_catalog.pg_class AS c
                  WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't' AND NOT c.relisshared
                  ORDER BY c.relpages DESC LIMIT 2 * v_tables)
                UNION ALL
                (SELECT c.oid, 't' FROM pg_catalog.pg_class AS c
                  WHERE c.relkind = 't' AND c.relpersistence <> 't' AND NOT c.relisshared
                  ORDER BY c.relpages DESC LIMIT 2 * v_tables)
                UNION ALL
                (SELECT c.oid, 'i' FROM pg_catalog.pg_class AS c
                  WHERE c.relkind = 'i' AND c.relpersistence <> 't' AND NOT c.relisshared
                    AND c.relnamespace <> 'pg_toast'::pg_catalog.regnamespace
                  ORDER BY c.relpages DESC LIMIT 2 * greatest(v_tables, v_indexes))
            ), tree AS (   -- each top-level partitioned table with everything below it
                SELECT c.oid AS root, c.oid FROM pg_catalog.pg_class AS c
                 WHERE c.relkind = 'p' AND NOT c.relispartition AND c.relpersistence <> 't'
                UNION ALL
                SELECT t.root, i.inhrelid FROM tree AS t JOIN pg_catalog.pg_inherits AS i ON i.inhparent = t.oid
            ), parts AS (
                SELECT t.root, pg_catalog.array_agg(t.oid) AS oids FROM tree AS t GROUP BY t.root
            ), tab_oids AS (   -- a large table has a large heap, TOAST table or index
                SELECT r.oid FROM ranked AS r WHERE r.relkind = 'r'
                UNION
                SELECT o.oid FROM pg_catalog.pg_class AS o
                 WHERE o.reltoastrelid IN (SELECT r.oid FROM ranked AS r WHERE r.relkind = 't')
                UNION
                SELECT i.indrelid FROM ranked AS r JOIN pg_catalog.pg_index AS i ON i.indexrelid = r.oid
                 WHERE r.relkind = 'i'
                UNION
                SELECT p.root FROM parts AS p
                UNION
                SELECT k.oid FROM carried AS k WHERE k.kind = 'table'
            ), tab AS (
                SELECT c.oid, c.relkind = 'p' AS partitioned, pg_catalog.format('%I.%I', n.nspname, c.relname) AS object,
                       e.pages, e.rows_estimate, e.leaves
                  FROM tab_oids AS x
                  JOIN pg_catalog.pg_class AS c ON c.oid = x.oid
                  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
                  LEFT JOIN parts AS p ON p.root = c.oid
                 CROSS JOIN LATERAL (   -- heap, TOAST and index pages (of the partitions)
                       SELECT sum(l.relpages::bigint + coalesce(tt.relpages, 0)
                                  + coalesce((SELECT sum(ic.relpages) FROM pg_catalog.pg_index AS i
                                                JOIN pg_catalog.pg_class AS ic ON ic.oid = i.indexrelid
                                               WHERE i.indrelid = l.oid), 0))::bigint AS pages,
                              sum(CASE WHEN l.reltuples >= 0 THEN l.reltuples END)::bigint AS rows_estimate,
                              pg_catalog.array_agg(l.oid) AS leaves
                         FROM pg_catalog.pg_class AS l
                         LEFT JOIN pg_catalog.pg_class AS tt ON tt.oid = l.reltoastrelid
                        WHERE l.oid = ANY (coalesce(p.oids, ARRAY[c.oid])) AND l.relkind IN ('r', 'm')) AS e
                 WHERE c.relkind IN ('r', 'm', 'p') AND c.relpersistence <> 't'
            ), ind AS (
                SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname) AS object,
                       pg_catalog.format('%I.%I', tn.nspname, tc.relname) AS parent,
                       CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END AS rows_estimate,
                       c.relpages::bigint AS pages
                  FROM (SELECT r.oid FROM ranked AS r WHERE r.relkind = 'i'
                        UNION
                        SELECT k.oid FROM carried AS k WHERE k.kind = 'index') AS x
                  JOIN pg_catalog.pg_class AS c ON c.oid = x.oid
                  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
                  JOIN pg_catalog.pg_index AS i ON i.indexrelid = c.oid
                  JOIN pg_catalog.pg_class AS tc ON tc.oid = i.indrelid
                  JOIN pg_catalog.pg_namespace AS tn ON tn.oid = tc.relnamespace
                 WHERE c.relkind = 'i'
            ), cand AS (
                SELECT 'table' AS kind, t.oid, t.object, NULL::text AS parent, t.partitioned,
                       CASE WHEN t.partitioned THEN t.leaves END AS leaves, t.rows_estimate,
                       pg_catalog.row_number() OVER (ORDER BY t.pages DESC NULLS LAST, t.object) AS rank
                  FROM tab AS t
                UNION ALL
                SELECT 'index', i.oid, i.object, i.parent, false, NULL::oid[], i.rows_estimate,
                       pg_catalog.row_number() OVER (ORDER BY i.pages DESC, i.object)
                  FROM ind AS i
            )
            SELECT c.kind, c.oid, c.object, c.parent, c.partitioned, c.leaves, c.rows_estimate,
                   EXISTS (SELECT 1 FROM carried AS k WHERE k.kind = c.kind AND k.oid = c.oid) AS carried
              FROM cand AS c
             WHERE c.rank <= 2 * CASE c.kind WHEN 'table' THEN v_tables ELSE v_indexes END
                OR EXISTS (SELECT 1 FROM carried AS k WHERE k.kind = c.kind AND k.oid = c.oid)
             ORDER BY c.kind DESC, c.rank
        LOOP
            IF v_locked >= 10 THEN
                v_skipped := v_skipped || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                    'kind', v_c.kind, 'object', v_c.object,
                    'reason', 'not measured: 10 relations of this sample were locked already'));
                CONTINUE;
            END IF;
            BEGIN
                IF v_c.partitioned THEN
                    SELECT sum(pg_catalog.pg_total_relation_size(l.oid))::bigint INTO v_bytes
                      FROM pg_catalog.unnest(coalesce(v_c.leaves, '{}'::oid[])) AS l(oid);
                    v_bytes := coalesce(v_bytes, 0);
                ELSIF v_c.kind = 'index' THEN
                    v_bytes := pg_catalog.pg_relation_size(v_c.oid);
                ELSE
                    v_bytes := pg_catalog.pg_total_relation_size(v_c.oid);
                END IF;
            EXCEPTION WHEN lock_not_available THEN
                v_locked := v_locked + 1;
                v_skipped := v_skipped || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                    'kind', v_c.kind, 'object', v_c.object,
                    'reason', 'locked: another session holds or waits for a conflicting lock'));
                CONTINUE;
            END;
            CONTINUE WHEN v_bytes IS NULL;   -- dropped since the catalog was read
            v_kind := v_kind || v_c.kind::text;
            v_object := v_object || v_c.object::text;
            v_parent := v_parent || v_c.parent::text;
            v_size := v_size || v_bytes;
            v_rows := v_rows || v_c.rows_estimate::bigint;
            v_carried := v_carried || v_c.carried::boolean;
        END LOOP;

        INSERT INTO maint.size_samples (sampled_at, status, source, skipped)
        VALUES (pg_catalog.now(), 'ok', p_source, v_skipped)
        RETURNING id INTO v_id;
        INSERT INTO maint.size_history (sample_id, sampled_at, kind, object, parent, bytes, rows_estimate, top)
        SELECT v_id, pg_catalog.now(), m.kind, m.object, m.parent, m.bytes, m.rows_estimate, m.top
          FROM (SELECT u.kind, u.object, u.parent, u.bytes, u.rows_estimate, u.carried,
                       u.kind = 'database'
                       OR pg_catalog.row_number() OVER (PARTITION BY u.kind ORDER BY u.bytes DESC, u.object)
                          <= CASE u.kind WHEN 'table' THEN v_tables ELSE v_indexes END AS top
                  FROM ROWS FROM (pg_catalog.unnest(v_kind), pg_catalog.unnest(v_object),
                                  pg_catalog.unnest(v_parent), pg_catalog.unnest(v_size),
                                  pg_catalog.unnest(v_rows), pg_catalog.unnest(v_carried))
                       AS u(kind, object, parent, bytes, rows_estimate, carried)) AS m
         WHERE m.top OR m.carried;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        UPDATE maint.size_samples AS s
           SET objects = v_n,
               duration_ms = round(extract(epoch FROM pg_catalog.clock_timestamp() - v_started)::numeric * 1000, 1)
         WHERE s.id = v_id;

        IF v_keep IS NOT NULL THEN
            DELETE FROM maint.size_samples AS s WHERE s.sampled_at < pg_catalog.now() - v_keep;
            -- a setting's last value before the horizon stays: the base of its next change
            DELETE FROM maint.settings_history AS h
             WHERE h.recorded_at < pg_catalog.now() - v_keep
               AND EXISTS (SELECT 1 FROM maint.settings_history AS n
                            WHERE n.name = h.name AND n.id > h.id AND n.recorded_at < pg_catalog.now() - v_keep);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
        INSERT INTO maint.size_samples (sampled_at, status, source, skipped, duration_ms, error)
        VALUES (pg_catalog.now(), 'failed', p_source, v_skipped,
                round(extract(epoch FROM pg_catalog.clock_timestamp() - v_started)::numeric * 1000, 1),
                pg_catalog.format('%s (SQLSTATE %s)', v_msg, v_state))
        RETURNING id INTO v_id;
    END;
    RETURN v_id;
END
$$;

-- maint._health_samples() -> bigint
--   What the health job calls (from maint._health_record): stores the changed settings, then
--   takes a size sample when the newest one is older than params.sample_every of the
--   database_size check (default 1 day; null: no size samples) and no attempt failed in the
--   last hour (or sample_every, if shorter). Returns the new sample's id, or NULL. When
--   another sampler holds maint.size_samples (or autovacuum does, for a moment) it does
--   nothing: the next run of the job tries again. Never raises (but a cancel).
CREATE OR REPLACE FUNCTION maint._health_samples()
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_every interval;
BEGIN
    BEGIN
        LOCK TABLE maint.size_samples IN SHARE ROW EXCLUSIVE MODE NOWAIT;
    EXCEPTION WHEN lock_not_available THEN
        RETURN NULL;
    END;
    BEGIN
        PERFORM maint._settings_record();
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'pgmaint: could not store the server settings: %', SQLERRM;
    END;
    BEGIN
        v_every := (maint._size_params() ->> 'sample_every')::interval;
    EXCEPTION WHEN OTHERS THEN   -- a value that is no interval: the default
        v_every := interval '1 day';
    END;
    IF v_every IS NULL OR EXISTS (
           SELECT 1 FROM maint.size_samples AS s
            WHERE s.sampled_at > pg_catalog.now()
                  - CASE WHEN s.status = 'ok' THEN v_every ELSE least(v_every, interval '1 hour') END) THEN
        RETURN NULL;
    END IF;
    BEGIN
        RETURN maint._size_sample('job');
    EXCEPTION WHEN OTHERS THEN   -- even writing down the failure failed (disk full...)
        RAISE WARNING 'pgmaint: could not take a size sample: %', SQLERRM;
        RETURN NULL;
    END;
END
$$;
COMMENT ON FUNCTION maint._health_samples() IS
    'Internal: the health job''s settings snapshot and, once per sample_every, its size sample';

-- maint.take_size_sample() -> maint.size_samples
--   Takes a size sample now (and stores the changed settings), whatever the age of the
--   last one; returns its row (status 'failed' with the error when it could not be
--   taken). For maint_admin. Waits up to 5 s for a sampler at work.
CREATE OR REPLACE FUNCTION maint.take_size_sample()
    RETURNS maint.size_samples
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET lock_timeout = '5s'
AS $$
DECLARE
    v_row maint.size_samples;
    v_id bigint;
BEGIN
    BEGIN
        LOCK TABLE maint.size_samples IN SHARE ROW EXCLUSIVE MODE;
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION 'another size sample is being taken: try again in a moment'
            USING ERRCODE = 'lock_not_available';
    END;
    PERFORM maint._settings_record();
    v_id := maint._size_sample('manual');
    SELECT * INTO v_row FROM maint.size_samples AS s WHERE s.id = v_id;
    RETURN v_row;
END
$$;
COMMENT ON FUNCTION maint.take_size_sample() IS
    'Take a size sample now (the database, its largest tables and indexes) and store changed settings';

-- maint._size_growth(p_period interval, p_min_span interval)
--   -> TABLE (kind, object, parent, then_at, bytes_then, now_at, bytes_now, days, bytes_per_day)
--   Each object of the newest successful sample against its own sample closest to
--   p_period before that one, taken at least p_min_span before it and at most twice
--   p_period (no such sample: no row).
CREATE OR REPLACE FUNCTION maint._size_growth(p_period interval, p_min_span interval)
    RETURNS TABLE (kind text, object text, parent text, then_at timestamptz, bytes_then bigint,
                   now_at timestamptz, bytes_now bigint, days numeric, bytes_per_day numeric)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH newest AS (
        SELECT s.id, s.sampled_at FROM maint.size_samples AS s
         WHERE s.status = 'ok'
         ORDER BY s.sampled_at DESC, s.id DESC
         LIMIT 1
    ), base AS (
        SELECT DISTINCT ON (h.kind, h.object) h.kind, h.object, h.sampled_at, h.bytes
          FROM newest AS n
          JOIN maint.size_history AS h
            ON h.sampled_at <= n.sampled_at - p_min_span
           AND h.sampled_at >= n.sampled_at - 2 * p_period
         ORDER BY h.kind, h.object,
                  abs(extract(epoch FROM h.sampled_at - (n.sampled_at - p_period))), h.sampled_at
    )
    SELECT c.kind, c.object, c.parent, b.sampled_at, b.bytes, c.sampled_at, c.bytes, d.days,
           round((c.bytes - b.bytes) / d.days, 0)
      FROM newest AS n
      JOIN maint.size_history AS c ON c.sample_id = n.id
      JOIN base AS b ON b.kind = c.kind AND b.object = c.object
     CROSS JOIN LATERAL (SELECT (extract(epoch FROM c.sampled_at - b.sampled_at) / 86400)::numeric AS days) AS d
     WHERE d.days > 0
$$;

-- maint.size_growth(period interval DEFAULT '7 days', limit_bytes numeric DEFAULT NULL,
--                   min_span interval DEFAULT '1 day')
--   -> TABLE (kind, object, parent, then_at, bytes_then, now_at, bytes_now, days,
--             bytes_per_day, pct_per_week, passes_limit_at)
--   Growth of the database and of each sampled table and index over about period (from
--   maint.size_history): the sizes then and now, per day and in percent per week (linear),
--   and, with limit_bytes, when the object passes it at that rate (in the past when it
--   already has; NULL when it does not grow). Largest growth first.
CREATE OR REPLACE FUNCTION maint.size_growth(period interval DEFAULT '7 days',
                                             limit_bytes numeric DEFAULT NULL,
                                             min_span interval DEFAULT '1 day')
    RETURNS TABLE (kind text, object text, parent text, then_at timestamptz, bytes_then bigint,
                   now_at timestamptz, bytes_now bigint, days numeric, bytes_per_day numeric,
                   pct_per_week numeric, passes_limit_at timestamptz)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT g.kind, g.object, g.parent, g.then_at, g.bytes_then, g.now_at, g.bytes_now, round(g.days, 2),
           g.bytes_per_day,
           CASE WHEN g.bytes_then > 0
                THEN round(100.0 * (g.bytes_now - g.bytes_then) / g.bytes_then * 7 / g.days, 1) END,
           CASE WHEN limit_bytes IS NOT NULL AND g.bytes_per_day > 0
                THEN g.now_at + (limit_bytes - g.bytes_now) / g.bytes_per_day * interval '1 day' END
      FROM maint._size_growth(period, min_span) AS g
     ORDER BY g.bytes_now - g.bytes_then DESC, g.kind, g.object
$$;
COMMENT ON FUNCTION maint.size_growth(interval, numeric, interval) IS
    'Growth of the database and of the sampled tables and indexes over a period: bytes then and now, per day, percent per week, when a limit is passed';

-- database_size: this database on disk (pg_database_size, as the caller: CONNECT or
-- pg_read_all_stats) against warn/crit bytes; one row with the size (ok below the
-- thresholds). Off by default (no thresholds): then it reads nothing, since
-- pg_database_size stats every file of the database (about 50 ms per 10,000 tables); the
-- daily size samples keep the size anyway. Its params drive the sampler.
CREATE OR REPLACE FUNCTION maint.health_database_size(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(s.st, 'database', d.db,
               pg_catalog.format('database %s takes %s on disk%s', d.db, pg_catalog.pg_size_pretty(d.bytes),
                   CASE s.st
                       WHEN 'critical' THEN ', at or above the critical threshold of '
                                            || pg_catalog.pg_size_pretty(p_cfg.crit)
                       WHEN 'warning' THEN ', at or above the warning threshold of '
                                           || pg_catalog.pg_size_pretty(p_cfg.warn)
                       ELSE '' END),
               d.bytes,
               CASE WHEN s.st <> 'ok' THEN
                   'see what grows (SELECT * FROM maint.size_growth()) and what is largest '
                   '(maint.size_history); purge or archive old rows (pgmaint cleanup), drop unused '
                   'indexes, reclaim bloat, or give the database more disk' END,
               NULL,
               pg_catalog.jsonb_build_object('largest_tables', (
                   SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('table', t.object, 'bytes', t.bytes)
                                               ORDER BY t.bytes DESC)
                     FROM (SELECT h.object, h.bytes FROM maint.size_history AS h
                            WHERE h.kind = 'table'
                              AND h.sample_id = (SELECT x.id FROM maint.size_samples AS x WHERE x.status = 'ok'
                                                  ORDER BY x.sampled_at DESC, x.id DESC LIMIT 1)
                            ORDER BY h.bytes DESC LIMIT 5) AS t)))
      FROM (SELECT pg_catalog.current_database()::text AS db,
                   CASE WHEN p_cfg.warn IS NOT NULL OR p_cfg.crit IS NOT NULL
                        THEN pg_catalog.pg_database_size(pg_catalog.current_database()) END AS bytes) AS d
     CROSS JOIN LATERAL (SELECT maint._health_level(d.bytes, p_cfg.warn, p_cfg.crit) AS st) AS s
     WHERE d.bytes IS NOT NULL
$$;

-- relation_size: tables of the newest size sample (heap, TOAST and indexes; a partitioned
-- table as the sum of its partitions) at or above warn/crit bytes. Off by default; silent
-- without a sample.
CREATE OR REPLACE FUNCTION maint.health_relation_size(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH newest AS (
        SELECT s.id, s.sampled_at FROM maint.size_samples AS s
         WHERE s.status = 'ok'
         ORDER BY s.sampled_at DESC, s.id DESC
         LIMIT 1
    )
    SELECT maint._health_row(x.st, 'table', h.object,
               pg_catalog.format('table %s takes %s with its indexes and TOAST%s (size sample of %s)',
                                 h.object, pg_catalog.pg_size_pretty(h.bytes),
                                 coalesce(', about ' || h.rows_estimate || ' rows', ''),
                                 pg_catalog.to_char(n.sampled_at, 'YYYY-MM-DD HH24:MI')),
               h.bytes,
               'archive or purge old rows (pgmaint cleanup), partition it, drop unused indexes; only '
               'VACUUM FULL or pg_repack give bloat back to the file system',
               NULL,
               pg_catalog.jsonb_build_object('sampled_at', n.sampled_at, 'rows_estimate', h.rows_estimate))
      FROM newest AS n
      JOIN maint.size_history AS h ON h.sample_id = n.id AND h.kind = 'table'
     CROSS JOIN LATERAL (SELECT maint._health_level(h.bytes, p_cfg.warn, p_cfg.crit) AS st) AS x
     WHERE x.st <> 'ok'
$$;

-- growth_rate: the database and tables (params.kinds) of at least params.min_bytes that grew
-- faster than warn/crit percent per week (linear) between the newest size sample and their
-- sample about params.period before (at least params.min_span apart); silent without two
-- such samples. An 'unknown' row when the newest sample attempt failed.
CREATE OR REPLACE FUNCTION maint.health_growth_rate(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(x.st, g.kind, g.object,
               pg_catalog.format('%s %s grew from %s to %s in %s days: %s%% per week, %s per day',
                                 g.kind, g.object, pg_catalog.pg_size_pretty(g.bytes_then),
                                 pg_catalog.pg_size_pretty(g.bytes_now), round(g.days, 1), x.pct,
                                 pg_catalog.pg_size_pretty(g.bytes_per_day)),
               x.pct,
               'find what writes it (new rows, or dead rows VACUUM cannot remove: see the dead_tuples, '
               'table_bloat and xmin_horizon checks), check that its retention runs (pgmaint cleanup), '
               'and plan the disk it will need (the growth_forecast check)',
               NULL,
               pg_catalog.jsonb_build_object('bytes_then', g.bytes_then, 'then_at', g.then_at,
                                             'bytes_now', g.bytes_now, 'now_at', g.now_at,
                                             'bytes_per_day', g.bytes_per_day))
      FROM maint._size_growth(coalesce((p_cfg.params ->> 'period')::interval, interval '7 days'),
                              coalesce((p_cfg.params ->> 'min_span')::interval, interval '1 day')) AS g
     CROSS JOIN LATERAL (
           SELECT round(100.0 * (g.bytes_now - g.bytes_then) / g.bytes_then * 7 / g.days, 1) AS pct) AS p
     CROSS JOIN LATERAL (SELECT p.pct, maint._health_level(p.pct, p_cfg.warn, p_cfg.crit) AS st) AS x
     WHERE g.bytes_then > 0
       AND x.st <> 'ok'
       AND g.bytes_now >= coalesce((p_cfg.params ->> 'min_bytes')::numeric, 0)
       AND g.kind IN (SELECT pg_catalog.jsonb_array_elements_text(
                                 coalesce(p_cfg.params -> 'kinds', '["database", "table"]'::jsonb)))
    UNION ALL
    SELECT maint._health_row('unknown', 'size sample', 'maint.size_samples',
               pg_catalog.format('the last size sample, at %s, failed: %s',
                                 pg_catalog.to_char(s.sampled_at, 'YYYY-MM-DD HH24:MI'), s.error),
               p_remediation => 'the health job tries again within the hour; SELECT * FROM '
                                'maint.take_size_sample() tries now (maint_admin)',
               p_metadata => pg_catalog.jsonb_build_object('sample_id', s.id, 'error', s.error))
      FROM (SELECT x.* FROM maint.size_samples AS x ORDER BY x.sampled_at DESC, x.id DESC LIMIT 1) AS s
     WHERE s.status = 'failed'
$$;

-- growth_forecast: days until the database passes params.database_limit bytes, or a table
-- params.relation_limit, at its growth between the newest size sample and the one about
-- params.period before (linear, counted from now); warning / critical at or below warn /
-- crit days, critical (0 days) once passed. Silent without limits or two samples.
CREATE OR REPLACE FUNCTION maint.health_growth_forecast(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(x.st, g.kind, g.object,
               CASE WHEN g.bytes_now >= l.lim
                    THEN pg_catalog.format('%s %s takes %s, past its limit of %s (growing %s per day)',
                                           g.kind, g.object, pg_catalog.pg_size_pretty(g.bytes_now),
                                           pg_catalog.pg_size_pretty(l.lim),
                                           pg_catalog.pg_size_pretty(g.bytes_per_day))
                    ELSE pg_catalog.format('%s %s takes %s and grows %s per day (over the last %s days): at '
                                           'that rate it passes %s in about %s days, on %s',
                                           g.kind, g.object, pg_catalog.pg_size_pretty(g.bytes_now),
                                           pg_catalog.pg_size_pretty(g.bytes_per_day), round(g.days, 1),
                                           pg_catalog.pg_size_pretty(l.lim), x.days_left,
                                           pg_catalog.to_char(pg_catalog.now() + x.days_left * interval '1 day',
                                                              'YYYY-MM-DD')) END,
               x.days_left,
               'make room before then: purge or archive old rows (pgmaint cleanup), drop unused indexes, '
               'reclaim bloat, or add disk and raise the limit (maint.check_configure)',
               NULL,
               pg_catalog.jsonb_build_object('limit_bytes', l.lim, 'bytes_now', g.bytes_now, 'now_at', g.now_at,
                                             'bytes_then', g.bytes_then, 'then_at', g.then_at,
                                             'bytes_per_day', g.bytes_per_day))
      FROM maint._size_growth(coalesce((p_cfg.params ->> 'period')::interval, interval '7 days'),
                              coalesce((p_cfg.params ->> 'min_span')::interval, interval '1 day')) AS g
     CROSS JOIN LATERAL (
           SELECT CASE g.kind WHEN 'database' THEN (p_cfg.params ->> 'database_limit')::numeric
                              WHEN 'table' THEN (p_cfg.params ->> 'relation_limit')::numeric END AS lim) AS l
     CROSS JOIN LATERAL (
           SELECT greatest(round((l.lim - g.bytes_now) / g.bytes_per_day
                                 - extract(epoch FROM pg_catalog.now() - g.now_at)::numeric / 86400, 1), 0)
                  AS days_left) AS d
     CROSS JOIN LATERAL (SELECT d.days_left, maint._health_level(d.days_left, p_cfg.warn, p_cfg.crit, true) AS st) AS x
     WHERE l.lim IS NOT NULL
       AND g.bytes_per_day > 0
       AND x.st <> 'ok'
$$;

-- transaction_locks: sessions (with their parallel workers) whose transaction holds many
-- locks, as a share of the shared lock table, which has room for about
-- max_locks_per_transaction x (max_connections + max_prepared_transactions) locks for all
-- sessions together: one transaction that fills it makes others fail with "out of shared
-- memory". pg_locks is readable by everyone; without pg_read_all_stats the transaction's
-- age and statement are not visible (the count is). The check's own session is left out.
CREATE OR REPLACE FUNCTION maint.health_transaction_locks(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH cap AS (
        SELECT pg_catalog.current_setting('max_locks_per_transaction')::integer AS per_xact,
               pg_catalog.current_setting('max_connections')::integer AS conns,
               pg_catalog.current_setting('max_prepared_transactions')::integer AS prepared
    ), held AS (
        SELECT coalesce(a.leader_pid, l.pid) AS pid, count(*) AS n,
               count(*) FILTER (WHERE l.locktype = 'relation') AS relations,
               count(*) FILTER (WHERE l.locktype = 'advisory') AS advisory,
               count(DISTINCT l.pid) AS processes
          FROM pg_catalog.pg_locks AS l
          LEFT JOIN pg_catalog.pg_stat_activity AS a ON a.pid = l.pid
         WHERE l.granted AND l.pid IS NOT NULL
         GROUP BY 1
    ), x AS (
        SELECT h.*, a.usename, a.application_name, a.datname, a.backend_type, a.state, a.query, a.xact_start,
               round(extract(epoch FROM pg_catalog.clock_timestamp() - a.xact_start)::numeric, 1) AS xact_age_s,
               c.per_xact * (c.conns + c.prepared) AS slots, c.per_xact,
               round(100.0 * h.n / greatest(c.per_xact * (c.conns + c.prepared), 1), 1) AS pct
          FROM held AS h
          CROSS JOIN cap AS c
          LEFT JOIN pg_catalog.pg_stat_activity AS a ON a.pid = h.pid
         WHERE h.pid <> pg_catalog.pg_backend_pid()
    )
    SELECT maint._health_row(s.st, 'session', 'pid ' || x.pid,
               pg_catalog.format('session %s (user %s, application %L, database %s) holds %s locks (%s on relations, '
                                 '%s advisory%s), %s%% of the shared lock table (max_locks_per_transaction %s x '
                                 '(max_connections + max_prepared_transactions) = %s); %s; statement: %s',
                                 x.pid, coalesce(x.usename::text, '?'), x.application_name,
                                 coalesce(x.datname::text, '-'), x.n, x.relations, x.advisory,
                                 CASE WHEN x.processes > 1
                                      THEN pg_catalog.format(', with %s parallel workers', x.processes - 1)
                                      ELSE '' END,
                                 x.pct, x.per_xact, x.slots,
                                 CASE WHEN x.xact_age_s IS NOT NULL
                                      THEN pg_catalog.format('its transaction has been open for %s s', x.xact_age_s)
                                      ELSE 'transaction age not visible (needs pg_read_all_stats)' END,
                                 coalesce(pg_catalog.left(x.query, 200), '?')),
               x.pct,
               'find out why one transaction touches so many objects (a query or migration over many '
               'partitions, pg_dump of many tables, advisory locks never released) and commit sooner; '
               'if it is the normal load, raise max_locks_per_transaction (restart); ending the session '
               'is the last resort',
               pg_catalog.format('SELECT pg_catalog.pg_terminate_backend(%s);', x.pid),
               pg_catalog.jsonb_build_object('pid', x.pid, 'locks', x.n, 'relation_locks', x.relations,
                                             'advisory_locks', x.advisory, 'processes', x.processes,
                                             'user', x.usename, 'application_name', x.application_name,
                                             'database', x.datname, 'backend_type', x.backend_type,
                                             'xact_start', x.xact_start, 'xact_age_s', x.xact_age_s,
                                             'lock_table_slots', x.slots))
      FROM x
     CROSS JOIN LATERAL (SELECT maint._health_level(x.pct, p_cfg.warn, p_cfg.crit) AS st) AS s
     WHERE s.st <> 'ok'
$$;

-- maint._setting_text(p_setting text, p_unit text, p_masked boolean) -> text: a stored
-- setting as a reader expects it (memory in kB/MB/GB, the unit after other values).
CREATE OR REPLACE FUNCTION maint._setting_text(p_setting text, p_unit text, p_masked boolean)
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN p_masked THEN '(a value not stored: it may hold a password)'
        WHEN p_setting IS NULL THEN '(none)'
        WHEN p_unit IN ('B', 'kB', 'MB', 'GB', '8kB', '16kB', '32kB', '16MB') AND p_setting ~ '^[0-9]+$'
            THEN pg_catalog.pg_size_pretty(p_setting::numeric * CASE p_unit
                     WHEN 'B' THEN 1 WHEN 'kB' THEN 1024 WHEN 'MB' THEN 1048576 WHEN 'GB' THEN 1073741824
                     WHEN '8kB' THEN 8192 WHEN '16kB' THEN 16384 WHEN '32kB' THEN 32768
                     WHEN '16MB' THEN 16777216 END)
        WHEN p_setting = '' THEN ''''''
        WHEN p_unit IS NOT NULL THEN p_setting || ' ' || p_unit
        ELSE p_setting
    END
$$;

-- settings_drift: server settings whose value changed (or that began to wait for a restart)
-- in the last params.period, from maint.settings_history (stored by the health job at
-- every run): the old value, the new one and where it comes from. info: a change is
-- usually deliberate tuning; warning for params.warn_settings (durability, replication,
-- connections, security: a change there can lose data, break a standby or lock clients
-- out) and for a change the server applies only after a restart. params.ignore: names to
-- leave out. Silent until a setting changes after the first snapshot.
CREATE OR REPLACE FUNCTION maint.health_settings_drift(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH p AS (
        SELECT coalesce((p_cfg.params ->> 'period')::interval, interval '1 day') AS period,
               ARRAY(SELECT pg_catalog.jsonb_array_elements_text(coalesce(p_cfg.params -> 'ignore', '[]'::jsonb)))
                   AS ignore,
               ARRAY(SELECT pg_catalog.jsonb_array_elements_text(
                                coalesce(p_cfg.params -> 'warn_settings', '[]'::jsonb))) AS warn
    ), h AS (   -- each setting's newest row and the one before it
        SELECT s.name, s.recorded_at, s.source, s.setting, s.unit, s.masked, s.pending_restart,
               pg_catalog.row_number() OVER (PARTITION BY s.name ORDER BY s.id DESC) AS rn,
               pg_catalog.lag(s.id) OVER w AS old_id, pg_catalog.lag(s.setting) OVER w AS old_setting,
               pg_catalog.lag(s.unit) OVER w AS old_unit, pg_catalog.lag(s.masked) OVER w AS old_masked,
               pg_catalog.lag(s.pending_restart) OVER w AS old_pending,
               pg_catalog.lag(s.recorded_at) OVER w AS old_at
          FROM maint.settings_history AS s
        WINDOW w AS (PARTITION BY s.name ORDER BY s.id)
    ), x AS (
        SELECT h.name, h.recorded_at, h.source, h.pending_restart, h.old_pending, h.old_at,
               maint._setting_text(h.setting, h.unit, h.masked) AS new_value,
               maint._setting_text(h.old_setting, h.old_unit, h.old_masked) AS old_value,
               h.setting IS DISTINCT FROM h.old_setting AS changed, h.masked OR h.old_masked AS masked,
               h.name = ANY (p.warn) AS listed
          FROM h
         CROSS JOIN p
         WHERE h.rn = 1 AND h.old_id IS NOT NULL
           AND h.recorded_at > pg_catalog.now() - p.period
           AND NOT h.name = ANY (p.ignore)
    )
    SELECT maint._health_row(
               CASE WHEN x.listed OR (x.pending_restart AND NOT x.old_pending) THEN 'warning' ELSE 'info' END,
               'setting', x.name,
               CASE WHEN x.changed AND x.masked
                    THEN pg_catalog.format('setting %s changed (source: %s), seen at %s; its values are not '
                                           'stored, since it may hold a password%s',
                                           x.name, x.source, pg_catalog.to_char(x.recorded_at, 'YYYY-MM-DD HH24:MI'),
                                           CASE WHEN x.pending_restart
                                                THEN '; a newer value waits for a restart' ELSE '' END)
                    WHEN x.changed
                    THEN pg_catalog.format('setting %s changed from %s to %s (source: %s), seen at %s%s',
                                           x.name, x.old_value, x.new_value, x.source,
                                           pg_catalog.to_char(x.recorded_at, 'YYYY-MM-DD HH24:MI'),
                                           CASE WHEN x.pending_restart
                                                THEN '; a newer value waits for a restart' ELSE '' END)
                    WHEN x.pending_restart
                    THEN pg_catalog.format('setting %s was changed in the configuration (seen at %s) but takes '
                                           'effect only after a restart: the server still runs with %s',
                                           x.name, pg_catalog.to_char(x.recorded_at, 'YYYY-MM-DD HH24:MI'),
                                           x.new_value)
                    ELSE pg_catalog.format('setting %s no longer waits for a restart (seen at %s): its change '
                                           'in the configuration was undone; it stays %s',
                                           x.name, pg_catalog.to_char(x.recorded_at, 'YYYY-MM-DD HH24:MI'),
                                           x.new_value) END
               || CASE WHEN x.listed THEN ' (a setting of params.warn_settings)' ELSE '' END,
               NULL,
               CASE WHEN x.pending_restart AND NOT x.old_pending AND NOT x.changed
                    THEN 'restart the server in a maintenance window for the new value to take effect, or '
                         'undo the change in the configuration and reload'
                    ELSE 'if nobody meant to change it, set it back (ALTER SYSTEM or the configuration file, '
                         'then SELECT pg_reload_conf(), or a restart for a setting that needs one) and find '
                         'out who changed it' END,
               NULL,
               pg_catalog.jsonb_build_object('setting', x.name, 'old', x.old_value, 'new', x.new_value,
                                             'source', x.source, 'changed_at', x.recorded_at,
                                             'old_since', x.old_at, 'pending_restart', x.pending_restart))
      FROM x
     WHERE x.changed OR x.pending_restart IS DISTINCT FROM x.old_pending
$$;

GRANT EXECUTE ON FUNCTION
    maint._size_growth(interval, interval),
    maint.size_growth(interval, numeric, interval),
    maint._setting_text(text, text, boolean),
    maint.health_database_size(maint.check_config),
    maint.health_relation_size(maint.check_config),
    maint.health_growth_rate(maint.check_config),
    maint.health_growth_forecast(maint.check_config),
    maint.health_transaction_locks(maint.check_config),
    maint.health_settings_drift(maint.check_config)
TO maint_monitor;
GRANT EXECUTE ON FUNCTION maint.take_size_sample() TO maint_admin;
