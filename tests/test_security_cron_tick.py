"""Issue 10 with a real pg_cron tick: the nightly retention job runs as maint_runner and
owner1's trigger on the cleaned table runs as owner1, never as the job's role or a superuser.

pg_cron 1.4 has minute granularity: the test waits up to ~75 s (marked slow)."""

from __future__ import annotations

import time

import pytest

from tests.security_support import audit, is_superuser, make_cast, owner_grants


@pytest.mark.slow
def test_a_real_cron_tick_runs_the_retention_job_as_maint_runner_and_triggers_as_the_owner(
        db, pg_server, make_role, admin, pg_cron):
    cast = make_cast(db, pg_server, make_role)
    owner_grants(db, cast.owner1,
                 "CREATE TRIGGER t BEFORE DELETE ON shop.log FOR EACH ROW EXECUTE FUNCTION shop.trg()")
    db.execute("SELECT maint.add_retention_policy('shop.log', 'at', '30 days 12 hours')")
    name = db.info.dbname
    jobs = [
        admin.execute("SELECT cron.schedule_in_database(%s, '* * * * *', %s, %s, 'maint_runner')",
                      (f"maint:retention@{name}", "CALL maint.apply_retention(dry_run => false)",
                       name)).fetchone()[0],
        admin.execute("SELECT cron.schedule_in_database(%s, '* * * * *', %s, %s, 'maint_runner')",
                      (f"maint:health-sample@{name}", "SELECT count(*) FROM maint.record_health_check()",
                       name)).fetchone()[0],
    ]
    try:
        deadline = time.monotonic() + 75
        while time.monotonic() < deadline:
            done = admin.execute(
                "SELECT count(DISTINCT jobid) FROM cron.job_run_details"
                " WHERE jobid = ANY(%s) AND status IN ('succeeded', 'failed')", (jobs,)).fetchone()[0]
            if done == len(jobs):
                break
            time.sleep(1)
        details = admin.execute(
            "SELECT j.jobname, d.status, d.return_message, j.username FROM cron.job_run_details d"
            " JOIN cron.job j USING (jobid) WHERE d.jobid = ANY(%s) ORDER BY d.runid", (jobs,)).fetchall()
    finally:
        for job in jobs:
            admin.execute("SELECT cron.unschedule(%s)", (job,))
    assert {d[0] for d in details} == {f"maint:retention@{name}", f"maint:health-sample@{name}"}, details
    assert all(d[1] == "succeeded" and d[3] == "maint_runner" for d in details), [d[2] for d in details]
    run = db.execute("SELECT status, source, invoked_by, rows_affected FROM maint.runs"
                     " WHERE task = 'retention'").fetchone()
    assert run == ("succeeded", "cron", "maint_runner", 10)
    rows = audit(db)
    assert len(rows) == 10
    assert {(r[1], r[2]) for r in rows} == {(cast.owner1, "maint_runner")}
    assert all("cannot set parameter" in r[3] for r in rows)
    assert not is_superuser(db, cast.owner1)
    assert db.execute("SELECT count(*) FROM maint.health_history").fetchone()[0] > 0
