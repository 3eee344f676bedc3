-- pgmaint 0091: the backup catalog is written only through the kit's functions
-- (sql/functions/maint.backup_catalog.sql); 0090 took INSERT and UPDATE on
-- maint.backups from maint_admin. Each row now says which journaled run wrote it and
-- which login role created and last verified it.

ALTER TABLE maint.backups
    ADD COLUMN run_id      bigint,
    ADD COLUMN created_by  text,
    ADD COLUMN verified_by text;

COMMENT ON COLUMN maint.backups.run_id IS 'the maint.runs row of the backup run that created this backup';
COMMENT ON COLUMN maint.backups.created_by IS 'session_user of the run that created this backup';
COMMENT ON COLUMN maint.backups.verified_by IS 'session_user of the run that last verified this backup';
