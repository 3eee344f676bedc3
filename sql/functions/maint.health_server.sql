-- Health checks on the server: replication slots, WAL archiving and size, checkpoints,
-- counters (cache hits, rollbacks, temp files, deadlocks), slow statements, checksum
-- failures and settings.
--
-- Counter checks compare with the sample the previous maint.record_health_check() stored
-- in maint.health_history (metadata.sample). Without one (first run, plain health_check()
-- calls that never record, or after a statistics reset) they evaluate the counters since
-- statistics began, and say so in detail and metadata.baseline. They always return a row,
-- so the sample is recorded even when all is well.

-- maint._health_deltas(p_check text, p_sample jsonb) -> jsonb
--   {"deltas": {counter: value}, "baseline": "previous sample" | "statistics reset", "since": ts}
--   p_sample holds counters plus stats_reset (and optionally source, the view they came
--   from); a counter that went down or a changed stats_reset means the previous sample
--   is unusable.
CREATE OR REPLACE FUNCTION maint._health_deltas(p_check text, p_sample jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_prev jsonb := maint._health_prev_sample(p_check);
    v_usable boolean;
    v_key text;
    v_out jsonb := '{}'::jsonb;
BEGIN
    v_usable := v_prev IS NOT NULL
        AND (v_prev ->> 'stats_reset')::timestamptz IS NOT DISTINCT FROM (p_sample ->> 'stats_reset')::timestamptz;
    FOR v_key IN SELECT k FROM pg_catalog.jsonb_object_keys(p_sample) AS k WHERE k NOT IN ('stats_reset', 'source') LOOP
        IF v_usable AND (v_prev ->> v_key IS NULL
                         OR (p_sample ->> v_key)::numeric < (v_prev ->> v_key)::numeric) THEN
            v_usable := false;
        END IF;
    END LOOP;
    FOR v_key IN SELECT k FROM pg_catalog.jsonb_object_keys(p_sample) AS k WHERE k NOT IN ('stats_reset', 'source') LOOP
        v_out := v_out || pg_catalog.jsonb_build_object(v_key,
            (p_sample ->> v_key)::numeric - CASE WHEN v_usable THEN (v_prev ->> v_key)::numeric ELSE 0 END);
    END LOOP;
    RETURN pg_catalog.jsonb_build_object(
        'deltas', v_out,
        'baseline', CASE WHEN v_usable THEN 'previous sample' ELSE 'statistics reset' END,
        'since', CASE WHEN v_usable THEN v_prev -> 'recorded_at' ELSE p_sample -> 'stats_reset' END,
        'since_text', CASE WHEN v_usable
                           THEN 'the previous recorded sample (' || (v_prev ->> 'recorded_at') || ')'
                           ELSE 'statistics began' || coalesce(' (' || (p_sample ->> 'stats_reset') || ')', '')
                                || '; no usable previous sample in maint.health_history' END);
END
$$;

-- maint._health_counter_status(p_status text, p_deltas jsonb) -> text: without a usable
-- previous sample the counters cover everything since statistics began, which fixing the
-- cause can never clear: such a verdict is reported as info, not alerted.
CREATE OR REPLACE FUNCTION maint._health_counter_status(p_status text, p_deltas jsonb)
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_status IN ('warning', 'critical') AND p_deltas ->> 'baseline' <> 'previous sample'
                THEN 'info' ELSE p_status END
$$;

-- replication_slots: inactive slots, WAL retained by a slot, slots whose WAL is lost.
CREATE OR REPLACE FUNCTION maint.health_replication_slots(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(x.st, 'slot', x.slot_name::text,
               pg_catalog.format('%s replication slot %s (%s%s) is %s and retains %s of WAL (wal_status %s)',
                                 x.slot_type, x.slot_name, coalesce('plugin ' || x.plugin, 'physical'),
                                 coalesce(', database ' || x.database, ''),
                                 CASE WHEN x.active THEN 'active' ELSE 'inactive' END,
                                 pg_catalog.pg_size_pretty(x.retained), coalesce(x.wal_status, 'unknown')),
               x.retained,
               'reconnect its consumer, or drop the slot if nothing will use it again: an abandoned slot '
               'fills the disk with WAL and holds back VACUUM',
               pg_catalog.format('SELECT pg_catalog.pg_drop_replication_slot(%L);', x.slot_name),
               pg_catalog.jsonb_build_object('active', x.active, 'wal_status', x.wal_status,
                                             'retained_bytes', x.retained, 'slot_type', x.slot_type))
      FROM (
        SELECT s.*, r.retained,
               CASE WHEN s.wal_status IN ('lost', 'unreserved') THEN 'critical'
                    WHEN maint._health_level(r.retained, p_cfg.warn, p_cfg.crit) <> 'ok'
                         THEN maint._health_level(r.retained, p_cfg.warn, p_cfg.crit)
                    WHEN NOT s.active THEN 'warning'
                    ELSE 'ok' END AS st
          FROM pg_catalog.pg_replication_slots AS s,
               LATERAL (SELECT coalesce(pg_catalog.pg_wal_lsn_diff(
                                   CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn()
                                        ELSE pg_catalog.pg_current_wal_lsn() END, s.restart_lsn), 0) AS retained) AS r
      ) AS x
     WHERE x.st <> 'ok'
$$;

-- archiver: archive_command failing (the last failure is newer than the last success),
-- and .ready segments waiting (needs pg_ls_archive_statusdir: pg_monitor).
CREATE OR REPLACE FUNCTION maint.health_archiver(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_arch pg_catalog.pg_stat_archiver;
    v_ready bigint;
BEGIN
    IF pg_catalog.current_setting('archive_mode') = 'off' THEN
        RETURN NEXT maint._health_row('ok', 'cluster', 'archiver',
            'archive_mode is off: WAL is not archived (point-in-time recovery is not possible)');
        RETURN;
    END IF;
    SELECT * INTO v_arch FROM pg_catalog.pg_stat_archiver;
    IF v_arch.last_failed_time IS NOT NULL
       AND v_arch.last_failed_time > coalesce(v_arch.last_archived_time, '-infinity') THEN
        RETURN NEXT maint._health_row('critical', 'cluster', 'archiver',
            pg_catalog.format('WAL archiving is failing: %s failures, the last at %s for segment %s; last '
                              'success %s', v_arch.failed_count, v_arch.last_failed_time, v_arch.last_failed_wal,
                              coalesce(v_arch.last_archived_time::text, 'never')),
            v_arch.failed_count,
            'fix archive_command (see the server log); WAL accumulates in pg_wal until it succeeds',
            NULL,
            pg_catalog.jsonb_build_object('failed_count', v_arch.failed_count,
                                          'last_failed_wal', v_arch.last_failed_wal,
                                          'last_failed_time', v_arch.last_failed_time,
                                          'last_archived_time', v_arch.last_archived_time),
            'count');
    END IF;
    SELECT count(*) INTO v_ready FROM pg_catalog.pg_ls_archive_statusdir() AS f
     WHERE f.name LIKE '%.ready';
    IF maint._health_level(v_ready, p_cfg.warn, p_cfg.crit) <> 'ok' THEN
        RETURN NEXT maint._health_row(maint._health_level(v_ready, p_cfg.warn, p_cfg.crit), 'cluster',
            'archive_status', pg_catalog.format('%s WAL segment(s) are waiting to be archived', v_ready),
            v_ready, 'archiving is failing or too slow: check archive_command and the archive destination',
            NULL, NULL, 'count');
    END IF;
END
$$;

-- wal_size: the size of pg_wal against max_wal_size (needs pg_ls_waldir: pg_monitor).
CREATE OR REPLACE FUNCTION maint.health_wal_size(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(x.st, 'cluster', 'pg_wal',
               pg_catalog.format('pg_wal holds %s in %s files, %s%% of max_wal_size (%s)',
                                 pg_catalog.pg_size_pretty(x.bytes), x.files, x.pct, x.max_wal),
               x.pct,
               'something retains WAL: check replication_slots and archiver; a write burst may also '
               'exceed max_wal_size',
               NULL,
               pg_catalog.jsonb_build_object('bytes', x.bytes, 'files', x.files))
      FROM (
        SELECT w.bytes, w.files, m.max_wal,
               round(100.0 * w.bytes / m.max_bytes, 1) AS pct,
               maint._health_level(round(100.0 * w.bytes / m.max_bytes, 1), p_cfg.warn, p_cfg.crit) AS st
          FROM (SELECT coalesce(sum(f.size), 0) AS bytes, count(*) AS files
                  FROM pg_catalog.pg_ls_waldir() AS f) AS w,
               (SELECT pg_catalog.current_setting('max_wal_size') AS max_wal,
                       s.setting::numeric * 1024 * 1024 AS max_bytes
                  FROM pg_catalog.pg_settings AS s WHERE s.name = 'max_wal_size') AS m
      ) AS x
     WHERE x.st <> 'ok'
$$;

-- maint._health_checkpoint_sample() -> jsonb
--   The checkpointer's counters and who wrote the shared buffers, from where each lives
--   on this version:
--   - checkpoints: pg_stat_bgwriter up to 16, pg_stat_checkpointer from 17 (18 adds
--     num_done, the ones that completed; requested ones skipped because nothing had
--     changed are not done);
--   - buffer writes: pg_stat_bgwriter up to 15 (its buffers_backend also counts the ring
--     buffer writes of bulk operations and autovacuum, which are by design); from 16
--     pg_stat_io, which tells them apart: client backends' writes in the normal context
--     only (17 removed buffers_backend from pg_stat_bgwriter).
--   - on a standby checkpoints are restartpoints: up to 16 they are counted as checkpoints,
--     from 17 pg_stat_checkpointer counts them apart (restartpoints_timed / _req), which
--     are added here so that every version counts the same;
--   - wal_bytes: the WAL position (written, or replayed on a standby) in bytes, so that the
--     deltas tell how much WAL was written between two samples.
--   Keys: checkpoints_timed, checkpoints_req, [checkpoints_done], wal_bytes,
--   writes_checkpointer, writes_bgwriter, writes_backend, fsyncs_backend, stats_reset, source.
CREATE OR REPLACE FUNCTION maint._health_checkpoint_sample()
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_version integer := maint._server_version_num();
    v_sample jsonb;
BEGIN
    IF v_version >= 170000 THEN
        SELECT pg_catalog.jsonb_build_object('checkpoints_timed', c.num_timed + c.restartpoints_timed,
                                             'checkpoints_req', c.num_requested + c.restartpoints_req,
                                             'stats_reset', c.stats_reset,
                                             'source', 'pg_stat_checkpointer, pg_stat_io')
          INTO v_sample
          FROM pg_catalog.pg_stat_checkpointer AS c;
        IF v_version >= 180000 THEN
            SELECT v_sample || pg_catalog.jsonb_build_object('checkpoints_done', c.num_done)
              INTO v_sample
              FROM pg_catalog.pg_stat_checkpointer AS c;
        END IF;
    ELSE
        SELECT pg_catalog.jsonb_build_object('checkpoints_timed', b.checkpoints_timed,
                                             'checkpoints_req', b.checkpoints_req,
                                             'stats_reset', b.stats_reset,
                                             'source', 'pg_stat_bgwriter')
          INTO v_sample
          FROM pg_catalog.pg_stat_bgwriter AS b;
    END IF;
    v_sample := v_sample || pg_catalog.jsonb_build_object('wal_bytes', pg_catalog.pg_wal_lsn_diff(
        CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn()
             ELSE pg_catalog.pg_current_wal_lsn() END, '0/0'));
    IF v_version >= 160000 THEN
        SELECT v_sample || pg_catalog.jsonb_build_object(
                   'writes_checkpointer', coalesce(pg_catalog.sum(i.writes) FILTER (WHERE i.backend_type = 'checkpointer'), 0),
                   'writes_bgwriter', coalesce(pg_catalog.sum(i.writes) FILTER (WHERE i.backend_type = 'background writer'), 0),
                   'writes_backend', coalesce(pg_catalog.sum(i.writes) FILTER (WHERE i.backend_type <> ALL (ARRAY['checkpointer', 'background writer'])
                                                                            AND i.context = 'normal'), 0),
                   'fsyncs_backend', coalesce(pg_catalog.sum(i.fsyncs) FILTER (WHERE i.backend_type <> ALL (ARRAY['checkpointer', 'background writer'])
                                                                            AND i.context = 'normal'), 0))
          INTO v_sample
          FROM pg_catalog.pg_stat_io AS i
         WHERE i.object = 'relation';
        IF v_version < 170000 THEN
            v_sample := v_sample || '{"source": "pg_stat_bgwriter, pg_stat_io"}';
        END IF;
    ELSE
        SELECT v_sample || pg_catalog.jsonb_build_object('writes_checkpointer', b.buffers_checkpoint,
                                                         'writes_bgwriter', b.buffers_clean,
                                                         'writes_backend', b.buffers_backend,
                                                         'fsyncs_backend', b.buffers_backend_fsync)
          INTO v_sample
          FROM pg_catalog.pg_stat_bgwriter AS b;
    END IF;
    RETURN v_sample;
END
$$;
COMMENT ON FUNCTION maint._health_checkpoint_sample() IS 'Internal: checkpoint and buffer-write counters, from pg_stat_bgwriter, pg_stat_checkpointer (17+) and pg_stat_io (16+)';

-- checkpoints: the share of checkpoints that WAL volume forced (max_wal_size too small for
-- the write load) since the previous sample, judged from params.min_checkpoints such and
-- timed checkpoints on; the age of the last checkpoint against checkpoint_timeout
-- (params.warn_age_factor / crit_age_factor); and who wrote the shared buffers ('buffer
-- writes', shown when a warning or critical): backends writing them themselves, rather
-- than the background writer or the checkpointer, at or above params.backend_warn /
-- backend_crit % (30 / 60) of params.min_writes (10000) writes or more, and any backend
-- fsync (critical: the checkpointer's request queue overflowed).
-- No version says why a checkpoint was requested: WAL volume, or an explicit CHECKPOINT,
-- CREATE DATABASE, a base backup, which say nothing about max_wal_size (every new database
-- requests one). WAL volume forces a checkpoint when the WAL since the last one's redo
-- point reaches max_wal_size / (1 + checkpoint_completion_target) (CheckPointSegments - 1
-- segments, at least one), so the WAL written between the samples allows at most
-- floor(WAL / that distance) of them: requested checkpoints beyond that were explicit and
-- are not counted.
-- Version-specific source: maint._health_checkpoint_sample().
CREATE OR REPLACE FUNCTION maint.health_checkpoints(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH s AS (
        SELECT maint._health_checkpoint_sample() AS sample
    ), d AS (
        SELECT s.sample, maint._health_deltas(p_cfg.check_name, s.sample) AS d FROM s
    ), g AS (
        -- the WAL between two WAL-forced checkpoints (XLogCheckpointNeeded)
        SELECT greatest(floor(c.max_wal / c.segment / (1 + c.target)) - 1, 1) * c.segment AS distance
          FROM (SELECT pg_catalog.pg_size_bytes(pg_catalog.current_setting('max_wal_size'))::numeric AS max_wal,
                       pg_catalog.pg_size_bytes(pg_catalog.current_setting('wal_segment_size'))::numeric AS segment,
                       pg_catalog.current_setting('checkpoint_completion_target')::numeric AS target) AS c
    ), x AS (
        SELECT d.*, g.distance, (d.d -> 'deltas' ->> 'checkpoints_req')::numeric AS req,
               (d.d -> 'deltas' ->> 'checkpoints_timed')::numeric AS timed,
               (d.d -> 'deltas' ->> 'wal_bytes')::numeric AS wal
          FROM d, g
    ), w AS (
        SELECT x.*, least(x.req, floor(coalesce(x.wal, 0) / x.distance)) AS forced FROM x
    ), y AS (
        SELECT w.*, w.req - w.forced AS explicit,
               CASE WHEN w.forced + w.timed > 0 THEN round(100.0 * w.forced / (w.forced + w.timed), 1) END AS pct,
               w.forced + w.timed >= coalesce((p_cfg.params ->> 'min_checkpoints')::numeric, 3) AS enough
          FROM w
    )
    SELECT maint._health_row(CASE WHEN y.enough
                                  THEN maint._health_counter_status(maint._health_level(y.pct, p_cfg.warn, p_cfg.crit), y.d)
                                  ELSE 'ok' END,
               'cluster', 'checkpoints',
               CASE WHEN y.pct IS NULL
                    THEN pg_catalog.format('no timed or WAL-forced checkpoints since %s', y.d ->> 'since_text')
                    ELSE pg_catalog.format('%s%% of checkpoints (%s of %s) were forced by WAL volume rather than timed, '
                                           'since %s%s', y.pct, y.forced, y.forced + y.timed, y.d ->> 'since_text',
                                           CASE WHEN y.enough THEN ''
                                                ELSE ' (too few checkpoints for a verdict)' END) END
               || CASE WHEN y.explicit > 0
                       THEN pg_catalog.format('; %s more were requested beyond what the %s of WAL written could force '
                                              '(explicit CHECKPOINT, CREATE DATABASE, base backups) and are not counted',
                                              y.explicit, pg_catalog.pg_size_pretty(coalesce(y.wal, 0)))
                       ELSE '' END,
               y.pct,
               'checkpoints forced by WAL volume mean max_wal_size is too small for the write load: raise it '
               '(ALTER SYSTEM SET max_wal_size = ...; SELECT pg_reload_conf()) so that checkpoint_timeout paces them',
               NULL,
               pg_catalog.jsonb_build_object('sample', y.sample, 'baseline', y.d ->> 'baseline',
                                             'since', y.d -> 'since', 'requested', y.req, 'timed', y.timed,
                                             'wal_forced', y.forced, 'explicit', y.explicit, 'wal_bytes', y.wal,
                                             'forced_every_bytes', y.distance))
      FROM y
    UNION ALL
    SELECT maint._health_row(a.st, 'cluster', 'last checkpoint',
               pg_catalog.format('the last checkpoint finished %s s ago at %s (checkpoint_timeout %s)',
                                 a.age_s, a.checkpoint_time, pg_catalog.current_setting('checkpoint_timeout')),
               a.age_s,
               'checkpoints are not completing: look for I/O problems or errors in the server log',
               NULL, NULL, 's')
      FROM (
        SELECT c.checkpoint_time, g.age_s,
               maint._health_level(g.age_s,
                   g.timeout_s * coalesce((p_cfg.params ->> 'warn_age_factor')::numeric, 2),
                   g.timeout_s * coalesce((p_cfg.params ->> 'crit_age_factor')::numeric, 4)) AS st
          FROM pg_catalog.pg_control_checkpoint() AS c,
               LATERAL (SELECT round(extract(epoch FROM pg_catalog.clock_timestamp() - c.checkpoint_time)::numeric, 1)
                               AS age_s,
                               (SELECT s.setting::numeric FROM pg_catalog.pg_settings AS s
                                 WHERE s.name = 'checkpoint_timeout') AS timeout_s) AS g
      ) AS a
     WHERE a.st <> 'ok'
    UNION ALL
    SELECT maint._health_row(w.st, 'cluster', 'buffer writes',
               pg_catalog.format('%s%% of shared buffer writes (%s of %s) were done by backends themselves, '
                                 'not by the background writer (%s) or the checkpointer (%s); %s backend fsync(s); since %s',
                                 coalesce(w.pct::text, '-'), w.backend, w.total, w.bgwriter, w.checkpointer,
                                 w.fsyncs, w.d ->> 'since_text'),
               w.pct,
               CASE WHEN w.fsyncs > 0
                    THEN 'backends had to fsync because the checkpointer''s request queue overflowed: look for '
                         'slow storage and checkpoints that take too long'
                    ELSE 'backends evict dirty buffers themselves: raise shared_buffers, or make the background '
                         'writer more active (bgwriter_lru_maxpages, bgwriter_lru_multiplier, bgwriter_delay)' END,
               NULL,
               pg_catalog.jsonb_build_object('backend', w.backend, 'bgwriter', w.bgwriter, 'checkpointer', w.checkpointer,
                                             'backend_fsyncs', w.fsyncs, 'baseline', w.d ->> 'baseline',
                                             'source', w.sample ->> 'source'),
               '%')
      FROM (
        SELECT v.*,
               maint._health_counter_status(
                   CASE WHEN v.fsyncs > 0 THEN 'critical'
                        WHEN v.total < coalesce((p_cfg.params ->> 'min_writes')::numeric, 10000) THEN 'ok'
                        ELSE maint._health_level(v.pct, coalesce((p_cfg.params ->> 'backend_warn')::numeric, 30),
                                                 coalesce((p_cfg.params ->> 'backend_crit')::numeric, 60)) END,
                   v.d) AS st
          FROM (
            SELECT u.*, CASE WHEN u.total > 0 THEN round(100.0 * u.backend / u.total, 1) END AS pct
              FROM (
                SELECT x.sample, x.d,
                       (x.d -> 'deltas' ->> 'writes_backend')::numeric AS backend,
                       (x.d -> 'deltas' ->> 'writes_bgwriter')::numeric AS bgwriter,
                       (x.d -> 'deltas' ->> 'writes_checkpointer')::numeric AS checkpointer,
                       (x.d -> 'deltas' ->> 'fsyncs_backend')::numeric AS fsyncs,
                       (x.d -> 'deltas' ->> 'writes_backend')::numeric + (x.d -> 'deltas' ->> 'writes_bgwriter')::numeric
                           + (x.d -> 'deltas' ->> 'writes_checkpointer')::numeric AS total
                  FROM d AS x  -- the sample and deltas of the checkpoints row, read once
              ) AS u
          ) AS v
      ) AS w
     WHERE w.st IN ('warning', 'critical')  -- not before there is a previous sample to compare with
$$;

-- cache_hit_ratio: blks_hit / (blks_hit + blks_read) of this database since the previous
-- sample; bad when at or below warn / crit; ok when fewer than params.min_blocks were read.
CREATE OR REPLACE FUNCTION maint.health_cache_hit_ratio(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH d AS (
        SELECT s.sample, maint._health_deltas(p_cfg.check_name, s.sample) AS d
          FROM (SELECT pg_catalog.jsonb_build_object('blks_hit', b.blks_hit, 'blks_read', b.blks_read,
                                                     'stats_reset', b.stats_reset) AS sample
                  FROM pg_catalog.pg_stat_database AS b WHERE b.datname = pg_catalog.current_database()) AS s
    ), x AS (
        SELECT d.*, (d.d -> 'deltas' ->> 'blks_hit')::numeric AS hit, (d.d -> 'deltas' ->> 'blks_read')::numeric AS rd
          FROM d
    ), y AS (
        SELECT x.*, round(100.0 * x.hit / nullif(x.hit + x.rd, 0), 2) AS pct,
               x.hit + x.rd >= coalesce((p_cfg.params ->> 'min_blocks')::numeric, 1000) AS enough
          FROM x
    )
    SELECT maint._health_row(CASE WHEN y.enough
                                  THEN maint._health_counter_status(maint._health_level(y.pct, p_cfg.warn, p_cfg.crit, true), y.d)
                                  ELSE 'ok' END,
               'database', pg_catalog.current_database()::text,
               pg_catalog.format('database %s served %s%% of %s block requests from shared buffers since %s%s',
                                 pg_catalog.current_database(), coalesce(y.pct::text, '-'), y.hit + y.rd,
                                 y.d ->> 'since_text',
                                 CASE WHEN y.enough THEN '' ELSE ' (too little activity for a verdict)' END),
               y.pct,
               'the working set does not fit in shared_buffers (or a big scan ran): raise shared_buffers, '
               'add indexes for sequential scans, or add memory',
               NULL,
               pg_catalog.jsonb_build_object('sample', y.sample, 'baseline', y.d ->> 'baseline',
                                             'since', y.d -> 'since', 'blks_hit', y.hit, 'blks_read', y.rd))
      FROM y
$$;

-- rollback_ratio: share of rolled-back transactions since the previous sample (ok below
-- params.min_xacts transactions).
CREATE OR REPLACE FUNCTION maint.health_rollback_ratio(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH d AS (
        SELECT s.sample, maint._health_deltas(p_cfg.check_name, s.sample) AS d
          FROM (SELECT pg_catalog.jsonb_build_object('xact_commit', b.xact_commit,
                                                     'xact_rollback', b.xact_rollback,
                                                     'stats_reset', b.stats_reset) AS sample
                  FROM pg_catalog.pg_stat_database AS b WHERE b.datname = pg_catalog.current_database()) AS s
    ), x AS (
        SELECT d.*, (d.d -> 'deltas' ->> 'xact_commit')::numeric AS cm,
               (d.d -> 'deltas' ->> 'xact_rollback')::numeric AS rb
          FROM d
    ), y AS (
        SELECT x.*, round(100.0 * x.rb / nullif(x.cm + x.rb, 0), 2) AS pct,
               x.cm + x.rb >= coalesce((p_cfg.params ->> 'min_xacts')::numeric, 100) AS enough
          FROM x
    )
    SELECT maint._health_row(CASE WHEN y.enough
                                  THEN maint._health_counter_status(maint._health_level(y.pct, p_cfg.warn, p_cfg.crit), y.d)
                                  ELSE 'ok' END,
               'database', pg_catalog.current_database()::text,
               pg_catalog.format('%s of %s transactions in database %s rolled back since %s (%s%%)%s',
                                 y.rb, y.cm + y.rb, pg_catalog.current_database(), y.d ->> 'since_text',
                                 coalesce(y.pct::text, '-'),
                                 CASE WHEN y.enough THEN '' ELSE ' (too few transactions for a verdict)' END),
               y.pct,
               'find the failing statements (log_min_error_statement, pg_stat_statements); rollbacks are '
               'often errors the application swallows',
               NULL,
               pg_catalog.jsonb_build_object('sample', y.sample, 'baseline', y.d ->> 'baseline',
                                             'since', y.d -> 'since', 'commits', y.cm, 'rollbacks', y.rb))
      FROM y
$$;

-- temp_spill: bytes written to temporary files by this database since the previous sample.
CREATE OR REPLACE FUNCTION maint.health_temp_spill(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH d AS (
        SELECT s.sample, maint._health_deltas(p_cfg.check_name, s.sample) AS d
          FROM (SELECT pg_catalog.jsonb_build_object('temp_bytes', b.temp_bytes, 'temp_files', b.temp_files,
                                                     'stats_reset', b.stats_reset) AS sample
                  FROM pg_catalog.pg_stat_database AS b WHERE b.datname = pg_catalog.current_database()) AS s
    ), x AS (
        SELECT d.*, (d.d -> 'deltas' ->> 'temp_bytes')::numeric AS bytes,
               (d.d -> 'deltas' ->> 'temp_files')::numeric AS files
          FROM d
    )
    SELECT maint._health_row(maint._health_counter_status(maint._health_level(x.bytes, p_cfg.warn, p_cfg.crit), x.d),
               'database', pg_catalog.current_database()::text,
               pg_catalog.format('database %s wrote %s to %s temporary file(s) since %s',
                                 pg_catalog.current_database(), pg_catalog.pg_size_pretty(x.bytes), x.files,
                                 x.d ->> 'since_text'),
               x.bytes,
               'sorts and hashes spill to disk when work_mem is too small: find them (log_temp_files, '
               'pg_stat_statements temp_blks_written) and raise work_mem for them or add indexes',
               NULL,
               pg_catalog.jsonb_build_object('sample', x.sample, 'baseline', x.d ->> 'baseline',
                                             'since', x.d -> 'since', 'temp_files', x.files))
      FROM x
$$;

-- deadlocks: deadlocks detected in this database since the previous sample.
CREATE OR REPLACE FUNCTION maint.health_deadlocks(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH d AS (
        SELECT s.sample, maint._health_deltas(p_cfg.check_name, s.sample) AS d
          FROM (SELECT pg_catalog.jsonb_build_object('deadlocks', b.deadlocks, 'stats_reset', b.stats_reset) AS sample
                  FROM pg_catalog.pg_stat_database AS b WHERE b.datname = pg_catalog.current_database()) AS s
    ), x AS (
        SELECT d.*, (d.d -> 'deltas' ->> 'deadlocks')::numeric AS n FROM d
    )
    SELECT maint._health_row(maint._health_counter_status(maint._health_level(x.n, p_cfg.warn, p_cfg.crit), x.d),
               'database', pg_catalog.current_database()::text,
               pg_catalog.format('%s deadlock(s) in database %s since %s', x.n, pg_catalog.current_database(),
                                 x.d ->> 'since_text'),
               x.n,
               'the server log has both statements of each deadlock: make transactions take their row '
               'locks in a consistent order',
               NULL,
               pg_catalog.jsonb_build_object('sample', x.sample, 'baseline', x.d ->> 'baseline', 'since', x.d -> 'since'))
      FROM x
$$;

-- slow_queries: statements of this database in pg_stat_statements with at least
-- params.min_calls calls and a mean execution time at or above warn / crit (ms; PgHero's
-- 20 ms and 100 calls by default). When the extension is not installed here or not loaded,
-- one info row says how to enable it; unknown when the check was asked for by name
-- (maint.health_check(ARRAY['slow_queries'])). Version-specific source: only statements a
-- client sent (toplevel) where pg_stat_statements has it (14+).
CREATE OR REPLACE FUNCTION maint.health_slow_queries(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_schema name;
    v_loaded boolean;
    v_hidden bigint;
    v_toplevel text;
BEGIN
    SELECT n.nspname INTO v_schema
      FROM pg_catalog.pg_extension AS e JOIN pg_catalog.pg_namespace AS n ON n.oid = e.extnamespace
     WHERE e.extname = 'pg_stat_statements';
    v_loaded := 'pg_stat_statements' = ANY (pg_catalog.regexp_split_to_array(
                    pg_catalog.btrim(pg_catalog.current_setting('shared_preload_libraries')), '\s*,\s*'));
    IF v_schema IS NULL OR NOT v_loaded THEN
        -- statement statistics are an option, not a fault: say how to turn them on
        RETURN NEXT maint._health_row(CASE WHEN maint._health_named(p_cfg.check_name) THEN 'unknown' ELSE 'info' END,
            'extension', 'pg_stat_statements',
            CASE WHEN v_schema IS NULL
                 THEN pg_catalog.format('pg_stat_statements is not installed in database %s%s: slow statements '
                                        'cannot be found', pg_catalog.current_database(),
                                        CASE WHEN v_loaded THEN '' ELSE ' (nor loaded)' END)
                 ELSE 'pg_stat_statements is installed but not loaded: it is missing from shared_preload_libraries'
            END,
            p_remediation => CASE WHEN v_loaded
                                  THEN 'CREATE EXTENSION pg_stat_statements in this database (it is loaded already)'
                                  ELSE 'add pg_stat_statements to shared_preload_libraries (ALTER SYSTEM SET '
                                       'shared_preload_libraries = ''pg_stat_statements'', keeping what is there; '
                                       'restart), then CREATE EXTENSION pg_stat_statements in this database' END,
            p_fix_sql => CASE WHEN v_loaded AND v_schema IS NULL THEN 'CREATE EXTENSION pg_stat_statements;' END,
            p_metadata => pg_catalog.jsonb_build_object('installed', v_schema IS NOT NULL, 'loaded', v_loaded));
        RETURN;
    END IF;
    -- version-specific source: toplevel (pg_stat_statements 1.9, PostgreSQL 14+) tells
    -- statements run inside functions from the ones a client sent; the extension's own
    -- version decides, since it may be older than the server until ALTER EXTENSION UPDATE
    v_toplevel := CASE WHEN EXISTS (
                           SELECT 1 FROM pg_catalog.pg_attribute AS a
                            WHERE a.attrelid = pg_catalog.format('%I.pg_stat_statements', v_schema)::pg_catalog.regclass
                              AND a.attname = 'toplevel' AND NOT a.attisdropped)
                       THEN 'AND s.toplevel' ELSE '' END;
    RETURN QUERY EXECUTE pg_catalog.format($q$ SELECT (q.r).* FROM (
        SELECT maint._health_row(x.st, 'statement', 'queryid ' || x.queryid,
                   pg_catalog.format('statement %%s ran %%s times with a mean of %%s ms (total %%s s, role %%s): %%s',
                                     x.queryid, x.calls, x.mean_ms, round(x.total_exec_time::numeric / 1000, 1),
                                     x.userid::pg_catalog.regrole, pg_catalog.left(x.query, 200)),
                   x.mean_ms,
                   'look at its plan (EXPLAIN (ANALYZE, BUFFERS)) for missing indexes or bad estimates',
                   NULL,
                   pg_catalog.jsonb_build_object('queryid', x.queryid, 'calls', x.calls,
                                                 'total_exec_time_ms', round(x.total_exec_time::numeric, 1),
                                                 'rows', x.rows)) AS r
          FROM (SELECT s.*, round(s.mean_exec_time::numeric, 1) AS mean_ms,
                       maint._health_level(s.mean_exec_time::numeric, $1, $2) AS st
                  FROM %I.pg_stat_statements AS s
                 WHERE s.dbid = (SELECT d.oid FROM pg_catalog.pg_database AS d
                                  WHERE d.datname = pg_catalog.current_database())
                   AND s.calls >= $3 %s) AS x
         WHERE x.st <> 'ok'
         ORDER BY x.mean_exec_time DESC
         LIMIT $4 OFFSET 0) AS q $q$, v_schema, v_toplevel)
    USING p_cfg.warn, p_cfg.crit, coalesce((p_cfg.params ->> 'min_calls')::bigint, 100),
          coalesce((p_cfg.params ->> 'limit')::integer, 10);
    IF NOT pg_catalog.pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') THEN
        EXECUTE pg_catalog.format('SELECT count(*) FROM %I.pg_stat_statements AS s WHERE s.userid <> $1',
                                  v_schema)
           INTO v_hidden USING current_user::pg_catalog.regrole::oid;
        IF v_hidden > 0 THEN
            RETURN NEXT maint._health_row('unknown', 'extension', 'pg_stat_statements',
                pg_catalog.format('%s statement(s) of other roles are hidden from role %s (needs pg_read_all_stats)',
                                  v_hidden, current_user),
                p_remediation => 'GRANT pg_monitor TO the monitoring role');
        END IF;
    END IF;
END
$$;

-- checksum_failures: data checksum failures in any database (critical); data checksums
-- disabled is reported as info, since failures could not be detected at all.
CREATE OR REPLACE FUNCTION maint.health_checksum_failures(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row('info', 'cluster', 'data_checksums',
               'data checksums are disabled: corrupted pages cannot be detected',
               NULL, 'enable them with pg_checksums --enable while the server is stopped', NULL, NULL)
     WHERE pg_catalog.current_setting('data_checksums') = 'off'
    UNION ALL
    SELECT maint._health_row(maint._health_level(d.checksum_failures, p_cfg.warn, p_cfg.crit), 'database',
               coalesce(d.datname::text, '(shared objects)'),
               pg_catalog.format('%s data checksum failure(s) in %s, the last at %s: storage is corrupting data',
                                 d.checksum_failures, coalesce('database ' || d.datname, 'shared catalogs'),
                                 d.checksum_last_failure),
               d.checksum_failures,
               'check the server log for the blocks, verify the hardware, and restore damaged relations from '
               'a backup; do not ignore this',
               NULL,
               pg_catalog.jsonb_build_object('last_failure', d.checksum_last_failure))
      FROM pg_catalog.pg_stat_database AS d
     WHERE d.checksum_failures > 0
$$;

-- settings_sanity: settings that risk data loss or hide problems. params.ignore lists
-- setting names not to report. PostgreSQL's defaults (no idle-in-transaction timeout,
-- log_lock_waits off) are info: a new server is no alarm.
CREATE OR REPLACE FUNCTION maint.health_settings_sanity(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH rules (name, bad, status, why, fix) AS (VALUES
        ('fsync', 'off', 'critical',
         'fsync is off: a power loss or OS crash can corrupt the whole cluster', 'on'),
        ('full_page_writes', 'off', 'critical',
         'full_page_writes is off: a crash during a write can leave torn pages that cannot be repaired', 'on'),
        ('track_counts', 'off', 'critical',
         'track_counts is off: autovacuum cannot tell which tables need work', 'on'),
        -- PostgreSQL's default, so info: the transactions it would end are the
        -- idle_in_transaction check's findings when they happen
        ('idle_in_transaction_session_timeout', '0', 'info',
         'idle_in_transaction_session_timeout is 0: a forgotten open transaction holds locks and the xmin '
         'horizon forever', '''10min'''),
        ('synchronous_commit', 'off', 'info',
         'synchronous_commit is off: the last transactions before a crash can be lost (no corruption)', 'on'),
        ('log_lock_waits', 'off', 'info',
         'log_lock_waits is off: lock waits longer than deadlock_timeout are not logged', 'on')
    )
    SELECT maint._health_row(r.status, 'setting', r.name, r.why, NULL,
               pg_catalog.format('set %s = %s', r.name, r.fix),
               pg_catalog.format('ALTER SYSTEM SET %s = %s; SELECT pg_catalog.pg_reload_conf();', r.name, r.fix),
               pg_catalog.jsonb_build_object('setting', pg_catalog.current_setting(r.name)))
      FROM rules AS r
     WHERE pg_catalog.current_setting(r.name) = r.bad
       AND NOT coalesce(p_cfg.params -> 'ignore', '[]'::jsonb) ? r.name
$$;

GRANT EXECUTE ON FUNCTION
    maint._health_deltas(text, jsonb),
    maint._health_checkpoint_sample(),
    maint._health_counter_status(text, jsonb),
    maint.health_replication_slots(maint.check_config),
    maint.health_archiver(maint.check_config),
    maint.health_wal_size(maint.check_config),
    maint.health_checkpoints(maint.check_config),
    maint.health_cache_hit_ratio(maint.check_config),
    maint.health_rollback_ratio(maint.check_config),
    maint.health_temp_spill(maint.check_config),
    maint.health_deadlocks(maint.check_config),
    maint.health_slow_queries(maint.check_config),
    maint.health_checksum_failures(maint.check_config),
    maint.health_settings_sanity(maint.check_config)
TO maint_monitor;
