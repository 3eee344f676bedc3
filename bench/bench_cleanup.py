"""Benchmark of the cleanup engine against single-statement deletes, measured in the same run.

For a log table of --rows rows (append-only: ids grow with time) with 50% expired:
  * rows/s of one unbatched DELETE (the baseline), of CALL maint.apply_retention with
    archive off and on (keyset batches of --batch rows), and the archive's size against
    the removed rows' share of the table's heap;
  * the latency a concurrent workload sees meanwhile: a second connection updating random
    *live* rows in a bounded loop; p99 and max against the same loop on an idle table, and
    every error it got (a deadlock, a lock timeout);
  * partition retention of the same data (10 range partitions, 5 expired), archive off
    and on: seconds, and again with twice the rows per partition (O(1): the same time);
    then once more while a long reader keeps scanning the old partitions through the
    parent, with the workload updating through the parent: no error, no wait beyond the
    rule's lock timeout.
Then orphan and duplicate removal on --rows/5 rows with 10% to go, against one statement.

Starts a throwaway server (orchestrator.sandbox, fsync off) unless PGMAINT_DSN is set.
Usage: python bench/bench_cleanup.py [--rows 5000000] [--batch 10000]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from orchestrator import deploy
from orchestrator.sandbox import Sandbox

DAYS = 200          # the log spans 200 days; retention keeps 100 -> 50% expired
PART_REPEAT = 5     # partition retention runs per configuration (the median is reported)
KEEP = "100 days"


class Workload(threading.Thread):
    """UPDATE of one random live row per iteration, until stopped (at most max_ops); every
    error (deadlock, timeout) is kept, the loop goes on."""

    def __init__(self, dsn: str, lo: int, hi: int, max_ops: int = 500_000) -> None:
        super().__init__(daemon=True)
        self.dsn, self.lo, self.hi, self.max_ops = dsn, lo, hi, max_ops
        self.stop = threading.Event()
        self.lat: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        rnd = random.Random(7)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '30s'")
            for _ in range(self.max_ops):
                if self.stop.is_set():
                    break
                t = time.perf_counter()
                try:
                    conn.execute("UPDATE bench.api_log SET status = status + 1 WHERE id = %s",
                                 (rnd.randint(self.lo, self.hi),))
                except psycopg.Error as exc:
                    self.errors.append(str(exc).splitlines()[0])
                self.lat.append(time.perf_counter() - t)


class LongReader(threading.Thread):
    """A report that scans the old rows through the parent for half a second at a time
    (holding its locks on the parent and the old partitions), again and again."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.stop = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                try:
                    with conn.transaction():
                        conn.execute("SELECT count(*) FROM bench.api_log WHERE created_at < "
                                     f"date_trunc('day', now()) - interval '{KEEP}'")
                        conn.execute("SELECT pg_sleep(0.5)")
                except psycopg.Error as exc:
                    if "does not exist" not in str(exc):
                        self.errors.append(str(exc).splitlines()[0])
                time.sleep(0.05)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


ERRORS: list[str] = []   # every error a workload got, reported at the end


def timed(dsn: str, rows: int, fn: Callable[[psycopg.Connection], None],
          reader: bool = False) -> tuple[float, list[float], float]:
    """Run fn on its own connection while the workload runs (and a long reader, if asked).

    Returns (seconds, latencies of the live-row workload, worst wait of a probe that
    updates random *doomed* rows meanwhile -- what a delete's row locks cost others).
    The workloads' errors go to ERRORS."""
    w = Workload(dsn, rows // 2 + 1, rows)
    probe = Workload(dsn, 1, rows // 2)
    long_reader = LongReader(dsn) if reader else None
    w.start()
    time.sleep(0.3)   # let the workload warm up
    probe.start()
    if long_reader is not None:
        long_reader.start()
        time.sleep(0.2)
    with psycopg.connect(dsn, autocommit=True) as conn:
        t = time.perf_counter()
        fn(conn)
        elapsed = time.perf_counter() - t
    for x in (w, probe, long_reader):
        if x is not None:
            x.stop.set()
            x.join()
    ERRORS.extend(w.errors + probe.errors + (long_reader.errors if long_reader else []))
    return elapsed, w.lat, max(probe.lat, default=0.0)


def make_log(conn: psycopg.Connection, rows: int, partitioned: bool = False) -> None:
    conn.execute("DROP TABLE IF EXISTS bench.api_log")
    part = " PARTITION BY RANGE (created_at)" if partitioned else ""
    pk = "PRIMARY KEY (id, created_at)" if partitioned else "PRIMARY KEY (id)"
    conn.execute(f"CREATE TABLE bench.api_log (id bigint NOT NULL, "
                 f"created_at timestamptz NOT NULL, method text, path text, status int, "
                 f"{pk}){part}")
    if partitioned:
        for i in range(DAYS // 20):
            conn.execute(
                f"CREATE TABLE bench.api_log_p{i} PARTITION OF bench.api_log FOR VALUES "
                f"FROM (date_trunc('day', now()) - interval '{DAYS - 20 * i} days') "
                f"TO (date_trunc('day', now()) - interval '{DAYS - 20 * (i + 1)} days')")
        conn.execute("CREATE TABLE bench.api_log_future PARTITION OF bench.api_log "
                     "FOR VALUES FROM (date_trunc('day', now())) TO (MAXVALUE)")
    conn.execute("INSERT INTO bench.api_log "
                 "SELECT id, created_at, method, path, status FROM bench.src")
    conn.execute("CREATE INDEX ON bench.api_log (created_at)")
    conn.execute("VACUUM ANALYZE bench.api_log")
    conn.execute("CHECKPOINT")   # the load's WAL is not flushed in the middle of a measurement


def retention_rule(conn: psycopg.Connection, archive: bool, batch: int) -> None:
    conn.execute("DELETE FROM maint.cleanup_rules")
    conn.execute("CALL maint.purge_archive(older_than => '0', dry_run => false)")
    conn.execute("SELECT maint.add_retention_policy('bench.api_log', 'created_at', %s, "
                 "batch_size => %s, archive => %s)", (KEEP, batch, archive))


def expired(conn: psycopg.Connection) -> int:
    row = conn.execute(f"SELECT count(*) FROM bench.api_log WHERE created_at < "
                       f"date_trunc('day', now()) - interval '{KEEP}'").fetchone()
    assert row is not None
    return row[0]


def report(name: str, rows: int, secs: float, lat: list[float], base: float | None,
           idle_p99: float, doomed: float, label: str = "  base") -> None:
    ratio = f"{rows / secs / base:6.0%}" if base else f"{label:>6}"
    p99 = pct(lat, 0.99)
    print(f"{name:30} {rows:>10,} rows {secs:7.2f} s {rows / secs:>11,.0f} rows/s {ratio} "
          f"| live rows: p99 {p99 * 1000:6.2f} ms ({p99 / idle_p99:4.1f}x idle) "
          f"max {max(lat, default=0) * 1000:7.1f} ms | doomed-row update waited "
          f"up to {doomed * 1000:7.1f} ms")


def bench_retention(dsn: str, rows: int, batch: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
        conn.execute("DROP TABLE IF EXISTS bench.src")
        # append-only log: id grows with time; rows spread evenly over DAYS days, aligned
        # to whole days so partition bounds and the cut-off meet exactly
        conn.execute(
            "CREATE TABLE bench.src AS SELECT g::bigint AS id, "
            f"date_trunc('day', now()) - interval '{DAYS} days' "
            f"+ (g - 1) * (interval '{DAYS} days' / %s) AS created_at, "
            "(ARRAY['GET','POST'])[1 + g %% 2] AS method, '/api/v1/items/' || g AS path, "
            "200 AS status FROM generate_series(1, %s) AS g", (rows, rows))
        make_log(conn, rows)
        n = expired(conn)

    # idle baseline of the workload: the same two loops (live rows and the doomed-row
    # probe) that run during every measurement, with nothing else going on
    w = Workload(dsn, rows // 2 + 1, rows)
    probe = Workload(dsn, 1, rows // 2)
    w.start()
    probe.start()
    time.sleep(3.0)
    for x in (w, probe):
        x.stop.set()
        x.join()
    idle_p99 = pct(w.lat, 0.99)
    print(f"log table: {rows:,} rows, {n:,} expired ({n / rows:.0%}); batch {batch:,}; "
          f"idle workload p99 {idle_p99 * 1000:.2f} ms, max {max(w.lat) * 1000:.1f} ms "
          f"(n={len(w.lat)})")

    cut = f"date_trunc('day', now()) - interval '{KEEP}'"
    secs, lat, doomed = timed(dsn, rows, lambda c: c.execute(
        f"DELETE FROM bench.api_log WHERE created_at < {cut}"))
    base = n / secs
    report("one unbatched DELETE", n, secs, lat, None, idle_p99, doomed)

    for archive in (False, True):
        with psycopg.connect(dsn, autocommit=True) as conn:
            make_log(conn, rows)
            retention_rule(conn, archive, batch)
            heap = conn.execute("SELECT pg_relation_size('bench.api_log')").fetchone()
        secs, lat, doomed = timed(dsn, rows, lambda c: c.execute(
            "CALL maint.apply_retention(dry_run => false, force => true, time_limit => '1 hour')"))
        name = f"apply_retention archive {'on' if archive else 'off'}"
        report(name, n, secs, lat, base, idle_p99, doomed)
        if archive and heap is not None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                size = conn.execute(
                    "SELECT coalesce(sum(pg_relation_size(c.oid)), 0)::bigint FROM pg_class AS c "
                    "WHERE c.relnamespace = 'maint_archive'::regnamespace AND c.relkind = 'r'"
                ).fetchone()
            removed = heap[0] * n / rows   # the removed rows' share of the table's heap
            print(f"{'archive size':30} {size[0] / 1e6 if size else 0:10.1f} MB for "
                  f"{removed / 1e6:.1f} MB of removed rows' heap: "
                  f"{(size[0] if size else 0) / removed:.2f}x")

    # the same three alone on the server: what the engine's work costs against one DELETE,
    # without two busy loops sharing the two cores (the ratios above include them)
    quiet: dict[str, float] = {}
    for name, archive in (("DELETE", None), ("archive off", False), ("archive on", True)):
        with psycopg.connect(dsn, autocommit=True) as conn:
            make_log(conn, rows)
            if archive is not None:
                retention_rule(conn, archive, batch)
            t = time.perf_counter()
            conn.execute(f"DELETE FROM bench.api_log WHERE created_at < {cut}" if archive is None
                         else "CALL maint.apply_retention(dry_run => false, force => true, "
                              "time_limit => '1 hour')")
            quiet[name] = time.perf_counter() - t
    print(f"{'alone on the server':30} one DELETE {quiet['DELETE']:.2f} s; apply_retention archive off "
          f"{quiet['archive off']:.2f} s ({quiet['DELETE'] / quiet['archive off']:.0%}), archive on "
          f"{quiet['archive on']:.2f} s ({quiet['DELETE'] / quiet['archive on']:.0%})")

    # partition retention: O(1) whatever the partitions hold (twice the rows, same time)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench.src_small")
        conn.execute("ALTER TABLE bench.src RENAME TO src_small")
        conn.execute("CREATE TABLE bench.src AS SELECT * FROM bench.src_small")
    times: dict[tuple[int, bool], float] = {}
    for size in (rows, 2 * rows):
        if size != rows:
            with psycopg.connect(dsn, autocommit=True) as conn:
                # twice the rows in the same ranges: each row again with an id above them
                conn.execute("INSERT INTO bench.src SELECT id + %s, created_at, method, path, status "
                             "FROM bench.src_small", (rows,))
        for archive in (False, True):
            runs = []
            for _ in range(PART_REPEAT):   # a run takes ~0.1 s: the median of a few
                with psycopg.connect(dsn, autocommit=True) as conn:
                    make_log(conn, size, partitioned=True)
                    retention_rule(conn, archive, batch)
                # alone on the server: what the engine's work costs, not how two shared
                # cores are split with the workload (the phase below runs with it)
                with psycopg.connect(dsn, autocommit=True) as conn:
                    t = time.perf_counter()
                    conn.execute("CALL maint.apply_retention(dry_run => false, force => true, "
                                 "time_limit => '1 hour')")
                    runs.append(time.perf_counter() - t)
                res, left = last_rule_result(dsn)
                assert left == 0, f"partition retention left {left} expired rows"
            secs = sorted(runs)[len(runs) // 2]
            times[(size, archive)] = secs
            print(f"{'partitions ' + ('kept' if archive else 'dropped'):30} "
                  f"{len(res['partitions_dropped'])} of {DAYS // 20 + 1}, "
                  f"{size // (DAYS // 20):>9,} rows each: "
                  f"{secs:.3f} s (median of {PART_REPEAT}: {', '.join(f'{r:.3f}' for r in runs)})")
    for archive in (False, True):
        ratio = times[(2 * rows, archive)] / times[(rows, archive)]
        print(f"{'partition retention, archive ' + ('on' if archive else 'off'):30} "
              f"{times[(rows, archive)]:.3f} s; twice the rows per partition: {ratio:.2f}x the time "
              f"(medians of {PART_REPEAT})")
    # with the workload updating through the parent, and then also a long reader scanning
    # the old partitions through it: no error, no wait beyond one lock attempt
    with psycopg.connect(dsn, autocommit=True) as conn:
        make_log(conn, rows, partitioned=True)
        retention_rule(conn, True, batch)
    secs, lat, doomed = timed(dsn, rows, lambda c: c.execute(
        "CALL maint.apply_retention(dry_run => false, force => true, time_limit => '1 hour')"))
    res, left = last_rule_result(dsn)
    assert left == 0, f"partition retention left {left} expired rows"
    report(f"partitions kept, workload ({len(res['partitions_dropped'])})", n, secs, lat, None,
           idle_p99, doomed, label="")
    with psycopg.connect(dsn, autocommit=True) as conn:
        make_log(conn, rows, partitioned=True)
        retention_rule(conn, True, batch)
    secs, lat, doomed = timed(dsn, rows, lambda c: c.execute(
        "CALL maint.apply_retention(dry_run => false, force => true, time_limit => '1 hour')"),
        reader=True)
    res, left = last_rule_result(dsn)
    report(f"partitions kept, long reader ({len(res['partitions_dropped'])}, "
           f"{res.get('lock_retries', 0)} retries)", n, secs, lat, None, idle_p99, doomed,
           label="")


def last_rule_result(dsn: str) -> tuple[dict, int]:
    """The last run's (first) rule result and how many expired rows are left."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT detail FROM maint.runs WHERE task = 'retention' "
                           "ORDER BY id DESC LIMIT 1").fetchone()
        assert row is not None
        return next(iter(row[0]["rules"].values())), expired(conn)


def bench_orphans_dupes(dsn: str, rows: int, batch: int) -> None:
    m = max(rows // 5, 10_000)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench.parent, bench.child_src, bench.dup_src")
        conn.execute("CREATE TABLE bench.parent (id bigint PRIMARY KEY)")
        conn.execute("INSERT INTO bench.parent SELECT g FROM generate_series(1, %s) g", (m,))
        # 10% of the children reference a parent id beyond the parents (orphans)
        conn.execute("CREATE TABLE bench.child_src AS SELECT g::bigint AS id, "
                     "CASE WHEN g %% 10 = 0 THEN %s + g ELSE 1 + g %% %s END::bigint AS parent_id, "
                     "'x' AS payload FROM generate_series(1, %s) g", (m, m, m))
        # 10% of the rows repeat the key of another row (duplicates)
        conn.execute("CREATE TABLE bench.dup_src AS SELECT g::bigint AS id, "
                     "CASE WHEN g %% 10 = 0 THEN g - 1 ELSE g END AS k, 'x' AS payload "
                     "FROM generate_series(1, %s) g", (m,))

    def fresh(name: str, src: str, index: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS bench.{name}")
            conn.execute(f"CREATE TABLE bench.{name} AS SELECT * FROM bench.{src}")
            conn.execute(f"ALTER TABLE bench.{name} ADD PRIMARY KEY (id)")
            conn.execute(f"CREATE INDEX ON bench.{name} ({index})")
            conn.execute(f"VACUUM ANALYZE bench.{name}")
            conn.execute("DELETE FROM maint.cleanup_rules")

    def run(fn: Callable[[psycopg.Connection], None]) -> float:
        with psycopg.connect(dsn, autocommit=True) as conn:
            t = time.perf_counter()
            fn(conn)
            return time.perf_counter() - t

    n = m // 10
    print(f"\norphans and duplicates: {m:,} rows, {n:,} to go (10%); batch {batch:,}")
    fresh("child", "child_src", "parent_id")
    base = n / run(lambda c: c.execute(
        "DELETE FROM bench.child AS c WHERE c.parent_id IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM bench.parent AS p WHERE p.id = c.parent_id)"))
    print(f"{'orphans: one DELETE ... NOT EXISTS':40} {base:>11,.0f} rows/s  base")
    for archive in (False, True):
        fresh("child", "child_src", "parent_id")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT maint.add_orphan_rule('bench.child', ARRAY['parent_id'], "
                         "'bench.parent', ARRAY['id'], batch_size => %s, archive => %s)",
                         (batch, archive))
        secs = run(lambda c: c.execute("CALL maint.clean_orphans(dry_run => false, "
                                       "time_limit => '1 hour')"))
        print(f"{'orphans: clean_orphans archive ' + ('on' if archive else 'off'):40} "
              f"{n / secs:>11,.0f} rows/s {n / secs / base:6.0%}")

    fresh("dup", "dup_src", "k")
    base = n / run(lambda c: c.execute(
        "DELETE FROM bench.dup AS t USING (SELECT id, row_number() OVER "
        "(PARTITION BY k ORDER BY id) AS rn FROM bench.dup) AS s WHERE t.id = s.id AND s.rn > 1"))
    print(f"{'duplicates: one DELETE ... row_number()':40} {base:>11,.0f} rows/s  base")
    for archive in (False, True):
        fresh("dup", "dup_src", "k")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT maint.add_dedupe_rule('bench.dup', ARRAY['k'], batch_size => %s, "
                         "archive => %s)", (batch, archive))
        secs = run(lambda c: c.execute("CALL maint.remove_duplicates(dry_run => false, "
                                       "time_limit => '1 hour')"))
        print(f"{'duplicates: remove_duplicates archive ' + ('on' if archive else 'off'):40} "
              f"{n / secs:>11,.0f} rows/s {n / secs / base:6.0%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--batch", type=int, default=10_000)
    args = ap.parse_args()

    box = tmp = None
    dsn = os.environ.get("PGMAINT_DSN")
    if not dsn:
        tmp = Path(tempfile.mkdtemp(prefix="pgmaint-bench-"))
        tmp.chmod(0o755)
        box = Sandbox(tmp / "pg")
        info = box.start(fast=True)
        dsn = info.conninfo()
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS bench_cleanup")
            conn.execute("CREATE DATABASE bench_cleanup")
        dsn = psycopg.conninfo.make_conninfo(dsn, dbname="bench_cleanup")
        with psycopg.connect(dsn, autocommit=True) as conn:
            deploy.deploy(conn)
            version = conn.execute("SELECT version()").fetchone()
        print(f"{version[0] if version else ''}; {os.cpu_count()} CPUs")
        t = time.perf_counter()
        bench_retention(dsn, args.rows, args.batch)
        bench_orphans_dupes(dsn, args.rows, args.batch)
        print(f"\ntotal {time.perf_counter() - t:.1f} s; errors the application got: "
              f"{len(ERRORS)}{': ' + '; '.join(sorted(set(ERRORS))) if ERRORS else ''}")
    finally:
        if box is not None:
            box.destroy()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
