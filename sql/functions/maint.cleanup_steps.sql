-- The steps of a cleanup run that touch application tables. The committing procedures
-- (maint.cleanup_engine.sql) decide what to do next and commit between batches; every
-- statement on a rule's table happens here, in SECURITY DEFINER functions of the kit owner
-- that
--   * accept only a running run of this session, of a cleanup task, and a rule of that run;
--   * check before every step that the rule's author (cleanup_rules.created_by) still may
--     SELECT and DELETE on the table (and SELECT on an orphan rule's parent);
--   * build every statement themselves from the rule, and run it in the table owner's
--     executor (maint._executor), so the table's triggers, constraints, defaults and index
--     expressions run as the owner, never as the caller (a superuser's pg_cron job, say);
--   * archive removed rows in the same statement, into the run's archive set of the rule
--     (a table of maint_archive owned by the table's owner: maint.archive_sets.sql).
-- docs/security.md describes the model; docs/cleanup.md the batching.

-- maint._cleanup_run_rule(p_run bigint, p_rule_id bigint, p_write boolean) -> maint.cleanup_rules
--   The rule, checked to belong to run p_run, which must be a running cleanup run of this
--   session (and not a dry run when p_write).
CREATE OR REPLACE FUNCTION maint._cleanup_run_rule(p_run bigint, p_rule_id bigint, p_write boolean)
    RETURNS maint.cleanup_rules
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run maint.runs := maint._own_run(p_run);
    v_rule maint.cleanup_rules;
BEGIN
    IF pg_catalog.split_part(v_run.task, ':', 1) NOT IN ('retention', 'orphans', 'duplicates', 'cleanup_all') THEN
        RAISE EXCEPTION 'run % is a run of task %, not of a cleanup task', p_run, v_run.task
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_write AND v_run.dry_run THEN
        RAISE EXCEPTION 'run % is a dry run: it removes nothing', p_run
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT coalesce(v_run.parameters->'rule_ids' @> pg_catalog.to_jsonb(p_rule_id), false) THEN
        RAISE EXCEPTION 'rule % is not part of run %', p_rule_id, p_run
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT * INTO v_rule FROM maint.cleanup_rules AS r WHERE r.id = p_rule_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no cleanup rule with id %', p_rule_id USING ERRCODE = 'no_data_found';
    END IF;
    -- the journal's rule list comes from the caller: a rule must also be one the task runs
    IF v_rule.kind <> ALL (CASE pg_catalog.split_part(v_run.task, ':', 1) WHEN 'retention' THEN ARRAY['retention'] WHEN 'orphans' THEN ARRAY['orphan']
                                            WHEN 'duplicates' THEN ARRAY['dedupe']
                                            ELSE ARRAY['retention', 'orphan', 'dedupe'] END) THEN
        RAISE EXCEPTION 'rule % (%) is not run by task %', p_rule_id, v_rule.kind, v_run.task
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN v_rule;
END
$$;

-- maint._cleanup_author_refusal(p_rule maint.cleanup_rules, p_rel regclass) -> text
--   NULL when the rule's author may still have it carried out (maint._author_refusal:
--   SELECT and DELETE on the table, SELECT on an orphan rule's parent), else why not.
CREATE OR REPLACE FUNCTION maint._cleanup_author_refusal(p_rule maint.cleanup_rules, p_rel regclass)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT pg_catalog.format('rule %s: its author %s', p_rule.id, r.why)
          FROM (SELECT coalesce(maint._author_refusal(p_rule.created_by, p_rel, 'SELECT, DELETE'),
                                CASE WHEN p_rule.kind = 'orphan'
                                     THEN maint._author_refusal(p_rule.created_by,
                                              maint._cleanup_rel(p_rule.parent_schema, p_rule.parent_table), 'SELECT')
                                END) AS why) AS r
         WHERE r.why IS NOT NULL
    );
END
$$;

-- maint._cleanup_owner(p_rel regclass) -> oid: the role that owns a table.
CREATE OR REPLACE FUNCTION maint._cleanup_owner(p_rel regclass)
    RETURNS oid
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT c.relowner FROM pg_catalog.pg_class AS c WHERE c.oid = p_rel
    );
END
$$;

-- maint._cleanup_cutoff(p_run bigint, p_rule maint.cleanup_rules) -> timestamptz
--   A retention rule's cut-off in run p_run: the run's start minus the rule's keep
--   (computed once per run, from the journal, so every batch agrees). NULL for other kinds.
CREATE OR REPLACE FUNCTION maint._cleanup_cutoff(p_run bigint, p_rule maint.cleanup_rules)
    RETURNS timestamptz
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT CASE WHEN p_rule.kind = 'retention' THEN r.started_at - p_rule.keep END
          FROM maint.runs AS r WHERE r.id = p_run
    );
END
$$;

-- maint._cleanup_query(p_exec name, p_sql text, p_a text[], p_b text[], p_lock_ms text, p_rows jsonb) -> jsonb
--   Runs a statement that returns one ('m', doc) row in executor p_exec ($1 p_a, $2 p_b,
--   $3 p_rows) and returns doc (NULL when it returned no row).
CREATE OR REPLACE FUNCTION maint._cleanup_query(p_exec name, p_sql text, p_a text[], p_b text[], p_lock_ms text,
                                                p_rows jsonb DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_doc jsonb;
BEGIN
    EXECUTE pg_catalog.format('SELECT e.doc FROM maint_exec.%I($1, $2, $3, $5, $4, false) AS e WHERE e.kind = ''m''',
                              p_exec)
       INTO v_doc USING p_sql, p_a, p_b, p_lock_ms, p_rows;
    RETURN v_doc;
END
$$;

-- maint._cleanup_command(p_exec name, p_sql text, p_lock_ms text, p_a text[], p_b text[]) -> bigint
--   Runs a statement as a command in executor p_exec ($1 p_a, $2 p_b): a utility
--   statement (LOCK, DETACH, DROP, CREATE TEMP TABLE ... AS, ANALYZE) or a batch's DELETE
--   or INSERT; returns the rows it processed (CREATE TABLE AS: the rows written).
CREATE OR REPLACE FUNCTION maint._cleanup_command(p_exec name, p_sql text, p_lock_ms text,
                                                  p_a text[] DEFAULT NULL, p_b text[] DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_doc jsonb;
BEGIN
    EXECUTE pg_catalog.format('SELECT e.doc FROM maint_exec.%I($1, $3, $4, NULL, $2, true) AS e', p_exec)
       INTO v_doc USING p_sql, p_lock_ms, p_a, p_b;
    RETURN (v_doc->>'rows')::bigint;
END
$$;

-- maint._cleanup_count(p_exec name, p_rel regclass, p_lock_ms text) -> bigint
--   The rows of p_rel, counted in executor p_exec (as their owner).
CREATE OR REPLACE FUNCTION maint._cleanup_count(p_exec name, p_rel regclass, p_lock_ms text)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN maint._cleanup_query(p_exec, pg_catalog.format(
        'SELECT ''m''::text, pg_catalog.to_jsonb(pg_catalog.count(*)) FROM %s', p_rel), NULL, NULL, p_lock_ms)::text::bigint;
END
$$;

-- maint._cleanup_delete_batch(p_exec, p_sql, p_a, p_b, p_lock_ms, p_set) -> bigint
--   Runs one batch statement (maint._cleanup_delete_sql) as a command in executor p_exec
--   ($1 p_a, $2 p_b) and returns the rows it removed. When the rule archives (p_set, the
--   run's archive set of the rule), the statement itself wrote the rows to the set's table;
--   the set's count moves on in the same transaction.
CREATE OR REPLACE FUNCTION maint._cleanup_delete_batch(
    p_exec name, p_sql text, p_a text[], p_b text[], p_lock_ms text, p_set bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n bigint := maint._cleanup_command(p_exec, p_sql, p_lock_ms, p_a, p_b);
BEGIN
    IF p_set IS NOT NULL AND v_n > 0 THEN
        UPDATE maint.archive_sets AS s SET rows = s.rows + v_n WHERE s.id = p_set;
    END IF;
    RETURN v_n;
END
$$;

-- maint._cleanup_fail(p_rule maint.cleanup_rules, p_table text, p_sqlstate text, p_message text) -> text
--   A rule's error as the journal keeps it (maint._redact_error).
CREATE OR REPLACE FUNCTION maint._cleanup_fail(p_rule maint.cleanup_rules, p_table text, p_sqlstate text, p_message text)
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.format('rule %s (%s on %s): %s', p_rule.id, p_rule.kind, p_table,
                             maint._redact_error(p_sqlstate, p_message))
$$;

-- maint._cleanup_batching(p_rule, p_unit, p_rel, p_int_key, p_candidates, p_id_lo, p_id_hi) -> jsonb
--   How a unit of rows is worked through and where it starts: {"batching": ..., "state":
--   {...}} with
--     dedupe   keyset on the victims' sequence number in the work table: {"last": 0}
--     victims  orphans of a plain table, or of a partitioned one with a primary key,
--              found once into a work table, the same way
--     idrange  single integer key, matches not too sparse: consecutive id ranges, widened
--              while they are sparse: {"lo", "hi", "stride"}
--     keyset   on the primary key, a bound query then the key range: {"last": null}
--     pages    no primary key: heap page ranges sized to about batch_size rows:
--              {"block": 0, "nblocks", "pages"}
--   The state holds keys of application rows: it is stored in maint.cleanup_cursors.
CREATE OR REPLACE FUNCTION maint._cleanup_batching(
    p_rule maint.cleanup_rules, p_unit regclass, p_rel regclass, p_int_key boolean, p_candidates bigint,
    p_id_lo numeric, p_id_hi numeric)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN p_rule.kind = 'dedupe'
            THEN '{"batching": "dedupe", "state": {"last": 0}}'::jsonb
        -- (a partitioned table needs a primary key: a ctid names a row only within a partition)
        WHEN p_rule.kind = 'orphan' AND ((SELECT c.relkind FROM pg_catalog.pg_class AS c WHERE c.oid = p_rel) = 'r'
                                         OR maint._cleanup_identity(p_rel) IS NOT NULL)
            THEN '{"batching": "victims", "state": {"last": 0}}'::jsonb
        WHEN p_int_key AND p_unit = p_rel AND p_id_lo IS NOT NULL
             AND p_id_hi - p_id_lo + 1 <= greatest(p_candidates, 1) * 64
            THEN pg_catalog.jsonb_build_object('batching', 'idrange', 'state',
                     pg_catalog.jsonb_build_object('lo', p_id_lo, 'hi', p_id_hi, 'stride', p_rule.batch_size))
        WHEN maint._cleanup_identity(p_unit) IS NOT NULL AND p_unit = p_rel
            THEN '{"batching": "keyset", "state": {"last": null}}'::jsonb
        ELSE (SELECT pg_catalog.jsonb_build_object('batching', 'pages', 'state', pg_catalog.jsonb_build_object(
                  'block', 0,
                  'nblocks', pg_catalog.pg_relation_size(p_unit) / pg_catalog.current_setting('block_size')::bigint,
                  'pages', greatest(1, (p_rule.batch_size / greatest(1.0,
                       CASE WHEN c.relpages > 0 AND c.reltuples > 0 THEN c.reltuples / c.relpages ELSE 100 END))::bigint)))
                FROM pg_catalog.pg_class AS c WHERE c.oid = p_unit)
    END
$$;


-- maint._cleanup_preflight(p_run bigint, p_rule_id bigint, p_lock_ms text) -> jsonb
--   Everything a rule's run needs before its first batch, read as the table's owner:
--   resolve and check the table, the author's rights and the condition (again, before
--   every run), count the candidates and the table's rows, the key range of a single
--   integer key, the partitions that can be dropped whole, and for a dedupe rule (not in
--   a dry run) the work table of victims. Never raises for a rule-level problem: returns
--   {"status": "ok" | "skipped" | "refused" | "failed" | "cancelled", "error", "res": the
--   rule's journal entry so far (with the cut-off), "units" (partitions to drop, and units
--   of rows with their number and batching; their positions are in
--   maint.cleanup_cursors), "candidates", "rows", "fraction", "victims"}. Only enabled
--   rules run; the counts are all a caller learns.
CREATE OR REPLACE FUNCTION maint._cleanup_preflight(p_run bigint, p_rule_id bigint, p_lock_ms text)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run maint.runs;
    v_rule maint.cleanup_rules;
    v_rel regclass;
    v_exec name;
    v_identity name[];
    v_cutoff timestamptz;
    v_pred text;
    v_res jsonb;
    v_doc jsonb;
    v_refusal text;
    v_int_key boolean := false;
    v_units jsonb := '[]'::jsonb;
    v_victims text;
    v_candidates bigint;
    v_rows bigint;
    v_part record;
    v_parts regclass[] := '{}';
    v_drop regclass[] := '{}';
    v_estimated bigint := 0;
    v_owner oid;
    v_state text;
BEGIN
    v_rule := maint._cleanup_run_rule(p_run, p_rule_id, false);
    SELECT * INTO v_run FROM maint.runs AS r WHERE r.id = p_run;
    IF NOT v_rule.enabled THEN
        RAISE EXCEPTION 'rule % is disabled', v_rule.id USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    v_res := pg_catalog.jsonb_build_object('rule_id', v_rule.id, 'kind', v_rule.kind,
        'table', pg_catalog.format('%I.%I', v_rule.target_schema, v_rule.target_table),
        'archive', v_rule.archive, 'author', v_rule.created_by);
    PERFORM pg_catalog.set_config('lock_timeout', p_lock_ms, true);
    PERFORM pg_catalog.set_config('jit', 'off', true);   -- compiling costs more than these queries gain
    BEGIN
        v_rel := maint._cleanup_rel(v_rule.target_schema, v_rule.target_table);
        PERFORM maint._cleanup_check_table(v_rel);
        v_refusal := maint._cleanup_author_refusal(v_rule, v_rel);
        IF v_refusal IS NOT NULL THEN
            RETURN pg_catalog.jsonb_build_object('status', 'skipped', 'error', v_refusal || '; skipped', 'res', v_res);
        END IF;
        BEGIN
            PERFORM maint._cleanup_check_condition(v_rel, v_rule.condition);
        EXCEPTION WHEN OTHERS THEN
            RETURN pg_catalog.jsonb_build_object('status', 'refused', 'res', v_res,
                'error', pg_catalog.format('rule %s: its condition is not accepted any more: %s', v_rule.id, SQLERRM));
        END;
        v_refusal := maint._cleanup_shape_refusal(v_rule);
        IF v_refusal IS NOT NULL THEN
            RETURN pg_catalog.jsonb_build_object('status', 'refused', 'res', v_res,
                'error', pg_catalog.format('rule %s: %s', v_rule.id, v_refusal));
        END IF;
        v_owner := maint._cleanup_owner(v_rel);
        v_exec := maint._executor(v_owner);
        v_identity := maint._cleanup_identity(v_rel);
        v_cutoff := maint._cleanup_cutoff(p_run, v_rule);
        v_pred := maint._cleanup_predicate(v_rule, v_cutoff);
        v_res := v_res || pg_catalog.jsonb_build_object('cutoff', v_cutoff,
            'cascades', maint._cleanup_cascades(v_rel), 'size_before', maint._cleanup_size(v_rel),
            'row_bytes', maint._cleanup_row_bytes(v_rel),
            'keyset', coalesce(pg_catalog.array_to_string(v_identity, ','), 'ctid'),
            'owner', pg_catalog.pg_get_userbyid(v_owner));
        IF pg_catalog.cardinality(v_identity) = 1 THEN
            v_int_key := maint._cleanup_column_type(v_rel, v_identity[1]) IN ('smallint', 'integer', 'bigint');
        END IF;
        -- retention of a table range-partitioned on the time column: whole expired plain
        -- partitions (owned by the table's owner) are detached (one step each, O(1)), rows
        -- are deleted only from the others
        IF v_rule.kind = 'retention' AND v_rule.condition IS NULL THEN
            FOR v_part IN SELECT * FROM maint._cleanup_expired_partitions(v_rel, v_rule.time_column, v_cutoff) LOOP
                v_parts := v_parts || v_part.partition;
                IF v_part.expired AND maint._cleanup_owner(v_part.partition) = v_owner
                   AND (SELECT c.relkind FROM pg_catalog.pg_class AS c WHERE c.oid = v_part.partition) = 'r' THEN
                    v_drop := v_drop || v_part.partition;
                    v_units := v_units || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                        'mode', 'drop', 'rel', v_part.partition::text));
                ELSIF v_identity IS NULL THEN
                    v_units := v_units || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                        'mode', 'rows', 'rel', v_part.partition::text));
                END IF;
            END LOOP;
        END IF;
        IF pg_catalog.cardinality(v_parts) > 0 THEN
            -- partitions: nothing is counted in those to detach (the planner's estimate,
            -- reltuples), and in the others only rows their range allows (constraint
            -- exclusion skips a partition wholly after the cut-off without reading it), so
            -- the preflight costs the same whatever the partitions hold
            -- (a partition never analyzed has no estimate: it is counted)
            PERFORM pg_catalog.set_config('constraint_exclusion', 'on', true);
            v_doc := maint._cleanup_query(v_exec, (
                SELECT pg_catalog.format('SELECT ''m''::text, pg_catalog.jsonb_build_object(''candidates'', 0%s, '
                                         '''rows'', 0%s, ''estimated'', 0%s)',
                           pg_catalog.string_agg(CASE WHEN p.rel <> ALL (v_drop)
                               THEN pg_catalog.format(' + (SELECT pg_catalog.count(*) FROM %s AS t WHERE %s)', p.rel, v_pred)
                               ELSE ' + ' || p.n END, ''),
                           pg_catalog.string_agg(' + ' || p.n, ''),
                           pg_catalog.string_agg(CASE WHEN p.rel = ANY (v_drop) AND maint._reltuples(c.oid) IS NOT NULL
                                                      THEN ' + ' || p.n ELSE '' END, ''))
                  FROM pg_catalog.unnest(v_parts) AS u(rel) JOIN pg_catalog.pg_class AS c ON c.oid = u.rel
                 CROSS JOIN LATERAL (SELECT u.rel, CASE WHEN c.relkind = 'r' AND maint._reltuples(c.oid) IS NOT NULL
                                                        THEN maint._reltuples(c.oid)::text
                                                        ELSE pg_catalog.format('(SELECT pg_catalog.count(*) FROM %s)', u.rel)
                                                   END AS n) AS p),
                NULL, NULL, p_lock_ms);
            v_estimated := (v_doc->>'estimated')::bigint;
        ELSIF v_rule.kind = 'orphan' AND NOT v_run.dry_run
              AND ((SELECT c.relkind FROM pg_catalog.pg_class AS c WHERE c.oid = v_rel) = 'r' OR v_identity IS NOT NULL) THEN
            -- orphans are found once, with the planner's best anti-join (a hash of the parent),
            -- into a work table of the session owned by the table's owner; the batches then
            -- visit only them (each re-checked: a parent that appeared meanwhile saves its row)
            -- instead of probing the parent for every row of a key range
            v_identity := coalesce(v_identity, ARRAY['ctid']::name[]);
            v_victims := 'pgmaint_victims_' || v_rule.id;
            IF pg_catalog.to_regclass(pg_catalog.format('pg_temp.%I', v_victims)) IS NOT NULL THEN
                PERFORM maint._cleanup_command(v_exec, pg_catalog.format('DROP TABLE pg_temp.%I', v_victims), p_lock_ms);
            END IF;
            v_candidates := maint._cleanup_command(v_exec, pg_catalog.format(
                'CREATE TEMP TABLE %I ON COMMIT PRESERVE ROWS AS '
                'SELECT pg_catalog.row_number() OVER (ORDER BY %s) AS _pgmaint_seq, %s FROM %s AS t WHERE %s',
                v_victims, maint._cleanup_key_list('t.', v_identity),
                (SELECT pg_catalog.string_agg(pg_catalog.format('t.%I AS _pgmaint_k%s', c, i), ', ' ORDER BY i)
                   FROM pg_catalog.unnest(v_identity) WITH ORDINALITY AS u(c, i)),
                v_rel, v_pred), p_lock_ms);
            PERFORM maint._cleanup_command(v_exec,
                pg_catalog.format('CREATE INDEX ON pg_temp.%I (_pgmaint_seq)', v_victims), p_lock_ms);
            v_doc := maint._cleanup_query(v_exec, pg_catalog.format(
                'SELECT ''m''::text, pg_catalog.jsonb_build_object(''candidates'', %s::bigint, '
                '''rows'', %s)', v_candidates, maint._cleanup_rows_sql(v_rel)), NULL, NULL, p_lock_ms);
        ELSIF v_rule.kind = 'dedupe' THEN
            v_identity := coalesce(v_identity, ARRAY['ctid']::name[]);
            IF v_run.dry_run THEN
                v_doc := maint._cleanup_query(v_exec, pg_catalog.format(
                    'SELECT ''m''::text, pg_catalog.jsonb_build_object(''candidates'', (SELECT pg_catalog.count(*) FROM (%s) AS w), '
                    '''rows'', %s)',
                    maint._cleanup_dedupe_window(v_rule, v_rel, v_identity), maint._cleanup_rows_sql(v_rel)), NULL, NULL, p_lock_ms);
            ELSE
                -- the victims, numbered, in a work table of the session owned by the table's owner
                v_victims := 'pgmaint_victims_' || v_rule.id;
                IF pg_catalog.to_regclass(pg_catalog.format('pg_temp.%I', v_victims)) IS NOT NULL THEN
                    -- left by an earlier run in this session (the table owner's, or the DROP fails)
                    PERFORM maint._cleanup_command(v_exec, pg_catalog.format('DROP TABLE pg_temp.%I', v_victims), p_lock_ms);
                END IF;
                v_candidates := maint._cleanup_command(v_exec, pg_catalog.format(
                    'CREATE TEMP TABLE %I ON COMMIT PRESERVE ROWS AS '
                    'SELECT pg_catalog.row_number() OVER (ORDER BY %s) AS _pgmaint_seq, w.* FROM (%s) AS w',
                    v_victims,
                    (SELECT pg_catalog.string_agg(pg_catalog.format('w._pgmaint_k%s', i), ', ' ORDER BY i)
                       FROM pg_catalog.generate_subscripts(v_identity, 1) AS i),
                    maint._cleanup_dedupe_window(v_rule, v_rel, v_identity)), p_lock_ms);
                PERFORM maint._cleanup_command(v_exec,
                    pg_catalog.format('CREATE INDEX ON pg_temp.%I (_pgmaint_seq)', v_victims), p_lock_ms);
                v_doc := maint._cleanup_query(v_exec, pg_catalog.format(
                    'SELECT ''m''::text, pg_catalog.jsonb_build_object(''candidates'', %s::bigint, '
                    '''rows'', %s)', v_candidates, maint._cleanup_rows_sql(v_rel)), NULL, NULL, p_lock_ms);
            END IF;
        ELSIF v_int_key THEN
            -- single integer key: batches are ranges of it between the lowest and highest match
            -- (the predicate in WHERE, not in an aggregate FILTER: an orphan's NOT EXISTS
            -- then plans as one anti-join instead of a subquery per row)
            v_doc := maint._cleanup_query(v_exec, pg_catalog.format(
                'SELECT ''m''::text, pg_catalog.jsonb_build_object(''candidates'', pg_catalog.count(*), '
                '''id_lo'', pg_catalog.min(t.%3$I), ''id_hi'', pg_catalog.max(t.%3$I), '
                '''rows'', %4$s) FROM %2$s AS t WHERE %1$s',
                v_pred, v_rel, v_identity[1], maint._cleanup_rows_sql(v_rel)), NULL, NULL, p_lock_ms);
        ELSE
            v_doc := maint._cleanup_query(v_exec, pg_catalog.format(
                'SELECT ''m''::text, pg_catalog.jsonb_build_object(''candidates'', '
                '(SELECT pg_catalog.count(*) FROM %1$s AS t WHERE %2$s), ''rows'', %3$s)',
                v_rel, v_pred, maint._cleanup_rows_sql(v_rel)), NULL, NULL, p_lock_ms);
        END IF;
        v_candidates := (v_doc->>'candidates')::bigint;
        v_rows := (v_doc->>'rows')::bigint;
        IF pg_catalog.jsonb_array_length(v_units) = 0 OR v_identity IS NOT NULL THEN
            v_units := v_units || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                'mode', 'rows', 'rel', v_rel::text));
        END IF;
        -- how each unit of rows is batched, and where it starts: the position (keys) goes to
        -- maint.cleanup_cursors, the caller learns only the unit's number and batching
        SELECT pg_catalog.jsonb_agg(CASE WHEN e.u->>'mode' = 'drop' THEN e.u
                                         ELSE e.u || pg_catalog.jsonb_build_object('unit', e.o)
                                                  || maint._cleanup_batching(v_rule, (e.u->>'rel')::pg_catalog.regclass,
                                                         v_rel, v_int_key, v_candidates, (v_doc->>'id_lo')::numeric,
                                                         (v_doc->>'id_hi')::numeric) END ORDER BY e.o)
          INTO v_units
          FROM pg_catalog.jsonb_array_elements(v_units) WITH ORDINALITY AS e(u, o);
        IF NOT v_run.dry_run THEN
            DELETE FROM maint.cleanup_cursors AS c WHERE c.run_id = p_run AND c.rule_id = v_rule.id;
            INSERT INTO maint.cleanup_cursors (run_id, rule_id, unit, rel, batching, state)
            SELECT p_run, v_rule.id, (u->>'unit')::integer, u->>'rel', u->>'batching', u->'state'
              FROM pg_catalog.jsonb_array_elements(v_units) AS u WHERE u->>'mode' = 'rows';
        END IF;
        SELECT pg_catalog.jsonb_agg(u - 'state') INTO v_units FROM pg_catalog.jsonb_array_elements(v_units) AS u;
        v_res := v_res || pg_catalog.jsonb_build_object('candidates', v_candidates, 'table_rows', v_rows,
            'fraction', CASE WHEN v_rows > 0 THEN round(v_candidates::numeric / v_rows, 4) ELSE 0 END,
            'rows_estimated', v_estimated,
            'partitions_to_drop', (SELECT coalesce(pg_catalog.jsonb_agg(u->'rel'), '[]'::jsonb)
                                     FROM pg_catalog.jsonb_array_elements(v_units) AS u WHERE u->>'mode' = 'drop'));
    EXCEPTION
        WHEN lock_not_available THEN
            RETURN pg_catalog.jsonb_build_object('status', 'skipped', 'res', v_res,
                'error', pg_catalog.format('rule %s: could not lock %s within %sms for the preflight; skipped',
                                           v_rule.id, v_res->>'table', p_lock_ms));
        WHEN query_canceled THEN
            RETURN pg_catalog.jsonb_build_object('status', 'cancelled', 'res', v_res,
                'error', pg_catalog.format('rule %s: %s', v_rule.id, SQLERRM));
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE;
            RETURN pg_catalog.jsonb_build_object('status', 'failed', 'res', v_res,
                'error', maint._cleanup_fail(v_rule, v_res->>'table', v_state, SQLERRM));
    END;
    RETURN pg_catalog.jsonb_build_object('status', 'ok', 'res', v_res, 'units', v_units,
        'candidates', v_candidates, 'rows', v_rows, 'fraction', v_res->'fraction', 'victims', v_victims);
END
$$;

-- maint._cleanup_unit(p_rule maint.cleanup_rules, p_unit text) -> regclass
--   A unit of work of a rule: its table or one of the table's direct partitions.
CREATE OR REPLACE FUNCTION maint._cleanup_unit(p_rule maint.cleanup_rules, p_unit text)
    RETURNS regclass
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rel regclass := maint._cleanup_rel(p_rule.target_schema, p_rule.target_table);
    v_unit regclass := maint._table_by_name(p_unit);
BEGIN
    IF v_unit IS NULL OR (v_unit <> v_rel AND NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_inherits AS i WHERE i.inhrelid = v_unit AND i.inhparent = v_rel)) THEN
        RAISE EXCEPTION '% is neither the table of rule % nor one of its partitions', coalesce(p_unit, 'NULL'), p_rule.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN v_unit;
END
$$;

-- maint._cleanup_batch(p_run bigint, p_rule_id bigint, p_unit integer, p_lock_ms text) -> jsonb
--   The next batch of unit p_unit of a rule (its table or one of its partitions), as the
--   table's owner, with the removed rows archived in the same statement, from the unit's
--   position in maint.cleanup_cursors, which it moves on in the same transaction (so a
--   batch that fails leaves it where it was). Returns {"del": rows removed, "batch": whether
--   it counts as a batch, "done": whether the unit is finished}; never a key. Raises on
--   errors (lock_not_available and query_canceled as they are; other errors with the
--   message maint._redact_error leaves), so the caller can retry or give up.
CREATE OR REPLACE FUNCTION maint._cleanup_batch(p_run bigint, p_rule_id bigint, p_unit integer, p_lock_ms text)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rule maint.cleanup_rules := maint._cleanup_run_rule(p_run, p_rule_id, true);
    v_cur maint.cleanup_cursors;
    v_st jsonb;
    v_rel regclass;
    v_unit regclass;
    v_exec name;
    v_identity name[];
    v_pred text;
    v_refusal text;
    v_victims text;
    v_meta jsonb;
    v_upper jsonb;
    v_last text[];
    v_del bigint := 0;
    v_counts boolean := true;
    v_done boolean;
    v_lo numeric;
    v_hi numeric;
    v_to numeric;
    v_stride numeric;
    v_state text;
    v_set maint.archive_sets;
    v_arch text;
BEGIN
    SELECT * INTO v_cur FROM maint.cleanup_cursors AS c
     WHERE c.run_id = p_run AND c.rule_id = p_rule_id AND c.unit = p_unit FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unit % of rule % has no position in run %: its preflight did not run', p_unit, p_rule_id, p_run
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    v_st := v_cur.state;
    v_rel := maint._cleanup_rel(v_rule.target_schema, v_rule.target_table);
    v_unit := maint._cleanup_unit(v_rule, v_cur.rel);
    v_refusal := maint._cleanup_author_refusal(v_rule, v_rel);
    IF v_refusal IS NOT NULL THEN
        RAISE EXCEPTION '%', v_refusal USING ERRCODE = 'insufficient_privilege';
    END IF;
    v_exec := maint._executor(maint._cleanup_owner(v_rel));
    v_pred := maint._cleanup_predicate(v_rule, maint._cleanup_cutoff(p_run, v_rule));
    IF v_rule.archive THEN
        v_set := maint._archive_set(p_run, v_rule, v_rel, v_exec);
        v_arch := pg_catalog.format('maint_archive.%I', v_set.archive_table);
    END IF;
    BEGIN
        IF v_cur.batching IN ('dedupe', 'victims') THEN
            v_victims := 'pgmaint_victims_' || v_rule.id;
            IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class AS c
                            WHERE c.oid = pg_catalog.to_regclass(pg_catalog.format('pg_temp.%I', v_victims))
                              AND c.relowner = maint._cleanup_owner(v_rel)) THEN
                RAISE EXCEPTION 'the work table of rule % is missing or not the table owner''s', v_rule.id
                    USING ERRCODE = 'object_not_in_prerequisite_state';
            END IF;
            v_identity := coalesce(maint._cleanup_identity(v_rel), ARRAY['ctid']::name[]);
            v_meta := maint._cleanup_query(v_exec, maint._cleanup_victims_sql(v_victims, v_rule.batch_size),
                                           ARRAY[v_st->>'last'], NULL, p_lock_ms);
            IF (v_meta->>'sel')::bigint > 0 THEN
                v_del := maint._cleanup_delete_batch(v_exec,
                             CASE WHEN v_cur.batching = 'dedupe'
                                  THEN maint._cleanup_dedupe_sql(v_rule, v_rel, v_identity, v_victims, v_rule.batch_size, v_arch)
                                  ELSE maint._cleanup_victims_delete_sql(v_rel, v_identity, v_victims, v_rule.batch_size,
                                                                         v_pred, v_arch) END,
                             ARRAY[v_st->>'last'], NULL, p_lock_ms, v_set.id);
                v_st := pg_catalog.jsonb_set(v_st, '{last}', v_meta->'last'->0);
            END IF;
            v_counts := (v_meta->>'sel')::bigint > 0;
            v_done := NOT v_counts;
        ELSIF v_cur.batching = 'keyset' THEN
            v_identity := maint._cleanup_identity(v_unit);
            v_last := CASE WHEN pg_catalog.jsonb_typeof(v_st->'last') = 'array'
                           THEN ARRAY(SELECT pg_catalog.jsonb_array_elements_text(v_st->'last')) END;
            v_upper := maint._cleanup_query(v_exec,
                maint._cleanup_bound_sql(v_unit, v_identity, v_pred, v_rule.batch_size, v_last IS NULL),
                v_last, NULL, p_lock_ms);
            v_del := maint._cleanup_delete_batch(v_exec,
                maint._cleanup_range_sql(v_unit, v_identity, v_pred, v_arch, v_last IS NULL, v_upper IS NOT NULL),
                v_last, ARRAY(SELECT pg_catalog.jsonb_array_elements_text(v_upper)), p_lock_ms, v_set.id);
            v_st := pg_catalog.jsonb_build_object('last', v_upper);
            v_done := v_upper IS NULL;   -- the last batch ran to the end of the key range
        ELSIF v_cur.batching = 'idrange' THEN
            v_identity := maint._cleanup_identity(v_unit);
            v_lo := (v_st->>'lo')::numeric;
            v_hi := (v_st->>'hi')::numeric;
            v_stride := (v_st->>'stride')::numeric;
            v_to := least(v_lo + v_stride - 1, v_hi);
            IF v_lo <= v_hi THEN
                v_del := maint._cleanup_delete_batch(v_exec,
                    maint._cleanup_idrange_sql(v_unit, v_identity[1], v_pred, v_arch),
                    ARRAY[v_lo::text, v_to::text], NULL, p_lock_ms, v_set.id);
                v_lo := v_to + 1;
                IF v_del = 0 AND v_lo <= v_hi THEN
                    -- an empty range: go straight to the next matching key instead of
                    -- walking sparse (random, snowflake-like) ids range by range
                    v_lo := coalesce((maint._cleanup_query(v_exec, maint._cleanup_next_id_sql(v_unit, v_identity[1], v_pred),
                                                           ARRAY[v_to::text], NULL, p_lock_ms) #>> '{}')::numeric,
                                     v_hi + 1);
                END IF;
                -- sparse matches: widen the range (up to 64 batches wide); dense: back to batch_size
                IF v_del < v_rule.batch_size / 2 THEN
                    v_stride := least(v_stride * 2, v_rule.batch_size::numeric * 64);
                ELSIF v_del > v_rule.batch_size THEN
                    v_stride := greatest(v_rule.batch_size, v_stride / 2);
                END IF;
            END IF;
            v_st := pg_catalog.jsonb_build_object('lo', v_lo, 'hi', v_hi, 'stride', v_stride);
            v_done := v_lo > v_hi;
        ELSIF v_cur.batching = 'pages' THEN
            IF (v_st->>'block')::bigint < (v_st->>'nblocks')::bigint THEN
                v_del := maint._cleanup_delete_batch(v_exec, maint._cleanup_ctid_sql(v_unit, v_pred, v_arch),
                    ARRAY[pg_catalog.format('(%s,0)', v_st->>'block'),
                          pg_catalog.format('(%s,0)', (v_st->>'block')::bigint + (v_st->>'pages')::bigint)],
                    NULL, p_lock_ms, v_set.id);
                v_st := pg_catalog.jsonb_set(v_st, '{block}',
                            pg_catalog.to_jsonb((v_st->>'block')::bigint + (v_st->>'pages')::bigint));
            END IF;
            v_done := (v_st->>'block')::bigint >= (v_st->>'nblocks')::bigint;
        ELSE
            RAISE EXCEPTION 'unknown batching %', pg_catalog.quote_nullable(v_cur.batching)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    EXCEPTION
        WHEN lock_not_available OR query_canceled THEN
            RAISE;
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE;
            RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = maint._redact_error(v_state, SQLERRM);
    END;
    UPDATE maint.cleanup_cursors AS c SET state = v_st
     WHERE c.run_id = p_run AND c.rule_id = p_rule_id AND c.unit = p_unit;
    RETURN pg_catalog.jsonb_build_object('del', v_del, 'batch', v_counts, 'done', v_done);
END
$$;

-- maint._cleanup_drop_partition(p_run, p_rule_id, p_partition, p_lock_ms) -> jsonb
--   Removes an expired partition of a retention rule's table as the table's owner, in
--   O(1) whatever its size: no row is counted or copied. Locks in the application's order
--   -- the parent (waiting at most the lock timeout), then the partition without waiting
--   (NOWAIT: a session reading the partition directly makes this attempt fail at once,
--   and the caller retries) -- so no application statement waits longer than the lock
--   timeout and no deadlock can form. Then DETACH, and when the rule archives, the
--   detached partition becomes the run's archive set (moved to maint_archive as
--   set_<id>; undo attaches it again); otherwise it is dropped once this transaction has
--   committed (maint._cleanup_rule_done: the parent's lock is not held while the file
--   system frees the files). Returns {"del": rows
--   (the planner's estimate, reltuples, unless the partition was never analyzed: then
--   counted before locking), "estimated", "bytes": its size, "archived": whether it was
--   kept}. The partition is checked again to be a direct
--   plain partition of the rule's table, owned by the same role, whose whole range lies
--   before the run's cut-off.
CREATE OR REPLACE FUNCTION maint._cleanup_drop_partition(p_run bigint, p_rule_id bigint, p_partition text, p_lock_ms text)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rule maint.cleanup_rules := maint._cleanup_run_rule(p_run, p_rule_id, true);
    v_rel regclass;
    v_part regclass;
    v_owner oid;
    v_exec name;
    v_refusal text;
    v_rows bigint;
    v_bound text;
    v_bytes bigint;
    v_estimated boolean;
    v_set maint.archive_sets;
    v_indexes jsonb;
    v_index jsonb;
BEGIN
    v_rel := maint._cleanup_rel(v_rule.target_schema, v_rule.target_table);
    v_part := maint._cleanup_unit(v_rule, p_partition);
    v_refusal := maint._cleanup_author_refusal(v_rule, v_rel);
    IF v_refusal IS NOT NULL THEN
        RAISE EXCEPTION '%', v_refusal USING ERRCODE = 'insufficient_privilege';
    END IF;
    v_owner := maint._cleanup_owner(v_rel);
    IF v_rule.kind <> 'retention' OR v_rule.condition IS NOT NULL OR NOT EXISTS (
            SELECT 1 FROM maint._cleanup_expired_partitions(v_rel, v_rule.time_column, maint._cleanup_cutoff(p_run, v_rule)) AS p
             WHERE p.partition = v_part AND p.expired)
       OR maint._cleanup_owner(v_part) <> v_owner
       OR (SELECT c.relkind FROM pg_catalog.pg_class AS c WHERE c.oid = v_part) <> 'r' THEN
        RAISE EXCEPTION 'partition % of % is not expired for rule %', v_part, v_rel, v_rule.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- from the catalog, before any lock: no row is counted while a lock is held (a
    -- partition never analyzed has no estimate and is counted here, before locking)
    SELECT maint._reltuples(c.oid), pg_catalog.pg_get_expr(c.relpartbound, c.oid)
      INTO v_rows, v_bound
      FROM pg_catalog.pg_class AS c WHERE c.oid = v_part;
    v_exec := maint._executor(v_owner);
    v_estimated := v_rows IS NOT NULL;
    IF NOT v_estimated THEN
        v_rows := maint._cleanup_count(v_exec, v_part, p_lock_ms);
    END IF;
    PERFORM maint._cleanup_command(v_exec, pg_catalog.format('LOCK TABLE ONLY %s IN ACCESS EXCLUSIVE MODE', v_rel), p_lock_ms);
    PERFORM maint._cleanup_command(v_exec, pg_catalog.format('LOCK TABLE ONLY %s IN ACCESS EXCLUSIVE MODE NOWAIT', v_part),
                                   p_lock_ms);
    PERFORM maint._cleanup_command(v_exec, pg_catalog.format('ALTER TABLE %s DETACH PARTITION %s', v_rel, v_part), p_lock_ms);
    v_bytes := pg_catalog.pg_table_size(v_part);
    IF v_rule.archive THEN
        v_set := maint._archive_set_new(p_run, v_rule, v_rel::text, 'partition', v_owner);
        UPDATE maint.archive_sets AS s
           SET partition_name = v_part::text, partition_bound = v_bound, rows = v_rows, rows_estimated = v_estimated,
               bytes = v_bytes
         WHERE s.id = v_set.id;
        -- renamed where it is first, with its indexes (they move along), so no name in
        -- maint_archive can be in the way; undo gives the indexes their names back
        SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(pg_catalog.format('%s_i%s', v_set.archive_table, i.n),
                                                                 c.relname) ORDER BY i.n)
          INTO v_indexes
          FROM (SELECT x.indexrelid, pg_catalog.row_number() OVER (ORDER BY x.indexrelid) AS n
                  FROM pg_catalog.pg_index AS x WHERE x.indrelid = v_part) AS i
          JOIN pg_catalog.pg_class AS c ON c.oid = i.indexrelid;
        FOR v_index IN SELECT e.value FROM pg_catalog.jsonb_array_elements(coalesce(v_indexes, '[]')) AS e LOOP
            PERFORM maint._cleanup_command(v_exec, pg_catalog.format('ALTER INDEX %I.%I RENAME TO %I',
                (SELECT n.nspname FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
                  WHERE c.oid = v_part), v_index->>1, v_index->>0), p_lock_ms);
        END LOOP;
        UPDATE maint.archive_sets AS s SET partition_indexes = v_indexes WHERE s.id = v_set.id;
        PERFORM maint._cleanup_command(v_exec, pg_catalog.format('ALTER TABLE %s RENAME TO %I', v_part,
                                       'pgmaint_archive_' || v_set.archive_table), p_lock_ms);
        PERFORM maint._archive_schema_access(v_owner, true);
        PERFORM maint._cleanup_command(v_exec, pg_catalog.format('ALTER TABLE %I.%I SET SCHEMA maint_archive',
            (SELECT n.nspname FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
              WHERE c.oid = v_part), 'pgmaint_archive_' || v_set.archive_table), p_lock_ms);
        PERFORM maint._cleanup_command(v_exec, pg_catalog.format('ALTER TABLE maint_archive.%I RENAME TO %I',
            'pgmaint_archive_' || v_set.archive_table, v_set.archive_table), p_lock_ms);
        PERFORM maint._archive_schema_access(v_owner, false);
    ELSE
        -- dropped after this transaction (maint._cleanup_rule_done): DROP's file truncation
        -- takes longer the bigger the partition, and the parent's lock must not wait for it
        INSERT INTO maint.cleanup_cursors AS c (run_id, rule_id, unit, rel, batching, state)
        SELECT p_run, v_rule.id, -1 - pg_catalog.count(*)::integer, v_part::text, 'drop',
               pg_catalog.jsonb_build_object('oid', v_part::oid)
          FROM maint.cleanup_cursors AS x WHERE x.run_id = p_run AND x.rule_id = v_rule.id AND x.unit < 0;
    END IF;
    RETURN pg_catalog.jsonb_build_object('del', v_rows, 'estimated', v_estimated, 'bytes', v_bytes, 'archived', v_rule.archive);
END
$$;

-- maint._cleanup_rule_done(p_run bigint, p_rule_id bigint, p_lock_ms text) -> jsonb
--   After a rule's batches: drops the partitions it detached with archive off (in this
--   transaction, not the detaching one), its work table (orphans, dedupe) and its
--   positions, and sizes
--   the table under the lock timeout (never waiting in front of the application for a
--   statistic).
--   Returns {"size_after": bytes or null, "archived_row_bytes": the size of the rule's row
--   archive sets in this run, "archive_sets": the run's sets of the rule,
--   "dead_tuples": the table's dead rows as its statistics count them now}.
CREATE OR REPLACE FUNCTION maint._cleanup_rule_done(p_run bigint, p_rule_id bigint, p_lock_ms text)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rule maint.cleanup_rules := maint._cleanup_run_rule(p_run, p_rule_id, false);
    v_rel regclass := maint._table_by_name(v_rule.target_schema, v_rule.target_table);
    v_victims regclass := pg_catalog.to_regclass(pg_catalog.format('pg_temp.%I', 'pgmaint_victims_' || v_rule.id));
    v_size bigint;
    v_set maint.archive_sets;
    v_bytes bigint := 0;
    v_cur maint.cleanup_cursors;
    v_left text[] := '{}';
BEGIN
    IF v_victims IS NOT NULL AND v_rel IS NOT NULL
       AND (SELECT c.relowner FROM pg_catalog.pg_class AS c WHERE c.oid = v_victims) = maint._cleanup_owner(v_rel) THEN
        PERFORM maint._cleanup_command(maint._executor(maint._cleanup_owner(v_rel)),
                                       pg_catalog.format('DROP TABLE %s', v_victims), p_lock_ms);
    END IF;
    IF v_rel IS NOT NULL THEN
        PERFORM pg_catalog.set_config('lock_timeout', p_lock_ms, true);
        BEGIN
            v_size := maint._cleanup_size(v_rel);
        EXCEPTION WHEN lock_not_available THEN
            v_size := NULL;
        END;
    END IF;
    -- partitions this run detached with archive off, dropped now that the parent's lock is
    -- gone: each still the plain, detached table of the table's owner it was (a session
    -- reading one directly makes the DROP wait at most the lock timeout; it is then left
    -- detached, and named)
    FOR v_cur IN SELECT * FROM maint.cleanup_cursors AS c
                  WHERE c.run_id = p_run AND c.rule_id = p_rule_id AND c.batching = 'drop' ORDER BY c.unit DESC LOOP
        IF v_rel IS NOT NULL AND EXISTS (
                SELECT 1 FROM pg_catalog.pg_class AS c
                 WHERE c.oid = (v_cur.state->>'oid')::oid AND c.relkind = 'r' AND NOT c.relispartition
                   AND c.relowner = maint._cleanup_owner(v_rel) AND c.oid::pg_catalog.regclass::text = v_cur.rel) THEN
            BEGIN
                PERFORM maint._cleanup_command(maint._executor(maint._cleanup_owner(v_rel)),
                    pg_catalog.format('DROP TABLE %s', (v_cur.state->>'oid')::oid::pg_catalog.regclass), p_lock_ms);
            EXCEPTION WHEN lock_not_available THEN
                v_left := v_left || v_cur.rel;
            END;
        END IF;
    END LOOP;
    DELETE FROM maint.cleanup_cursors AS c WHERE c.run_id = p_run AND c.rule_id = p_rule_id;
    -- a row set's size is its table's, written densely by the batches (about the rows' own
    -- size); a set whose batches found nothing to remove holds nothing to undo
    FOR v_set IN SELECT * FROM maint.archive_sets AS s
                  WHERE s.run_id = p_run AND s.rule_id = p_rule_id AND s.storage = 'rows' LOOP
        IF v_set.rows = 0 THEN
            PERFORM maint._archive_set_drop(v_set, p_lock_ms);
        ELSE
            UPDATE maint.archive_sets AS s
               SET bytes = (SELECT pg_catalog.pg_relation_size(c.oid)
                                   + coalesce(pg_catalog.pg_relation_size(nullif(c.reltoastrelid, 0)), 0)
                              FROM pg_catalog.pg_class AS c WHERE c.oid = maint._archive_set_table(v_set))
             WHERE s.id = v_set.id
            RETURNING s.bytes INTO v_set.bytes;
            v_bytes := v_bytes + v_set.bytes;
        END IF;
    END LOOP;
    RETURN pg_catalog.jsonb_build_object('size_after', v_size, 'archived_row_bytes', v_bytes,
        'left_detached', pg_catalog.to_jsonb(v_left),
        -- undo checks that every set is still there
        'archive_sets', (SELECT pg_catalog.count(*) FROM maint.archive_sets AS s
                          WHERE s.run_id = p_run AND s.rule_id = p_rule_id),
        -- dead rows the table's statistics count now: what VACUUM will make reusable
        'dead_tuples', CASE WHEN v_rel IS NOT NULL THEN pg_catalog.pg_stat_get_dead_tuples(v_rel) END);
END
$$;

COMMENT ON FUNCTION maint._cleanup_run_rule(bigint, bigint, boolean) IS 'Internal: a rule of a running cleanup run of this session';
COMMENT ON FUNCTION maint._cleanup_author_refusal(maint.cleanup_rules, regclass) IS 'Internal: why a rule''s author may not have it carried out (NULL: may)';
COMMENT ON FUNCTION maint._cleanup_owner(regclass) IS 'Internal: the owner of a table';
COMMENT ON FUNCTION maint._cleanup_cutoff(bigint, maint.cleanup_rules) IS 'Internal: a retention rule''s cut-off in a run';
COMMENT ON FUNCTION maint._cleanup_query(name, text, text[], text[], text, jsonb) IS 'Internal: run a one-row statement in an executor';
COMMENT ON FUNCTION maint._cleanup_command(name, text, text, text[], text[]) IS 'Internal: run a statement as a command in an executor';
COMMENT ON FUNCTION maint._cleanup_count(name, regclass, text) IS 'Internal: count a table''s rows in an executor';
COMMENT ON FUNCTION maint._cleanup_delete_batch(name, text, text[], text[], text, bigint) IS 'Internal: run a batch in an executor and count it in its archive set';
COMMENT ON FUNCTION maint._cleanup_fail(maint.cleanup_rules, text, text, text) IS 'Internal: a rule error as the journal keeps it';
COMMENT ON FUNCTION maint._cleanup_batching(maint.cleanup_rules, regclass, regclass, boolean, bigint, numeric, numeric) IS
    'Internal: how a unit of a rule is batched';
COMMENT ON FUNCTION maint._cleanup_preflight(bigint, bigint, text) IS 'Internal: count and check a rule before its batches (as the table owner)';
COMMENT ON FUNCTION maint._cleanup_unit(maint.cleanup_rules, text) IS 'Internal: a rule''s table or one of its partitions';
COMMENT ON FUNCTION maint._cleanup_batch(bigint, bigint, integer, text) IS 'Internal: the next batch of a rule from its position (as the table owner, archived)';
COMMENT ON FUNCTION maint._cleanup_drop_partition(bigint, bigint, text, text) IS 'Internal: detach an expired partition and keep it as the archive, or drop it (as the table owner, O(1))';
COMMENT ON FUNCTION maint._cleanup_rule_done(bigint, bigint, text) IS 'Internal: drop a rule''s work table and size its table';

-- the steps check the run, the rule and the author themselves; the helpers that run
-- statements in executors are for them only and granted to nobody
GRANT EXECUTE ON FUNCTION
    maint._cleanup_run_rule(bigint, bigint, boolean),
    maint._cleanup_author_refusal(maint.cleanup_rules, regclass),
    maint._cleanup_owner(regclass),
    maint._cleanup_cutoff(bigint, maint.cleanup_rules),
    maint._cleanup_fail(maint.cleanup_rules, text, text, text),
    maint._cleanup_unit(maint.cleanup_rules, text),
    maint._cleanup_batching(maint.cleanup_rules, regclass, regclass, boolean, bigint, numeric, numeric)
TO maint_monitor;
GRANT EXECUTE ON FUNCTION
    maint._cleanup_preflight(bigint, bigint, text),
    maint._cleanup_batch(bigint, bigint, integer, text),
    maint._cleanup_drop_partition(bigint, bigint, text, text),
    maint._cleanup_rule_done(bigint, bigint, text)
TO maint_admin;
