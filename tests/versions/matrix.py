"""The version matrix: the compatibility set against PostgreSQL 13 to 18.

One pytest session per major version (``PGMAINT_TEST_PG_MAJOR``), each with its own
throwaway server, two at a time (the sessions mostly wait on their servers). Prints a
pass table per version and the wall time; exits 1 when any version failed.

    python tests/versions/matrix.py [--jobs N] [13 14 ...] [-- pytest args]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import servers

ROOT = Path(__file__).resolve().parents[2]
# what the matrix runs on every version: the compatibility set (tests/versions/), the
# parts of the main suite that cover deploy, health, cleanup, optimize, backups and the
# schedule SQL, and the security suites (role and privilege rules changed in 14, 16 and
# 17). pg_cron tests skip themselves where pg_cron is missing; the real pg_cron tick and
# the CLI and demo modules run with `make test` on 15 only.
COMPAT_SET = [
    "tests/versions",
    "tests/test_security_cleanup.py",
    "tests/test_security_conditions.py",
    "tests/test_security_kit_tables.py",
    "tests/test_privileges.py",
    "tests/test_trust.py",
    "tests/test_backup_security.py",
    "tests/test_optimize_security.py",
    "tests/test_cron_security.py",
    "tests/test_uninstall.py",
    "tests/test_journal.py",
    "tests/test_deploy.py",
    "tests/test_health_server.py",
    "tests/test_health_vacuum.py",
    "tests/test_health_schema.py",
    "tests/test_health_sessions.py",
    "tests/test_health_kit.py",
    "tests/test_health_runner.py",
    "tests/test_cleanup.py",
    "tests/test_cleanup_archive.py",
    "tests/test_optimize_plans.py",
    "tests/test_optimize_run.py",
    "tests/test_backup_roundtrip.py",
    "tests/test_schedule.py",
    "tests/test_schedule_plan.py",
    "tests/test_schedule_windows.py",
    "tests/test_health_host_jobs.py",
    "tests/test_events.py",
    "tests/test_notify.py",
    "tests/test_health_notify.py",
    "tests/test_health_custom.py",
    "tests/test_health_exposure.py",
    "tests/test_health_size.py",
    "tests/test_health_extensions.py",
    "tests/test_health_indexes.py",
    "tests/test_console_sql.py",
    "tests/test_fleet_metrics_sql.py",
    "tests/test_fleet_check_recorded.py",
]


@dataclass
class Outcome:
    major: int
    version: str = ""
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0
    exit_code: int = 0
    failures: list[str] = field(default_factory=list)
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.failed and not self.errors


def run_one(major: int, workdir: Path, extra: list[str]) -> Outcome:
    out = Outcome(major)
    try:
        out.version = servers.server_version(major)
    except (servers.ServerMissing, subprocess.CalledProcessError, OSError) as exc:
        out.exit_code, out.failures = 4, [str(exc)]
        return out
    junit = workdir / f"pg{major}.xml"
    out.log = workdir / f"pg{major}.log"
    env = dict(os.environ, PGMAINT_TEST_PG_MAJOR=str(major), PGMAINT_MATRIX="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-header",
           f"--junitxml={junit}", *COMPAT_SET, *extra]
    start = time.monotonic()
    with out.log.open("w") as log:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              check=False)
    out.seconds = time.monotonic() - start
    out.exit_code = proc.returncode
    if junit.is_file():
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            if case.find("failure") is not None:
                out.failed += 1
                out.failures.append(name)
            elif case.find("error") is not None:
                out.errors += 1
                out.failures.append(name)
            elif case.find("skipped") is not None:
                out.skipped += 1
            else:
                out.passed += 1
    return out


def table(outcomes: list[Outcome]) -> str:
    lines = ["| major | server | passed | failed | errors | skipped | time |",
             "|---|---|---|---|---|---|---|"]
    for o in sorted(outcomes, key=lambda o: o.major):
        lines.append(f"| {o.major} | {o.version or '-'} | {o.passed} | {o.failed} | {o.errors} "
                     f"| {o.skipped} | {o.seconds:.0f} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    parser = argparse.ArgumentParser(description="Run the compatibility set on PostgreSQL 13-18.")
    parser.add_argument("majors", nargs="*", type=int)
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("PGMAINT_MATRIX_JOBS", 2)))
    args = parser.parse_args(argv)
    majors = args.majors or list(servers.ALL_MAJORS)
    bad = [m for m in majors if m not in servers.ALL_MAJORS]
    if bad:
        print(f"matrix: unsupported major {bad[0]}: use some of {servers.ALL_MAJORS}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="pgmaint-matrix-"))
    start = time.monotonic()
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for o in pool.map(lambda m: run_one(m, workdir, extra), majors):
            state = "ok" if o.ok else "FAILED"
            print(f"PostgreSQL {o.major} ({o.version or 'missing'}): {state}, {o.passed} passed, "
                  f"{o.failed + o.errors} failed, {o.skipped} skipped in {o.seconds:.0f} s",
                  flush=True)
            outcomes.append(o)
    wall = time.monotonic() - start
    print()
    print(table(outcomes))
    print(f"\nwall time {wall:.0f} s for {len(majors)} versions ({args.jobs} at a time); "
          f"logs in {workdir}")
    failed = [o for o in outcomes if not o.ok]
    for o in failed:
        print(f"\nPostgreSQL {o.major}: exit code {o.exit_code}, log {o.log}")
        for name in o.failures[:30]:
            print(f"  {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
