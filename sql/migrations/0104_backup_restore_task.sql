-- pgmaint 0104: `pgmaint backup restore` is journaled as task backup-restore (its own
-- task lock, so a restore never waits for a backup of the same database). Like the kit's
-- other tasks it has its lock row from the start, so a holder inside an open transaction
-- can always be named.
INSERT INTO maint.task_locks (task) VALUES ('backup-restore') ON CONFLICT (task) DO NOTHING;
