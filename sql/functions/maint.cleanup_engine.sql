-- The cleanup runner shared by apply_retention, clean_orphans, remove_duplicates and
-- run_all_cleanup: one journaled run (one task lock) that works through the selected
-- rules, each in keyset batches of their own transactions.
--
-- These procedures COMMIT, so they carry no SET clause and are not SECURITY DEFINER:
-- they pin search_path themselves after every COMMIT. They decide what to do next; every
-- statement on a rule's table runs in the SECURITY DEFINER steps of
-- maint.cleanup_steps.sql, as the table's owner, whoever calls the procedure (a
-- superuser's psql, the CLI, the pg_cron job running as maint_runner).

-- CALL maint._cleanup_rule(run, rule, dry_run, deadline, lock_timeout, max_fraction, force, INOUT rules, INOUT outcome)
--   Works through one rule inside run p_run: counts what would go (the preflight),
--   applies the fraction guard, then deletes in batches: keyset on the primary key,
--   heap page ranges for tables without one, a work table of victims for duplicates,
--   one transaction per dropped partition. Records the rule's result under its id in
--   p_rules (and in the run's detail) and its status in p_outcome:
--   dry_run | succeeded | partial (time limit) | skipped (locks, author's rights) |
--   refused | failed | cancelled | removed.
--   Never raises: a failure is recorded and the caller goes on with the next rule.
-- It commits, so it cannot carry SET search_path: it pins search_path with set_config()
-- at the start of every transaction instead.
CREATE OR REPLACE PROCEDURE maint._cleanup_rule(
    p_run bigint,
    p_rule_id bigint,
    p_dry_run boolean,
    p_deadline timestamptz,
    p_lock_timeout interval,
    p_max_fraction numeric,
    p_force boolean,
    INOUT p_rules jsonb,
    INOUT p_outcome text
)
    LANGUAGE plpgsql
AS $$
DECLARE
    v_rule maint.cleanup_rules;
    v_pre jsonb;
    v_res jsonb;
    v_b jsonb;
    v_candidates bigint := 0;
    v_fraction numeric;
    v_units jsonb := '[]'::jsonb;
    v_unit jsonb;
    v_unit_rel text;
    v_n integer;
    v_mode text;
    v_deleted bigint := 0;
    v_bytes bigint := 0;
    v_estimated bigint := 0;
    v_freed bigint := 0;
    v_part_bytes bigint := 0;
    v_counted bigint := 0;
    v_row_deleted bigint;
    v_done jsonb;
    v_max_fraction numeric;
    v_batches integer := 0;
    v_retries integer := 0;
    v_attempt integer := 0;
    v_dropped text[] := '{}';
    v_status text := 'succeeded';
    v_error text;
    v_notice_at timestamptz := pg_catalog.clock_timestamp();
    v_started timestamptz := pg_catalog.clock_timestamp();
    v_lock_ms text := greatest(1, ceil(extract(epoch FROM p_lock_timeout) * 1000))::bigint::text;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    SELECT * INTO v_rule FROM maint.cleanup_rules AS r WHERE r.id = p_rule_id;
    IF NOT FOUND THEN
        p_outcome := 'removed';
        RETURN;
    END IF;

    -- preflight: resolve, check, count (as the table's owner; bounded by the lock timeout)
    v_pre := maint._cleanup_preflight(p_run, p_rule_id, v_lock_ms);
    v_res := v_pre->'res';
    IF v_pre->>'status' <> 'ok' THEN
        v_status := v_pre->>'status';
        v_error := v_pre->>'error';
    ELSE
        v_units := v_pre->'units';
        v_candidates := (v_pre->>'candidates')::bigint;
        v_fraction := (v_pre->>'fraction')::numeric;
    END IF;

    -- the rule's own guard (expiry tables lose most rows every night), else the run's
    v_max_fraction := coalesce(v_rule.max_fraction, p_max_fraction);
    v_res := v_res || pg_catalog.jsonb_build_object('max_fraction', v_max_fraction);
    IF v_status = 'succeeded' AND p_dry_run THEN
        v_status := 'dry_run';
        v_res := v_res || pg_catalog.jsonb_build_object('would_refuse',
            v_fraction > v_max_fraction AND NOT p_force);
    ELSIF v_status = 'succeeded' AND v_fraction > v_max_fraction AND NOT p_force THEN
        v_status := 'refused';
        v_error := pg_catalog.format(
            'rule %s (%s on %s) refused: it would remove %s of %s rows (%s%%), more than max_fraction %s%%%s; pass force => true to allow it',
            v_rule.id, v_rule.kind, v_res->>'table', v_candidates, v_pre->>'rows',
            round(v_fraction * 100, 1), round(v_max_fraction * 100, 1),
            CASE WHEN v_rule.max_fraction IS NOT NULL THEN ' (the rule''s)' ELSE '' END);
    ELSIF v_status = 'succeeded' AND v_candidates = 0 THEN
        v_units := '[]'::jsonb;  -- nothing to do: no batches
    END IF;
    IF v_status <> 'succeeded' THEN
        IF v_pre->>'victims' IS NOT NULL THEN
            PERFORM maint._cleanup_rule_done(p_run, p_rule_id, v_lock_ms);
        END IF;
        v_res := v_res || pg_catalog.jsonb_build_object('status', v_status, 'error', v_error,
            'deleted', 0, 'batches', 0,
            'duration_s', round(extract(epoch FROM pg_catalog.clock_timestamp() - v_started)::numeric, 3));
        p_rules := coalesce(p_rules, '{}'::jsonb) || pg_catalog.jsonb_build_object(v_rule.id::text, v_res);
        p_outcome := v_status;
        RETURN;
    END IF;
    COMMIT;

    v_n := pg_catalog.jsonb_array_length(v_units);
    <<units>>
    FOR v_i IN 0 .. v_n - 1 LOOP
        -- a unit is an expired partition dropped whole (one step) or rows deleted in
        -- batches from the position the preflight stored
        v_unit := v_units -> v_i;
        v_unit_rel := v_unit->>'rel';
        v_mode := coalesce(v_unit->>'batching', v_mode);
        v_attempt := 0;
        LOOP
            IF pg_catalog.clock_timestamp() >= p_deadline THEN
                v_status := 'partial';
                EXIT units;
            END IF;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
            PERFORM pg_catalog.set_config('lock_timeout', v_lock_ms, true);
            -- a batch holds a bounded number of rows: probing an index per row (the parent
            -- of an orphan, the keeper of a duplicate) beats hashing a whole table per batch
            PERFORM pg_catalog.set_config('enable_hashjoin', 'off', true);
            PERFORM pg_catalog.set_config('enable_mergejoin', 'off', true);
            -- and starting parallel workers costs more than such a batch
            PERFORM pg_catalog.set_config('max_parallel_workers_per_gather', '0', true);
            PERFORM pg_catalog.set_config('jit', 'off', true);
            BEGIN
                IF v_unit->>'mode' = 'drop' THEN
                    -- short attempts (at most 200 ms, never more than the lock timeout), more
                    -- of them: while it waits for the parent, the application's statements
                    -- on the table queue behind it
                    v_b := maint._cleanup_drop_partition(p_run, p_rule_id, v_unit_rel,
                                                         least(v_lock_ms::bigint, 200)::text)
                           || '{"batch": true, "done": true}'::jsonb;
                ELSE
                    v_b := maint._cleanup_batch(p_run, p_rule_id, (v_unit->>'unit')::integer, v_lock_ms);
                END IF;
            EXCEPTION
                WHEN lock_not_available THEN
                    v_attempt := v_attempt + 1;
                    v_retries := v_retries + 1;
                    IF v_attempt > (CASE WHEN v_unit->>'mode' = 'drop' THEN 10 ELSE 3 END) THEN
                        v_status := 'skipped';
                        v_error := pg_catalog.format('rule %s: could not lock %s within %s, %s attempts; skipped',
                            v_rule.id, v_unit_rel, p_lock_timeout, v_attempt);
                        EXIT units;
                    END IF;
                    PERFORM pg_catalog.pg_sleep(least(0.1 * v_attempt, 1.0));
                    CONTINUE;
                WHEN query_canceled THEN
                    v_status := 'cancelled';
                    v_error := pg_catalog.format('rule %s: %s', v_rule.id, SQLERRM);
                    EXIT units;
                WHEN OTHERS THEN
                    v_status := 'failed';
                    v_error := pg_catalog.format('rule %s (%s on %s): %s%s', v_rule.id, v_rule.kind, v_res->>'table',
                        CASE WHEN v_unit->>'mode' = 'drop' THEN pg_catalog.format('dropping partition %s: ', v_unit_rel) ELSE '' END,
                        SQLERRM);
                    EXIT units;
            END;
            v_attempt := 0;
            IF (v_b->>'batch')::boolean THEN
                v_deleted := v_deleted + (v_b->>'del')::bigint;
                v_batches := v_batches + 1;
            END IF;
            IF v_unit->>'mode' = 'drop' THEN
                v_dropped := v_dropped || v_unit_rel;
                IF (v_b->>'estimated')::boolean THEN
                    v_estimated := v_estimated + (v_b->>'del')::bigint;
                ELSE
                    v_counted := v_counted + (v_b->>'del')::bigint;
                END IF;
                v_part_bytes := v_part_bytes + (v_b->>'bytes')::bigint;
                IF NOT (v_b->>'archived')::boolean THEN
                    v_freed := v_freed + (v_b->>'bytes')::bigint;   -- a dropped partition's space is free at once
                END IF;
            END IF;
            -- the run's counts so far (earlier rules plus this one), committed with the batch:
            -- a run whose session dies keeps what it removed (maint.mark_abandoned_runs)
            PERFORM maint.run_progress(p_run,
                (SELECT coalesce(pg_catalog.sum((e.value->>'candidates')::bigint), 0)::bigint
                   FROM pg_catalog.jsonb_each(coalesce(p_rules, '{}'::jsonb)) AS e) + v_candidates,
                (SELECT coalesce(pg_catalog.sum((e.value->>'deleted')::bigint), 0)::bigint
                   FROM pg_catalog.jsonb_each(coalesce(p_rules, '{}'::jsonb)) AS e) + v_deleted,
                pg_catalog.jsonb_build_object('rules',
                p_rules || pg_catalog.jsonb_build_object(v_rule.id::text, v_res || pg_catalog.jsonb_build_object(
                    'status', 'running', 'deleted', v_deleted, 'batches', v_batches))));
            COMMIT;
            IF pg_catalog.clock_timestamp() >= v_notice_at + interval '5 seconds' THEN
                v_notice_at := pg_catalog.clock_timestamp();
                RAISE NOTICE 'rule %: % of % rows removed from % (% batches)',
                    v_rule.id, v_deleted, v_candidates, v_res->>'table', v_batches;
            END IF;
            EXIT WHEN (v_b->>'done')::boolean;
        END LOOP;
    END LOOP;

    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    v_done := maint._cleanup_rule_done(p_run, p_rule_id, v_lock_ms);
    IF pg_catalog.jsonb_array_length(v_done->'left_detached') > 0 AND v_status = 'succeeded' THEN
        v_status := 'partial';
        v_error := pg_catalog.format('rule %s: partitions %s were detached but could not be dropped within %s (a session '
                                     'was reading them); drop them by hand', v_rule.id, v_done->'left_detached', p_lock_timeout);
    END IF;
    -- the space of the rows deleted in batches (not of detached partitions): their archive
    -- set's size, or without an archive the table's heap bytes per row times their number
    v_row_deleted := v_deleted - v_estimated - v_counted;
    v_bytes := CASE WHEN v_rule.archive THEN (v_done->>'archived_row_bytes')::bigint
                    ELSE round(v_row_deleted * (v_res->>'row_bytes')::numeric)::bigint END;
    v_res := v_res || v_done
        || pg_catalog.jsonb_build_object('status', v_status, 'error', v_error,
        'deleted', v_deleted, 'archived', CASE WHEN v_rule.archive THEN v_deleted ELSE 0 END,
        'rows_estimated', v_estimated, 'bytes_removed', v_part_bytes + coalesce(v_bytes, 0), 'bytes_freed', v_freed,
        'bytes_estimated', NOT v_rule.archive AND v_row_deleted > 0,
        'vacuum_reclaimable_bytes', coalesce(v_bytes, 0),
        'batches', v_batches, 'lock_retries', v_retries, 'partitions_dropped', pg_catalog.to_jsonb(v_dropped),
        'partitions_archived', v_rule.archive AND pg_catalog.cardinality(v_dropped) > 0,
        'batching', v_mode,
        'duration_s', round(extract(epoch FROM pg_catalog.clock_timestamp() - v_started)::numeric, 3));
    p_rules := coalesce(p_rules, '{}'::jsonb) || pg_catalog.jsonb_build_object(v_rule.id::text, v_res);
    p_outcome := v_status;
    RAISE NOTICE 'rule % (% on %): % rows removed in % batches (%)',
        v_rule.id, v_rule.kind, v_res->>'table', v_deleted, v_batches, v_status;
END
$$;

-- CALL maint._cleanup_execute(task, kinds, dry_run, only_table, time_limit, lock_timeout, max_fraction, force,
--                             rule, scheduled_rules, override_window)
--   One journaled run of the enabled rules of the given kinds (retention, orphans,
--   duplicates, in that order), optionally only those on one table, only one rule (p_rule:
--   task '<task>:<rule id>', so that a rule on its own cadence never waits for its kind's
--   run), or only the rules without their own cadence (p_scheduled_rules false: the kind's
--   default job). Everything under one task lock, so run_all_cleanup never waits for its
--   own sub-tasks. A task bound to a maintenance window runs only inside it, with its time
--   limit clipped to the window's end (maint._window_gate); outside, it is journaled as
--   skipped, unless p_override_window gives the reason for an emergency run.
-- It commits, so it cannot carry SET search_path: it pins search_path with set_config()
-- at the start of every transaction instead.
CREATE OR REPLACE PROCEDURE maint._cleanup_execute(
    p_task text,
    p_kinds text[],
    p_dry_run boolean,
    p_only text,
    p_time_limit interval,
    p_lock_timeout interval,
    p_max_fraction numeric,
    p_force boolean,
    p_rule bigint DEFAULT NULL,
    p_scheduled_rules boolean DEFAULT true,
    p_override_window text DEFAULT NULL
)
    LANGUAGE plpgsql
AS $$
DECLARE
    v_rule record;
    v_params jsonb;
    v_gate jsonb;
    v_only regclass;
    v_ids bigint[];
    v_id bigint;
    v_run bigint;
    v_deadline timestamptz;
    v_rules jsonb := '{}'::jsonb;
    v_outcome text;
    v_failed integer := 0;
    v_incomplete integer := 0;
    v_stopped boolean := false;
    v_cancelled boolean := false;
    v_status text;
    v_errors text;
    v_examined bigint;
    v_affected bigint;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF p_dry_run IS NULL THEN
        RAISE EXCEPTION 'dry_run must be true or false' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_force IS NULL THEN
        RAISE EXCEPTION 'force must be true or false' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- limits PostgreSQL cannot take (lock_timeout over 2147483647 ms, a deadline past the
    -- end of time) would fail after run_start: checked here, before anything starts
    PERFORM maint._check_time_limit(p_time_limit, 'time_limit');
    PERFORM maint._check_lock_timeout(p_lock_timeout, 'lock_timeout');
    IF p_max_fraction IS NULL OR p_max_fraction NOT BETWEEN 0 AND 1 THEN
        RAISE EXCEPTION 'max_fraction must be between 0 and 1, got %', coalesce(p_max_fraction::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_scheduled_rules IS NULL THEN
        RAISE EXCEPTION 'scheduled_rules must be true or false' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_rule IS NOT NULL THEN
        SELECT r.id, r.kind, r.enabled INTO v_rule FROM maint.cleanup_rules AS r WHERE r.id = p_rule;
        IF v_rule.id IS NULL THEN
            RAISE EXCEPTION 'no cleanup rule with id %', p_rule USING ERRCODE = 'no_data_found';
        END IF;
        IF NOT v_rule.enabled THEN
            RAISE EXCEPTION 'cleanup rule % is disabled: enable it first (SELECT maint.enable_rule(%))', p_rule, p_rule
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        v_ids := ARRAY[p_rule];
        p_task := CASE v_rule.kind WHEN 'retention' THEN 'retention' WHEN 'orphan' THEN 'orphans'
                                   ELSE 'duplicates' END || ':' || p_rule;
    ELSE
        v_ids := maint._cleanup_rule_ids(p_kinds, p_only);
        IF NOT p_scheduled_rules THEN
            v_ids := ARRAY(SELECT i.id FROM pg_catalog.unnest(v_ids) WITH ORDINALITY AS i (id, ord)
                            WHERE NOT EXISTS (SELECT 1 FROM maint.cleanup_rules AS r
                                               WHERE r.id = i.id AND r.schedule IS NOT NULL)
                            ORDER BY i.ord);
        END IF;
    END IF;
    v_only := pg_catalog.to_regclass(p_only);
    v_params := pg_catalog.jsonb_build_object(
        'only_table', v_only::text, 'time_limit', p_time_limit, 'lock_timeout', p_lock_timeout,
        'max_fraction', p_max_fraction, 'force', p_force, 'rule_ids', coalesce(v_ids, '{}'),
        'scheduled_rules', p_scheduled_rules);

    -- a task bound to a maintenance window: outside it the gate journals a skipped run
    -- (committed here) and nothing else happens; inside, the time limit ends with the
    -- window. Dry runs remove nothing and are never held back.
    IF NOT p_dry_run THEN
        v_gate := maint._window_gate(p_task, p_time_limit, p_override_window, v_params, p_dry_run);
        IF NOT (v_gate->>'run')::boolean THEN
            COMMIT;
            RETURN;
        END IF;
        p_time_limit := (v_gate->>'time_limit')::interval;
        IF v_gate ? 'window' THEN
            v_params := v_params || pg_catalog.jsonb_build_object('time_limit', p_time_limit,
                                                                  'window', v_gate - 'run' - 'time_limit');
        END IF;
    END IF;

    v_run := maint.run_start(p_task, v_params, p_dry_run);
    COMMIT;
    v_deadline := pg_catalog.clock_timestamp() + p_time_limit;

    FOREACH v_id IN ARRAY coalesce(v_ids, '{}'::bigint[]) LOOP
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        IF v_stopped OR pg_catalog.clock_timestamp() >= v_deadline THEN
            v_stopped := true;
            v_incomplete := v_incomplete + 1;
            v_rules := v_rules || pg_catalog.jsonb_build_object(v_id::text,
                pg_catalog.jsonb_build_object('rule_id', v_id, 'status', 'not_started',
                    'error', CASE WHEN v_cancelled THEN 'the run was cancelled before this rule started'
                                  ELSE 'time limit reached before this rule started' END));
            CONTINUE;
        END IF;
        CALL maint._cleanup_rule(v_run, v_id, p_dry_run, v_deadline, p_lock_timeout,
                                 p_max_fraction, p_force, v_rules, v_outcome);
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        IF v_outcome = 'cancelled' THEN
            v_cancelled := true;  -- a cancel (pg_cancel_backend, statement_timeout) stops the run
            v_stopped := true;
        ELSIF v_outcome IN ('failed', 'refused') THEN
            v_failed := v_failed + 1;
        ELSIF v_outcome IN ('partial', 'skipped') THEN
            v_incomplete := v_incomplete + 1;
            v_stopped := v_stopped OR v_outcome = 'partial';
        END IF;
        SELECT coalesce(sum((e.value->>'candidates')::bigint), 0), coalesce(sum((e.value->>'deleted')::bigint), 0)
          INTO v_examined, v_affected
          FROM pg_catalog.jsonb_each(v_rules) AS e;
        PERFORM maint.run_progress(v_run, v_examined, v_affected, pg_catalog.jsonb_build_object('rules', v_rules));
        COMMIT;
    END LOOP;

    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    SELECT coalesce(sum((e.value->>'candidates')::bigint), 0), coalesce(sum((e.value->>'deleted')::bigint), 0),
           pg_catalog.string_agg(e.value->>'error', '; ' ORDER BY e.key::bigint)
      INTO v_examined, v_affected, v_errors
      FROM pg_catalog.jsonb_each(v_rules) AS e;
    v_status := CASE WHEN v_cancelled THEN 'cancelled' WHEN v_failed > 0 THEN 'failed'
                     WHEN v_incomplete > 0 THEN 'partial' ELSE 'succeeded' END;
    PERFORM maint.run_finish(v_run, v_status, v_examined, v_affected,
        pg_catalog.jsonb_build_object('rules', v_rules, 'rule_count', coalesce(pg_catalog.cardinality(v_ids), 0)),
        v_errors);
    COMMIT;
    IF v_cancelled THEN
        RAISE EXCEPTION '% run % was cancelled: %', p_task, v_run, v_errors USING ERRCODE = 'query_canceled';
    END IF;
    IF v_failed > 0 THEN
        -- the journal has the details; raising makes pg_cron (and psql) record a failure
        RAISE EXCEPTION '% run % failed: % of % rules failed: %', p_task, v_run, v_failed,
            pg_catalog.cardinality(v_ids), v_errors
            USING ERRCODE = 'triggered_action_exception';
    END IF;
    RAISE NOTICE '% run %: % rows % by % rules (%)', p_task, v_run,
        CASE WHEN p_dry_run THEN v_examined ELSE v_affected END,
        CASE WHEN p_dry_run THEN 'would be removed (dry run)' ELSE 'removed' END,
        coalesce(pg_catalog.cardinality(v_ids), 0), v_status;
END
$$;

-- CALL maint.run_all_cleanup(dry_run, only_table, time_limit, lock_timeout, max_fraction, force,
--                            scheduled_rules, override_window)
--   Retention, then orphans, then duplicates: one run of task 'cleanup_all'.
-- It commits, so it cannot carry SET search_path: it pins search_path with set_config()
-- at the start of every transaction instead.
CREATE OR REPLACE PROCEDURE maint.run_all_cleanup(
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
    CALL maint._cleanup_execute('cleanup_all', ARRAY['retention', 'orphan', 'dedupe'], dry_run, only_table,
                                time_limit, lock_timeout, max_fraction, force, NULL, scheduled_rules,
                                override_window);
END
$$;

-- CALL maint.run_rule(rule_id, dry_run, time_limit, lock_timeout, max_fraction, force, override_window)
--   One cleanup rule alone, as one run of task '<kind task>:<rule id>' (e.g. 'retention:7'):
--   what a rule's own cadence runs (maint.set_rule_schedule). The rule must be enabled.
--   Options as for maint.apply_retention.
-- It commits, so it cannot carry SET search_path: it pins search_path with set_config()
-- at the start of every transaction instead.
CREATE OR REPLACE PROCEDURE maint.run_rule(
    rule_id bigint,
    dry_run boolean DEFAULT true,
    time_limit interval DEFAULT '10 minutes',
    lock_timeout interval DEFAULT '2 seconds',
    max_fraction numeric DEFAULT 0.5,
    force boolean DEFAULT false,
    override_window text DEFAULT NULL
)
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF rule_id IS NULL THEN
        RAISE EXCEPTION 'rule_id must be given' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    CALL maint._cleanup_execute('rule', ARRAY['retention', 'orphan', 'dedupe'], dry_run, NULL,
                                time_limit, lock_timeout, max_fraction, force, rule_id, true, override_window);
END
$$;

COMMENT ON PROCEDURE maint._cleanup_rule(bigint, bigint, boolean, timestamptz, interval, numeric, boolean, jsonb, text) IS
    'Internal: one cleanup rule inside a run (batches, guard, archive)';
COMMENT ON PROCEDURE maint._cleanup_execute(text, text[], boolean, text, interval, interval, numeric, boolean, bigint, boolean, text) IS
    'Internal: one journaled cleanup run over the enabled rules of some kinds, or one rule';
COMMENT ON PROCEDURE maint.run_all_cleanup(boolean, text, interval, interval, numeric, boolean, boolean, text) IS
    'Run every enabled cleanup rule (retention, orphans, duplicates) as one run; dry run by default';
COMMENT ON PROCEDURE maint.run_rule(bigint, boolean, interval, interval, numeric, boolean, text) IS
    'Run one cleanup rule alone (its own cadence); dry run by default';
GRANT EXECUTE ON PROCEDURE
    maint._cleanup_rule(bigint, bigint, boolean, timestamptz, interval, numeric, boolean, jsonb, text),
    maint._cleanup_execute(text, text[], boolean, text, interval, interval, numeric, boolean, bigint, boolean, text),
    maint.run_all_cleanup(boolean, text, interval, interval, numeric, boolean, boolean, text),
    maint.run_rule(bigint, boolean, interval, interval, numeric, boolean, text)
TO maint_admin;

-- maint.cleanup_space: per cleanup run, the space its rules removed (from the journal):
--   rows_removed              rows deleted or in detached partitions
--   bytes_removed             their own size (pg_column_size of each row; a partition's size)
--   bytes_freed               free at once: partitions dropped with archive off
--   vacuum_reclaimable_bytes  rows deleted in batches: dead space VACUUM makes reusable
--   archived_bytes            what the run's archive sets hold (maint.archive_sets)
CREATE OR REPLACE VIEW maint.cleanup_space AS
SELECT r.id AS run_id, r.task,
       coalesce(sum((e.value->>'deleted')::bigint), 0)::bigint AS rows_removed,
       coalesce(sum((e.value->>'bytes_removed')::bigint), 0)::bigint AS bytes_removed,
       coalesce(sum((e.value->>'bytes_freed')::bigint), 0)::bigint AS bytes_freed,
       coalesce(sum((e.value->>'vacuum_reclaimable_bytes')::bigint), 0)::bigint AS vacuum_reclaimable_bytes,
       (SELECT coalesce(sum(s.bytes), 0) FROM maint.archive_sets AS s
         WHERE s.run_id = r.id AND s.restored_by IS NULL)::bigint AS archived_bytes
  FROM maint.runs AS r
 CROSS JOIN LATERAL pg_catalog.jsonb_each(coalesce(r.detail->'rules', '{}'::jsonb)) AS e
 WHERE pg_catalog.split_part(r.task, ':', 1) IN ('retention', 'orphans', 'duplicates', 'cleanup_all')
 GROUP BY r.id, r.task;
COMMENT ON VIEW maint.cleanup_space IS
    'Per cleanup run: rows and bytes removed, bytes freed at once, dead space VACUUM makes reusable, archive held';
GRANT SELECT ON maint.cleanup_space TO maint_monitor;
