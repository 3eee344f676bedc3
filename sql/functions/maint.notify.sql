-- Delivering events (docs/notify.md). `pgmaint notify` sends maint.events to targets; the
-- targets' URLs stay on the host (they hold secrets), the database keeps per target (a name)
-- which events were sent, so that:
--   * delivery is at least once: an event is marked sent only after the target took it; a
--     failed send is retried with backoff (retry_first, doubling up to retry_max) until
--     max_attempts, then the delivery is 'failed' (the notify_watcher check says so);
--   * two watchers never send the same event to the same target: maint.notify_claim locks
--     the target's row (FOR UPDATE SKIP LOCKED) while it hands out the due events, and marks
--     them 'sending' under the watcher's lease; a watcher that dies mid-delivery leaves its
--     claim until the lease ends, then another watcher sends those events again (the only
--     way an event reaches a target twice: the send may have worked before the death);
--   * noise stays low: each event is one state change; when more events are due than the
--     target may still get messages within digest_window (digest_after per window), they go
--     as one digest, or wait for the window to free and then go as one digest (so do events
--     that are older than the window when they are claimed: a one-shot run from cron sends
--     what happened since its last run as one message); reminders are events of their own
--     (maint._health_reminders, written at sampling time while a check stays critical).
-- A target's cursor is the xmin of the snapshot its last claim took (events.xid), so an event
-- whose transaction commits after a newer event's is still found. A new target starts with the
-- events of the last `backlog`.
--
-- The public functions run as the caller and hand CURRENT_USER to SECURITY DEFINER internals
-- that check it is a role of the session and a member of maint_admin (or the kit's owner):
-- watchers deliver as maint_admin (maint_runner in a systemd unit); maint_monitor reads the
-- tables and maint.notify_status.

-- maint._notify_admin(p_role name) -> name: p_role, checked to be a role of this session
-- (maint._caller) that may deliver events: a member of maint_admin or of the kit's owner.
CREATE OR REPLACE FUNCTION maint._notify_admin(p_role name)
    RETURNS name
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._kit_admin(p_role, 'deliver events')
$$;

-- maint._notify_rank(p_severity text) -> integer: info 1, warning 2 (and unknown), critical 3.
CREATE OR REPLACE FUNCTION maint._notify_rank(p_severity text)
    RETURNS integer
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE p_severity WHEN 'info' THEN 1 WHEN 'critical' THEN 3 ELSE 2 END
$$;

-- maint._notify_routed(p_kind, p_severity, p_object, p_detail, p_min_severity, p_kinds) -> boolean
--   Whether an event goes to a target that takes p_min_severity and up, of p_kinds (NULL or
--   empty: every kind; an entry is a kind, 'run', 'health' or 'backup', or a kind and the start
--   of the object, 'health:backup_freshness', 'run:retention'). A recovery goes where the
--   problem it ends went: it is ranked by the status it recovers from (detail.from).
CREATE OR REPLACE FUNCTION maint._notify_routed(p_kind text, p_severity text, p_object text, p_detail jsonb,
                                                p_min_severity text, p_kinds text[])
    RETURNS boolean
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._notify_rank(CASE WHEN p_severity = 'recovery' THEN coalesce(p_detail ->> 'from', 'warning')
                                   ELSE p_severity END) >= maint._notify_rank(p_min_severity)
       AND (p_kinds IS NULL OR pg_catalog.cardinality(p_kinds) = 0
            OR EXISTS (SELECT 1 FROM pg_catalog.unnest(p_kinds) AS k
                        WHERE k = p_kind
                           OR pg_catalog.starts_with(p_kind || ':' || coalesce(p_object, ''), k)
                              AND pg_catalog.strpos(k, ':') > 0))
$$;

-- maint._notify_check_route(p_min_severity text, p_kinds text[]): raise naming what is wrong.
CREATE OR REPLACE FUNCTION maint._notify_check_route(p_min_severity text, p_kinds text[])
    RETURNS void
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_bad text;
BEGIN
    IF p_min_severity IS NULL OR p_min_severity NOT IN ('info', 'warning', 'critical') THEN
        RAISE EXCEPTION 'invalid minimum severity %: use info, warning or critical',
            pg_catalog.quote_nullable(p_min_severity)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT pg_catalog.string_agg(coalesce(pg_catalog.quote_literal(k), 'NULL'), ', ') INTO v_bad
      FROM pg_catalog.unnest(p_kinds) AS k
     WHERE k IS NULL OR pg_catalog.split_part(k, ':', 1) NOT IN ('run', 'health', 'backup')
        OR (pg_catalog.strpos(k, ':') > 0 AND pg_catalog.split_part(k, ':', 2) = '');
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'invalid event kind(s) %: use run, health or backup, optionally with '
                        'the start of the object after a colon (health:backup_freshness, run:retention)', v_bad
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- maint._notify_claim(p_role, p_target, p_label, p_min_severity, p_kinds, p_watcher, p_limit)
--   maint.notify_claim for a caller checked by maint._notify_admin.
CREATE OR REPLACE FUNCTION maint._notify_claim(p_role name, p_target text, p_label text, p_min_severity text,
                                               p_kinds text[], p_watcher text, p_limit integer)
    RETURNS TABLE (message_id bigint, event_id bigint, at timestamptz, kind text, severity text,
                   database text, object text, summary text, detail jsonb, attempt integer)
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_set maint.notify_settings;
    v_target maint.notify_targets;
    v_new boolean := false;
    v_xmin xid8;
    v_now timestamptz;
    v_due bigint[];
    v_budget integer;
    v_digest bigint;
BEGIN
    PERFORM maint._notify_admin(p_role);
    IF p_target IS NULL OR p_target !~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid notify target name %: letters, digits, _ . : and - (at most 63 characters)',
            pg_catalog.quote_nullable(p_target)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_watcher IS NULL OR pg_catalog.length(p_watcher) NOT BETWEEN 1 AND 200
       OR p_label IS NULL OR pg_catalog.length(p_label) NOT BETWEEN 1 AND 500 THEN
        RAISE EXCEPTION 'a watcher name and a target label (1 to 200 and 500 characters) are required'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM maint._notify_check_route(p_min_severity, p_kinds);
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'invalid limit %: claim 1 to 1000 events at a time', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO STRICT v_set FROM maint.notify_settings;
    -- taken before the events are read: a transaction still running now has an xid from
    -- here on, so its events are found by the next claim
    v_xmin := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());

    SELECT * INTO v_target FROM maint.notify_targets AS t WHERE t.name = p_target FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM maint.notify_targets AS t WHERE t.name = p_target) THEN
            RETURN;                       -- another watcher is claiming for this target now
        END IF;
        INSERT INTO maint.notify_targets AS t (name, label, min_severity, kinds, since_xmin)
        VALUES (p_target, p_label, p_min_severity, p_kinds, v_xmin)
        ON CONFLICT (name) DO NOTHING
        RETURNING t.* INTO v_target;
        IF NOT FOUND THEN
            RETURN;                       -- another watcher registered it at the same time
        END IF;
        v_new := true;
    END IF;
    v_now := pg_catalog.clock_timestamp();

    -- claims whose watcher stopped before it confirmed: due again (they may have been sent)
    UPDATE maint.notify_deliveries AS d
       SET status = CASE WHEN d.attempts >= v_set.max_attempts THEN 'failed' ELSE 'retry' END,
           next_at = v_now, lease_until = NULL,
           last_error = pg_catalog.format('watcher %s stopped before it confirmed the delivery (lease ended %s)',
                                          d.claimed_by, d.lease_until)
     WHERE d.target = p_target AND d.status = 'sending' AND d.lease_until < v_now;

    -- the events this target has not considered yet
    INSERT INTO maint.notify_deliveries (target, event_id)
    SELECT p_target, e.id
      FROM maint.events AS e
     WHERE (e.xid >= v_target.since_xmin OR (v_new AND e.at > v_now - v_set.backlog))
       AND maint._notify_routed(e.kind, e.severity, e.object, e.detail, p_min_severity, p_kinds)
    ON CONFLICT DO NOTHING;
    UPDATE maint.notify_targets AS t
       SET since_xmin = v_xmin, last_claim_at = v_now, watcher = p_watcher,
           label = p_label, min_severity = p_min_severity, kinds = p_kinds
     WHERE t.name = p_target;

    v_budget := v_set.digest_after
        - (SELECT pg_catalog.count(DISTINCT d.message_id)::integer FROM maint.notify_deliveries AS d
            WHERE d.target = p_target AND d.claimed_at > v_now - v_set.digest_window);
    v_due := ARRAY(SELECT d.event_id FROM maint.notify_deliveries AS d
                    WHERE d.target = p_target
                      AND (d.status = 'pending' OR (d.status = 'retry' AND d.next_at <= v_now))
                    ORDER BY d.event_id
                    LIMIT p_limit);
    IF pg_catalog.cardinality(v_due) = 0 OR v_budget <= 0 THEN
        RETURN;                           -- nothing due, or held for a digest
    END IF;
    -- one message each while the window allows and none of them had to wait; otherwise one digest
    IF pg_catalog.cardinality(v_due) <= v_budget
       AND NOT EXISTS (SELECT 1 FROM maint.events AS e
                        WHERE e.id = ANY (v_due) AND e.at <= v_now - v_set.digest_window) THEN
        UPDATE maint.notify_deliveries AS d SET message_id = pg_catalog.nextval('maint.notify_message_seq')
         WHERE d.target = p_target AND d.event_id = ANY (v_due);
    ELSE
        v_digest := pg_catalog.nextval('maint.notify_message_seq');
        UPDATE maint.notify_deliveries AS d SET message_id = v_digest
         WHERE d.target = p_target AND d.event_id = ANY (v_due);
    END IF;
    UPDATE maint.notify_deliveries AS d
       SET status = 'sending', attempts = d.attempts + 1, claimed_by = p_watcher, claimed_at = v_now,
           lease_until = v_now + v_set.lease, next_at = NULL
     WHERE d.target = p_target AND d.event_id = ANY (v_due);
    UPDATE maint.notify_targets AS t SET last_attempt_at = v_now WHERE t.name = p_target;
    RETURN QUERY
        SELECT d.message_id, e.id, e.at, e.kind, e.severity, e.database, e.object, e.summary, e.detail, d.attempts
          FROM maint.notify_deliveries AS d
          JOIN maint.events AS e ON e.id = d.event_id
         WHERE d.target = p_target AND d.event_id = ANY (v_due)
         ORDER BY d.message_id, e.id;
END
$$;

-- maint.notify_claim(target, label, min_severity, kinds, watcher, max_events) -> TABLE (message_id,
--   event_id, at, kind, severity, database, object, summary, detail, attempt)
--   Hands the events due for target `target` to watcher `watcher`, each row with the message
--   it belongs to: one event per message, or all of them in one digest when more are due than
--   the target may still get messages in the digest window or one of them is older than the
--   window. Registers the target on first use
--   (label: its URL with secrets masked; a new target gets the events of the last `backlog`)
--   and updates its route (min_severity: info, warning or critical; kinds: see
--   maint._notify_routed). The rows stay claimed for `lease`; confirm each message with
--   maint.notify_done. Returns nothing while another watcher claims for the target, or while
--   the target waits for its digest window. Commit promptly: the target's row stays locked.
CREATE OR REPLACE FUNCTION maint.notify_claim(target text, label text, min_severity text DEFAULT 'warning',
                                              kinds text[] DEFAULT NULL, watcher text DEFAULT NULL,
                                              max_events integer DEFAULT 100)
    RETURNS TABLE (message_id bigint, event_id bigint, at timestamptz, kind text, severity text,
                   database text, object text, summary text, detail jsonb, attempt integer)
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM maint._notify_claim(CURRENT_USER, target, label, min_severity, kinds,
                                      coalesce(watcher, SESSION_USER || '@' || pg_catalog.pg_backend_pid()),
                                      max_events)
$$;

-- maint._notify_done(p_role, p_target, p_message_id, p_error) -> integer
--   maint.notify_done for a caller checked by maint._notify_admin.
CREATE OR REPLACE FUNCTION maint._notify_done(p_role name, p_target text, p_message_id bigint, p_error text)
    RETURNS integer
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_set maint.notify_settings;
    v_now timestamptz := pg_catalog.clock_timestamp();
    v_n integer;
BEGIN
    PERFORM maint._notify_admin(p_role);
    IF p_target IS NULL OR p_message_id IS NULL THEN
        RAISE EXCEPTION 'a target and a message id are required' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO STRICT v_set FROM maint.notify_settings;
    IF p_error IS NULL THEN
        -- also after the lease ended, as long as no other watcher claimed the events again
        UPDATE maint.notify_deliveries AS d
           SET status = 'sent', sent_at = v_now, lease_until = NULL, next_at = NULL, last_error = NULL
         WHERE d.target = p_target AND d.message_id = p_message_id AND d.status IN ('sending', 'retry', 'failed');
        GET DIAGNOSTICS v_n = ROW_COUNT;
        UPDATE maint.notify_targets AS t SET last_sent_at = v_now WHERE t.name = p_target;
    ELSE
        UPDATE maint.notify_deliveries AS d
           SET status = CASE WHEN d.attempts >= v_set.max_attempts THEN 'failed' ELSE 'retry' END,
               next_at = v_now + LEAST(v_set.retry_max,
                                       v_set.retry_first * pg_catalog.power(2, LEAST(d.attempts - 1, 30))),
               lease_until = NULL, last_error = pg_catalog.left(p_error, 500)
         WHERE d.target = p_target AND d.message_id = p_message_id AND d.status = 'sending';
        GET DIAGNOSTICS v_n = ROW_COUNT;
        UPDATE maint.notify_targets AS t
           SET last_error = pg_catalog.left(p_error, 500), last_error_at = v_now
         WHERE t.name = p_target;
    END IF;
    RETURN v_n;
END
$$;

-- maint.notify_done(target, message_id, error) -> integer
--   Confirms a message of maint.notify_claim: error NULL marks its events sent to the target;
--   otherwise they are retried after a backoff (retry_first, doubling, at most retry_max) or,
--   after max_attempts, marked failed. Returns how many deliveries changed (0 when another
--   watcher has claimed them again since the lease ended).
CREATE OR REPLACE FUNCTION maint.notify_done(target text, message_id bigint, error text DEFAULT NULL)
    RETURNS integer
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._notify_done(CURRENT_USER, target, message_id, error)
$$;

-- maint._notify_forget(p_role, p_target) -> boolean: maint.notify_forget, checked.
CREATE OR REPLACE FUNCTION maint._notify_forget(p_role name, p_target text)
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM maint._notify_admin(p_role);
    DELETE FROM maint.notify_targets AS t WHERE t.name = p_target;
    RETURN FOUND;
END
$$;

-- maint.notify_forget(target) -> boolean: forget a target that no watcher delivers to any more
-- (its deliveries go with it); false when there is none of that name.
CREATE OR REPLACE FUNCTION maint.notify_forget(target text)
    RETURNS boolean
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._notify_forget(CURRENT_USER, target)
$$;

-- maint._set_notify_settings(p_role, ...) -> maint.notify_settings: checked, see below.
CREATE OR REPLACE FUNCTION maint._set_notify_settings(
    p_role name, p_digest_after integer, p_digest_window interval, p_remind_after interval,
    p_lease interval, p_retry_first interval, p_retry_max interval, p_max_attempts integer,
    p_backlog interval
)
    RETURNS maint.notify_settings
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row maint.notify_settings;
BEGIN
    PERFORM maint._notify_admin(p_role);
    IF p_digest_after NOT BETWEEN 1 AND 1000 OR p_max_attempts NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'digest_after and max_attempts are 1 to 1000, got % and %', p_digest_after, p_max_attempts
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_digest_window <= interval '0' OR p_retry_first <= interval '0' OR p_retry_max <= interval '0' THEN
        RAISE EXCEPTION 'digest_window, retry_first and retry_max must be positive'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_remind_after < interval '5 minutes' AND p_remind_after <> interval '0' THEN
        RAISE EXCEPTION 'remind_after must be at least 5 minutes (0 turns reminders off), got %', p_remind_after
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_lease < interval '5 seconds' OR p_backlog < interval '0' THEN
        RAISE EXCEPTION 'lease must be at least 5 seconds and backlog not negative'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE maint.notify_settings AS s
       SET digest_after = coalesce(p_digest_after, s.digest_after),
           digest_window = coalesce(p_digest_window, s.digest_window),
           remind_after = CASE WHEN p_remind_after IS NULL THEN s.remind_after
                               WHEN p_remind_after = interval '0' THEN NULL ELSE p_remind_after END,
           lease = coalesce(p_lease, s.lease),
           retry_first = coalesce(p_retry_first, s.retry_first),
           retry_max = coalesce(p_retry_max, s.retry_max),
           max_attempts = coalesce(p_max_attempts, s.max_attempts),
           backlog = coalesce(p_backlog, s.backlog),
           updated_at = pg_catalog.clock_timestamp(), updated_by = p_role
    RETURNING s.* INTO STRICT v_row;
    RETURN v_row;
END
$$;

-- maint.set_notify_settings(digest_after, digest_window, remind_after, lease, retry_first,
--   retry_max, max_attempts, backlog) -> maint.notify_settings
--   Changes how events are delivered; NULL keeps a setting. digest_after messages per
--   digest_window go to a target before the rest wait for one digest; remind_after: a
--   reminder while a check stays critical (0 turns reminders off); lease: how long a watcher's
--   claim lasts before another watcher may send the events again; retry_first, doubling up
--   to retry_max, after a failed send, max_attempts in all; backlog: how far back a new
--   target starts.
CREATE OR REPLACE FUNCTION maint.set_notify_settings(
    digest_after integer DEFAULT NULL, digest_window interval DEFAULT NULL,
    remind_after interval DEFAULT NULL, lease interval DEFAULT NULL,
    retry_first interval DEFAULT NULL, retry_max interval DEFAULT NULL,
    max_attempts integer DEFAULT NULL, backlog interval DEFAULT NULL
)
    RETURNS maint.notify_settings
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT maint._set_notify_settings(CURRENT_USER, digest_after, digest_window, remind_after, lease,
                                      retry_first, retry_max, max_attempts, backlog)
$$;

-- maint.notify_status: per target, its route, how many deliveries are pending, being sent,
-- waiting to retry, failed and sent; events written since its last claim that it will take
-- (unseen); the oldest waiting event; its watcher's last claim, attempt, success and error.
CREATE OR REPLACE VIEW maint.notify_status AS
SELECT t.name, t.label, t.min_severity, t.kinds,
       coalesce(d.pending, 0) AS pending, coalesce(d.sending, 0) AS sending,
       coalesce(d.retrying, 0) AS retrying, coalesce(d.failed, 0) AS failed, coalesce(d.sent, 0) AS sent,
       u.unseen,
       LEAST(d.oldest_waiting, u.oldest_unseen) AS oldest_waiting,
       t.last_claim_at, t.last_attempt_at, t.last_sent_at, t.last_error, t.last_error_at, t.watcher,
       d.failed_last_day
  FROM maint.notify_targets AS t
  LEFT JOIN LATERAL (
        SELECT pg_catalog.count(*) FILTER (WHERE x.status = 'pending') AS pending,
               pg_catalog.count(*) FILTER (WHERE x.status = 'sending') AS sending,
               pg_catalog.count(*) FILTER (WHERE x.status = 'retry') AS retrying,
               pg_catalog.count(*) FILTER (WHERE x.status = 'failed') AS failed,
               pg_catalog.count(*) FILTER (WHERE x.status = 'sent') AS sent,
               pg_catalog.count(*) FILTER (WHERE x.status = 'failed' AND e.at > pg_catalog.now() - interval '1 day')
                   AS failed_last_day,
               pg_catalog.min(e.at) FILTER (WHERE x.status IN ('pending', 'sending', 'retry')) AS oldest_waiting
          FROM maint.notify_deliveries AS x JOIN maint.events AS e ON e.id = x.event_id
         WHERE x.target = t.name) AS d ON true
 CROSS JOIN LATERAL (
        SELECT pg_catalog.count(*) AS unseen, pg_catalog.min(e.at) AS oldest_unseen
          FROM maint.events AS e
         WHERE e.xid >= t.since_xmin
           AND maint._notify_routed(e.kind, e.severity, e.object, e.detail, t.min_severity, t.kinds)
           AND NOT EXISTS (SELECT 1 FROM maint.notify_deliveries AS y
                            WHERE y.target = t.name AND y.event_id = e.id)) AS u;
COMMENT ON VIEW maint.notify_status IS
    'pgmaint notify: per target, deliveries by status, events not yet considered, the watcher''s last activity';
GRANT SELECT ON maint.notify_status TO maint_monitor;

-- notify_watcher: one finding per target of maint.notify_status.
--   critical  the target gave up on events of the last day (max_attempts failed sends)
--   warning   events wait for more than params.stale (10 minutes) and no watcher has looked
--             for that long (the watcher stopped, or its cron entry did), or the target's
--             sends keep failing: events have waited to be retried for more than
--             params.failing (30 minutes)
--   ok        otherwise. No target: no finding (the runner reports one ok row).
CREATE OR REPLACE FUNCTION maint.health_notify_watcher(p_cfg maint.check_config)
    RETURNS SETOF maint.health_result
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_t record;
    v_stale interval := coalesce((p_cfg.params ->> 'stale')::interval, interval '10 minutes');
    v_failing interval := coalesce((p_cfg.params ->> 'failing')::interval, interval '30 minutes');
    v_now timestamptz := pg_catalog.now();
    v_waiting bigint;
    v_meta jsonb;
    v_where text;
BEGIN
    FOR v_t IN SELECT * FROM maint.notify_status AS s ORDER BY s.name LOOP
        v_waiting := v_t.pending + v_t.sending + v_t.retrying + v_t.unseen;
        v_where := pg_catalog.format('notify target %s (%s)', v_t.name, v_t.label);
        v_meta := pg_catalog.jsonb_build_object('target', v_t.name, 'label', v_t.label, 'waiting', v_waiting,
            'retrying', v_t.retrying, 'failed', v_t.failed, 'oldest_waiting', v_t.oldest_waiting,
            'last_claim_at', v_t.last_claim_at, 'last_sent_at', v_t.last_sent_at, 'last_error', v_t.last_error,
            'watcher', v_t.watcher);
        IF v_t.failed_last_day > 0 THEN
            RETURN NEXT maint._health_row('critical', 'notify target', v_t.name,
                pg_catalog.format('%s gave up on %s event(s) of the last day after repeated failed sends; last error: %s',
                                  v_where, v_t.failed_last_day, coalesce(v_t.last_error, 'none recorded')),
                v_t.failed_last_day::numeric,
                'fix the target (pgmaint notify test NAME), then see the events with SELECT * FROM maint.notify_deliveries '
                'WHERE status = ''failed''; the next reminder or state change is delivered again',
                NULL, v_meta, 'events');
        ELSIF v_waiting > 0 AND v_t.oldest_waiting < v_now - v_stale
              AND coalesce(v_t.last_claim_at, '-infinity') < v_now - v_stale THEN
            RETURN NEXT maint._health_row('warning', 'notify target', v_t.name,
                pg_catalog.format('%s: %s event(s) wait since %s and no watcher has looked since %s (watcher %s): '
                                  'the watcher stopped', v_where, v_waiting, v_t.oldest_waiting,
                                  coalesce(v_t.last_claim_at::text, 'never'), coalesce(v_t.watcher, 'none')),
                pg_catalog.round(extract(epoch FROM v_now - v_t.oldest_waiting)::numeric),
                pg_catalog.format('start it again: systemctl status pgmaint-notify@%1$s (journalctl -u pgmaint-notify@%1$s), '
                                  'or the cron entry that runs pgmaint notify; or forget a target no longer used: '
                                  'SELECT maint.notify_forget(%2$L)', pg_catalog.current_database(), v_t.name),
                NULL, v_meta, 's');
        ELSIF v_t.retrying > 0 AND v_t.oldest_waiting < v_now - v_failing THEN
            RETURN NEXT maint._health_row('warning', 'notify target', v_t.name,
                pg_catalog.format('%s: sends keep failing, %s event(s) wait to be retried since %s; last error: %s',
                                  v_where, v_t.retrying, v_t.oldest_waiting, coalesce(v_t.last_error, 'none recorded')),
                pg_catalog.round(extract(epoch FROM v_now - v_t.oldest_waiting)::numeric),
                'check the target: pgmaint notify test NAME', NULL, v_meta, 's');
        ELSE
            RETURN NEXT maint._health_row('ok', 'notify target', v_t.name,
                pg_catalog.format('%s: %s event(s) waiting, last sent %s, last looked %s', v_where, v_waiting,
                                  coalesce(v_t.last_sent_at::text, 'never'), coalesce(v_t.last_claim_at::text, 'never')),
                p_metadata => v_meta);
        END IF;
    END LOOP;
END
$$;

COMMENT ON FUNCTION maint._notify_admin(name) IS 'Internal: check that a role may deliver events';
COMMENT ON FUNCTION maint._notify_rank(text) IS 'Internal: a severity''s rank for routing';
COMMENT ON FUNCTION maint._notify_routed(text, text, text, jsonb, text, text[]) IS
    'Internal: whether an event goes to a target of a minimum severity and kinds';
COMMENT ON FUNCTION maint._notify_check_route(text, text[]) IS 'Internal: check a target''s route';
COMMENT ON FUNCTION maint._notify_claim(name, text, text, text, text[], text, integer) IS
    'Internal: maint.notify_claim for a checked caller';
COMMENT ON FUNCTION maint.notify_claim(text, text, text, text[], text, integer) IS
    'Claim the events due for a notify target (one message each, or one digest), under a lease';
COMMENT ON FUNCTION maint._notify_done(name, text, bigint, text) IS 'Internal: maint.notify_done for a checked caller';
COMMENT ON FUNCTION maint.notify_done(text, bigint, text) IS
    'Confirm a claimed message: sent, or failed (retried with backoff)';
COMMENT ON FUNCTION maint._notify_forget(name, text) IS 'Internal: maint.notify_forget for a checked caller';
COMMENT ON FUNCTION maint.notify_forget(text) IS 'Forget a notify target and its deliveries';
COMMENT ON FUNCTION maint._set_notify_settings(name, integer, interval, interval, interval, interval, interval,
                                               integer, interval) IS
    'Internal: maint.set_notify_settings for a checked caller';
COMMENT ON FUNCTION maint.set_notify_settings(integer, interval, interval, interval, interval, interval, integer,
                                              interval) IS
    'Change how events are delivered (digests, reminders, leases, retries, backlog)';
COMMENT ON FUNCTION maint.health_notify_watcher(maint.check_config) IS
    'Health check: notify watchers that stopped while events wait, and targets that keep failing';

GRANT EXECUTE ON FUNCTION maint._notify_rank(text), maint._notify_routed(text, text, text, jsonb, text, text[]),
    maint.health_notify_watcher(maint.check_config) TO maint_monitor;
GRANT EXECUTE ON FUNCTION
    maint._notify_admin(name), maint._notify_check_route(text, text[]),
    maint._notify_claim(name, text, text, text, text[], text, integer),
    maint.notify_claim(text, text, text, text[], text, integer),
    maint._notify_done(name, text, bigint, text), maint.notify_done(text, bigint, text),
    maint._notify_forget(name, text), maint.notify_forget(text),
    maint._set_notify_settings(name, integer, interval, interval, interval, interval, interval, integer, interval),
    maint.set_notify_settings(integer, interval, interval, interval, interval, interval, integer, interval)
    TO maint_admin;
