"""Notifications: ``pgmaint notify`` delivers the kit's events (``maint.events``) to apprise
targets. The database decides what is due, batches digests and keeps per-target delivery
marks (``maint.notify_claim`` / ``maint.notify_done``); this package only reads targets,
renders messages, talks to the outside world and waits.

- ``targets``: the targets from --to, $PGMAINT_NOTIFY_URLS and a config file, checked at start
- ``render``: one event, or a digest, as a message title and body
- ``send``: hand a message to a target through apprise; the error, if any
- ``store``: the SQL calls (claim, confirm, status, forget)
- ``deliver``: one target's delivery round (claim, send, confirm), and the one-shot run
- ``watch``: ``--watch``: LISTEN maint_events, one worker per target
- ``commands``: the ``pgmaint notify`` command group
"""
