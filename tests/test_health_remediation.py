"""The vacuum/analyze/invalid-index findings point to the plans that fix them."""

import psycopg
import pytest
import support

from tests.health_support import configure, find, run_one


def test_never_analyzed_points_to_plan_analyze_and_optimize(db):
    configure(db, "never_analyzed", params={"grace": "0 seconds"})  # the table is seconds old
    db.execute('CREATE TABLE public."Fresh Rows" (id int)')
    db.execute('INSERT INTO public."Fresh Rows" SELECT generate_series(1, 5000)')
    support.flush_stats(db)
    db.execute("SELECT pg_stat_clear_snapshot()")
    row = find(run_one(db, "never_analyzed"), 'public."Fresh Rows"')
    assert "maint.plan_analyze()" in row["remediation"]
    assert "pgmaint run optimize --execute --only analyze" in row["remediation"]
    planned = db.execute(
        "SELECT statement FROM maint.plan_analyze() WHERE statement LIKE '%Fresh Rows%'"
    ).fetchall()
    assert planned, "the remediation names a plan that does not list the table"


def test_invalid_index_points_to_plan_reindex(pg_server, db):
    db.execute("CREATE TABLE public.dups (k int)")
    db.execute("INSERT INTO public.dups VALUES (1), (1)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("CREATE UNIQUE INDEX CONCURRENTLY dups_k ON public.dups (k)")
    row = find(run_one(db, "invalid_indexes"), "public.dups_k")
    assert "pgmaint run optimize --execute --only reindex" in row["remediation"]
    assert "maint.plan_reindex()" in row["remediation"]
    assert db.execute(
        "SELECT count(*) FROM maint.plan_reindex() WHERE statement LIKE '%dups_k%'"
    ).fetchone()[0] == 1
