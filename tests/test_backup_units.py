"""Pieces without a server: compression specs, redaction, sizes, atomic files, sweeping."""

from __future__ import annotations

import json
import os

import pytest

from orchestrator import backup_files as files
from orchestrator.backup_cmd import parse_size
from orchestrator.backup_tools import child_conninfo, compression_args, redact


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


def test_database_dir_is_path_safe(tmp_path):
    assert files.database_dir(tmp_path, "app").name == "app"
    assert "/" not in files.database_dir(tmp_path, "a/../b").name
    assert files.database_dir(tmp_path, "..").name != ".."
    assert os.sep not in files.database_dir(tmp_path, "x/y").name


def test_cron_filter_drops_pg_cron_only():
    from orchestrator.backup_verify import cron_filter

    toc = "\n".join(
        [
            ";",
            "2; 3079 16385 EXTENSION - pg_cron ",
            "3333; 0 0 COMMENT - EXTENSION pg_cron ",
            "3400; 0 16400 TABLE DATA cron job postgres",
            "3401; 0 16500 TABLE DATA public cronicle postgres",
            "216; 1259 16456 TABLE public t postgres",
        ]
    )
    listing, notes = cron_filter(toc)
    assert listing is not None and notes
    kept = listing.splitlines()
    assert "3401; 0 16500 TABLE DATA public cronicle postgres" in kept
    assert "216; 1259 16456 TABLE public t postgres" in kept
    assert not any("pg_cron" in ln or " cron job " in ln for ln in kept)
    assert cron_filter("216; 1259 16456 TABLE public t postgres\n") == (None, [])


def test_an_ambiguous_backup_id_is_refused(tmp_path):
    """Ids restart at 1 after the kit is reinstalled: never restore a guess."""
    from orchestrator.backup_errors import BackupError
    from orchestrator.backup_verify import locate

    dbdir = files.database_dir(tmp_path, "app")
    for name in ("20260101T000000Z-1", "20260301T000000Z-1", "20260302T000000Z-2"):
        (dbdir / name).mkdir(parents=True)
        files.write_json_atomic(dbdir / name / files.MANIFEST, {"started_at": "2026-01-01T00:00:00Z"})
    assert locate(tmp_path, "app", 2).path.name == "20260302T000000Z-2"
    with pytest.raises(BackupError, match="2 backups of database 'app' have id 1"):
        locate(tmp_path, "app", 1)
