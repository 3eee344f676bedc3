-- pgmaint 0095: the host_jobs health check (sql/functions/maint.host_jobs.sql): host jobs
-- (systemd timers, crontab entries written by `pgmaint schedule install --host`) that
-- missed their expected runs or whose last run failed. grace: how late a run may start
-- (at least grace_share of the job's interval).
INSERT INTO maint.check_config (check_name, category, warn, crit, unit, params, description)
VALUES ('host_jobs', 'availability', NULL, NULL, 's', '{"grace": "1 hour", "grace_share": 0.1}',
        'pgmaint host jobs (systemd timers, crontab) that missed their expected runs (warning: the last, critical: the last two) or whose last run failed (critical)');
