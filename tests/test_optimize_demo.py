"""The optimize part of `pgmaint demo` on the demo application's data."""

from __future__ import annotations

import io
import time

from rich.console import Console

from orchestrator import demo
from orchestrator.optimize import demo_section
from tests.optimize_support import flush_stats, table_stats


def test_demo_section_shows_the_plans_and_carries_them_out(db):
    demo._load_app(db)
    for name in ("app.sessions", "app.order_items"):  # no autovacuum analyze racing the test
        db.execute(f"ALTER TABLE {name} SET (autovacuum_enabled = false)")
    flush_stats(db)
    assert table_stats(db, "app.sessions")["last_analyze"] is None
    buf = io.StringIO()
    started = time.monotonic()
    demo_section(db, Console(file=buf, width=200, highlight=False))
    took = time.monotonic() - started
    out = buf.getvalue()
    assert took < 10
    assert "maint.plan_analyze()" in out
    assert "ANALYZE app.sessions" in out and "ANALYZE app.order_items" in out
    assert "pgmaint run optimize --execute" in out
    assert " 0 failed" in out
    for name in ("app.sessions", "app.order_items"):
        assert table_stats(db, name)["last_analyze"] is not None, name
    assert db.execute("SELECT count(*) FROM maint.plan_optimize()").fetchone() == (0,)
