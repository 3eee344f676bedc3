-- pgmaint 0097: delivering events (docs/notify.md). `pgmaint notify` delivers maint.events to
-- targets (apprise URLs, kept on the host: they hold secrets). The database keeps, per
-- target, which events it was sent and when, so that delivery is at least once, retried
-- with backoff, and never sent twice by two watchers (maint.notify_claim / notify_done).

-- the transaction that wrote each event: a watcher's cursor is a snapshot's xmin, so an
-- event that commits after a later one (ids are handed out before commit) is not skipped
ALTER TABLE maint.events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id();
COMMENT ON COLUMN maint.events.xid IS 'the transaction that wrote the event (the watchers'' cursor)';
CREATE INDEX events_xid_idx ON maint.events (xid);

-- how delivery behaves (one row; maint.set_notify_settings changes it)
CREATE TABLE maint.notify_settings (
    id            boolean     PRIMARY KEY DEFAULT true CHECK (id),
    digest_after  integer     NOT NULL DEFAULT 3 CHECK (digest_after BETWEEN 1 AND 1000),
    digest_window interval    NOT NULL DEFAULT '1 minute' CHECK (digest_window > interval '0'),
    remind_after  interval             DEFAULT '4 hours' CHECK (remind_after >= interval '5 minutes'),
    lease         interval    NOT NULL DEFAULT '2 minutes' CHECK (lease >= interval '5 seconds'),
    retry_first   interval    NOT NULL DEFAULT '30 seconds' CHECK (retry_first > interval '0'),
    retry_max     interval    NOT NULL DEFAULT '1 hour' CHECK (retry_max > interval '0'),
    max_attempts  integer     NOT NULL DEFAULT 12 CHECK (max_attempts BETWEEN 1 AND 1000),
    backlog       interval    NOT NULL DEFAULT '1 hour' CHECK (backlog >= interval '0'),
    updated_at    timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    updated_by    text        NOT NULL DEFAULT session_user
);
COMMENT ON TABLE maint.notify_settings IS
    'pgmaint notify: digests, reminders, leases, retries and a new target''s backlog (one row)';
INSERT INTO maint.notify_settings DEFAULT VALUES;
GRANT SELECT ON maint.notify_settings TO maint_monitor;

-- the targets watchers have delivered to: a name (never the URL), its route and its state
CREATE TABLE maint.notify_targets (
    name            text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$'),
    label           text        NOT NULL,
    min_severity    text        NOT NULL CHECK (min_severity IN ('info', 'warning', 'critical')),
    kinds           text[],
    since_xmin      xid8        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    last_claim_at   timestamptz,
    last_attempt_at timestamptz,
    last_sent_at    timestamptz,
    last_error      text,
    last_error_at   timestamptz,
    watcher         text
);
COMMENT ON TABLE maint.notify_targets IS
    'pgmaint notify: each target (by name; its URL stays on the host), its route, cursor and last delivery';
COMMENT ON COLUMN maint.notify_targets.label IS 'the target''s URL with its secrets masked';
COMMENT ON COLUMN maint.notify_targets.since_xmin IS
    'events written by transactions from this xid on may not have been considered yet';
COMMENT ON COLUMN maint.notify_targets.last_claim_at IS 'when a watcher last looked for events to send';
GRANT SELECT ON maint.notify_targets TO maint_monitor;

-- one row per event and target: pending, sending (claimed by a watcher until lease_until),
-- sent, retry (after next_at) or failed (gave up after max_attempts)
CREATE TABLE maint.notify_deliveries (
    target      text        NOT NULL REFERENCES maint.notify_targets ON DELETE CASCADE,
    event_id    bigint      NOT NULL REFERENCES maint.events ON DELETE CASCADE,
    status      text        NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'sending', 'sent', 'retry', 'failed')),
    attempts    integer     NOT NULL DEFAULT 0,
    message_id  bigint,
    claimed_by  text,
    claimed_at  timestamptz,
    lease_until timestamptz,
    next_at     timestamptz,
    sent_at     timestamptz,
    last_error  text,
    PRIMARY KEY (target, event_id)
);
COMMENT ON TABLE maint.notify_deliveries IS
    'pgmaint notify: each event''s delivery to each target (at least once, never twice by two watchers)';
CREATE INDEX notify_deliveries_due_idx ON maint.notify_deliveries (target, event_id)
    WHERE status IN ('pending', 'retry', 'sending');
CREATE INDEX notify_deliveries_claimed_idx ON maint.notify_deliveries (target, claimed_at);
CREATE INDEX notify_deliveries_event_idx ON maint.notify_deliveries (event_id);
CREATE SEQUENCE maint.notify_message_seq;
GRANT SELECT ON maint.notify_deliveries TO maint_monitor;

-- notify_watcher: a watcher that stopped while events wait, and deliveries that keep failing
INSERT INTO maint.check_config (check_name, category, warn, crit, unit, params, description)
VALUES ('notify_watcher', 'availability', NULL, NULL, 's', '{"stale": "10 minutes", "failing": "30 minutes"}',
        'pgmaint notify targets whose watcher stopped while events wait (warning), whose deliveries keep '
        'failing (warning) or that gave up on events (critical)');
