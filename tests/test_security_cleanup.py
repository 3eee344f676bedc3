"""Issue 10: cleanup, undo, previews and ANALYZE run as the table's owner, whoever calls them.

Every test uses real, separate LOGIN roles (tests/security_support.py). owner1's code records
which role it ran as in shop.audit and tries RESET ROLE and ALTER ROLE ... SUPERUSER."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from tests.security_support import audit, is_superuser, make_cast, owner_grants


@pytest.fixture
def cast(db, pg_server, make_role):
    return make_cast(db, pg_server, make_role)


def _trigger(db, cast, ddl: str) -> None:
    owner_grants(db, cast.owner1, ddl)


def _assert_ran_as_owner(db, cast, *, at_least: int = 1) -> None:
    rows = audit(db)
    assert len(rows) >= at_least, rows
    for tag, cu, su, note in rows:
        assert cu == cast.owner1, (tag, cu, su)
        reset, alter = note.split(" | ")
        assert "cannot set parameter \"role\" within security-definer function" in reset, note
        assert "must be superuser" in alter or "permission denied" in alter, note
    assert not is_superuser(db, cast.owner1)


@pytest.mark.parametrize("ddl", [
    "CREATE TRIGGER a_row BEFORE DELETE ON shop.log FOR EACH ROW EXECUTE FUNCTION shop.trg()",
    "CREATE TRIGGER b_after_row AFTER DELETE ON shop.log FOR EACH ROW EXECUTE FUNCTION shop.trg()",
    "CREATE TRIGGER c_stmt AFTER DELETE ON shop.log FOR EACH STATEMENT EXECUTE FUNCTION shop.trg()",
    "CREATE TRIGGER d_before_stmt BEFORE DELETE ON shop.log FOR EACH STATEMENT EXECUTE FUNCTION shop.trg()",
], ids=["before-row", "after-row", "after-statement", "before-statement"])
def test_a_superusers_retention_run_fires_owner_triggers_as_the_owner(db, cast, ddl):
    """The issue's reproduction: owner1's trigger on a cleaned table, a superuser's run (the
    kit's SQL called directly in psql, no CLI in between)."""
    _trigger(db, cast, ddl)
    rule = db.execute("SELECT maint.add_retention_policy('shop.log', 'at', '30 days 12 hours')").fetchone()[0]
    db.execute("CALL maint.apply_retention(dry_run => false)")
    assert db.execute("SELECT count(*) FROM shop.log").fetchone()[0] == 30
    _assert_ran_as_owner(db, cast)
    detail = db.execute("SELECT detail->'rules'->%s FROM maint.runs WHERE task = 'retention'",
                        (str(rule),)).fetchone()[0]
    assert detail["owner"] == cast.owner1 and detail["author"] == "postgres"


def test_a_trigger_that_tries_to_escalate_fails_the_rule_and_changes_nothing(db, cast):
    """Without an exception handler owner1's ALTER ROLE fails the batch: the rule fails, its
    batch is rolled back, the run raises (so pg_cron would record a failure)."""
    owner_grants(db, cast.owner1, f"""
        CREATE FUNCTION shop.grab() RETURNS trigger LANGUAGE plpgsql AS $f$
        BEGIN EXECUTE format('ALTER ROLE %I SUPERUSER', '{cast.owner1}'); RETURN OLD; END $f$;
        CREATE TRIGGER grab BEFORE DELETE ON shop.log FOR EACH ROW EXECUTE FUNCTION shop.grab();""")
    db.execute("SELECT maint.add_retention_policy('shop.log', 'at', '30 days 12 hours')")
    with pytest.raises(psycopg.errors.TriggeredActionException, match=r"1 of 1 rules failed"):
        db.execute("CALL maint.apply_retention(dry_run => false)")
    assert not is_superuser(db, cast.owner1)
    assert db.execute("SELECT count(*) FROM shop.log").fetchone()[0] == 40
    status, error = db.execute("SELECT status, error FROM maint.runs WHERE task = 'retention'").fetchone()
    assert status == "failed" and ("must be superuser" in error  # before 16
                                    or "permission denied to alter role" in error)


def test_orphans_duplicates_and_partitions_run_as_the_owner_too(db, cast):
    owner_grants(db, cast.owner1, """
        CREATE TABLE shop.parent (id int PRIMARY KEY);
        INSERT INTO shop.parent SELECT g FROM generate_series(1, 5) g;
        CREATE TABLE shop.child (id int PRIMARY KEY, parent_id int, k text);
        INSERT INTO shop.child SELECT g, g, 'k' || (g % 3) FROM generate_series(1, 12) g;
        CREATE TRIGGER t BEFORE DELETE ON shop.child FOR EACH ROW EXECUTE FUNCTION shop.trg();
        CREATE TABLE shop.events (id int, at timestamptz NOT NULL, PRIMARY KEY (id, at))
            PARTITION BY RANGE (at);
        CREATE TABLE shop.events_old PARTITION OF shop.events
            FOR VALUES FROM ('2000-01-01') TO ('2001-01-01');
        CREATE TABLE shop.events_new PARTITION OF shop.events FOR VALUES FROM ('2001-01-01') TO (MAXVALUE);
        INSERT INTO shop.events VALUES (1, '2000-06-01'), (2, now());
        CREATE TRIGGER t AFTER DELETE ON shop.events_new FOR EACH STATEMENT EXECUTE FUNCTION shop.trg();""")
    db.execute("SELECT maint.add_orphan_rule('shop.child', ARRAY['parent_id'], 'shop.parent', ARRAY['id'])")
    db.execute("CALL maint.clean_orphans(dry_run => false, force => true)")
    assert db.execute("SELECT count(*) FROM shop.child").fetchone()[0] == 5
    db.execute("SELECT maint.add_dedupe_rule('shop.child', ARRAY['k'])")
    db.execute("CALL maint.remove_duplicates(dry_run => false, force => true)")
    assert db.execute("SELECT count(*) FROM shop.child").fetchone()[0] == 3
    db.execute("SELECT maint.add_retention_policy('shop.events', 'at', '1 day')")
    db.execute("CALL maint.apply_retention(dry_run => false, force => true)")
    assert db.execute("SELECT to_regclass('shop.events_old')").fetchone()[0] is None
    _assert_ran_as_owner(db, cast, at_least=7 + 2)
    # the executor is owned by owner1 and refuses to run as anyone else
    owner = db.execute(
        "SELECT pg_get_userbyid(p.proowner) FROM pg_proc p WHERE p.pronamespace = 'maint_exec'::regnamespace"
        " AND p.proname = 'run_as_' || %s::regrole::oid", (cast.owner1,)).fetchone()[0]
    assert owner == cast.owner1


def test_undo_inserts_as_the_owner_with_checks_index_expressions_and_triggers(db, cast):
    """Undo into a table whose CHECK constraint, index expression and trigger are owner1's:
    each raises unless it runs as owner1, and undo as postgres restores every row."""
    owner_grants(db, cast.owner1, f"""
        CREATE FUNCTION shop.only_owner(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$
        BEGIN IF current_user <> '{cast.owner1}' THEN RAISE EXCEPTION 'ran as %', current_user; END IF;
              RETURN v; END $f$;
        CREATE TABLE shop.guarded (id int PRIMARY KEY, at timestamptz NOT NULL,
                                   CHECK (shop.only_owner(id) = id));
        CREATE INDEX guarded_expr ON shop.guarded ((shop.only_owner(id)));
        INSERT INTO shop.guarded SELECT g, now() - g * interval '1 day' FROM generate_series(1, 10) g;
        CREATE TRIGGER t BEFORE INSERT ON shop.guarded FOR EACH ROW EXECUTE FUNCTION shop.trg();""")
    db.execute("SELECT maint.add_retention_policy('shop.guarded', 'at', '5 days')")
    db.execute("CALL maint.apply_retention(dry_run => false, force => true)")
    assert db.execute("SELECT count(*) FROM shop.guarded").fetchone()[0] == 4
    run_id = db.execute("SELECT id FROM maint.runs WHERE task = 'retention'").fetchone()[0]
    # as the superuser, in psql
    with pytest.raises(psycopg.errors.RaiseException, match="ran as postgres"):
        db.execute("INSERT INTO shop.guarded VALUES (99, now())")
    db.execute("CALL maint.undo_run(%s)", (run_id,))
    assert db.execute("SELECT count(*) FROM shop.guarded").fetchone()[0] == 10
    _assert_ran_as_owner(db, cast, at_least=6)


def test_undo_needs_insert_on_the_table_and_restores_only_archived_rows(db, cast, pg_server):
    owner_grants(db, cast.owner1, f'GRANT USAGE ON SCHEMA shop TO "{cast.adm}"; '
                                  f'GRANT SELECT, DELETE ON shop.log TO "{cast.adm}"')
    with cast.as_role(cast.adm) as adm:
        adm.execute("SELECT maint.add_retention_policy('shop.log', 'at', '30 days 12 hours')")
        adm.execute("CALL maint.apply_retention(dry_run => false)")
        run_id = adm.execute("SELECT id FROM maint.runs WHERE task = 'retention'").fetchone()[0]
        with pytest.raises(psycopg.Error, match=r"may not INSERT on shop\.log"):
            adm.execute("CALL maint.undo_run(%s)", (run_id,))
    assert db.execute("SELECT count(*) FROM shop.log").fetchone()[0] == 30
    owner_grants(db, cast.owner1, f'GRANT INSERT ON shop.log TO "{cast.adm}"')
    with cast.as_role(cast.adm) as adm:
        adm.execute("CALL maint.undo_run(%s)", (run_id,))
    assert db.execute("SELECT count(*) FROM shop.log").fetchone()[0] == 40


@pytest.mark.parametrize("target", ["pg_catalog.pg_authid", "maint.runs", "information_schema.sql_features",
                                    "maint_exec.nothing"])
def test_a_forged_archive_row_is_never_put_back_into_the_system_or_the_kit(db, cast, target):
    """maint_admin cannot write the archive any more; even a row that got there anyway (here
    written by the superuser) never goes into pg_catalog, information_schema, maint or
    maint_exec, and the undo changes nothing."""
    db.execute("SELECT maint.add_retention_policy('shop.log', 'at', '30 days 12 hours')")
    db.execute("CALL maint.apply_retention(dry_run => false)")
    run_id = db.execute("SELECT id FROM maint.runs WHERE task = 'retention'").fetchone()[0]
    forged = {"oid": 424242, "rolname": "evil", "rolsuper": True, "rolcanlogin": True}
    db.execute("INSERT INTO maint.archive (run_id, source_table, \"row\") VALUES (%s, %s, %s)",
               (run_id, target, psycopg.types.json.Jsonb(forged)))
    before = db.execute("SELECT count(*) FROM shop.log").fetchone()[0]
    with pytest.raises(psycopg.Error, match=r"does not exist|no longer exists|system or to pgmaint"):
        db.execute("CALL maint.undo_run(%s)", (run_id,))
    assert db.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'evil'").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM shop.log").fetchone()[0] == before  # all or nothing


def test_previews_and_dry_runs_read_as_the_owner(db, cast):
    """Row-level security forced on the owner: the policy (owner1's code) records who reads.
    A superuser's preview and dry run read through the owner's executor, as owner1."""
    owner_grants(db, cast.owner1, f"""
        CREATE FUNCTION shop.seen() RETURNS boolean LANGUAGE plpgsql AS $f$
        BEGIN PERFORM shop.note('policy'); RETURN true; END $f$;
        ALTER TABLE shop.log ENABLE ROW LEVEL SECURITY;
        ALTER TABLE shop.log FORCE ROW LEVEL SECURITY;
        CREATE POLICY p ON shop.log USING (shop.seen());
        GRANT USAGE ON SCHEMA shop TO "{cast.mon}";
        GRANT SELECT ON shop.log TO "{cast.mon}";""")
    db.execute("SELECT maint.add_retention_policy('shop.log', 'at', '30 days 12 hours')")
    row = db.execute(
        "SELECT would_delete, table_rows, sample_keys, error FROM maint.preview_retention()").fetchone()
    assert row[:2] == (10, 40) and row[2] and row[3] is None
    db.execute("CALL maint.apply_retention()")  # dry run
    _assert_ran_as_owner(db, cast)
    n = len(audit(db))
    # a monitoring role that may read the table but sees only the rows its policies show
    # gets no preview: the counts and keys are read as the owner, who sees them all
    with cast.as_role(cast.mon) as mon:
        row = mon.execute("SELECT would_delete, sample_keys, error FROM maint.preview_retention()").fetchone()
    assert row[:2] == (None, None) and "row-level security" in row[2] and "withheld" in row[2]
    assert len(audit(db)) == n
    _assert_ran_as_owner(db, cast)


def test_analyze_of_cleaned_tables_runs_as_the_owner(db, cast):
    owner_grants(db, cast.owner1, f"""
        CREATE FUNCTION shop.idx(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$
        BEGIN IF current_user <> '{cast.owner1}' THEN RAISE EXCEPTION 'ran as %', current_user; END IF;
              RETURN v; END $f$;
        CREATE INDEX log_expr ON shop.log ((shop.idx(id)));""")
    db.execute("SELECT maint.add_retention_policy('shop.log', 'at', '30 days 12 hours')")
    db.execute("CALL maint.apply_retention(dry_run => false)")
    db.execute("CALL maint.analyze_cleaned_tables()")
    detail = db.execute("SELECT detail FROM maint.runs WHERE task = 'analyze_cleaned'").fetchone()[0]
    assert detail["analyzed"] == ["shop.log"] and detail["skipped"] == []


def test_an_executor_altered_by_its_owner_is_repaired_and_never_runs_as_the_caller(db, cast):
    db.execute("SELECT maint.add_retention_policy('shop.log', 'at', '30 days 12 hours')")
    fn = db.execute("SELECT format('maint_exec.run_as_%%s', %s::regrole::oid)", (cast.owner1,)).fetchone()[0]
    sig = f"{fn}(text, text[], text[], jsonb, text, boolean)"
    # owner1 may not even name it; a careless DBA lets it
    db.execute(sql.SQL("GRANT USAGE ON SCHEMA maint_exec TO {}").format(sql.Identifier(cast.owner1)))
    owner_grants(db, cast.owner1, f"ALTER FUNCTION {sig} SECURITY INVOKER")
    owner_grants(db, cast.owner1, f"ALTER FUNCTION {sig} SET lock_timeout = 0")
    # called directly by a superuser, its body refuses to run as anyone but owner1
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not as its owner"):
        db.execute(f"SELECT * FROM {fn}('SELECT ''m''::text, NULL::jsonb', NULL, NULL, NULL, NULL, false)")
    # the kit notices before use and re-creates it
    _trigger(db, cast, "CREATE TRIGGER t BEFORE DELETE ON shop.log FOR EACH ROW EXECUTE FUNCTION shop.trg()")
    db.execute("CALL maint.apply_retention(dry_run => false)")
    assert db.execute(
        "SELECT prosecdef, proconfig FROM pg_proc WHERE oid = %s::regprocedure", (sig,)
    ).fetchone() == (True, ["search_path=pg_catalog, pg_temp"])
    _assert_ran_as_owner(db, cast, at_least=10)


def test_maint_admin_cannot_call_executors_or_the_steps_for_other_runs(db, cast):
    db.execute("SELECT maint.add_retention_policy('shop.log', 'at', '30 days 12 hours')")
    fn = db.execute("SELECT format('maint_exec.run_as_%%s', %s::regrole::oid)", (cast.owner1,)).fetchone()[0]
    with cast.as_role(cast.adm) as adm:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            adm.execute(f"SELECT * FROM {fn}('DROP TABLE shop.log', NULL, NULL, NULL, NULL, true)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            adm.execute("SELECT maint._executor(%s::regrole::oid)", (cast.owner1,))
        # a step needs a running cleanup run of this session that includes the rule
        run = adm.execute("SELECT maint.run_start('retention', '{}', false)").fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not part of run"):
            adm.execute("SELECT maint._cleanup_batch(%s, 1, 1, '100')", (run,))
        adm.execute("SELECT maint.run_finish(%s, 'succeeded')", (run,))
    assert db.execute("SELECT count(*) FROM shop.log").fetchone()[0] == 40


def test_steps_never_hand_keys_to_their_caller(db, cast):
    """The reviewer's reproduction: adm cannot read shop.secrets, forges a run naming the
    superuser's rule on it and calls the steps directly. The steps give counts, never keys
    (a run's position stays in maint.cleanup_cursors, which only the kit reads), refuse a
    disabled rule, a rule of another kind and a batch without its preflight."""
    rule = db.execute("SELECT maint.add_retention_policy('shop.secrets', 'at', '5 days 12 hours',"
                      " batch_size => 1)").fetchone()[0]
    orphan = db.execute("SELECT maint.add_orphan_rule('shop.secrets', ARRAY['id'], 'shop.log', ARRAY['id'])"
                        ).fetchone()[0]
    with cast.as_role(cast.adm) as adm:
        run = adm.execute("SELECT maint.run_start('retention', %s, false)",
                          (psycopg.types.json.Jsonb({"rule_ids": [rule, orphan]}),)).fetchone()[0]
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="preflight did not run"):
            adm.execute("SELECT maint._cleanup_batch(%s, %s, 1, '100')", (run, rule))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="is not run by task retention"):
            adm.execute("SELECT maint._cleanup_preflight(%s, %s, '100')", (run, orphan))
        pre = adm.execute("SELECT maint._cleanup_preflight(%s, %s, '100')", (run, rule)).fetchone()[0]
        seen = [pre]
        for _ in range(3):
            seen.append(adm.execute("SELECT maint._cleanup_batch(%s, %s, %s, '100')",
                                    (run, rule, pre["units"][0]["unit"])).fetchone()[0])
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            adm.execute("SELECT * FROM maint.cleanup_cursors")
        adm.execute("SELECT maint.run_finish(%s, 'succeeded')", (run,))
    assert pre["candidates"] == 15 and all(b["del"] == 1 for b in seen[1:])
    # counts, names and settings only: no bound, last or next key, no row
    assert set(pre) == {"status", "res", "units", "candidates", "rows", "fraction", "victims"}, pre
    assert set(pre["units"][0]) == {"mode", "rel", "unit", "batching"}
    assert all(set(b) == {"del", "batch", "done"} for b in seen[1:]), seen
    assert "hush" not in str(seen)
    db.execute("SELECT maint.enable_rule(%s, false)", (rule,))
    with cast.as_role(cast.adm) as adm:
        run = adm.execute("SELECT maint.run_start('retention', %s, false)",
                          (psycopg.types.json.Jsonb({"rule_ids": [rule]}),)).fetchone()[0]
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="disabled"):
            adm.execute("SELECT maint._cleanup_preflight(%s, %s, '100')", (run, rule))


def test_a_kit_deployed_by_a_non_superuser_acts_only_as_roles_it_has(pg_server, make_role, make_database):
    """dbo (database owner, not superuser) deployed the kit: it may act as itself, and as
    owner1 only once it has owner1's rights; never as a role it does not have."""
    from tests.support import deploy_to

    dbo = make_role()
    owner1 = make_role()
    name = make_database(owner=dbo)
    deploy_to(pg_server.dsn(name, user=dbo))
    with pg_server.connect(name) as su:
        su.execute(sql.SQL("CREATE SCHEMA shop AUTHORIZATION {}").format(sql.Identifier(owner1)))
        su.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner1)))
        su.execute("CREATE TABLE shop.log AS SELECT g AS id, now() - g * interval '1 day' AS at"
                   " FROM generate_series(1, 10) g")
        su.execute("ALTER TABLE shop.log ADD PRIMARY KEY (id)")
        su.execute("RESET ROLE")
        su.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(dbo)))
        su.execute("CREATE TABLE public.mine AS SELECT g AS id, now() - g * interval '1 day' AS at"
                   " FROM generate_series(1, 10) g")
        su.execute("RESET ROLE")
        # even a superuser cannot make dbo's kit act as owner1
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="cannot act on tables owned by role"):
            su.execute("SELECT maint.add_retention_policy('shop.log', 'at', '5 days')")
    with pg_server.connect(name, user=dbo) as conn:
        conn.execute("SELECT maint.add_retention_policy('public.mine', 'at', '5 days')")
        conn.execute("CALL maint.apply_retention(dry_run => false, force => true)")
        assert conn.execute("SELECT count(*) FROM public.mine").fetchone()[0] == 4
    with pg_server.connect(name) as su:
        su.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner1), sql.Identifier(dbo)))
        su.execute("SELECT maint.add_retention_policy('shop.log', 'at', '5 days')")
        su.execute("CALL maint.apply_retention(dry_run => false, force => true)")
        assert su.execute("SELECT count(*) FROM shop.log").fetchone()[0] == 4


def test_analyze_cleaned_tables_analyzes_only_tables_of_cleanup_rules(db, cast):
    """adm writes its own runs' details: a forged analyze list naming another table is refused
    for that table (the reviewer's finding), tables of rules are analyzed as their owner."""
    with cast.as_role(cast.adm) as adm:
        run = adm.execute("SELECT maint.run_start('retention', '{}', false)").fetchone()[0]
        forged = psycopg.types.json.Jsonb({"rules": {"9": {"table": "shop.secrets", "deleted": 5}}})
        adm.execute("SELECT maint.run_finish(%s, 'succeeded', 0, 5, %s)", (run, forged))
        adm.execute("CALL maint.analyze_cleaned_tables()")
        detail = adm.execute("SELECT detail FROM maint.runs WHERE task = 'analyze_cleaned'").fetchone()[0]
    assert detail["analyzed"] == [] and "not the table of a cleanup rule" in detail["skipped"][0]["reason"]
