"""The demo section: a backup with restore verification and its catalog row."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from orchestrator.backup.cmd import demo_section


def test_demo_section_backs_up_verifies_and_shows_the_catalog_row(db, tmp_path, monkeypatch):
    monkeypatch.setenv("PGMAINT_BACKUP_DIR", str(tmp_path))
    db.execute("CREATE TABLE public.demo_items AS SELECT g AS id FROM generate_series(1, 100) g")
    buf = StringIO()
    demo_section(db, Console(file=buf, width=200, highlight=False))
    text = buf.getvalue()
    assert "verify restore: ok" in text
    assert "maint.backups" in text and "verified" in text
    row = db.execute("SELECT status, verify_level FROM maint.backups").fetchone()
    assert row == ("verified", "restore")
