-- Health checks on schema design and indexes: invalid, duplicate, redundant and unused
-- indexes, foreign keys without an index, tables without a primary key, NOT VALID
-- constraints, disabled triggers, sequences running out. Indexes are compared on
-- pg_index (columns, operator classes, sort options, collations, expressions, predicate), never on
-- pg_get_indexdef() text, which also blocks behind an ACCESS EXCLUSIVE lock.
-- Objects in system schemas, in maint and owned by extensions are left out.

-- Relations "the user owns the design of" are those outside pg_catalog, information_schema,
-- maint, TOAST and temporary schemas and not owned by an extension; the condition is
-- written out in each check (a helper function per row would be too slow with 10,000s
-- of tables).

-- invalid_indexes: indexes left invalid (a failed CREATE INDEX CONCURRENTLY or REINDEX
-- CONCURRENTLY), except those being built right now.
CREATE OR REPLACE FUNCTION maint.health_invalid_indexes(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row('warning', 'index', i.indexrelid::pg_catalog.regclass::text,
               pg_catalog.format('index %s on %s is invalid: it is maintained on every write but never used '
                                 '(a CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY failed)',
                                 i.indexrelid::pg_catalog.regclass, i.indrelid::pg_catalog.regclass),
               NULL,
               'rebuild it online with pgmaint run optimize --execute --only reindex (maint.plan_reindex() '
               'lists it as REINDEX INDEX CONCURRENTLY); if it is a unique index and duplicates remain, the '
               'run names the duplicated key: remove them first (pgmaint run duplicates)',
               pg_catalog.format('DROP INDEX CONCURRENTLY %s;  -- or: REINDEX INDEX CONCURRENTLY %s;',
                                 i.indexrelid::pg_catalog.regclass, i.indexrelid::pg_catalog.regclass),
               pg_catalog.jsonb_build_object('table', i.indrelid::pg_catalog.regclass::text))
      FROM pg_catalog.pg_index AS i
     WHERE NOT i.indisvalid
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_create_index AS p
                        WHERE p.index_relid = i.indexrelid OR p.relid = i.indrelid)
$$;

-- maint._health_index_keys: comparable description of the user indexes of this database.
CREATE OR REPLACE FUNCTION maint._health_index_keys()
    RETURNS TABLE (indexrelid oid, indrelid oid, relam oid, keys text[], classes text[],
                   options text[], collations text, exprs text, pred text, is_unique boolean, is_primary boolean,
                   backs_constraint boolean, is_valid boolean)
    LANGUAGE sql
    STABLE
    ROWS 10000
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT i.indexrelid, i.indrelid, c.relam,
           pg_catalog.string_to_array(i.indkey::text, ' '),
           pg_catalog.string_to_array(i.indclass::text, ' '),
           pg_catalog.string_to_array(i.indoption::text, ' '),
           i.indcollation::text,
           pg_catalog.regexp_replace(i.indexprs::text, ':location -?[0-9]+', '', 'g'),
           pg_catalog.regexp_replace(i.indpred::text, ':location -?[0-9]+', '', 'g'),
           i.indisunique, i.indisprimary,
           kc.conindid IS NOT NULL,
           i.indisvalid
      FROM pg_catalog.pg_index AS i
      JOIN pg_catalog.pg_class AS c ON c.oid = i.indexrelid
      JOIN pg_catalog.pg_class AS t ON t.oid = i.indrelid
      JOIN pg_catalog.pg_namespace AS n ON n.oid = t.relnamespace
      LEFT JOIN (SELECT DISTINCT k.conindid FROM pg_catalog.pg_constraint AS k WHERE k.conindid <> 0) AS kc
             ON kc.conindid = i.indexrelid
     WHERE n.nspname <> ALL (ARRAY['pg_catalog', 'information_schema', 'maint'])
       AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
$$;

-- duplicate_indexes: indexes identical to another index of the same table; the one kept
-- is the primary key, else a constraint's, else a unique one, else the oldest.
CREATE OR REPLACE FUNCTION maint.health_duplicate_indexes(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH k AS (
        SELECT k.*,
               pg_catalog.first_value(k.indexrelid) OVER w AS keeper,
               pg_catalog.row_number() OVER w AS rn
          FROM maint._health_index_keys() AS k
         WHERE k.is_valid
        WINDOW w AS (PARTITION BY k.indrelid, k.relam, k.keys, k.classes, k.options, k.collations, k.exprs, k.pred
                     ORDER BY k.is_primary DESC, k.backs_constraint DESC, k.is_unique DESC, k.indexrelid)
    )
    SELECT maint._health_row('warning', 'index', k.indexrelid::pg_catalog.regclass::text,
               pg_catalog.format('index %s on %s duplicates index %s (same columns, operator classes, '
                                 'expressions and predicate); it costs %s and slows every write',
                                 k.indexrelid::pg_catalog.regclass, k.indrelid::pg_catalog.regclass,
                                 k.keeper::pg_catalog.regclass,
                                 pg_catalog.pg_size_pretty(pg_catalog.pg_relation_size(k.indexrelid))),
               pg_catalog.pg_relation_size(k.indexrelid),
               CASE WHEN k.backs_constraint
                    THEN 'it backs a constraint: drop the constraint and re-create it on the other index'
                    ELSE 'drop it' END,
               CASE WHEN k.backs_constraint THEN NULL
                    ELSE pg_catalog.format('DROP INDEX CONCURRENTLY %s;', k.indexrelid::pg_catalog.regclass) END,
               pg_catalog.jsonb_build_object('table', k.indrelid::pg_catalog.regclass::text,
                                             'duplicate_of', k.keeper::pg_catalog.regclass::text))
      FROM k
     WHERE k.rn > 1
$$;

-- redundant_indexes: non-unique indexes whose columns (with the same operator classes)
-- are a left prefix of another valid index with the same access method and no predicate.
CREATE OR REPLACE FUNCTION maint.health_redundant_indexes(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    -- the wider index is looked up through pg_index's index on indrelid: one probe per
    -- candidate, however many tables there are
    SELECT DISTINCT ON (a.indexrelid)
           maint._health_row('info', 'index', a.indexrelid::pg_catalog.regclass::text,
               pg_catalog.format('index %s on %s is redundant: its columns are a left prefix of index %s, '
                                 'which can serve the same queries (%s)',
                                 a.indexrelid::pg_catalog.regclass, a.indrelid::pg_catalog.regclass,
                                 b.indexrelid::pg_catalog.regclass,
                                 pg_catalog.pg_size_pretty(pg_catalog.pg_relation_size(a.indexrelid))),
               pg_catalog.pg_relation_size(a.indexrelid),
               'drop it after checking that no query needs the smaller index (an index-only scan, or the '
               'wider index being much larger)',
               pg_catalog.format('DROP INDEX CONCURRENTLY %s;', a.indexrelid::pg_catalog.regclass),
               pg_catalog.jsonb_build_object('table', a.indrelid::pg_catalog.regclass::text,
                                             'covered_by', b.indexrelid::pg_catalog.regclass::text))
      FROM maint._health_index_keys() AS a
      JOIN pg_catalog.pg_index AS b
        ON b.indrelid = a.indrelid AND b.indexrelid <> a.indexrelid AND b.indisvalid
       AND b.indexprs IS NULL AND b.indpred IS NULL
      JOIN pg_catalog.pg_class AS bc ON bc.oid = b.indexrelid AND bc.relam = a.relam
     WHERE a.is_valid AND NOT a.is_unique AND NOT a.backs_constraint
       AND a.exprs IS NULL AND a.pred IS NULL
       AND pg_catalog.cardinality(a.keys) < b.indnatts
       AND (pg_catalog.string_to_array(b.indkey::text, ' '))[1:pg_catalog.cardinality(a.keys)] = a.keys
       AND (pg_catalog.string_to_array(b.indclass::text, ' '))[1:pg_catalog.cardinality(a.classes)] = a.classes
       AND (pg_catalog.string_to_array(b.indoption::text, ' '))[1:pg_catalog.cardinality(a.options)] = a.options
     ORDER BY a.indexrelid, b.indexrelid
$$;

-- unused_indexes: never scanned since statistics began, not unique/primary/exclusion/
-- replica identity, at least params.min_bytes. When statistics are younger than
-- params.min_stats_age (stats_reset, else server start) the verdict is only info.
CREATE OR REPLACE FUNCTION maint.health_unused_indexes(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH since AS (
        SELECT coalesce(d.stats_reset, pg_catalog.pg_postmaster_start_time()) AS t
          FROM pg_catalog.pg_stat_database AS d WHERE d.datname = pg_catalog.current_database()
    ), x AS (
        SELECT s.indexrelid, s.relid, pg_catalog.pg_relation_size(s.indexrelid) AS bytes
          FROM pg_catalog.pg_stat_user_indexes AS s
          JOIN pg_catalog.pg_index AS i ON i.indexrelid = s.indexrelid
         WHERE s.idx_scan = 0 AND i.indisvalid
           AND NOT (i.indisunique OR i.indisprimary OR i.indisexclusion OR i.indisreplident)
           AND s.schemaname <> 'maint'
    )
    SELECT maint._health_row(
               CASE WHEN since.t > pg_catalog.now()
                         - coalesce((p_cfg.params ->> 'min_stats_age')::interval, interval '7 days')
                    THEN 'info' ELSE 'warning' END,
               'index', x.indexrelid::pg_catalog.regclass::text,
               pg_catalog.format('index %s on %s (%s) has not been scanned since statistics began at %s%s',
                                 x.indexrelid::pg_catalog.regclass, x.relid::pg_catalog.regclass,
                                 pg_catalog.pg_size_pretty(x.bytes), since.t,
                                 CASE WHEN since.t > pg_catalog.now()
                                      - coalesce((p_cfg.params ->> 'min_stats_age')::interval, interval '7 days')
                                      THEN ' (statistics are too young for a verdict)' ELSE '' END),
               x.bytes,
               'check standbys too (their index use is not counted here), then drop it',
               pg_catalog.format('DROP INDEX CONCURRENTLY %s;', x.indexrelid::pg_catalog.regclass),
               pg_catalog.jsonb_build_object('table', x.relid::pg_catalog.regclass::text, 'stats_since', since.t))
      FROM x, since
     WHERE x.bytes >= coalesce((p_cfg.params ->> 'min_bytes')::bigint, 10485760)
     ORDER BY x.bytes DESC
$$;

-- fk_without_index: foreign keys whose columns are not the leading columns (in any order)
-- of a valid, non-partial index on the referencing table; warning when the table has at
-- least warn rows, else info.
CREATE OR REPLACE FUNCTION maint.health_fk_without_index(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row(
               CASE WHEN p_cfg.warn IS NOT NULL AND greatest(t.reltuples, 0) >= p_cfg.warn
                    THEN 'warning' ELSE 'info' END,
               'constraint', pg_catalog.format('%s.%I', k.conrelid::pg_catalog.regclass, k.conname),
               pg_catalog.format('foreign key %I on %s (%s) has no index starting with its columns: deleting or '
                                 'updating a row of %s scans %s',
                                 k.conname, k.conrelid::pg_catalog.regclass, cols.list,
                                 k.confrelid::pg_catalog.regclass, k.conrelid::pg_catalog.regclass),
               greatest(t.reltuples, 0)::numeric,
               'create an index on the foreign key columns',
               pg_catalog.format('CREATE INDEX CONCURRENTLY ON %s (%s);', k.conrelid::pg_catalog.regclass, cols.list),
               pg_catalog.jsonb_build_object('table', k.conrelid::pg_catalog.regclass::text,
                                             'references', k.confrelid::pg_catalog.regclass::text,
                                             'columns', cols.list))
      FROM pg_catalog.pg_constraint AS k
      JOIN pg_catalog.pg_class AS t ON t.oid = k.conrelid
      JOIN pg_catalog.pg_namespace AS un ON un.oid = t.relnamespace
           AND un.nspname <> ALL (ARRAY['pg_catalog', 'information_schema', 'maint'])
           AND un.nspname !~ '^pg_(toast|temp_|toast_temp_)'
      CROSS JOIN LATERAL (
          SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY u.ord) AS list
            FROM pg_catalog.unnest(k.conkey) WITH ORDINALITY AS u(attnum, ord)
            JOIN pg_catalog.pg_attribute AS a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
      ) AS cols
     WHERE k.contype = 'f' AND k.conparentid = 0
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                          AND d.objid = t.oid AND d.deptype = 'e')
       AND NOT EXISTS (
           SELECT 1 FROM pg_catalog.pg_index AS i
            WHERE i.indrelid = k.conrelid AND i.indisvalid AND i.indpred IS NULL
              AND (SELECT pg_catalog.array_agg(x ORDER BY x)
                     FROM pg_catalog.unnest((pg_catalog.string_to_array(i.indkey::text, ' ')::smallint[])
                                            [1:pg_catalog.cardinality(k.conkey)]) AS x)
                  = (SELECT pg_catalog.array_agg(y ORDER BY y) FROM pg_catalog.unnest(k.conkey) AS y))
$$;

-- no_primary_key: ordinary and partitioned tables without a primary key (partitions
-- inherit theirs and are left out).
CREATE OR REPLACE FUNCTION maint.health_no_primary_key(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row('info', 'table', c.oid::pg_catalog.regclass::text,
               pg_catalog.format('table %s has no primary key%s: rows cannot be identified reliably, and '
                                 'logical replication cannot replicate its updates and deletes',
                                 c.oid::pg_catalog.regclass,
                                 CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_index AS i
                                                    WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid)
                                      THEN ' (it has a unique index)' ELSE '' END),
               NULL,
               'add a primary key (a unique index on NOT NULL columns can be promoted with '
               'ALTER TABLE ... ADD PRIMARY KEY USING INDEX)',
               NULL, NULL)
      FROM pg_catalog.pg_class AS c
      JOIN pg_catalog.pg_namespace AS un ON un.oid = c.relnamespace
           AND un.nspname <> ALL (ARRAY['pg_catalog', 'information_schema', 'maint'])
           AND un.nspname !~ '^pg_(toast|temp_|toast_temp_)'
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                          AND d.objid = c.oid AND d.deptype = 'e')
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index AS i WHERE i.indrelid = c.oid AND i.indisprimary)
$$;

-- not_valid_constraints: CHECK and FOREIGN KEY constraints added NOT VALID and never validated.
CREATE OR REPLACE FUNCTION maint.health_not_valid_constraints(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row('info', 'constraint',
               pg_catalog.format('%s.%I', k.conrelid::pg_catalog.regclass, k.conname),
               pg_catalog.format('%s constraint %I on %s is NOT VALID: existing rows were never checked',
                                 CASE k.contype WHEN 'f' THEN 'foreign key' ELSE 'check' END,
                                 k.conname, k.conrelid::pg_catalog.regclass),
               NULL,
               'validate it (takes only a SHARE UPDATE EXCLUSIVE lock; writes continue)',
               pg_catalog.format('ALTER TABLE %s VALIDATE CONSTRAINT %I;', k.conrelid::pg_catalog.regclass, k.conname),
               NULL)
      FROM pg_catalog.pg_constraint AS k
      JOIN pg_catalog.pg_class AS c ON c.oid = k.conrelid
      JOIN pg_catalog.pg_namespace AS un ON un.oid = c.relnamespace
           AND un.nspname <> ALL (ARRAY['pg_catalog', 'information_schema', 'maint'])
           AND un.nspname !~ '^pg_(toast|temp_|toast_temp_)'
     WHERE NOT k.convalidated AND k.contype IN ('c', 'f')
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                          AND d.objid = c.oid AND d.deptype = 'e')
$$;

-- disabled_triggers: user (not internal) triggers that are disabled.
CREATE OR REPLACE FUNCTION maint.health_disabled_triggers(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._health_row('warning', 'trigger',
               pg_catalog.format('%s.%I', t.tgrelid::pg_catalog.regclass, t.tgname),
               pg_catalog.format('trigger %I on %s is disabled: whatever it enforces or records is not happening',
                                 t.tgname, t.tgrelid::pg_catalog.regclass),
               NULL,
               'enable it again, or drop it if it is no longer wanted',
               pg_catalog.format('ALTER TABLE %s ENABLE TRIGGER %I;', t.tgrelid::pg_catalog.regclass, t.tgname),
               NULL)
      FROM pg_catalog.pg_trigger AS t
      JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid
      JOIN pg_catalog.pg_namespace AS un ON un.oid = c.relnamespace
           AND un.nspname <> ALL (ARRAY['pg_catalog', 'information_schema', 'maint'])
           AND un.nspname !~ '^pg_(toast|temp_|toast_temp_)'
     WHERE t.tgenabled = 'D' AND NOT t.tgisinternal
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                          AND d.objid = c.oid AND d.deptype = 'e')
$$;

-- sequence_exhaustion: how much of its range each sequence has used, against its own
-- maximum and against the type of every column it feeds (an int4 column fed by a bigint
-- sequence fails at 2147483647 however large the sequence's maximum is).
-- It runs with the caller's rights: a sequence's value is data, so a role sees findings
-- only for sequences it may read (SELECT or USAGE, as pg_sequences.last_value does) and
-- one 'unknown' row counting the others.
CREATE OR REPLACE FUNCTION maint.health_sequence_exhaustion(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH seq AS (
        SELECT c.oid AS seqid, s.last_value, s.min_value, s.max_value, s.increment_by, s.cycle,
               pg_catalog.has_sequence_privilege(c.oid, 'SELECT, USAGE') AS readable
          FROM pg_catalog.pg_sequences AS s
          JOIN pg_catalog.pg_namespace AS n ON n.nspname = s.schemaname
          JOIN pg_catalog.pg_class AS c ON c.relnamespace = n.oid AND c.relname = s.sequencename
         WHERE s.schemaname <> 'maint'
    ), feeds AS (   -- columns a sequence feeds: owned (serial/identity) or via a nextval default
        SELECT d.objid AS seqid, d.refobjid AS relid, d.refobjsubid AS attnum
          FROM pg_catalog.pg_depend AS d
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i')
           AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjsubid > 0
        UNION
        SELECT d.refobjid, ad.adrelid, ad.adnum
          FROM pg_catalog.pg_depend AS d
          JOIN pg_catalog.pg_attrdef AS ad ON ad.oid = d.objid
         WHERE d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass
           AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
    ), x AS (
        SELECT seq.*, f.relid, a.attname, a.atttypid::pg_catalog.regtype::text AS coltype,
               CASE a.atttypid WHEN 'int2'::pg_catalog.regtype THEN 32767
                               WHEN 'int4'::pg_catalog.regtype THEN 2147483647
                               WHEN 'int8'::pg_catalog.regtype THEN 9223372036854775807 END AS colmax,
               CASE WHEN seq.increment_by > 0
                    THEN round(100.0 * (coalesce(seq.last_value, seq.min_value) - seq.min_value)
                               / nullif(seq.max_value - seq.min_value, 0), 2)
                    ELSE round(100.0 * (seq.max_value - coalesce(seq.last_value, seq.max_value))
                               / nullif(seq.max_value - seq.min_value, 0), 2) END AS seq_pct
          FROM seq
          LEFT JOIN feeds AS f ON f.seqid = seq.seqid
          LEFT JOIN pg_catalog.pg_attribute AS a ON a.attrelid = f.relid AND a.attnum = f.attnum
         WHERE seq.readable AND NOT seq.cycle
    ), y AS (
        SELECT x.*,
               CASE WHEN x.colmax IS NOT NULL AND x.increment_by > 0
                    THEN round(100.0 * coalesce(x.last_value, 0) / x.colmax, 2) END AS col_pct
          FROM x
    ), z AS (
        SELECT y.*, greatest(y.seq_pct, y.col_pct) AS pct,
               maint._health_level(greatest(y.seq_pct, y.col_pct), p_cfg.warn, p_cfg.crit) AS st
          FROM y
    )
    SELECT maint._health_row(z.st, 'sequence', z.seqid::pg_catalog.regclass::text,
               CASE WHEN z.col_pct IS NOT NULL AND z.col_pct >= z.seq_pct
                    THEN pg_catalog.format('sequence %s is at %s, %s%% of the %s maximum of column %s.%I '
                                           'it feeds (%s%% of its own maximum %s)',
                                           z.seqid::pg_catalog.regclass, z.last_value, z.col_pct, z.coltype,
                                           z.relid::pg_catalog.regclass, z.attname, z.seq_pct, z.max_value)
                    ELSE pg_catalog.format('sequence %s is at %s, %s%% of its maximum %s%s',
                                           z.seqid::pg_catalog.regclass, z.last_value, z.seq_pct, z.max_value,
                                           CASE WHEN z.relid IS NOT NULL
                                                THEN pg_catalog.format(' (feeds %s.%I)',
                                                         z.relid::pg_catalog.regclass, z.attname)
                                                ELSE '' END) END,
               z.pct,
               CASE WHEN z.col_pct IS NOT NULL AND z.col_pct >= z.seq_pct
                    THEN 'widen the column to bigint (a table rewrite under ACCESS EXCLUSIVE lock: plan it, '
                         'or migrate through a new column)'
                    ELSE 'raise the sequence maximum (ALTER SEQUENCE ... AS bigint / MAXVALUE)' END,
               CASE WHEN z.col_pct IS NOT NULL AND z.col_pct >= z.seq_pct
                    THEN pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I TYPE bigint;  -- rewrites the table',
                                           z.relid::pg_catalog.regclass, z.attname)
                    ELSE pg_catalog.format('ALTER SEQUENCE %s AS bigint;', z.seqid::pg_catalog.regclass) END,
               pg_catalog.jsonb_build_object('last_value', z.last_value, 'max_value', z.max_value,
                                             'sequence_pct', z.seq_pct, 'column_pct', z.col_pct,
                                             'column', CASE WHEN z.relid IS NOT NULL THEN pg_catalog.format('%s.%I',
                                                 z.relid::pg_catalog.regclass, z.attname) END,
                                             'column_type', z.coltype))
      FROM z
     WHERE z.st <> 'ok'
    UNION ALL
    SELECT maint._health_row('unknown', 'sequence', NULL,
               pg_catalog.format('cannot read %s sequence(s) (%s): role %s lacks SELECT or USAGE on them, '
                                 'so their values are not shown', u.n, u.names, current_user),
               p_remediation => 'GRANT SELECT ON the sequences (or pg_read_all_data) to the role that runs the check, '
                                || 'e.g. maint_runner for the scheduled health sample')
      FROM (SELECT count(*) AS n,
                   pg_catalog.string_agg(seq.seqid::pg_catalog.regclass::text, ', ' ORDER BY seq.seqid) AS names
              FROM seq WHERE NOT seq.readable) AS u
     WHERE u.n > 0
$$;

GRANT EXECUTE ON FUNCTION
    maint._health_index_keys(),
    maint.health_invalid_indexes(maint.check_config),
    maint.health_duplicate_indexes(maint.check_config),
    maint.health_redundant_indexes(maint.check_config),
    maint.health_unused_indexes(maint.check_config),
    maint.health_fk_without_index(maint.check_config),
    maint.health_no_primary_key(maint.check_config),
    maint.health_not_valid_constraints(maint.check_config),
    maint.health_disabled_triggers(maint.check_config),
    maint.health_sequence_exhaustion(maint.check_config)
TO maint_monitor;
