-- pgmaint 0093: the cleanup engine, second generation (docs/cleanup.md).
--
-- A typed archive: the rows a run removes go, in the same statement as the DELETE, to a
-- table of schema maint_archive with the source table's own columns and types, one per
-- run, rule and table (an "archive set"); an expired partition becomes its set whole
-- (detached and moved there, never copied). Each set's table is owned by the source
-- table's owner and touched only through that owner's executor. maint.archive (jsonb)
-- keeps what earlier releases archived: undo and purge still handle it, nothing writes it.

CREATE SCHEMA maint_archive;
COMMENT ON SCHEMA maint_archive IS
    'pgmaint archive sets: rows removed by cleanup runs, one table per run, rule and table, or a detached partition (managed by the kit; see maint.archive_sets)';
REVOKE ALL ON SCHEMA maint_archive FROM PUBLIC;

CREATE TABLE maint.archive_sets (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id           bigint      NOT NULL,
    rule_id          bigint,
    source_table     text        NOT NULL,
    storage          text        NOT NULL,
    archive_table    name        NOT NULL UNIQUE,
    owner_oid        oid         NOT NULL,
    partition_name   text,
    partition_bound  text,
    partition_indexes jsonb,
    rows             bigint      NOT NULL DEFAULT 0,
    rows_estimated   boolean     NOT NULL DEFAULT false,
    bytes            bigint      NOT NULL DEFAULT 0,
    archived_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    keep_until       timestamptz NOT NULL,
    restored_by      bigint,
    restored_at      timestamptz,
    CONSTRAINT archive_sets_storage_check CHECK (storage IN ('rows', 'partition')),
    CONSTRAINT archive_sets_partition_check CHECK ((storage = 'partition') = (partition_name IS NOT NULL))
);
COMMENT ON TABLE maint.archive_sets IS
    'pgmaint archive sets: per run, rule and table the maint_archive table holding the removed rows (or the detached partition), their number and size, and until when they are kept (written by the kit''s functions only)';
CREATE INDEX archive_sets_run_idx ON maint.archive_sets (run_id);
-- names and counts, no row data
GRANT SELECT ON maint.archive_sets TO maint_monitor;

-- per-rule guard and archive keep (NULL: the run's max_fraction, the kind's archive_keep);
-- a keep that no timestamp can be moved back by is refused (every run would fail)
ALTER TABLE maint.cleanup_rules
    ADD COLUMN max_fraction numeric,
    ADD COLUMN archive_keep interval,
    ADD CONSTRAINT cleanup_rules_max_fraction_check CHECK (max_fraction BETWEEN 0 AND 1),
    ADD CONSTRAINT cleanup_rules_archive_keep_check CHECK (archive_keep > interval '0'),
    ADD CONSTRAINT cleanup_rules_keep_range_check CHECK (keep <= interval '1000 years') NOT VALID;

-- the archive view of earlier releases is now a function of the same purpose
-- (maint.archive_rows(run_id, source_table)), which reads typed sets too
DROP VIEW IF EXISTS maint.archive_rows;

-- batch statements name their archive set's table instead of returning rows to archive
DROP FUNCTION IF EXISTS maint._cleanup_result_sql(boolean, text);
DROP FUNCTION IF EXISTS maint._cleanup_deleted_meta();
DROP FUNCTION IF EXISTS maint._cleanup_range_sql(regclass, name[], text, boolean, boolean, boolean);
DROP FUNCTION IF EXISTS maint._cleanup_idrange_sql(regclass, name, text, boolean);
DROP FUNCTION IF EXISTS maint._cleanup_ctid_sql(regclass, text, boolean);
DROP FUNCTION IF EXISTS maint._cleanup_dedupe_sql(maint.cleanup_rules, regclass, name[], text, integer);
DROP FUNCTION IF EXISTS maint._cleanup_archive_batch(name, text, boolean, text[], text[], text, bigint, bigint, text);

-- how big the archive may grow before the health check says so
INSERT INTO maint.check_config (check_name, category, warn, crit, unit, params, description)
VALUES ('archive_size', 'capacity', 1073741824, 10737418240, 'bytes', '{"max_share": 0.2}',
        'the archive of removed rows (maint_archive and maint.archive): warn/crit in bytes, and warn when it exceeds max_share of the database');
-- a dropped partition's step reports rows, size and whether it was kept
DROP FUNCTION IF EXISTS maint._cleanup_drop_partition(bigint, bigint, text, text);

-- the add_* functions take max_fraction and archive_keep (the old signatures would be
-- ambiguous overloads)
DROP FUNCTION IF EXISTS maint.add_retention_policy(regclass, name, interval, integer, boolean, boolean, text);
DROP FUNCTION IF EXISTS maint.add_orphan_rule(regclass, name[], regclass, name[], integer, boolean, boolean, text);
DROP FUNCTION IF EXISTS maint.add_dedupe_rule(regclass, name[], text, name, boolean, integer, boolean, boolean, text);
DROP FUNCTION IF EXISTS maint._add_retention_policy(name, regclass, name, interval, integer, boolean, boolean, text);
DROP FUNCTION IF EXISTS maint._add_orphan_rule(name, regclass, name[], regclass, name[], integer, boolean, boolean, text);
DROP FUNCTION IF EXISTS maint._add_dedupe_rule(name, regclass, name[], text, name, boolean, integer, boolean, boolean,
                                               text);
DROP FUNCTION IF EXISTS maint._cleanup_check_options(integer, boolean, boolean);
-- maint.rules shows the new columns
DROP VIEW IF EXISTS maint.rules;
-- undo's plan lists archive sets too
DROP FUNCTION IF EXISTS maint._undo_plan(bigint);
-- the archive is purged by whole runs, not in batches of rows
DROP PROCEDURE IF EXISTS maint.purge_archive(interval, boolean, integer, interval, interval);
-- sessions that grant CREATE on maint_archive for a moment take turns on this row (concurrent
-- GRANTs on one schema fail); only the kit's functions can lock it
INSERT INTO maint.task_locks (task) VALUES ('maint_archive grants');
-- a batch runs as a command with its key parameters through the one command helper
DROP FUNCTION IF EXISTS maint._cleanup_command(name, text, text);
