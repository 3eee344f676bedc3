"""Optimize under the security model (issue 10): the executor runs only statements it builds
itself, and planning works when a non-superuser database owner deployed the kit.

Real, separate LOGIN roles throughout: ``dbo`` owns the database and deployed the kit,
``owner1`` owns schema ``shop``, ``mon`` is in maint_monitor, ``adm`` in maint_admin."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from orchestrator import optimize
from tests.optimize_support import (
    OwnerKit,
    bloated_table,
    check_config,
    dead_table,
    invalid_unique_index,
    optimize_runs,
    owner_kit,
    run_cli,
    run_json,
    table_stats,
)

PLAN_COLUMNS = ("seq integer, action text, relation regclass, table_name regclass, options text[], "
                "statement text, reason text, size_bytes bigint, numbers jsonb")


@pytest.fixture
def kit(kit_server, pg_server, make_role, make_database) -> OwnerKit:
    # kit_server: the session's template deploy, which creates maint_monitor and maint_admin
    return owner_kit(pg_server, make_role, make_database)


def _is_superuser(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone()[0]


Row = tuple[str, "str | int | None", list[str], str]


def _regclass(rel: str | int | None) -> sql.Composable:
    # an oid needs no USAGE on its schema (dbo has none on pg_toast)
    cast = "::oid::regclass" if isinstance(rel, int) else "::regclass"
    return sql.SQL("{}" + cast).format(sql.Literal(rel))


def _forge_plan(conn: psycopg.Connection, rows: list[Row]) -> None:
    """Replace maint.plan_optimize (as its owner) by one returning these rows:
    (action, relation name or oid or None, options, statement)."""
    values = sql.SQL(",\n").join(
        sql.SQL("({}, {}, {}, {}, {}::text[], {}, 'forged', NULL::bigint, '{{}}'::jsonb)")
        .format(sql.Literal(seq), sql.Literal(action), _regclass(rel), _regclass(rel),
                sql.Literal(options), sql.Literal(statement))
        for seq, (action, rel, options, statement) in enumerate(rows, start=1)
    )
    conn.execute(sql.SQL(
        "CREATE OR REPLACE FUNCTION maint.plan_optimize("
        "actions text[] DEFAULT ARRAY['vacuum', 'analyze', 'reindex'])"
        " RETURNS TABLE (" + PLAN_COLUMNS + ") LANGUAGE sql STABLE"
        " SET search_path = pg_catalog, pg_temp AS $forged$ VALUES {} $forged$").format(values))


def _by_seq(statements: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {s["seq"]: s for s in statements}


# --- 1. the executor runs only statements it builds ----------------------------------------


def test_a_replaced_plan_cannot_make_the_executor_run_its_statement_text(kit, pg_server):
    """Issue item 5: dbo replaces maint.plan_optimize; the 'planned' ALTER ROLE never runs,
    the VACUUM (ANALYZE) its action and relation name does."""
    alter = f'ALTER ROLE "{kit.dbo}" SUPERUSER'
    with pg_server.connect(kit.dbname, user=kit.dbo) as dbo:
        dead_table(dbo, sql.SQL("public.mine"))
        _forge_plan(dbo, [("vacuum", "public.mine", ["ANALYZE"], alter)])

        # the CLI as dbo (the kit's owner, so the CLI's trust check accepts the kit)
        code, data = run_json(pg_server.dsn(kit.dbname, user=kit.dbo), "--execute")
        assert code == 0, data
        [stmt] = data["statements"]
        assert stmt["outcome"] == "done"
        assert stmt["statement"] == 'VACUUM (ANALYZE) "public"."mine"'
        assert stmt["planned_statement"] == alter  # shown for the record, never executed
        stats = table_stats(dbo, "public.mine")
        assert stats["n_dead_tup"] == 0 and stats["last_vacuum"] and stats["last_analyze"]
        [run] = optimize_runs(dbo)
        assert run["status"] == "succeeded"
        assert [s["statement"] for s in run["detail"]["statements"]] == ['VACUUM (ANALYZE) "public"."mine"']

    # the same plan carried out on a superuser's connection (the executor itself, below any
    # CLI-level trust check): what runs is still only the VACUUM
    with pg_server.connect(kit.dbname) as su:
        dead_again = su.execute("DELETE FROM public.mine WHERE id % 20 = 0").rowcount
        assert dead_again > 0
        result = optimize.optimize(su, only=optimize.ACTIONS, execute=True,
                                   time_limit=timedelta(minutes=1), lock_timeout=timedelta(seconds=5))
        assert [(o.outcome, o.statement) for o in result.outcomes] == [
            ("done", 'VACUUM (ANALYZE) "public"."mine"')]
        assert not _is_superuser(su, kit.dbo)


def test_plan_rows_that_fail_validation_are_refused_with_the_reason(kit, pg_server):
    with pg_server.connect(kit.dbname, user=kit.dbo) as dbo:
        dead_table(dbo, sql.SQL("public.mine"))
        dbo.execute("CREATE VIEW public.mine_view AS SELECT * FROM public.mine")
        toast, toast_oid = dbo.execute("SELECT reltoastrelid::regclass::text, reltoastrelid::bigint"
                                       " FROM pg_class WHERE oid = 'public.mine'::regclass").fetchone()
        alter = f'ALTER ROLE "{kit.dbo}" SUPERUSER'
        rows: list[Row] = [
            ("vacuum", "public.mine", [], alter),                              # 1: runs, as VACUUM
            ("grant", "public.mine", [], alter),                               # 2
            ("vacuum", "pg_catalog.pg_authid", [], "VACUUM pg_catalog.pg_authid"),  # 3
            ("vacuum", toast_oid, [], f"VACUUM {toast}"),                      # 4
            ("vacuum", "public.mine", ["FULL"], "VACUUM (FULL) public.mine"),  # 5
            ("reindex", "public.mine", ["CONCURRENTLY"], alter),               # 6
            ("reindex", "public.mine_pkey", [], "REINDEX INDEX public.mine_pkey"),  # 7
            ("drop", "public.mine_pkey", ["CONCURRENTLY"], "DROP INDEX CONCURRENTLY public.mine_pkey"),  # 8
            ("analyze", None, [], alter),                                      # 9
            ("analyze", "public.mine_view", [], "ANALYZE public.mine_view"),   # 10
        ]
        _forge_plan(dbo, rows)
        expected = {
            2: "refused: unknown action 'grant' (the executor runs only vacuum, analyze, reindex, drop)",
            3: "refused: pg_catalog.pg_authid is in system schema pg_catalog",
            4: f"refused: {toast} is in system schema pg_toast",
            5: "refused: option(s) FULL not allowed for vacuum (allowed: FREEZE, ANALYZE)",
            6: "refused: public.mine is a table, but reindex needs an index",
            7: "refused: reindex of public.mine_pkey runs only with CONCURRENTLY",
            8: "refused: public.mine_pkey is not an invalid leftover copy of a failed REINDEX CONCURRENTLY",
            9: "refused: the plan row names no relation",
            10: "refused: public.mine_view is a view, but analyze needs a table or materialized view",
        }

        # the dry run already says what would be refused
        code, dry = run_json(pg_server.dsn(kit.dbname, user=kit.dbo))
        assert code == 3
        shown = _by_seq(dry["statements"])
        assert (shown[1]["outcome"], shown[1]["statement"]) == ("planned", 'VACUUM "public"."mine"')
        for seq, message in expected.items():
            assert shown[seq]["outcome"] == "skipped", shown[seq]
            assert shown[seq]["message"].startswith(message), (seq, shown[seq]["message"])
            assert shown[seq]["statement"] == ""
            assert shown[seq]["planned_statement"] == rows[seq - 1][3]
        assert optimize_runs(dbo) == []

        code, data = run_json(pg_server.dsn(kit.dbname, user=kit.dbo), "--execute")
        assert code == 3, data
        done = _by_seq(data["statements"])
        assert (done[1]["outcome"], done[1]["statement"]) == ("done", 'VACUUM "public"."mine"')
        for seq, message in expected.items():
            assert done[seq]["outcome"] == "skipped" and done[seq]["message"].startswith(message)
        assert table_stats(dbo, "public.mine")["n_dead_tup"] == 0
        # nothing else happened: the primary key is there, and nobody became superuser
        assert dbo.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.mine_pkey'::regclass"
                           ).fetchone() == (True,)
        assert not _is_superuser(dbo, kit.dbo)
        [run] = optimize_runs(dbo)
        assert run["status"] == "partial"
        assert run["detail"]["counts"] == {"done": 1, "skipped": 9, "failed": 0, "not_started": 0}
        journaled = _by_seq(run["detail"]["statements"])
        assert journaled[2]["planned_statement"] == alter and journaled[2]["statement"] == ""


def test_leftover_clean_up_builds_its_drop_and_never_uses_plan_reindex_statements(kit, pg_server):
    """The half-built copy of a failed REINDEX CONCURRENTLY is found in the catalog; a replaced
    plan_reindex offering a 'drop' of a valid index (with an ALTER ROLE as its text) is refused."""
    with pg_server.connect(kit.dbname, user=kit.dbo) as dbo:
        invalid_unique_index(dbo)  # public.inv, INVALID unique index inv_k_uniq (duplicates remain)
        dbo.execute(f"""
            CREATE OR REPLACE FUNCTION maint.plan_reindex(
                bloat_pct numeric DEFAULT NULL, min_bytes bigint DEFAULT NULL,
                include_invalid boolean DEFAULT true)
            RETURNS TABLE (relation regclass, table_name regclass, action text, statement text, reason text,
                           invalid boolean, index_bytes bigint, estimated_bytes bigint,
                           estimated_bloat_pct numeric)
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $forged$
            VALUES ('public.inv_pkey'::regclass, 'public.inv'::regclass, 'drop',
                    'ALTER ROLE "{kit.dbo}" SUPERUSER', 'forged', false,
                    0::bigint, NULL::bigint, NULL::numeric),
                   ('public.inv_k_uniq'::regclass, 'public.inv'::regclass, 'reindex',
                    'ALTER ROLE "{kit.dbo}" SUPERUSER', 'forged', true,
                    0::bigint, NULL::bigint, NULL::numeric)
            $forged$""")
    with pg_server.connect(kit.dbname) as su:
        result = optimize.optimize(su, only=["reindex"], execute=True,
                                   time_limit=timedelta(minutes=1), lock_timeout=timedelta(seconds=5))
        drop, reindex = result.outcomes
        assert drop.outcome == "skipped"
        assert drop.message.startswith("refused: public.inv_pkey is not an invalid leftover copy")
        assert reindex.outcome == "failed"
        assert reindex.statement == 'REINDEX INDEX CONCURRENTLY "public"."inv_k_uniq"'
        assert "duplicate values remain" in reindex.message
        assert reindex.cleanup == ["public.inv_k_uniq_ccnew"]
        assert su.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'inv_k_uniq_cc%'"
                          ).fetchone() == (0,)
        assert su.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.inv_pkey'::regclass"
                          ).fetchone() == (True,)
        assert not _is_superuser(su, kit.dbo)


def test_build_composes_from_its_own_keywords_and_quoted_identifiers():
    table = optimize.Target(1, 'we"ird', "t; DROP TABLE x", "r", '"we""ird"."t; DROP TABLE x"')
    statement, shown = optimize.build("vacuum", ["analyze", "FREEZE"], table)
    assert statement.as_string(None) == 'VACUUM (FREEZE, ANALYZE) "we""ird"."t; DROP TABLE x"'
    assert shown == 'VACUUM (FREEZE, ANALYZE) "we""ird"."t; DROP TABLE x"'
    index = optimize.Target(2, "s", "t_k_ccnew1", "i", "s.t_k_ccnew1", valid=False, table=table)
    assert optimize.build("drop", ["CONCURRENTLY"], index)[1] == "DROP INDEX CONCURRENTLY s.t_k_ccnew1"
    assert optimize.build("reindex", ["CONCURRENTLY"], index)[1] == "REINDEX INDEX CONCURRENTLY s.t_k_ccnew1"
    with pytest.raises(optimize.Refused, match="option"):
        optimize.build("analyze", ["VERBOSE"], table)
    with pytest.raises(optimize.Refused, match="no longer exists"):
        optimize.build("analyze", [], None, relid=12345)


# --- 2. planning when a non-superuser deployed the kit ---------------------------------------


def _reindex_plan(conn: psycopg.Connection) -> dict[str, float]:
    return dict(conn.execute(
        "SELECT relation::text, estimated_bloat_pct FROM maint.plan_reindex(min_bytes => 0, bloat_pct => 50)"
    ).fetchall())


def _table_bloat(conn: psycopg.Connection) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT h.* FROM maint.check_config AS c, maint.health_table_bloat("
            " jsonb_populate_record(c, '{\"params\": {\"min_wasted_bytes\": 0}}')) AS h"
            " WHERE c.check_name = 'table_bloat'")
        return list(cur.fetchall())


def _no_values(*outputs: object) -> None:
    """No statistics value (the sampled 'secret-value-…' strings) in anything returned."""
    text = json.dumps(outputs, default=str)
    assert "secret-value" not in text


def test_planning_works_when_a_non_superuser_deployed_the_kit(kit, pg_server):
    with pg_server.connect(kit.dbname, user=kit.dbo) as dbo:
        bloated_table(dbo, "public.mine")
        check_config(dbo, "index_bloat", warn=50, params={"min_bytes": 0})  # dbo owns the kit's tables
    with pg_server.connect(kit.dbname, user=kit.owner1) as owner1:
        bloated_table(owner1, "shop.t")

    callers = {"dbo": kit.dbo, "superuser": None, "maint_monitor": kit.mon}
    for who, user in callers.items():
        extra = {"user": user} if user else {}
        with pg_server.connect(kit.dbname, **extra) as conn:
            plan = _reindex_plan(conn)
            # dbo may read its own columns' statistics: both indexes of its table get estimates;
            # owner1's text column is hidden from dbo (no estimate, not listed), an int key has
            # a fixed width and needs no statistics
            assert {"mine_pkey", "mine_v", "shop.t_pkey"} <= set(plan), (who, plan)
            assert "shop.t_v" not in plan, (who, plan)
            assert all(pct > 80 for pct in plan.values()), (who, plan)
            optimize_plan = conn.execute("SELECT action, relation::text, options, statement"
                                         " FROM maint.plan_optimize()").fetchall()
            assert ("reindex", "mine_v", ["CONCURRENTLY"], "REINDEX INDEX CONCURRENTLY public.mine_v") \
                in optimize_plan, (who, optimize_plan)
            bloat = _table_bloat(conn)
            by_object = {r["object_name"]: r for r in bloat}
            assert by_object["public.mine"]["status"] == "critical", (who, bloat)
            [unknown] = [r for r in bloat if r["status"] == "unknown"]
            assert unknown["detail"] == (f"cannot estimate bloat of 1 table(s): role {kit.dbo}, which owns "
                                         "this check, may not read their statistics")
            _no_values(plan, optimize_plan, bloat)

    # the nightly step (maint_admin) and the CLI, for the same roles
    for user in (kit.dbo, None, kit.adm):
        extra = {"user": user} if user else {}
        with pg_server.connect(kit.dbname, **extra) as conn:
            run_id = conn.execute("SELECT maint.record_optimize_plan(ARRAY['reindex'])").fetchone()[0]
            detail = conn.execute("SELECT detail FROM maint.runs WHERE id = %s", (run_id,)).fetchone()[0]
            assert {"public.mine_v", "public.mine_pkey"} <= {a["relation"] for a in detail["actions"]}
            assert all(a["options"] == ["CONCURRENTLY"] for a in detail["actions"])
        if user == kit.dbo:  # the CLI uses a kit only as its owner, or one a superuser owns
            code, data = run_json(pg_server.dsn(kit.dbname, **extra), "--only", "reindex")
            assert code == 0, data
            executed = [s["statement"] for s in data["statements"]]
            assert 'REINDEX INDEX CONCURRENTLY "public"."mine_v"' in executed
        else:  # docs/security.md, "Trust in the kit": the others refuse dbo's kit
            result = run_cli(pg_server.dsn(kit.dbname, **extra), "run", "optimize", "--only", "reindex")
            assert result.exit_code == 1 and "refusing to use pgmaint" in result.output, result.output
    with pg_server.connect(kit.dbname, user=kit.mon) as mon, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        mon.execute("SELECT maint.record_optimize_plan()")

    # once owner1 lets dbo read shop.t, its statistics count too
    with pg_server.connect(kit.dbname, user=kit.owner1) as owner1:
        owner1.execute(sql.SQL("GRANT SELECT ON shop.t TO {}").format(sql.Identifier(kit.dbo)))
    with pg_server.connect(kit.dbname, user=kit.mon) as mon:
        plan = _reindex_plan(mon)
        assert {"mine_pkey", "mine_v", "shop.t_pkey", "shop.t_v"} <= set(plan), plan
        bloat = _table_bloat(mon)
        assert {r["object_name"]: r["status"] for r in bloat} == {"public.mine": "critical",
                                                                  "shop.t": "critical"}
        _no_values(plan, bloat)


def test_column_statistics_helper_is_only_for_the_kit_owner(kit, pg_server):
    with pg_server.connect(kit.dbname, user=kit.owner1) as owner1:
        bloated_table(owner1, "shop.t")
    for user in (kit.mon, kit.adm):
        with pg_server.connect(kit.dbname, user=user) as conn, \
                pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM maint._column_stats()")
    with pg_server.connect(kit.dbname, user=kit.dbo) as dbo:
        cur = dbo.execute("SELECT s.* FROM maint._column_stats() AS s JOIN pg_class AS c ON c.oid = s.relid"
                          " WHERE c.relnamespace = 'shop'::regnamespace")
        assert [d.name for d in cur.description] == ["relid", "attnum", "null_frac", "avg_width"]
        assert cur.fetchall() == []  # dbo may not read shop.t: pg_stats hides it


def test_a_superuser_deployed_kit_estimates_every_table_for_a_monitor(db, pg_server, make_role):
    owner1, mon = make_role(), make_role("maint_monitor")
    db.execute(sql.SQL("CREATE SCHEMA shop AUTHORIZATION {}").format(sql.Identifier(owner1)))
    with pg_server.connect(db.info.dbname, user=owner1) as conn:
        bloated_table(conn, "shop.t")
    with pg_server.connect(db.info.dbname, user=mon) as conn:
        # the monitor cannot read shop.t, but the kit owner (a superuser) reads pg_statistic
        assert conn.execute("SELECT count(*) FROM pg_stats WHERE schemaname = 'shop'").fetchone() == (0,)
        plan = _reindex_plan(conn)
        assert {"shop.t_pkey", "shop.t_v"} <= set(plan), plan
        bloat = _table_bloat(conn)
        assert [(r["object_name"], r["status"]) for r in bloat] == [("shop.t", "critical")]
        _no_values(plan, bloat)
