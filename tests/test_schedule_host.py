"""Host jobs: the units and crontab `schedule install --host` writes (checked with systemd's
and Debian cron's own parsers), the runs they start, the registration and the health check."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from backup_support import backups_dir
from click.testing import CliRunner
from health_support import run_one
from psycopg.rows import dict_row

from orchestrator import schedule_host as sh
from orchestrator.cli import cli

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
CRONTAB = shutil.which("crontab")
needs_systemd = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
needs_cron = pytest.mark.skipif(CRONTAB is None, reason="cron is not installed (apt-get install cron)")
ME = sh.pwd.getpwuid(os.getuid()).pw_name


def invoke(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["--json", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def install(dsn: str, unit_dir: Path, *extra: str) -> dict:
    return invoke("--dsn", dsn, "schedule", "install", "--host", "--unit-dir", str(unit_dir), *extra)


def host_jobs(conn: psycopg.Connection) -> dict[str, dict]:
    return {j["name"]: j for j in sh.list_host_jobs(conn)}


def runs(conn: psycopg.Connection) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT id, task, status, source, job, error FROM maint.runs ORDER BY id")
        return cur.fetchall()


def systemd_words(line: str) -> list[str]:
    """ExecStart= split as systemd does for the quoting the installer uses (double quotes
    with backslash escapes; %% and $$ stand for % and $)."""
    text = line.replace("%%", "\0p").replace("$$", "\0d")
    return [w.replace("\0p", "%").replace("\0d", "$") for w in shlex.split(text)]


def cron_unescape(command: str) -> str:
    """What Debian's cron hands /bin/sh: \\% becomes %, an unescaped % ends the command."""
    out, i = [], 0
    while i < len(command):
        if command[i] == "\\" and command[i + 1:i + 2] == "%":
            out.append("%")
            i += 2
            continue
        assert command[i] != "%", "an unescaped % would end the command"
        out.append(command[i])
        i += 1
    return "".join(out)


def crontab_entries(text: str) -> dict[str, tuple[str, str, str]]:
    """job -> (schedule, user, command) of an /etc/cron.d file (the job is the --job argument)."""
    entries = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or re.match(r"^[A-Z_]+=", line):
            continue
        fields = line.split(None, 6)
        job = re.search(r"--job (\S+)$", line)
        assert job, line
        entries[job.group(1)] = (" ".join(fields[:5]), fields[5], fields[6])
    return entries


def next_elapses(expressions: list[str], base: datetime | None = None, n: int = 1) -> list[datetime]:
    """The next n elapse times (UTC) of a timer with these OnCalendar= values, by systemd."""
    found: set[datetime] = set()
    for expr in expressions:
        args = [SYSTEMD_ANALYZE, "calendar", f"--iterations={n}", expr]
        if base is not None:
            args.insert(2, f"--base-time={base:%Y-%m-%d %H:%M:%S} UTC")
        out = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "TZ": "UTC"},
                             check=True).stdout
        for m in re.finditer(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", out):
            found.add(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC))
    return sorted(found)[:n]


# --- systemd -----------------------------------------------------------------------------


@needs_systemd
def test_systemd_units_verify_and_fire_when_the_kit_says(db, db_dsn, tmp_path):
    units = tmp_path / "units"
    out = install(db_dsn, units, "--backup-dir", str(tmp_path / "b"), "--time-zone", "Europe/Berlin",
                  "--os-user", ME)
    token = db.info.dbname
    names = sorted(p.name for p in units.iterdir())
    assert names == sorted(f"pgmaint-{token}-{j}.{s}" for j in sh.JOB_NAMES for s in ("service", "timer"))
    verify = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", *map(str, sorted(units.iterdir()))],
                            capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    jobs = host_jobs(db)
    assert set(jobs) == set(sh.JOB_NAMES)
    for name in sh.JOB_NAMES:
        timer = (units / f"pgmaint-{token}-{name}.timer").read_text()
        calendars = re.findall(r"^OnCalendar=(.+)$", timer, re.M)
        assert calendars and all(c.endswith(" Europe/Berlin") for c in calendars)
        assert "Persistent=true" in timer
        assert next_elapses(calendars) == [jobs[name]["next_run"].astimezone(UTC)], name
        assert jobs[name]["unit"] == f"pgmaint-{token}-{name}.timer"
        assert jobs[name]["time_zone"] == "Europe/Berlin"
    assert out["commands"][-1] == "systemctl enable --now " + " ".join(
        f"pgmaint-{token}-{n}.timer" for n in sh.JOB_NAMES)
    assert "systemctl daemon-reload" in out["commands"]


@needs_systemd
@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
def test_fires_across_dst_match_systemd(db, zone):
    """The kit reads a schedule on the zone's wall clock as systemd does: a skipped wall
    time does not fire, a repeated one fires once (first occurrence), also at 30-minute shifts."""
    bases = [datetime(2027, 3, 26, tzinfo=UTC), datetime(2027, 10, 29, tzinfo=UTC),
             datetime(2027, 4, 1, tzinfo=UTC), datetime(2027, 11, 5, tzinfo=UTC)]
    for schedule in ("30 2 * * *", "0 1 * * *", "*/20 1-3 * * *", "15 2 1,3 * 0", "0 0 * * 1-5"):
        calendars = sh.on_calendar(db, schedule, zone)
        for base in bases:
            kit = [r[0].astimezone(UTC) for r in db.execute(
                "SELECT f FROM maint._host_job_fires(%s, %s, %s, %s + interval '40 days') AS f LIMIT 6",
                (schedule, zone, base, base)).fetchall()]
            assert kit == next_elapses(calendars, base, 6), (schedule, zone, base)


@needs_systemd
def test_exec_start_quoting_survives_systemd(tmp_path):
    """systemd finds the executable only if it reads the path as written; the arguments
    (quotes, backslashes, %, $) parse."""
    odd = tmp_path / "dir with 100% $HOME"
    odd.mkdir()
    exe = odd / "pgmaint"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    argv = [str(exe), "--dsn", "host=/tmp port=5432 dbname='a b'", "--dir", 'x "y" \\z 5% $HOME',
            "--job", "x"]
    line = sh.exec_start(argv)
    assert systemd_words(line) == argv
    unit = tmp_path / "pgmaint-t-x.service"
    unit.write_text(f"[Service]\nType=oneshot\nExecStart={line}\n")
    verify = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)],
                            capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    with pytest.raises(sh.PgmaintError, match="contains a quote"):
        sh.exec_start(['/opt/a"b/pgmaint', "backup"])


# --- crontab ------------------------------------------------------------------------------


@needs_cron
def test_crontab_parses_and_its_commands_journal_host_runs(db, db_dsn, tmp_path):
    """crontab -n (Debian cron's own parser) accepts the file; each command, run through
    /bin/sh as cron runs it, journals a run with source host and its job's name."""
    cron_dir = tmp_path / "cron.d"
    backups = tmp_path / "backups 50%"
    install(db_dsn, cron_dir, "--format", "crontab", "--backup-dir", str(backups), "--os-user", ME)
    path = cron_dir / f"pgmaint-{db.info.dbname}"
    text = path.read_text()
    check = subprocess.run([CRONTAB, "-n", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    entries = crontab_entries(text)
    assert set(entries) == set(sh.JOB_NAMES)
    assert entries["backup-create"][:2] == ("0 1 * * *", ME)
    assert entries["backup-prune"][0] == "0 5 * * 0"
    registered = host_jobs(db)
    assert all(j["unit"] == str(path) for j in registered.values())
    for name in ("backup-create", "backup-verify", "backup-prune", "optimize"):
        done = subprocess.run(["/bin/sh", "-c", cron_unescape(entries[name][2])], capture_output=True,
                              text=True, env={**os.environ, "PGMAINT_DSN": "", "PGOPTIONS": ""})
        assert done.returncode == 0, (name, done.stderr)
    journal = runs(db)
    assert [(r["task"], r["job"], r["source"], r["status"]) for r in journal] == [
        ("backup", "backup-create", "host", "succeeded"),
        ("backup-verify", "backup-verify", "host", "succeeded"),
        ("backup", "backup-prune", "host", "succeeded"),
        ("optimize", "optimize", "host", "succeeded"),
    ]
    assert len(list(backups_dir(backups, db).iterdir())) == 1
    by_name = host_jobs(db)
    assert by_name["backup-create"]["last_run_id"] == journal[0]["id"]
    assert by_name["optimize"]["last_status"] == "succeeded"


@needs_systemd
def test_a_failing_host_run_is_journaled_as_its_job(db, db_dsn, tmp_path):
    """backup verify with no backup yet fails, in the journal too (systemd runs ExecStart
    without a shell)."""
    units = tmp_path / "units"
    install(db_dsn, units, "--backup-dir", str(tmp_path / "empty"), "--host-include", "backup-verify",
            "--os-user", ME)
    service = (units / f"pgmaint-{db.info.dbname}-backup-verify.service").read_text()
    argv = systemd_words(re.search(r"^ExecStart=(.+)$", service, re.M).group(1))
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "PGMAINT_DSN": ""})
    assert done.returncode != 0 and "no backups of database" in done.stderr
    assert done.stderr.count("\n") == 1  # one line, no traceback
    [run] = runs(db)
    assert (run["task"], run["job"], run["source"], run["status"]) == (
        "backup-verify", "backup-verify", "host", "failed")
    assert "no backups of database" in run["error"]
    [finding] = run_one(db, "host_jobs")
    assert finding["status"] == "critical" and "failed" in finding["detail"]


@needs_cron
def test_crontab_refuses_a_zone_cron_does_not_run_in(db, db_dsn, tmp_path):
    zone = "Asia/Tokyo" if not sh.same_zone(sh.host_time_zone(), "Asia/Tokyo") else "Europe/Berlin"
    result = CliRunner().invoke(cli, ["--dsn", db_dsn, "schedule", "install", "--host", "--format", "crontab",
                                      "--unit-dir", str(tmp_path), "--time-zone", zone])
    assert result.exit_code == 1
    assert "CRON_TZ" in result.output and "--format systemd" in result.output
    assert list(tmp_path.iterdir()) == [] and host_jobs(db) == {}


def test_job_option_validates_and_sets_the_setting(db_dsn):
    with pytest.raises(Exception, match="not a job name"):
        sh.with_job(db_dsn, "Bad name")
    dsn = sh.with_job(db_dsn + " options='-c work_mem=8MB'", "nightly_1")
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT current_setting('pgmaint.job'), current_setting('work_mem')").fetchone()
        assert row == ("nightly_1", "8MB")
    result = CliRunner().invoke(cli, ["--dsn", db_dsn, "backup", "create", "--job", "UPPER"])
    assert result.exit_code == 2 and "not a job name" in result.output


# --- install: idempotent, dry run, left-out jobs, no password --------------------------------


def test_install_twice_changes_nothing_and_left_out_jobs_go(db, db_dsn, tmp_path):
    units = tmp_path / "units"
    first = install(db_dsn + " password=sekret", units, "--backup-dir", str(tmp_path / "b"), "--os-user", ME)
    assert first["changes"] == 12
    assert not any("sekret" in p.read_text() for p in units.iterdir())
    assert not any("sekret" in j["command"] for j in host_jobs(db).values())
    stamps = {p.name: p.stat().st_mtime_ns for p in units.iterdir()}
    updated = {n: j["updated_at"] for n, j in host_jobs(db).items()}
    second = install(db_dsn, units, "--backup-dir", str(tmp_path / "b"), "--os-user", ME)
    assert second["changes"] == 0
    assert {f["action"] for f in second["files"]} == {"unchanged"}
    assert {j["action"] for j in second["jobs"]} == {"unchanged"}
    assert {p.name: p.stat().st_mtime_ns for p in units.iterdir()} == stamps
    assert {n: j["updated_at"] for n, j in host_jobs(db).items()} == updated

    token = db.info.dbname
    wants = units / "timers.target.wants"
    wants.mkdir()
    (wants / f"pgmaint-{token}-optimize.timer").symlink_to(units / f"pgmaint-{token}-optimize.timer")
    foreign = units / f"pgmaint-{token}-backup-prune.service"
    foreign.write_text("[Service]\nExecStart=/bin/true\n")  # not pgmaint's: stays
    third = install(db_dsn, units, "--backup-dir", str(tmp_path / "b"), "--os-user", ME,
                    "--host-include", "backup-create,backup-verify")
    assert set(host_jobs(db)) == {"backup-create", "backup-verify"}
    left = sorted(p.name for p in units.iterdir() if p.is_file())
    assert left == sorted([*(f"pgmaint-{token}-{j}.{s}" for j in ("backup-create", "backup-verify")
                             for s in ("service", "timer")), foreign.name])
    assert not (wants / f"pgmaint-{token}-optimize.timer").is_symlink()
    assert {f["path"]: f["action"] for f in third["files"]}[str(foreign)] == "kept"
    assert third["commands"][0] == (
        f"systemctl stop pgmaint-{token}-backup-prune.timer pgmaint-{token}-optimize.timer")


def test_dry_run_writes_and_registers_nothing(db, db_dsn, tmp_path):
    units = tmp_path / "units"
    result = CliRunner().invoke(cli, ["--dsn", db_dsn, "schedule", "install", "--host", "--dry-run",
                                      "--unit-dir", str(units), "--os-user", ME])
    assert result.exit_code == 0, result.output
    assert "OnCalendar=*-*-* 01:00:00 UTC" in result.output
    assert "12 change(s) would apply" in result.output
    assert not units.exists()
    assert host_jobs(db) == {}


def test_host_options_need_host(db_dsn):
    result = CliRunner().invoke(cli, ["--dsn", db_dsn, "schedule", "install", "--format", "crontab"])
    assert result.exit_code == 2 and "--format applies only with --host" in result.output


# --- registration and privileges ------------------------------------------------------------


def test_register_validates(db):
    args = ["backup-create", "backup_create", "0 1 * * *", "UTC", "pgmaint backup create", "h", "u.timer"]

    def register(**change: str) -> None:
        values = dict(zip(["name", "task", "schedule", "time_zone", "command", "host", "unit"], args,
                          strict=True)) | change
        db.execute("SELECT maint.register_host_job(%(name)s, %(task)s, %(schedule)s, %(time_zone)s,"
                   " %(command)s, %(host)s, %(unit)s)", values)

    for change, message in [({"name": "Bad"}, "invalid job name"),
                            ({"task": "vacuum"}, "unknown host task"),
                            ({"schedule": "0 25 * * *"}, "hour field"),
                            ({"time_zone": "CEST"}, "it is an abbreviation"),
                            ({"time_zone": "+02"}, "POSIX time zone string"),
                            ({"command": "pgmaint --dsn 'password=x' backup"}, "carries a password"),
                            ({"command": "a\nb"}, "one non-empty line"),
                            ({"unit": ""}, "needs the host and the unit")]:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
            register(**change)
    db.execute("INSERT INTO maint.jobs (name, schedule, task, command) VALUES"
               " ('nightly', '0 3 * * *', 'purge_runs', 'CALL maint.purge_runs()')")
    with pytest.raises(psycopg.errors.DuplicateObject, match="is a pg_cron job"):
        register(name="nightly")
    assert db.execute("SELECT maint.unregister_host_job('nightly')").fetchone() == (False,)
    register()
    assert db.execute("SELECT maint.unregister_host_job('backup-create')").fetchone() == (True,)


def test_monitor_reads_admin_registers(db, pg_server, make_role):
    monitor, admin = make_role("maint_monitor"), make_role("maint_admin")
    call = ("SELECT (maint.register_host_job('optimize', 'optimize', '45 4 * * *', 'Europe/Berlin',"
            " 'pgmaint run optimize --execute --job optimize', 'h.example',"
            " 'pgmaint-x-optimize.timer')).name")
    with pg_server.connect(db.info.dbname, user=monitor) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(call)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO maint.jobs (name, runs_on, schedule, task, command)"
                         " VALUES ('x', 'host', '* * * * *', 'optimize', 'x')")
    with pg_server.connect(db.info.dbname, user=admin) as conn:
        assert conn.execute(call).fetchone() == ("optimize",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM maint.jobs")
    with pg_server.connect(db.info.dbname, user=monitor) as conn:
        [job] = sh.list_host_jobs(conn)
        assert job["name"] == "optimize" and job["host"] == "h.example"
        assert job["next_run"] is not None and job["overdue"] is False
        assert [r["status"] for r in run_one(conn, "host_jobs")] == ["ok"]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT maint.unregister_host_job('optimize')")
    with pg_server.connect(db.info.dbname, user=admin) as conn:
        assert conn.execute("SELECT maint.unregister_host_job('optimize')").fetchone() == (True,)


# --- the health check ------------------------------------------------------------------------


def test_install_as_maint_admin_without_superuser(db, pg_server, make_role, tmp_path):
    """A maint_admin login role installs and registers; the units connect as that role."""
    admin = make_role("maint_admin")
    out = install(pg_server.dsn(db.info.dbname, user=admin), tmp_path / "units", "--os-user", ME,
                  "--host-include", "optimize")
    assert [(j["name"], j["action"]) for j in out["jobs"]] == [("optimize", "create")]
    [job] = sh.list_host_jobs(db)
    assert f"user={admin}" in job["command"] and job["command"].endswith("--job optimize")
    assert db.execute("SELECT run_as FROM maint.jobs WHERE name = 'optimize'").fetchone() == (admin,)
