-- pgmaint 0103: the web console (docs/web.md). Runs started from `pgmaint web` are
-- journaled with source 'web' (application_name 'pgmaint web'), beside sql, cli, cron and host.

ALTER TABLE maint.runs DROP CONSTRAINT runs_source_check;
ALTER TABLE maint.runs ADD CONSTRAINT runs_source_check
    CHECK (source = ANY (ARRAY['sql', 'cli', 'cron', 'host', 'web']));
