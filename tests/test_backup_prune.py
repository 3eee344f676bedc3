"""Retention from manifests: dry run by default, only good backups count, floors hold."""

from __future__ import annotations

import json
import time
from pathlib import Path

from backup_support import backups_dir, run, run_json

from orchestrator.backup import files, prune

DAY = 86400.0


def fake_backup(
    dbdir: Path, backup_id: int, age_days: float, *, verify_ok: bool | None = None, now: float
) -> Path:
    started = now - age_days * DAY
    path = dbdir / files.backup_name(started, backup_id)
    path.mkdir(parents=True)
    (path / "database.dump").write_bytes(b"x" * 1000)
    (path / files.MANIFEST).write_text(
        json.dumps(
            {
                "id": backup_id,
                "status": "completed",
                "bytes": 1000,
                "format": "custom",
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            }
        )
    )
    if verify_ok is not None:
        (path / files.VERIFY_FILE).write_text(
            json.dumps(
                {"ok": verify_ok, "level": "read", "problems": [] if verify_ok else ["bad block"]}
            )
        )
    return path


def layout(dbdir: Path, now: float) -> None:
    for i, age in enumerate([10, 8, 6, 4, 2, 1], start=1):
        fake_backup(dbdir, i, age, now=now)
    fake_backup(dbdir, 7, 0.5, verify_ok=False, now=now)  # newest, but corrupt
    (dbdir / ".partial-20260101T000000Z-8").mkdir()
    no_manifest = dbdir / files.backup_name(now - 3 * DAY, 9)
    no_manifest.mkdir()


def ids(items):
    return sorted(x["id"] for x in items)


def test_keep_last_counts_only_good_backups(tmp_path):
    now = time.time()
    layout(tmp_path, now)
    p = prune.plan(tmp_path, keep_last=2, keep_days=None, now=now)
    assert ids(p.keep) == [5, 6]  # 7 failed verification: it does not count
    assert ids(p.delete) == [1, 2, 3, 4]
    assert sorted(str(g["id"]) for g in p.garbage) == ["7", "9", "None"]


def test_keep_days_and_keep_last_together(tmp_path):
    now = time.time()
    layout(tmp_path, now)
    p = prune.plan(tmp_path, keep_last=1, keep_days=5, now=now)
    assert ids(p.keep) == [4, 5, 6]
    assert ids(p.delete) == [1, 2, 3]


def test_never_deletes_the_newest_good_backup(tmp_path):
    now = time.time()
    layout(tmp_path, now)
    p = prune.plan(tmp_path, keep_last=None, keep_days=0, now=now)
    assert ids(p.keep) == [6]
    assert ids(p.delete) == [1, 2, 3, 4, 5]


def test_cli_is_a_dry_run_until_execute(db, db_dsn, tmp_path):
    now = time.time()
    dbdir = backups_dir(tmp_path, db)
    layout(dbdir, now)
    before = sorted(p.name for p in dbdir.iterdir())
    code, data = run_json("backup", "prune", "--keep-last", "3", "--dir", str(tmp_path), dsn=db_dsn)
    assert code == 0 and data["executed"] is False
    assert ids(data["delete"]) == [1, 2, 3]
    assert sorted(p.name for p in dbdir.iterdir()) == before  # nothing touched

    result = run(
        "backup", "prune", "--keep-last", "3", "--execute", "--dir", str(tmp_path), dsn=db_dsn
    )
    assert result.exit_code == 0, result.stderr
    assert "deleted" in result.stdout
    left = {e.backup_id for e in files.scan(dbdir)}
    assert left == {4, 5, 6}
    run_row = db.execute(
        "SELECT status, parameters->>'execute' FROM maint.runs "
        "WHERE task = 'backup' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert run_row == ("succeeded", "true")


def test_prune_keeps_real_backups_and_removes_garbage(db, db_dsn, tmp_path):
    made = []
    for _ in range(3):
        code, data = run_json(
            "backup", "create", "--verify", "none", "--dir", str(tmp_path), dsn=db_dsn
        )
        assert code == 0
        made.append(data["id"])
    (backups_dir(tmp_path, db) / ".partial-20200101T000000Z-77").mkdir()
    code, data = run_json(
        "backup", "prune", "--keep-last", "2", "--execute", "--dir", str(tmp_path), dsn=db_dsn
    )
    assert code == 0
    assert ids(data["delete"]) == [made[0]] and len(data["garbage"]) == 1
    assert [e.backup_id for e in files.scan(backups_dir(tmp_path, db))] == made[1:]
    pruned = db.execute(
        "SELECT detail ? 'pruned_at' FROM maint.backups WHERE id = %s", (made[0],)
    ).fetchone()[0]
    assert pruned is True
