-- pgmaint 0091: maint.plan_optimize() gains an `options` column (FREEZE / ANALYZE for
-- vacuum, CONCURRENTLY for reindex and drop), so that `pgmaint run optimize --execute`
-- builds every statement itself from structured fields (action, options, relation) and
-- never executes the display text in `statement` (docs/optimize.md, docs/security.md).
-- A function's result columns cannot change with CREATE OR REPLACE: drop the old one;
-- sql/functions/maint.plan_optimize.sql creates the new one (and its grant) right after.

DROP FUNCTION IF EXISTS maint.plan_optimize(text[]);
