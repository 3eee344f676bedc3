"""pgmaint notify, one-shot: delivery of maint.events through apprise to a real HTTP receiver
(json://) and a real SMTP server (aiosmtpd), retries after failures, digests, routing,
reminders, recoveries, dry runs, bad targets, and who may deliver."""

from __future__ import annotations

import json
import re

import psycopg
import pytest
from click.testing import CliRunner, Result
from notify_support import http_receiver, smtp_receiver

from orchestrator.cli import cli


def notify(dsn: str, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(cli, ["--dsn", dsn, "notify", *args], catch_exceptions=False)


def fail_run(db: psycopg.Connection, task: str = "t", status: str = "failed") -> int:
    run = db.execute("SELECT maint.run_start(%s, '{}', false)", (task,)).fetchone()[0]
    db.execute("SELECT maint.run_finish(%s, %s)", (run, status))
    return run


def event_ids(post: dict) -> list[int]:
    """The events a message carries: 'event: N' (one event) or '(event N, ...' (a digest)."""
    return [int(n) for n in re.findall(r"(?:^event: |\(event )(\d+)", post["message"], re.M)]


def deliveries(db: psycopg.Connection) -> list[tuple]:
    return db.execute("SELECT target, event_id, status, attempts FROM maint.notify_deliveries"
                      " ORDER BY target, event_id").fetchall()


def test_json_webhook_gets_one_message_per_event_with_its_severity(db, db_dsn):
    with http_receiver() as hook:
        first = fail_run(db, "retention")
        fail_run(db, "orphans", "partial")
        result = notify(db_dsn, "--to", hook.url)
        assert result.exit_code == 0, result.output
        posts = hook.wait_for(2)
        assert len(posts) == 2
        assert [p["type"] for p in posts] == ["failure", "warning"]
        assert posts[0]["title"] == (f"[pgmaint] CRITICAL {db.info.dbname}: "
                                     f"run {first} of task retention ended failed")
        body = posts[0]["message"]
        assert "severity: critical" in body and f"database: {db.info.dbname}" in body
        assert f"run: {first} (pgmaint history --task retention)" in body
        ids = [i for p in posts for i in event_ids(p)]
        assert ids == [r[0] for r in db.execute("SELECT id FROM maint.events ORDER BY id")]
        assert "sent message" in result.output
        assert "delivered 2 message(s) (2 event(s)), 0 failed" in result.output
        # delivered once: a second run sends nothing
        assert notify(db_dsn, "--to", hook.url).exit_code == 0
        assert len(hook.wait_for(3, timeout=0.5)) == 2
        assert {r[2] for r in deliveries(db)} == {"sent"}
        # the database knows the target by a name and a masked label, never the URL
        name, label = db.execute("SELECT name, label FROM maint.notify_targets").fetchone()
        assert name.startswith("json-") and label.startswith(f"json://127.0.0.1:{hook.port}/hook")


def test_a_target_that_answers_500_is_retried_with_backoff(db, db_dsn):
    db.execute("SELECT maint.set_notify_settings(retry_first => '1 second')")
    with http_receiver() as hook:
        hook.codes = [500]
        event = db.execute("SELECT maint._event('run', 'critical', 't', 'x failed')").fetchone()[0]
        result = notify(db_dsn, "--to", hook.url)
        assert result.exit_code == 1
        assert "failed (attempt 1; retried later)" in result.output
        assert "0 failed" not in result.output and len(hook.refused) == 1
        [(_, _, status, attempts)] = deliveries(db)
        assert (status, attempts) == ("retry", 1)
        wait, error = db.execute("SELECT next_at - now(), last_error FROM maint.notify_deliveries").fetchone()
        assert 0 < wait.total_seconds() <= 1.5 and "500" in error
        # not due yet: nothing sent
        assert notify(db_dsn, "--to", hook.url).exit_code == 0 and hook.posts == []
        db.execute("UPDATE maint.notify_deliveries SET next_at = now()")  # the backoff has passed
        assert notify(db_dsn, "--to", hook.url).exit_code == 0
        assert [event_ids(p) for p in hook.wait_for(1)] == [[event]]
        assert deliveries(db)[0][2:] == ("sent", 2)
        # the second failure waits twice as long
        hook.codes = [500, 500]
        db.execute("SELECT maint._event('run', 'critical', 't', 'y failed')")
        assert notify(db_dsn, "--to", hook.url).exit_code == 1
        db.execute("UPDATE maint.notify_deliveries SET next_at = now() WHERE status = 'retry'")
        assert notify(db_dsn, "--to", hook.url).exit_code == 1
        wait = db.execute("SELECT next_at - now() FROM maint.notify_deliveries"
                          " WHERE status = 'retry'").fetchone()[0]
        assert 1.0 < wait.total_seconds() <= 2.5


def test_email_through_a_real_smtp_server(db, db_dsn):
    with smtp_receiver() as (port, mails):
        fail_run(db, "retention")
        url = f"mailto://127.0.0.1:{port}?from=pgmaint@example.com&to=ops@example.com"
        result = notify(db_dsn, "--to", url)
        assert result.exit_code == 0, result.output
        [mail] = mails
        assert mail["To"] == "ops@example.com" and "pgmaint@example.com" in mail["From"]
        assert mail["Subject"].startswith(f"[pgmaint] CRITICAL {db.info.dbname}: run ")
        part = mail.get_payload(0) if mail.is_multipart() else mail
        text = part.get_payload(decode=True)
        assert b"severity: critical" in text


def test_a_failing_cleanup_and_a_check_going_ok_warning_ok(db, db_dsn, make_role):
    """Three events: the failed run, the warning, the recovery; two messages and a recovery."""
    db.execute("CREATE TABLE public.logs (id int PRIMARY KEY, created_at timestamptz NOT NULL)")
    db.execute("INSERT INTO public.logs SELECT g, now() - interval '10 days' FROM generate_series(1, 50) g")
    db.execute("SELECT maint.add_retention_policy('public.logs', 'created_at', '1 day')")
    with pytest.raises(psycopg.errors.TriggeredActionException):
        db.execute("CALL maint.apply_retention(dry_run => false)")   # the guard refuses: all rows old
    db.execute("SELECT count(*) FROM maint.record_health_check(ARRAY['superusers'])")
    extra = [make_role(attributes="SUPERUSER"), make_role(attributes="SUPERUSER")]
    db.execute("SELECT count(*) FROM maint.record_health_check(ARRAY['superusers'])")   # warning
    db.execute("SELECT count(*) FROM maint.record_health_check(ARRAY['superusers'])")   # no change
    for role in extra:
        db.execute(f'ALTER ROLE "{role}" NOSUPERUSER')
    db.execute("SELECT count(*) FROM maint.record_health_check(ARRAY['superusers'])")   # ok again
    assert [r[0] for r in db.execute("SELECT severity FROM maint.events ORDER BY id")] == [
        "critical", "warning", "recovery"]
    with http_receiver() as hook:
        assert notify(db_dsn, "--to", hook.url).exit_code == 0
        posts = hook.wait_for(3)
    assert [p["type"] for p in posts] == ["failure", "warning", "success"]
    assert "retention ended failed" in posts[0]["title"]
    assert posts[1]["title"].startswith(f"[pgmaint] WARNING {db.info.dbname}: superusers")
    assert posts[2]["title"].startswith(f"[pgmaint] RECOVERED {db.info.dbname}: superusers")
    assert "warning -> ok" in posts[2]["message"]


def test_a_task_that_succeeds_again_is_a_recovery(db):
    failed = fail_run(db, "retention")
    ok = db.execute("SELECT maint.run_start('retention', '{}', false)").fetchone()[0]
    db.execute("SELECT maint.run_finish(%s, 'succeeded')", (ok,))
    again = db.execute("SELECT maint.run_start('retention', '{}', false)").fetchone()[0]
    db.execute("SELECT maint.run_finish(%s, 'succeeded')", (again,))   # no second recovery
    rows = db.execute("SELECT severity, summary, detail FROM maint.events ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["critical", "recovery"]
    assert rows[1][1] == f"task retention succeeded again (run {ok}) after run {failed} ended failed"
    assert rows[1][2]["from"] == "critical"


def test_many_events_at_once_become_one_digest_and_a_storm_waits_for_its_window(db, db_dsn):
    with http_receiver() as hook:
        ids = [fail_run(db, f"task{i}") for i in range(8)]
        assert notify(db_dsn, "--to", hook.url).exit_code == 0
        [digest] = hook.wait_for(1)
        assert digest["title"].startswith(f"[pgmaint] CRITICAL 8 events on {db.info.dbname} (8 critical)")
        assert len(event_ids(digest)) == 8 and all(f"run {i} of task" in digest["message"] for i in ids)
        # 1 message in this window: 2 more may go alone, a third event then waits
        fail_run(db, "a")
        fail_run(db, "b")
        assert notify(db_dsn, "--to", hook.url).exit_code == 0
        assert len(hook.wait_for(3)) == 3
        fail_run(db, "c")
        fail_run(db, "d")
        result = notify(db_dsn, "--to", hook.url)
        assert result.exit_code == 0 and "delivered 0 message(s)" in result.output
        assert "2 event(s) wait for a digest window" in result.output
        # the window frees: the waiting events go as one digest
        db.execute("UPDATE maint.notify_deliveries SET claimed_at = claimed_at - interval '61 seconds'")
        db.execute("UPDATE maint.events SET at = at - interval '61 seconds'")
        assert notify(db_dsn, "--to", hook.url).exit_code == 0
        posts = hook.wait_for(4)
        assert len(posts) == 4 and len(event_ids(posts[3])) == 2


def test_routing_by_severity_and_kind_and_recoveries_follow_their_problem(db, db_dsn, tmp_path):
    config = tmp_path / "notify.toml"
    with http_receiver() as pager, http_receiver() as chat:
        config.write_text(f'[targets.pager]\nurl = "{pager.url}"\nmin_severity = "critical"\n\n'
                          f'[targets.chat]\nurl_env = "CHAT_URL"\nkinds = ["health", "run:retention"]\n')
        fail_run(db, "retention", "partial")                         # warning, run:retention
        fail_run(db, "orphans", "failed")                            # critical, run:orphans
        ok = db.execute("SELECT maint.run_start('retention', '{}', false)").fetchone()[0]
        db.execute("SELECT maint.run_finish(%s, 'succeeded')", (ok,))   # recovery from a warning
        db.execute("SELECT maint._event('health', 'critical', 'x:y', 'x is critical')")
        result = notify(db_dsn, "--config", str(config), env={"CHAT_URL": chat.url})
        assert result.exit_code == 0, result.output
        pager_posts, chat_posts = pager.wait_for(2), chat.wait_for(3)
    assert [p["title"].split(": ", 1)[1] for p in pager_posts] == [
        "run 2 of task orphans ended failed", "x is critical"]
    assert [p["type"] for p in chat_posts] == ["warning", "success", "failure"]
    routes = db.execute("SELECT name, min_severity, kinds FROM maint.notify_targets ORDER BY name").fetchall()
    assert routes == [("chat", "warning", ["health", "run:retention"]), ("pager", "critical", None)]


def test_a_check_that_stays_critical_is_a_reminder(db, db_dsn):
    db.execute("SELECT maint.check_configure('superusers', warn => 0, crit => 1)")
    sample = "SELECT count(*) FROM maint.record_health_check(ARRAY['superusers'])"
    with http_receiver() as hook:
        db.execute(sample)
        db.execute(sample)
        assert db.execute("SELECT count(*) FROM maint.events").fetchone()[0] == 1   # the change only
        assert notify(db_dsn, "--to", hook.url, "--kind", "health").exit_code == 0
        db.execute("UPDATE maint.events SET at = at - interval '5 hours'")          # 5 hours later
        db.execute(sample)
        rows = db.execute("SELECT severity, summary, detail FROM maint.events ORDER BY id").fetchall()
        assert len(rows) == 2 and rows[1][0] == "critical" and rows[1][2]["reminder"] is True
        assert rows[1][1].startswith("superusers on superusers still critical since ")
        db.execute(sample)                                                          # not again so soon
        assert db.execute("SELECT count(*) FROM maint.events").fetchone()[0] == 2
        assert notify(db_dsn, "--to", hook.url, "--kind", "health").exit_code == 0
        titles = [p["title"] for p in hook.wait_for(2)]
    assert titles[0].startswith(f"[pgmaint] CRITICAL {db.info.dbname}: superusers")
    assert titles[1].startswith(f"[pgmaint] STILL CRITICAL {db.info.dbname}: superusers")
    db.execute("SELECT maint.set_notify_settings(remind_after => '0')")        # reminders off
    db.execute("UPDATE maint.events SET at = at - interval '5 hours'")
    db.execute(sample)
    assert db.execute("SELECT count(*) FROM maint.events").fetchone()[0] == 2


def test_dry_run_shows_and_sends_and_marks_nothing(db, db_dsn):
    with http_receiver() as hook:
        run = fail_run(db)
        result = CliRunner().invoke(cli, ["--dsn", db_dsn, "--json", "notify", "--to", hook.url, "--dry-run"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        [(name, messages)] = json.loads(result.output).items()
        assert name.startswith("json-") and len(messages) == 1
        assert messages[0]["severity"] == "critical" and f"run {run} of task t" in messages[0]["title"]
        assert hook.wait_for(1, timeout=0.5) == []
        assert db.execute("SELECT count(*) FROM maint.notify_targets").fetchone()[0] == 0
        assert notify(db_dsn, "--to", hook.url).exit_code == 0 and len(hook.wait_for(1)) == 1


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--to", "nosuchservice://x"], {}, "invalid notify target #1 of --to: apprise does not accept the URL "
                                        "'nosuchservice://...'"),
    ([], {"PGMAINT_NOTIFY_URLS": "json://127.0.0.1:9/a bogus"},
     "invalid notify target #2 of $PGMAINT_NOTIFY_URLS"),
    ([], {}, "no notify targets: give --to URL"),
    (["--to", "json://127.0.0.1:9/a", "--kind", "disk"], {}, "invalid event kind 'disk'"),
    (["--to", "json://127.0.0.1:9/a", "--to", "json://127.0.0.1:9/a"], {}, "is given twice"),
])
def test_bad_targets_are_refused_at_start_in_one_line(db, db_dsn, args, env, message):
    result = notify(db_dsn, *args, env={"PGMAINT_NOTIFY_URLS": "", **env})
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"Error: {result.output.strip()[7:]}"]
    assert message in result.output and "Traceback" not in result.output
    assert "secret" not in result.output


@pytest.mark.parametrize(("text", "message"), [
    ('[targets.a]\nurl = "json://h/x"\nurl_env = "X"\n', "give exactly one of url and url_env"),
    ('[targets.a]\nurl_env = "PGMAINT_NO_SUCH_VAR"\n', "environment variable PGMAINT_NO_SUCH_VAR is not set"),
    ('[targets.a]\nurl = "json://h/x"\nseverity = "critical"\n', "unknown key(s) severity"),
    ('[targets.a]\nurl = "json://h/x"\nmin_severity = "loud"\n', "invalid min_severity 'loud'"),
    ('[targets."a b"]\nurl = "json://h/x"\n', "invalid target name 'a b'"),
    ("[targets.a\n", "is not valid TOML"),
])
def test_bad_config_files_are_refused_naming_the_problem(db_dsn, tmp_path, text, message):
    config = tmp_path / "notify.toml"
    config.write_text(text)
    result = notify(db_dsn, "--config", str(config))
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_an_unreachable_target_is_retried_and_reported(db, db_dsn):
    fail_run(db)
    result = notify(db_dsn, "--to", "json://127.0.0.1:9/hook")    # nothing listens on port 9
    assert result.exit_code == 1 and "failed (attempt 1; retried later)" in result.output
    status = db.execute("SELECT retrying, last_error FROM maint.notify_status").fetchone()
    assert status[0] == 1 and "onnection" in status[1]


def test_notify_test_sends_a_test_message(db_dsn, tmp_path):
    with http_receiver() as hook:
        config = tmp_path / "n.toml"
        config.write_text(f'[targets.ops]\nurl = "{hook.url}"\n')
        result = CliRunner().invoke(cli, ["notify", "test", "ops", "--config", str(config)])
        assert result.exit_code == 0, result.output
        assert "sent a test message to ops" in result.output
        [post] = hook.wait_for(1)
        assert post["title"].startswith("[pgmaint] INFO ") and "test message from pgmaint" in post["message"]
    result = CliRunner().invoke(cli, ["notify", "test", "json://127.0.0.1:9/x"])
    assert result.exit_code == 1 and "the test message to json-" in result.output
    result = CliRunner().invoke(cli, ["notify", "test", "nope", "--config", str(config)])
    assert result.exit_code == 1 and "no notify target named 'nope'" in result.output


def test_status_and_forget(db, db_dsn):
    with http_receiver() as hook:
        fail_run(db)
        assert notify(db_dsn, "--to", hook.url).exit_code == 0
    result = CliRunner().invoke(cli, ["--dsn", db_dsn, "--json", "notify", "status"], catch_exceptions=False)
    [row] = json.loads(result.output)
    assert row["sent"] == 1 and row["pending"] == 0 and row["last_sent_at"]
    assert notify(db_dsn, "forget", row["name"]).exit_code == 0
    assert db.execute("SELECT count(*) FROM maint.notify_deliveries").fetchone()[0] == 0
    assert notify(db_dsn, "forget", row["name"]).exit_code == 1


def test_only_admins_deliver_and_monitors_read(db, pg_server, make_role):
    fail_run(db)
    monitor, admin_role = make_role("maint_monitor"), make_role("maint_admin")
    with psycopg.connect(pg_server.dsn(db.info.dbname, user=monitor), autocommit=True) as conn:
        for stmt in ("SELECT * FROM maint.notify_claim('x', 'x')",
                     "SELECT maint._notify_claim('postgres', 'x', 'x', 'warning', NULL, 'w', 10)",
                     "SELECT maint.notify_done('x', 1)", "SELECT maint.notify_forget('x')",
                     "SELECT maint.set_notify_settings(digest_after => 5)",
                     "UPDATE maint.notify_deliveries SET status = 'sent'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(stmt)
    with psycopg.connect(pg_server.dsn(db.info.dbname, user=admin_role), autocommit=True) as conn:
        [row] = conn.execute("SELECT event_id, severity FROM maint.notify_claim('x', 'x')").fetchall()
        assert row[1] == "critical"
        # another role's name is refused: the internal checks the caller is a role of the session
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="is not a role of this session"):
            conn.execute("SELECT maint._notify_claim('postgres', 'x', 'x', 'warning', NULL, 'w', 10)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE maint.notify_deliveries SET status = 'pending'")
    with psycopg.connect(pg_server.dsn(db.info.dbname, user=monitor), autocommit=True) as conn:
        assert conn.execute("SELECT sending FROM maint.notify_status").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM maint.notify_deliveries").fetchone()[0] == 1


def test_bad_input_to_the_sql_api_is_refused_naming_it(db):
    for stmt, message in [
        ("SELECT * FROM maint.notify_claim('a b', 'x')", "invalid notify target name 'a b'"),
        ("SELECT * FROM maint.notify_claim('a', 'x', 'loud')", "invalid minimum severity 'loud'"),
        ("SELECT * FROM maint.notify_claim('a', 'x', kinds => ARRAY['disk'])",
         "invalid event kind(s) 'disk'"),
        ("SELECT * FROM maint.notify_claim('a', 'x', max_events => 0)", "invalid limit 0"),
        ("SELECT maint.set_notify_settings(remind_after => '1 minute')",
         "remind_after must be at least 5 minutes"),
        ("SELECT maint.set_notify_settings(digest_after => 0)",
         "digest_after and max_attempts are 1 to 1000"),
    ]:
        with pytest.raises(psycopg.errors.InvalidParameterValue) as exc:
            db.execute(stmt)
        assert message in str(exc.value)
    assert db.execute("SELECT count(*) FROM maint.notify_targets").fetchone()[0] == 0


def test_an_event_committed_after_a_newer_one_is_not_skipped(db, pg_server):
    """Event ids are handed out before commit: the cursor is a snapshot xmin, not an id."""
    with psycopg.connect(pg_server.dsn(db.info.dbname)) as slow:   # not autocommit: stays open
        slow.execute("SELECT maint._event('run', 'critical', 'slow', 'the older id')")
        db.execute("SELECT maint._event('run', 'critical', 'fast', 'the newer id')")
        first = db.execute("SELECT summary FROM maint.notify_claim('t', 't')").fetchall()
        assert first == [("the newer id",)]
        slow.commit()
    db.execute("UPDATE maint.notify_deliveries SET claimed_at = NULL")   # no digest window in the way
    assert db.execute("SELECT summary FROM maint.notify_claim('t', 't')").fetchall() == [("the older id",)]


def test_purging_events_takes_their_deliveries(db):
    fail_run(db)
    db.execute("SELECT * FROM maint.notify_claim('t', 't')")
    db.execute("UPDATE maint.events SET at = at - interval '100 days'")
    db.execute("CALL maint.purge_history(dry_run => false)")
    assert db.execute("SELECT count(*) FROM maint.notify_deliveries").fetchone()[0] == 0
