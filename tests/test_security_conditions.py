"""Issue 10: rule conditions hold only columns, constants and vetted built-ins.

A maint_admin member (adm) writes conditions that a superuser's run (or the pg_cron job)
evaluates later; each reproduction of the issue is refused when added, and a bad condition
that reached the table anyway is refused again before every run, without running it."""

from __future__ import annotations

import psycopg
import pytest

from tests.security_support import make_cast, owner_grants


@pytest.fixture
def cast(db, pg_server, make_role):
    c = make_cast(db, pg_server, make_role)
    owner_grants(db, c.owner1, f'GRANT USAGE ON SCHEMA shop TO "{c.adm}"; '
                               f'GRANT SELECT, DELETE ON shop.log TO "{c.adm}"; '
                               f"CREATE DOMAIN shop.d AS int CHECK (shop.note('domain') IS NULL OR true)")
    return c


ADD = "SELECT maint.add_retention_policy('shop.log', 'at', '30 days 12 hours', condition => %s)"

REFUSED = [
    # the reproductions
    ("pg_catalog.table_to_xml('shop.secrets'::regclass, true, false, '')::text::integer > 0", "table_to_xml"),
    ("pg_catalog.query_to_xml('select pg_catalog.lo_export(1, ''/tmp/pgmaint-x'')', true, false, '')"
     " IS NOT NULL", "query_to_xml"),
    ("pg_catalog.pg_create_physical_replication_slot('pgmaint_x', true) IS NOT NULL",
     "pg_create_physical_replication_slot"),
    ("('1'::shop.d) IS NOT NULL", "shop.d"),
    # other SQL-executing built-ins
    ("pg_catalog.cursor_to_xml('c', 1, false, false, '') IS NOT NULL", "cursor_to_xml"),
    ("pg_catalog.database_to_xml(true, false, '') IS NOT NULL", "database_to_xml"),
    ("pg_catalog.ts_stat('select to_tsvector(''x'')') IS NOT NULL", "a subquery|ts_stat|set-returning"),
    ("pg_catalog.obj_description('shop.secrets'::regclass) IS NOT NULL", "obj_description|another relation"),
    # side effects and server state
    ("pg_catalog.set_config('role', 'postgres', false) IS NOT NULL", "set_config"),
    ("pg_catalog.pg_advisory_lock(1) IS NOT NULL", "pg_advisory_lock"),
    ("pg_catalog.pg_sleep(1) IS NOT NULL", "pg_sleep"),
    ("pg_catalog.lo_import('/etc/passwd') > 0", "lo_import"),
    ("pg_catalog.pg_terminate_backend(1) IS NOT NULL", "pg_terminate_backend"),
    ("pg_catalog.pg_read_file('/etc/passwd') = msg", "pg_read_file"),
    ("pg_catalog.current_setting('data_directory') = msg", "current_setting"),
    ("pg_catalog.txid_current() > 0", "txid_current"),
    ("pg_catalog.nextval('shop.audit_id_seq') > 0", "nextval"),
    # reading beyond the row
    ("EXISTS (SELECT 1 FROM shop.secrets s WHERE s.id = id)", "a subquery|shop.secrets"),
    ("id IN (SELECT s.id FROM shop.secrets s)", "a subquery|shop.secrets"),
    ("id IN (SELECT id FROM pg_catalog.pg_class)", "a subquery"),
    ("'shop.secrets'::regclass IS NOT NULL", "another relation"),
    ("t IS NOT NULL", "whole-row"),
    ("pg_catalog.to_jsonb(t) IS NOT NULL", "whole-row|to_jsonb"),
    # the parser converts literals: a domain's CHECK inside an array or row literal would run
    # while the condition is checked (reviewer's reproduction), so types are refused first
    ("id = ANY ('{1}'::shop.d[])", "shop.d"),
    ("ROW(1)::shop.d IS NOT NULL", "shop.d"),
    # built-ins that call another table's code or read the catalogs by name or number
    ("pg_catalog.satisfies_hash_partition(16384, 2, 0, id)", "satisfies_hash_partition"),
    ("msg::regclass IS NOT NULL", "the type regclass"),
    ("id::oid::pg_catalog.regprocedure::text = msg", "the type regprocedure"),
    ("msg = ANY ('{x}'::regtype[]::text[])", "regtype"),
    # values of any size built from a constant
    ("pg_catalog.repeat(msg, 100000000) <> ''", "repeat"),
    ("pg_catalog.lpad(msg, 100000000) <> ''", "lpad"),
    # anything outside pg_catalog
    ("shop.note('condition') IS NULL", "shop.note"),
    ("msg::shop.d > 0", "shop.d"),
    ("xmlparse(content msg) IS NOT NULL", "XML"),
]


@pytest.mark.parametrize(("condition", "named"), REFUSED, ids=[r[1].split("|")[0] for r in REFUSED])
def test_conditions_that_run_sql_act_or_read_beyond_the_row_are_refused(db, cast, condition, named):
    with cast.as_role(cast.adm) as adm, pytest.raises(psycopg.Error, match=named):
        adm.execute(ADD, (condition,))
    assert db.execute("SELECT count(*) FROM maint.cleanup_rules").fetchone()[0] == 0
    # nothing happened while checking it
    assert db.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM shop.audit").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()[0] == 0


ACCEPTED = [
    "msg = 'e'",
    "status IN ('a','e')",
    "status = ANY ('{a,e}')",
    "msg ~ '^m[0-9]+$' AND lower(msg) LIKE 'm%' AND length(msg) < 10 AND msg <> 'a;b--c/*'",
    "at < now() - interval '1 day' AND extract(dow FROM at) BETWEEN 0 AND 6",
    "coalesce(msg, '') <> '' AND CASE WHEN id > 2 THEN true ELSE false END",
    "id % 2 = 0 OR id::text = '3' OR msg IS DISTINCT FROM NULL",
    "E'x' IS NULL OR msg <> 'it''s (not) e'",
]


@pytest.mark.parametrize("condition", ACCEPTED)
def test_ordinary_conditions_are_accepted(db, cast, condition):
    if condition.startswith("E'"):
        with cast.as_role(cast.adm) as adm, pytest.raises(psycopg.errors.SyntaxError, match="E''"):
            adm.execute(ADD, (condition,))
        return
    with cast.as_role(cast.adm) as adm:
        rule = adm.execute(ADD, (condition,)).fetchone()[0]
    assert db.execute("SELECT condition, created_by FROM maint.cleanup_rules WHERE id = %s",
                      (rule,)).fetchone() == (condition, cast.adm)


def test_a_bad_condition_that_reached_the_table_is_refused_before_every_run(db, cast):
    """A condition written before the kit knew better (here planted by the superuser with the
    guard trigger off) is checked again before each run: the superuser's dry run refuses the
    rule instead of evaluating it, and the journal does not carry the table's data."""
    with cast.as_role(cast.adm) as adm:
        rule = adm.execute(ADD, ("msg = 'e'",)).fetchone()[0]
    db.execute("ALTER TABLE maint.cleanup_rules DISABLE TRIGGER cleanup_rules_guard")
    planted = "pg_catalog.table_to_xml('shop.secrets'::regclass, true, false, '')::text::integer > 0"
    db.execute("UPDATE maint.cleanup_rules SET condition = %s WHERE id = %s", (planted, rule))
    db.execute("ALTER TABLE maint.cleanup_rules ENABLE TRIGGER cleanup_rules_guard")
    with pytest.raises(psycopg.errors.TriggeredActionException, match="condition is not accepted"):
        db.execute("CALL maint.apply_retention()")  # a dry run
    error = db.execute("SELECT error FROM maint.runs WHERE task = 'retention'").fetchone()[0]
    assert "table_to_xml" in error and "hush" not in error
    assert db.execute("SELECT count(*) FROM shop.log").fetchone()[0] == 40


def test_direct_writes_by_the_kits_owner_are_checked_by_the_guard_trigger(db, cast):
    with cast.as_role(cast.adm) as adm:
        rule = adm.execute(ADD, ("msg = 'e'",)).fetchone()[0]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="table_to_xml"):
        db.execute("UPDATE maint.cleanup_rules SET condition = %s WHERE id = %s",
                   ("table_to_xml('shop.secrets'::regclass, true, false, '') IS NOT NULL", rule))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="belongs to the system or to pgmaint"):
        db.execute("UPDATE maint.cleanup_rules SET target_schema = 'pg_catalog', target_table = 'pg_authid',"
                   " time_column = 'rolvaliduntil' WHERE id = %s", (rule,))


def test_checking_a_condition_never_runs_code_of_adms_temporary_types(db, cast):
    """adm's own session: a temporary domain whose CHECK would act, named qualified or not.
    The check refuses before it parses the condition, so the CHECK never runs."""
    with cast.as_role(cast.adm) as adm:
        adm.execute("CREATE DOMAIN pg_temp.d AS int CHECK (pg_catalog.pg_sleep(0) IS NULL AND"
                    " pg_catalog.set_config('pgmaint.probe', 'ran', false) IS NOT NULL)")
        for condition in ("id = ANY ('{1}'::pg_temp.d[])", "id = ANY ('{1}'::d[])"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"temporary type|pg_temp\.d"):
                adm.execute(ADD, (condition,))
            assert adm.execute("SELECT current_setting('pgmaint.probe', true)").fetchone()[0] in (None, "")


def test_a_column_changed_to_a_domain_after_the_rule_is_refused_before_the_run(db, cast):
    """owner1 turns a column the condition compares into an array of its domain (whose CHECK
    would escalate): the next run, as the superuser or maint_runner, refuses the rule before
    it parses the condition again, and no owner1 code runs."""
    owner_grants(db, cast.owner1, "ALTER TABLE shop.log ADD COLUMN tags text[] DEFAULT '{a}'")
    with cast.as_role(cast.adm) as adm:
        adm.execute(ADD, ("tags = '{b}'",))
    owner_grants(db, cast.owner1,
                 "CREATE DOMAIN shop.dt AS text CHECK (shop.note('domain') IS NULL OR true);"
                 " ALTER TABLE shop.log ALTER COLUMN tags TYPE shop.dt[] USING tags::shop.dt[]")
    db.execute("TRUNCATE shop.audit")
    with pytest.raises(psycopg.errors.TriggeredActionException, match="condition is not accepted"):
        db.execute("CALL maint.apply_retention()")
    assert "column tags of type shop.dt[]" in db.execute(
        "SELECT error FROM maint.runs WHERE task = 'retention'").fetchone()[0]
    assert db.execute("SELECT count(*) FROM shop.audit").fetchone()[0] == 0


def test_partition_bounds_are_compared_only_for_built_in_time_types(db, cast):
    """A range-partitioned table whose key is a domain over timestamptz (owner1's CHECK):
    the expiry of partitions is never computed as the kit's owner, so no owner1 code runs
    outside its executor; the rule deletes row by row as owner1 instead."""
    owner_grants(db, cast.owner1, """
        CREATE DOMAIN shop.ts AS timestamptz CHECK (shop.note('ts') IS NULL OR true);
        CREATE TABLE shop.pl (id int, at shop.ts NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
        CREATE TABLE shop.pl_old PARTITION OF shop.pl FOR VALUES FROM ('2000-01-01') TO ('2001-01-01');
        CREATE TABLE shop.pl_new PARTITION OF shop.pl FOR VALUES FROM ('2001-01-01') TO (MAXVALUE);""")
    db.execute("TRUNCATE shop.audit")
    assert db.execute("SELECT count(*) FROM maint._cleanup_expired_partitions('shop.pl', 'at', now())"
                      ).fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM shop.audit").fetchone()[0] == 0
