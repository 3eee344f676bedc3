"""Backups proven restorable: create, verify, list, prune and restore (pgmaint backup)."""
