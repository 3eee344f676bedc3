-- pgmaint 0092: routines the security model replaced (their function files now define
-- other signatures or none; docs/security.md).
DROP FUNCTION IF EXISTS maint._cleanup_archive_cte(boolean);
DROP FUNCTION IF EXISTS maint._cleanup_sample(regclass, text, integer);
DROP FUNCTION IF EXISTS maint._task_lock_key(text);
DROP PROCEDURE IF EXISTS maint._cleanup_rule(bigint, bigint, boolean, timestamptz, timestamptz, interval, numeric,
                                             boolean, jsonb, text);
DROP FUNCTION IF EXISTS maint._cleanup_rule_ids(text, text);
DROP PROCEDURE IF EXISTS maint._purge_batched(text, regclass, name, text, interval, boolean, integer, interval,
                                              interval);
