"""What contrib/ ships for notify: the systemd unit (checked by systemd's own parser, and its
command run against a real database) and the example targets file (every target accepted by
apprise, with its secrets masked in what the database sees)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.notify import targets

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "contrib" / "systemd" / "pgmaint-notify@.service"
EXAMPLE = ROOT / "contrib" / "notify.toml.example"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def test_the_example_targets_file_loads_and_masks_its_secrets(monkeypatch):
    monkeypatch.setenv("PGMAINT_PAGER_URL", "pagerduty://IntegrationKey@ApiKey")
    loaded = {t.name: t for t in targets.config_targets(EXAMPLE)}
    assert set(loaded) == {"ops-chat", "pager", "dba-mail"}
    assert loaded["pager"].min_severity == "critical" and loaded["ops-chat"].min_severity == "warning"
    assert "secret" not in loaded["dba-mail"].label and "IntegrationKey" not in loaded["pager"].label


def _instance(tmp_path: Path, dsn: str, config: Path) -> tuple[Path, list[str]]:
    """The unit as an installed instance for database 'tests': paths pointing here."""
    env_file = tmp_path / "notify-tests.env"
    env_file.write_text(f"PGMAINT_DSN={dsn}\n")
    text = UNIT.read_text()
    text = text.replace("/usr/local/bin/pgmaint", str(Path(sys.executable).parent / "pgmaint"))
    text = text.replace("/etc/pgmaint/notify.toml", str(config))
    text = text.replace("/etc/pgmaint/notify-%i.env", str(env_file))
    text = re.sub(r"^(User|Group)=.*$", "", text, flags=re.M)
    unit = tmp_path / "pgmaint-notify@tests.service"
    unit.write_text(text)
    [exec_start] = re.findall(r"^ExecStart=(.+)$", text, re.M)
    return unit, shlex.split(exec_start)


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_the_systemd_unit_verifies_and_its_command_runs(db, db_dsn, tmp_path):
    config = tmp_path / "notify.toml"
    config.write_text('[targets.hook]\nurl = "json://127.0.0.1:9/hook"\n')
    unit, argv = _instance(tmp_path, db_dsn, config)
    verify = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)],
                            capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    assert "Restart=always" in unit.read_text() and "--watch" in argv
    # the same command, as a dry run, with the unit's environment
    db.execute("SELECT maint._event('run', 'critical', 't', 'x failed')")
    argv[argv.index("--watch")] = "--dry-run"
    run = subprocess.run(argv, capture_output=True, text=True,
                         env={**os.environ, "PGMAINT_DSN": db_dsn, "PGMAINT_NOTIFY_URLS": ""})
    assert run.returncode == 0, run.stderr
    assert "hook (json://127.0.0.1:9/hook" in run.stdout and "1 message(s) would be sent" in run.stdout
