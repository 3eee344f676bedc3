"""The cast of the security tests (issue 10): real, separate LOGIN roles in one database.

* ``nobody``  can connect, has no kit role;
* ``mon``     member of maint_monitor;
* ``adm``     member of maint_admin;
* ``owner1``  owns schema ``shop`` and its tables, triggers and functions;
the kit is deployed by the superuser ``postgres`` (``db``). ``shop.audit`` records, from
owner1's own code, which role that code ran as (current_user) and what it could do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

SHOP = """
CREATE SCHEMA shop AUTHORIZATION {owner1};
SET ROLE {owner1};
CREATE TYPE shop.status AS ENUM ('a', 'e', 'x');
CREATE TABLE shop.log (id int PRIMARY KEY, at timestamptz NOT NULL, msg text,
                       status shop.status DEFAULT 'a');
INSERT INTO shop.log SELECT g, now() - g * interval '1 day', 'm' || g, 'a'
  FROM generate_series(1, 40) g;
CREATE TABLE shop.secrets (id int PRIMARY KEY, at timestamptz NOT NULL, secret text);
INSERT INTO shop.secrets SELECT g, now() - g * interval '1 day', 'hush-' || g FROM generate_series(1, 20) g;
CREATE TABLE shop.audit (id bigserial PRIMARY KEY, tag text, cu text, su text, note text);
-- owner1's code, as a table owner would write it against a superuser's maintenance:
-- records who it runs as, then tries to climb back to the session user and to make
-- owner1 superuser (both must fail)
CREATE FUNCTION shop.note(p_tag text) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE v_reset text := 'reset ok'; v_alter text := 'alter ok';
BEGIN
    BEGIN RESET ROLE; EXCEPTION WHEN OTHERS THEN v_reset := SQLERRM; END;
    BEGIN EXECUTE format('ALTER ROLE %I SUPERUSER', {owner1_lit});
    EXCEPTION WHEN OTHERS THEN v_alter := SQLERRM; END;
    INSERT INTO shop.audit (tag, cu, su, note)
    VALUES (p_tag, current_user, session_user, v_reset || ' | ' || v_alter);
END $f$;
CREATE FUNCTION shop.trg() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN PERFORM shop.note(TG_NAME); RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END; END $f$;
RESET ROLE;
"""


@dataclass
class Cast:
    dbname: str
    nobody: str
    mon: str
    adm: str
    owner1: str
    server: object

    def connect(self, role: str, **extra: str) -> psycopg.Connection:
        return self.server.connect(self.dbname, user=role, **extra)  # type: ignore[attr-defined]

    @contextmanager
    def as_role(self, role: str, **extra: str) -> Iterator[psycopg.Connection]:
        with self.connect(role, **extra) as conn:
            yield conn


def make_cast(db: psycopg.Connection, pg_server: object, make_role) -> Cast:  # type: ignore[no-untyped-def]
    nobody = make_role()
    mon = make_role("maint_monitor")
    adm = make_role("maint_admin")
    owner1 = make_role()
    db.execute(
        sql.SQL(SHOP).format(owner1=sql.Identifier(owner1), owner1_lit=sql.Literal(owner1)).as_string(db)
    )
    return Cast(db.info.dbname, nobody, mon, adm, owner1, pg_server)


def is_superuser(db: psycopg.Connection, role: str) -> bool:
    return db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone()[0]


def audit(db: psycopg.Connection) -> list[tuple[str, str, str, str]]:
    return db.execute("SELECT tag, cu, su, note FROM shop.audit ORDER BY id").fetchall()


def owner_grants(db: psycopg.Connection, owner1: str, statement: str) -> None:
    """Run a GRANT (or other statement) as owner1, the way the table owner would."""
    db.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner1)))
    try:
        db.execute(statement)  # type: ignore[arg-type]
    finally:
        db.execute("RESET ROLE")
