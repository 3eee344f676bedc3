"""Engineering standards every SQL routine of the kit must meet, checked on the catalog."""

import re
from pathlib import Path

import psycopg
import pytest

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "sql" / "functions"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "sql" / "migrations"


def kit_routines(db):
    return db.execute(
        """
        SELECT p.oid::regprocedure::text, p.prokind, p.proconfig, p.prosrc, p.prosecdef,
               l.lanname, p.proacl::text
          FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
         WHERE p.pronamespace = 'maint'::regnamespace
         ORDER BY 1
        """
    ).fetchall()


def test_every_routine_pins_search_path(db):
    offenders = []
    for name, kind, config, src, _secdef, _lang, _acl in kit_routines(db):
        pinned = any(c.startswith("search_path=") for c in (config or []))
        if kind == "p" and not pinned:
            # a procedure that commits cannot have SET; it must set it itself first
            pinned = "set_config('search_path'" in src
        if not pinned:
            offenders.append(name)
    assert not offenders, f"routines without a pinned search_path: {offenders}"


def test_security_definer_routines_pin_search_path(db):
    offenders = [
        name for name, _k, config, _s, secdef, _l, _a in kit_routines(db)
        if secdef and not any(c.startswith("search_path=") for c in (config or []))
    ]
    assert not offenders


def test_no_routine_is_executable_by_public(db):
    offenders = [
        name for name, _k, _c, _s, _d, _l, acl in kit_routines(db)
        if acl is None or re.search(r"(^|[{,])=X", acl)
    ]
    assert not offenders, f"EXECUTE granted to PUBLIC: {offenders}"


def test_schema_is_not_usable_by_public(db):
    acl = db.execute("SELECT nspacl::text FROM pg_namespace WHERE nspname = 'maint'").fetchone()[0]
    assert not re.search(r"(^|[{,])=U", acl), acl


def test_every_routine_is_declared_by_a_function_file(db):
    """A routine that no file declares is a leftover: drop it in a migration."""
    declared = set()
    for path in FUNCTIONS_DIR.glob("*.sql"):
        declared |= {
            m.lower()
            for m in re.findall(
                r"CREATE\s+OR\s+REPLACE\s+(?:FUNCTION|PROCEDURE)\s+maint\.(\w+)",
                path.read_text(), re.IGNORECASE,
            )
        }
    names = {name.split("(")[0].removeprefix("maint.") for name, *_ in kit_routines(db)}
    assert names - declared == set()


def test_migration_files_are_named_and_ordered():
    for path in MIGRATIONS_DIR.iterdir():
        if path.name.startswith("post-apply") or path.suffix == ".py":
            continue
        assert re.fullmatch(r"\d{4}_[a-z0-9_]+(\.rollback)?\.sql", path.name), path.name


def test_plpgsql_check_finds_no_errors(db):
    try:
        db.execute("CREATE EXTENSION IF NOT EXISTS plpgsql_check")
    except psycopg.errors.FeatureNotSupported:
        pytest.skip("plpgsql_check is not installed (apt-get install postgresql-15-plpgsql-check)")
    except psycopg.errors.UndefinedFile:
        pytest.skip("plpgsql_check is not installed (apt-get install postgresql-15-plpgsql-check)")
    rows = db.execute(
        """
        SELECT p.oid::regprocedure::text, c.level, c.message, c.lineno
          FROM pg_proc p
          JOIN pg_language l ON l.oid = p.prolang AND l.lanname = 'plpgsql'
          CROSS JOIN LATERAL plpgsql_check_function_tb(p.oid) AS c
         WHERE p.pronamespace = 'maint'::regnamespace
           AND p.prorettype <> 'trigger'::regtype
           AND c.level = 'error'
        """
    ).fetchall()
    # pg_cron's tables exist only in the cron database; the kit reaches them through
    # EXECUTE after maint.cron_status() said they are here
    rows = [r for r in rows if not re.fullmatch(r'relation "cron\.\w+" does not exist', r[2])]
    # a version switch (maint._server_version_num()) has branches for catalogs of other
    # versions, which plpgsql_check cannot tell from mistakes: the version matrix runs them
    switched = {name for (name,) in db.execute(
        r"""SELECT p.oid::regprocedure::text FROM pg_proc p
            WHERE p.pronamespace = 'maint'::regnamespace
              AND p.prosrc ~ 'maint\._server_version_num\(\)'""").fetchall()}
    rows = [r for r in rows if not (r[0] in switched and re.fullmatch(
        r'(relation|column) "?[\w.]+"? does not exist', r[2]))]
    assert not rows, "\n".join(f"{r[0]} line {r[3]}: {r[2]}" for r in rows)
