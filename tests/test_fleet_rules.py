"""contrib/prometheus/pgmaint-rules.yml passes promtool and names only metrics the exporter serves."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "contrib" / "prometheus" / "pgmaint-rules.yml"
DASHBOARD = ROOT / "contrib" / "grafana" / "pgmaint-dashboard.json"


def served_metrics() -> set[str]:
    sql = (ROOT / "sql" / "functions" / "maint.metrics.sql").read_text()
    return set(re.findall(r"'(pgmaint_[a-z_]+)'", sql)) | {
        "pgmaint_up", "pgmaint_scrape_duration_seconds", "pgmaint_scrape_age_seconds"}


def test_promtool_accepts_the_rules():
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: make setup (Debian package prometheus)"
    done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_rules_and_dashboard_use_served_metrics():
    served = served_metrics()
    for path in (RULES, DASHBOARD):
        used = set(re.findall(r"\b(pgmaint_[a-z_]+)\b", path.read_text())) - {"pgmaint_exporter"}
        assert used, path
        assert used <= served, (path, used - served)
