-- Reading the archive of removed rows. maint.archive holds copies of application rows,
-- so nobody but the kit's owner reads it directly:
--   maint.archive_rows     every archived row of the tables the reader may SELECT and
--                          sees all rows of (row-level security) (maint_admin; a
--                          security barrier keeps the reader's own conditions from
--                          seeing rows of other tables first);
--   maint.archive_summary  per run and table, how many rows were archived and restored,
--                          and their size: no row data (maint_monitor).

CREATE OR REPLACE VIEW maint.archive_rows WITH (security_barrier) AS
SELECT a.id, a.run_id, a.rule_id, a.source_table, a."row", a.archived_at, a.restored_by, a.restored_at
  FROM maint.archive AS a
 CROSS JOIN LATERAL (SELECT maint._table_by_name(a.source_table) AS rel) AS s
 WHERE s.rel IS NOT NULL
   AND pg_catalog.has_table_privilege(s.rel, 'SELECT')
   AND maint._sees_all_rows(CURRENT_USER, s.rel);
COMMENT ON VIEW maint.archive_rows IS
    'Archived rows of the tables the reader may SELECT and sees all rows of (the archive itself is readable only by the kit''s owner)';
GRANT SELECT ON maint.archive_rows TO maint_admin;

CREATE OR REPLACE VIEW maint.archive_summary AS
SELECT a.run_id, a.source_table,
       pg_catalog.count(*) AS rows_archived,
       pg_catalog.count(*) FILTER (WHERE a.restored_by IS NOT NULL) AS rows_restored,
       sum(pg_catalog.pg_column_size(a."row"))::bigint AS bytes,
       pg_catalog.min(a.archived_at) AS first_archived_at,
       pg_catalog.max(a.archived_at) AS last_archived_at
  FROM maint.archive AS a
 GROUP BY a.run_id, a.source_table;
COMMENT ON VIEW maint.archive_summary IS
    'Per cleanup run and table: rows archived and restored, and their size (no row data)';
GRANT SELECT ON maint.archive_summary TO maint_monitor;
