-- pgmaint 0020: the cleanup engine's rules and the archive of removed rows.
--
-- Rules name their tables by schema and table name (text), not by regclass: a regclass
-- column holds an OID, which pg_upgrade refuses in user tables and which a dump/restore
-- would not carry over. A renamed table must have its rule re-added.

CREATE TABLE maint.cleanup_rules (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text        NOT NULL,
    target_schema   name        NOT NULL,
    target_table    name        NOT NULL,
    -- retention
    time_column     name,
    keep            interval,
    -- orphans: target columns reference parent columns (no foreign key)
    columns         name[],
    parent_schema   name,
    parent_table    name,
    parent_columns  name[],
    -- dedupe: columns = the key
    keep_which      text,
    order_by        name,
    nulls_equal     boolean     NOT NULL DEFAULT true,
    -- common options
    condition       text,
    batch_size      integer     NOT NULL DEFAULT 10000,
    archive         boolean     NOT NULL DEFAULT true,
    enabled         boolean     NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    created_by      text        NOT NULL DEFAULT session_user,
    CONSTRAINT cleanup_rules_kind_check CHECK (kind IN ('retention', 'orphan', 'dedupe')),
    CONSTRAINT cleanup_rules_batch_check CHECK (batch_size BETWEEN 1 AND 1000000),
    CONSTRAINT cleanup_rules_retention_check CHECK (kind <> 'retention'
        OR (time_column IS NOT NULL AND keep IS NOT NULL AND keep >= interval '0')),
    CONSTRAINT cleanup_rules_orphan_check CHECK (kind <> 'orphan'
        OR (columns IS NOT NULL AND parent_table IS NOT NULL
            AND pg_catalog.cardinality(columns) = pg_catalog.cardinality(parent_columns))),
    CONSTRAINT cleanup_rules_dedupe_check CHECK (kind <> 'dedupe'
        OR (columns IS NOT NULL AND keep_which IN ('oldest', 'newest')))
);
COMMENT ON TABLE maint.cleanup_rules IS
    'pgmaint cleanup rules (retention, orphan, dedupe); add them with maint.add_retention_policy / add_orphan_rule / add_dedupe_rule, list them with maint.rules';
GRANT SELECT ON maint.cleanup_rules TO maint_monitor;
GRANT INSERT, UPDATE, DELETE ON maint.cleanup_rules TO maint_admin;

CREATE TABLE maint.archive (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          bigint      NOT NULL,
    rule_id         bigint,
    source_table    text        NOT NULL,
    "row"           jsonb       NOT NULL,
    archived_at     timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    restored_by     bigint,
    restored_at     timestamptz
);
COMMENT ON TABLE maint.archive IS
    'Rows removed by pgmaint cleanup runs (as jsonb), written in the same transaction as the delete; CALL maint.undo_run(run_id) puts them back';
CREATE INDEX archive_run_idx ON maint.archive (run_id, source_table);
CREATE INDEX archive_archived_at_idx ON maint.archive (archived_at);
-- the archive holds copies of application rows: only maint_admin reads it
GRANT SELECT, INSERT, UPDATE, DELETE ON maint.archive TO maint_admin;
