"""Row-level security and API exposure checks (PostgREST, Supabase, Hasura).

The API roles are cluster-wide, so the tests make their own with ``make_role`` and point
the checks' params at them instead of creating ``anon``/``authenticated``; one test looks
at the defaults on a cluster where those roles do not exist. Every finding's fix_sql is
executed and the finding must be gone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import pytest
from health_support import configure, find, only_ok, run, run_one, sessions
from psycopg import sql

CHECKS = (
    "rls_disabled_exposed",
    "policy_exists_rls_disabled",
    "rls_enabled_no_policy",
    "rls_policy_always_true",
    "multiple_permissive_policies",
    "security_definer_view",
    "materialized_view_exposed",
)
DEFAULT_PARAMS = {"schemas": ["public"], "api_roles": ["anon", "authenticated"]}


@dataclass
class Api:
    anon: str
    auth: str


def configure_all(db, params: dict) -> None:
    for name in CHECKS:
        configure(db, name, params=params)


@pytest.fixture
def api(db, make_role) -> Api:
    """Two API roles of this test (like anon and authenticated), configured in every check."""
    roles = Api(make_role(), make_role())
    configure_all(db, {"api_roles": [roles.anon, roles.auth]})
    return roles


def findings(db, name: str) -> list[dict]:
    rows = run_one(db, name)
    return [] if only_ok(rows) else rows


def fix(db, name: str, row: dict) -> None:
    """Execute the finding's fix_sql; the check must then no longer name the object."""
    assert row["fix_sql"], row
    db.execute(row["fix_sql"])
    assert row["object_name"] not in {r["object_name"] for r in findings(db, name)}


@contextmanager
def as_role(db, role: str) -> Iterator[None]:
    db.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    try:
        yield
    finally:
        db.execute("RESET ROLE")


def visible_ids(db, role: str, table: str) -> list[int]:
    with as_role(db, role):
        return [r[0] for r in db.execute(f"SELECT id FROM {table} ORDER BY id")]


def test_health_exposure_defaults_are_silent_without_the_api_roles(db, make_role):
    """Everything is open to PUBLIC in schema public, but no anon/authenticated role exists:
    nothing is exposed, each check reports its one ok row; with API roles it is not silent."""
    params = [r[0] for r in db.execute(
        "SELECT params FROM maint.check_config WHERE check_name = ANY (%s)", (list(CHECKS),))]
    assert params == [DEFAULT_PARAMS] * len(CHECKS)
    present = {r[0] for r in db.execute(
        "SELECT rolname FROM pg_roles WHERE rolname IN ('anon', 'authenticated')")}
    if present:  # left by something else on this server: name roles that surely do not exist
        configure_all(db, {"api_roles": ["anon_absent_in_this_test", "authenticated_absent_too"]})
    db.execute("""
        CREATE TABLE open_t (id int);
        CREATE TABLE pol_off (id int);
        CREATE POLICY p ON pol_off USING (true);
        CREATE TABLE no_pol (id int);
        ALTER TABLE no_pol ENABLE ROW LEVEL SECURITY;
        CREATE TABLE rls_t (id int);
        ALTER TABLE rls_t ENABLE ROW LEVEL SECURITY;
        CREATE POLICY w1 ON rls_t FOR UPDATE USING (true);
        CREATE POLICY w2 ON rls_t FOR UPDATE USING (id > 1);
        CREATE VIEW v AS SELECT * FROM rls_t;
        CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x;
        GRANT ALL ON open_t, pol_off, no_pol, rls_t, v, mv TO PUBLIC;
    """)
    rows = run(db, *CHECKS)
    assert {r["check_name"] for r in rows} == set(CHECKS)
    assert all(r["status"] == "ok" for r in rows), [r for r in rows if r["status"] != "ok"]

    api = Api(make_role(), make_role())
    configure_all(db, {"api_roles": [api.anon, api.auth]})
    exposed = {(r["check_name"], r["object_name"]) for r in run(db, *CHECKS) if r["status"] != "ok"}
    assert {
        ("rls_disabled_exposed", "public.open_t"),
        ("rls_disabled_exposed", "public.pol_off"),
        ("policy_exists_rls_disabled", "public.pol_off"),
        ("rls_enabled_no_policy", "public.no_pol"),
        ("rls_policy_always_true", "public.rls_t.w1"),
        ("multiple_permissive_policies", "public.rls_t"),
        ("materialized_view_exposed", "public.mv"),
    } <= exposed
    # v reads rls_t, whose policies its owner (a superuser) skips: a finding on every version
    assert ("security_definer_view", "public.v") in exposed


def test_health_rls_disabled_exposed(db, api):
    db.execute(f"""
        CREATE TABLE orders (id int, customer text);
        GRANT SELECT ON orders TO PUBLIC;
        CREATE TABLE "Odd Name" (id int);
        GRANT UPDATE (id) ON "Odd Name" TO {api.auth};
        CREATE TABLE writable (id int);
        GRANT DELETE ON writable TO {api.anon};
        CREATE TABLE not_granted (id int);
        CREATE TABLE protected (id int);
        ALTER TABLE protected ENABLE ROW LEVEL SECURITY;
        GRANT SELECT ON protected TO {api.anon};
        CREATE SCHEMA internal;
        CREATE TABLE internal.secrets (id int);
        GRANT USAGE ON SCHEMA internal TO {api.anon};
        GRANT SELECT ON internal.secrets TO {api.anon};
    """)
    rows = findings(db, "rls_disabled_exposed")
    assert {r["object_name"] for r in rows} == {"public.orders", 'public."Odd Name"', "public.writable"}
    orders = find(rows, "public.orders")
    assert orders["status"] == "critical"
    assert orders["object_type"] == "table"
    # PUBLIC's grant counts for both API roles
    assert orders["metadata"]["privileges"] == {api.anon: ["SELECT"], api.auth: ["SELECT"]}
    assert "every API caller can read every row" in orders["detail"]
    assert orders["fix_sql"] == "ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY;"
    odd = find(rows, 'public."Odd Name"')
    assert odd["metadata"]["privileges"] == {api.auth: ["UPDATE"]}  # a column grant counts
    assert odd["fix_sql"] == 'ALTER TABLE public."Odd Name" ENABLE ROW LEVEL SECURITY;'
    assert "can change every row" in find(rows, "public.writable")["detail"]
    for row in rows:
        fix(db, "rls_disabled_exposed", row)
    assert only_ok(run_one(db, "rls_disabled_exposed"))
    # the fix fails closed: with row level security and no policy the API gets no rows
    db.execute("INSERT INTO orders VALUES (1, 'a')")
    assert visible_ids(db, api.anon, "orders") == []


def test_health_rls_disabled_exposed_partitions(db, api):
    """A partition the API roles may read directly is exposed even if its parent has RLS."""
    db.execute(f"""
        CREATE TABLE events (id int, at date) PARTITION BY RANGE (at);
        CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
        ALTER TABLE events ENABLE ROW LEVEL SECURITY;
        GRANT SELECT ON events, events_2026 TO {api.anon};
    """)
    row = find(findings(db, "rls_disabled_exposed"), "public.events_2026")
    assert row["status"] == "critical"
    fix(db, "rls_disabled_exposed", row)
    assert only_ok(run_one(db, "rls_disabled_exposed"))


def test_health_policy_exists_rls_disabled(db, api):
    db.execute(f"""
        CREATE TABLE notes (id int, author text);
        CREATE POLICY own_notes ON notes USING (author = current_user);
        CREATE POLICY "Admins" ON notes TO {api.auth} USING (true);
        CREATE TABLE applied (id int);
        CREATE POLICY p ON applied USING (true);
        ALTER TABLE applied ENABLE ROW LEVEL SECURITY;
        CREATE SCHEMA internal;
        CREATE TABLE internal.hidden (id int);
        CREATE POLICY p ON internal.hidden USING (true);
    """)
    [row] = findings(db, "policy_exists_rls_disabled")
    assert (row["status"], row["object_name"]) == ("warning", "public.notes")
    assert row["value"] == 2
    assert row["metadata"]["policies"] == ["Admins", "own_notes"]
    assert 'policies ("Admins", own_notes)' in row["detail"]
    assert row["fix_sql"] == "ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;"
    fix(db, "policy_exists_rls_disabled", row)
    assert only_ok(run_one(db, "policy_exists_rls_disabled"))


def test_health_rls_enabled_no_policy(db, api, make_role):
    group = make_role()
    db.execute(f"""
        CREATE TABLE profiles (id int);
        ALTER TABLE profiles ENABLE ROW LEVEL SECURITY;
        GRANT SELECT ON profiles TO {group};
        GRANT {group} TO {api.anon};
        GRANT DELETE ON profiles TO PUBLIC;
        CREATE TABLE backend_only (id int);
        ALTER TABLE backend_only ENABLE ROW LEVEL SECURITY;
        CREATE TABLE with_policy (id int);
        ALTER TABLE with_policy ENABLE ROW LEVEL SECURITY;
        CREATE POLICY p ON with_policy FOR SELECT USING (id > 0);
        GRANT SELECT ON with_policy TO {api.anon};
    """)
    [row] = findings(db, "rls_enabled_no_policy")
    assert (row["status"], row["object_name"]) == ("info", "public.profiles")
    assert row["metadata"]["privileges"] == {api.anon: ["SELECT", "DELETE"], api.auth: ["DELETE"]}
    # the anon role reads through its group: the REVOKE names the group and PUBLIC
    assert row["fix_sql"] == f"REVOKE SELECT, INSERT, UPDATE, DELETE ON public.profiles FROM PUBLIC, {group};"
    fix(db, "rls_enabled_no_policy", row)
    assert only_ok(run_one(db, "rls_enabled_no_policy"))
    with as_role(db, api.anon), pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("SELECT * FROM profiles")


def test_health_rls_policy_always_true(db, api, make_role):
    other = make_role()
    db.execute(f"""
        CREATE TABLE posts (id int, author text);
        ALTER TABLE posts ENABLE ROW LEVEL SECURITY;
        GRANT SELECT, INSERT, UPDATE, DELETE ON posts TO {api.anon}, {other};
        GRANT SELECT, INSERT, UPDATE ON posts TO {api.auth};
        CREATE POLICY read_all ON posts FOR SELECT USING (true);
        CREATE POLICY upd ON posts FOR UPDATE TO {api.auth} USING (true);
        CREATE POLICY ins ON posts FOR INSERT TO {api.anon} WITH CHECK (1 = 1);
        CREATE POLICY "Own rows" ON posts FOR DELETE TO {api.anon} USING (author = current_user);
        CREATE POLICY no_expr ON posts FOR INSERT TO {api.auth};
        CREATE POLICY narrow ON posts AS RESTRICTIVE FOR UPDATE TO {api.anon} USING (true);
        CREATE POLICY not_api ON posts FOR DELETE TO {other} USING (true);
        CREATE POLICY no_privilege ON posts FOR DELETE TO {api.auth} USING (true);
    """)
    rows = findings(db, "rls_policy_always_true")
    assert {r["object_name"] for r in rows} == {"public.posts.upd", "public.posts.ins"}
    upd = find(rows, "public.posts.upd")
    assert (upd["status"], upd["object_type"]) == ("warning", "policy")
    assert upd["metadata"]["open_commands"] == ["UPDATE"]
    assert f"it lets {api.auth} UPDATE any row" in upd["detail"]
    assert upd["fix_sql"] == "DROP POLICY upd ON public.posts;"
    ins = find(rows, "public.posts.ins")
    assert ins["metadata"]["with_check"] == "(1 = 1)"
    # what the check claims: the always-true INSERT policy lets anon insert anything, the
    # INSERT policy without an expression lets the other role insert nothing
    with as_role(db, api.anon):
        db.execute("INSERT INTO posts VALUES (1, 'somebody else')")
    with as_role(db, api.auth), pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("INSERT INTO posts VALUES (2, 'x')")
    for row in rows:
        fix(db, "rls_policy_always_true", row)
    assert only_ok(run_one(db, "rls_policy_always_true"))


def test_health_rls_policy_always_true_for_all_commands(db, api):
    """FOR ALL USING (true) without WITH CHECK opens every write; on a table the API roles
    may only read it is the deliberate public-read pattern and stays silent."""
    db.execute("""
        CREATE TABLE shared (id int);
        ALTER TABLE shared ENABLE ROW LEVEL SECURITY;
        CREATE POLICY everything ON shared USING (true);
        GRANT SELECT ON shared TO PUBLIC;
    """)
    assert only_ok(run_one(db, "rls_policy_always_true"))
    db.execute(f"GRANT INSERT, DELETE ON shared TO {api.anon}")
    row = find(findings(db, "rls_policy_always_true"), "public.shared.everything")
    assert row["metadata"]["open_commands"] == ["INSERT", "DELETE"]
    assert row["metadata"]["command"] == "ALL"
    fix(db, "rls_policy_always_true", row)


def test_health_multiple_permissive_policies_merged_by_the_fix(db, api):
    db.execute(f"""
        CREATE TABLE docs (id int, owner text);
        INSERT INTO docs SELECT g, 'u' || g FROM generate_series(1, 10) AS g;
        ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
        GRANT SELECT, INSERT ON docs TO {api.anon};
        CREATE POLICY low ON docs FOR SELECT TO {api.anon} USING (id < 3);
        CREATE POLICY "High ids" ON docs FOR SELECT TO {api.anon} USING (id > 8);
        CREATE POLICY ins_only ON docs FOR INSERT TO {api.anon} WITH CHECK (owner = 'u1');
        CREATE POLICY only_one ON docs AS RESTRICTIVE FOR SELECT TO {api.anon} USING (id <> 10);
    """)
    [row] = findings(db, "multiple_permissive_policies")
    assert (row["status"], row["object_name"]) == ("warning", "public.docs")
    assert row["metadata"]["overlaps"] == [
        {"role": api.anon, "command": "SELECT", "policies": ["High ids", "low"]}
    ]
    assert f'{api.anon} SELECT: "High ids", low' in row["detail"]
    assert row["fix_sql"] == (
        'BEGIN; DROP POLICY "High ids" ON public.docs; DROP POLICY low ON public.docs;'
        f' CREATE POLICY "High ids" ON public.docs AS PERMISSIVE FOR SELECT TO {api.anon}'
        " USING (((id > 8)) OR ((id < 3))); COMMIT;"
    )
    before = visible_ids(db, api.anon, "docs")
    assert before == [1, 2, 9]
    fix(db, "multiple_permissive_policies", row)
    assert only_ok(run_one(db, "multiple_permissive_policies"))
    assert visible_ids(db, api.anon, "docs") == before  # the merge allows what the two allowed


def test_health_multiple_permissive_policies_merge_keeps_writes(db, api):
    """FOR ALL policies: USING ORs the USING clauses; WITH CHECK ORs each policy's WITH CHECK,
    or its USING where it has none (what PostgreSQL checks new rows against)."""
    db.execute(f"""
        CREATE TABLE items (id int);
        ALTER TABLE items ENABLE ROW LEVEL SECURITY;
        GRANT SELECT, INSERT ON items TO PUBLIC;
        CREATE POLICY a ON items TO {api.anon}, {api.auth} USING (id < 5) WITH CHECK (id < 3);
        CREATE POLICY b ON items TO {api.auth}, {api.anon} USING (id > 15);
        CREATE POLICY c ON items TO {api.anon}, {api.auth} WITH CHECK (id = 100);
    """)
    [row] = findings(db, "multiple_permissive_policies")
    roles = ", ".join(sorted([api.anon, api.auth]))
    assert row["fix_sql"].endswith(
        f"CREATE POLICY a ON public.items AS PERMISSIVE FOR ALL TO {roles}"
        " USING (((id < 5)) OR ((id > 15))) WITH CHECK (((id < 3)) OR ((id > 15)) OR ((id = 100))); COMMIT;"
    )

    def insertable() -> list[int]:
        ok = []
        with as_role(db, api.auth):
            for i in (1, 4, 10, 16, 100):
                try:
                    with db.transaction():
                        db.execute("INSERT INTO items VALUES (%s)", (i,))
                    ok.append(i)
                except psycopg.errors.InsufficientPrivilege:
                    pass
        db.execute("DELETE FROM items")
        return ok

    before = insertable()
    assert before == [1, 16, 100]
    fix(db, "multiple_permissive_policies", row)
    assert insertable() == before


def test_health_multiple_permissive_policies_not_mergeable(db, api, make_role):
    other = make_role()
    db.execute(f"""
        CREATE TABLE feed (id int, owner text);
        ALTER TABLE feed ENABLE ROW LEVEL SECURITY;
        GRANT SELECT ON feed TO {api.anon}, {api.auth}, {other};
        CREATE POLICY public_read ON feed FOR SELECT USING (id < 100);
        CREATE POLICY own ON feed FOR ALL TO {api.auth} USING (owner = current_user);
        CREATE TABLE solo (id int);
        ALTER TABLE solo ENABLE ROW LEVEL SECURITY;
        GRANT SELECT ON solo TO {api.anon};
        CREATE POLICY mine ON solo FOR SELECT TO {api.anon} USING (id = 1);
        CREATE POLICY theirs ON solo FOR SELECT TO {other} USING (id = 2);
        CREATE POLICY no_grant ON solo FOR DELETE TO {api.anon} USING (id = 3);
        CREATE POLICY no_grant_2 ON solo FOR DELETE TO {api.anon} USING (id = 4);
    """)
    [row] = findings(db, "multiple_permissive_policies")
    assert row["object_name"] == "public.feed"
    assert row["metadata"]["overlaps"] == [
        {"role": api.auth, "command": "SELECT", "policies": ["own", "public_read"]}
    ]
    assert row["fix_sql"] is None  # different roles and commands: a person has to merge them
    assert "no merge is given" in row["remediation"]


def test_health_security_definer_view(db, api):
    v15 = db.info.server_version >= 150000
    db.execute(f"""
        CREATE TABLE accounts (id int, owner text);
        INSERT INTO accounts VALUES (1, 'a'), (2, 'b');
        ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
        CREATE POLICY own ON accounts TO {api.anon} USING (owner = 'a');
        GRANT SELECT ON accounts TO {api.anon};
        CREATE VIEW account_list AS SELECT id, owner FROM accounts;
        CREATE TABLE plain (id int);
        CREATE VIEW plain_list AS SELECT id FROM plain;
        CREATE SCHEMA private;
        CREATE VIEW private.inner_accounts AS SELECT id FROM accounts;
        CREATE VIEW nested AS SELECT id FROM private.inner_accounts;
        CREATE VIEW unexposed AS SELECT id FROM accounts;
        GRANT SELECT ON account_list, plain_list, nested TO {api.anon};
    """)
    # the leak itself: anon sees only its rows in the table, all of them through the view
    assert visible_ids(db, api.anon, "accounts") == [1]
    assert visible_ids(db, api.anon, "account_list") == [1, 2]
    rows = findings(db, "security_definer_view")
    expected = {"public.account_list", "public.nested"} | ({"public.plain_list"} if v15 else set())
    assert {r["object_name"] for r in rows} == expected
    view = find(rows, "public.account_list")
    assert (view["status"], view["object_type"]) == ("warning", "view")
    assert view["metadata"]["skips_rls"] == ["public.accounts"]
    assert "serves rows of public.accounts whose row level security policies its owner skips" in (
        view["detail"])
    assert find(rows, "public.nested")["metadata"]["skips_rls"] == ["public.accounts"]
    if v15:
        assert find(rows, "public.plain_list")["metadata"]["skips_rls"] == []
        assert view["fix_sql"] == "ALTER VIEW public.account_list SET (security_invoker = on);"
    else:
        assert view["fix_sql"] == (
            f"REVOKE SELECT, INSERT, UPDATE, DELETE ON public.account_list FROM {api.anon};"
        )
    for row in rows:
        fix(db, "security_definer_view", row)
    assert only_ok(run_one(db, "security_definer_view"))
    if v15:  # the view now applies the caller's policies
        assert visible_ids(db, api.anon, "account_list") == [1]


def test_health_security_definer_view_owner_subject_to_policies(db, api, make_role):
    """A view whose owner is subject to the table's policies (FORCE ROW LEVEL SECURITY on
    the owner's table) does not skip them: on 13/14 it is no finding, on 15+ it still is
    one (it runs as its owner), with nothing in skips_rls."""
    owner = make_role()
    db.execute(f"""
        CREATE TABLE ledger (id int);
        ALTER TABLE ledger OWNER TO {owner};
        ALTER TABLE ledger ENABLE ROW LEVEL SECURITY;
        CREATE VIEW ledger_view AS SELECT id FROM ledger;
        ALTER VIEW ledger_view OWNER TO {owner};
        GRANT SELECT ON ledger_view TO {api.auth};
    """)
    row = find(findings(db, "security_definer_view"), "public.ledger_view")
    assert row["metadata"]["skips_rls"] == ["public.ledger"]  # the owner of the table bypasses it
    db.execute("ALTER TABLE ledger FORCE ROW LEVEL SECURITY")
    rows = findings(db, "security_definer_view")
    if db.info.server_version >= 150000:
        assert find(rows, "public.ledger_view")["metadata"]["skips_rls"] == []
        db.execute("ALTER VIEW ledger_view SET (security_invoker = true)")
        assert only_ok(run_one(db, "security_definer_view"))
    else:
        assert rows == []


def test_health_materialized_view_exposed(db, api):
    db.execute(f"""
        CREATE MATERIALIZED VIEW totals AS SELECT 1 AS id, 100 AS amount;
        GRANT SELECT ON totals TO PUBLIC;
        CREATE MATERIALIZED VIEW "Per Customer" AS SELECT 1 AS id, 'x' AS customer;
        GRANT SELECT (id) ON "Per Customer" TO {api.auth};
        CREATE MATERIALIZED VIEW internal_stats AS SELECT 1 AS id;
    """)
    rows = findings(db, "materialized_view_exposed")
    assert {r["object_name"] for r in rows} == {"public.totals", 'public."Per Customer"'}
    totals = find(rows, "public.totals")
    assert (totals["status"], totals["object_type"]) == ("warning", "materialized view")
    assert totals["metadata"]["readers"] == sorted([api.anon, api.auth])
    assert totals["fix_sql"] == "REVOKE SELECT ON public.totals FROM PUBLIC;"
    per = find(rows, 'public."Per Customer"')
    assert per["fix_sql"] == f'REVOKE SELECT ON public."Per Customer" FROM {api.auth};'
    for row in rows:
        fix(db, "materialized_view_exposed", row)
    assert only_ok(run_one(db, "materialized_view_exposed"))


def test_health_exposure_schemas_and_usage_come_from_params(db, api):
    db.execute(f"""
        CREATE SCHEMA api;
        CREATE TABLE api.open_t (id int);
        GRANT SELECT ON api.open_t TO {api.anon};
    """)
    assert only_ok(run_one(db, "rls_disabled_exposed"))  # schema api is not exposed
    configure(db, "rls_disabled_exposed", params={"schemas": ["public", "api"]})
    assert only_ok(run_one(db, "rls_disabled_exposed"))  # exposed, but the role may not use it
    db.execute(f"GRANT USAGE ON SCHEMA api TO {api.anon}")
    row = find(findings(db, "rls_disabled_exposed"), "api.open_t")
    assert row["fix_sql"] == "ALTER TABLE api.open_t ENABLE ROW LEVEL SECURITY;"
    configure(db, "rls_disabled_exposed", params={"api_roles": [api.auth]})  # anon is no API role now
    assert only_ok(run_one(db, "rls_disabled_exposed"))


def test_health_exposure_bad_params_are_unknown(db):
    configure(db, "rls_disabled_exposed", params={"schemas": "public"})
    [row] = run_one(db, "rls_disabled_exposed")
    assert row["status"] == "unknown"
    assert "params.schemas must be a JSON array of schema names" in row["detail"]
    configure(db, "materialized_view_exposed", params={"api_roles": ["anon", 7]})
    [row] = run_one(db, "materialized_view_exposed")
    assert row["status"] == "unknown"
    assert "params.api_roles must be a JSON array of role names" in row["detail"]


def test_health_exposure_extension_objects_are_left_out(db, api):
    db.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
    db.execute("""
        CREATE TABLE ext_owned (id int);
        GRANT SELECT ON ext_owned TO PUBLIC;
        ALTER EXTENSION pg_trgm ADD TABLE ext_owned;
    """)
    assert only_ok(run_one(db, "rls_disabled_exposed"))
    db.execute("ALTER EXTENSION pg_trgm DROP TABLE ext_owned")
    assert find(findings(db, "rls_disabled_exposed"), "public.ext_owned")["status"] == "critical"


def test_health_exposure_same_for_a_monitoring_role(db, api, pg_server, make_role):
    """maint_monitor reads only catalogs and privilege functions: it gets the findings a
    superuser gets, on objects it has no rights on at all."""
    db.execute(f"""
        CREATE TABLE open_t (id int);
        GRANT SELECT ON open_t TO {api.anon};
        CREATE TABLE pol_off (id int);
        CREATE POLICY p ON pol_off USING (true);
        CREATE TABLE no_pol (id int);
        ALTER TABLE no_pol ENABLE ROW LEVEL SECURITY;
        GRANT SELECT ON no_pol TO {api.auth};
        CREATE TABLE rls_t (id int);
        ALTER TABLE rls_t ENABLE ROW LEVEL SECURITY;
        GRANT ALL ON rls_t TO {api.anon};
        CREATE POLICY w1 ON rls_t FOR UPDATE USING (true);
        CREATE POLICY w2 ON rls_t FOR UPDATE USING (id > 1);
        CREATE VIEW v AS SELECT * FROM rls_t;
        GRANT SELECT ON v TO {api.anon};
        CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x;
        GRANT SELECT ON mv TO {api.anon};
    """)

    def key(rows):
        return sorted((r["check_name"], r["status"], r["object_name"], r["fix_sql"] or "") for r in rows)

    as_superuser = run(db, *CHECKS)
    assert len([r for r in as_superuser if r["status"] != "ok"]) == 7  # a finding from each check
    monitor = make_role("maint_monitor")
    with sessions(pg_server, db.info.dbname, user=monitor) as (mon,):
        assert not mon.execute("SELECT has_table_privilege('rls_t', 'SELECT')").fetchone()[0]
        assert key(run(mon, *CHECKS)) == key(as_superuser)
