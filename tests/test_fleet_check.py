"""``pgmaint check --target/--tag/--all``: one summary row per target over two servers (kit,
no kit, unreachable), the worst exit code, JSON, and no output until every target is done."""

from __future__ import annotations

import json

import psycopg
import pytest
from fleet_support import run_cli, second_server, target_toml, unreachable_dsn, write_inventory

QUIET = ["--skip", "settings_sanity"]  # the test servers run with fsync off: critical


@pytest.fixture(scope="module")
def other(pg_bindir):
    with second_server(pg_bindir, {"app1": True, "app2": True, "bare": False}) as info:
        yield info


@pytest.fixture
def inventory_file(tmp_path, db, pg_server, make_database, other):
    bare = make_database()
    server_dsn = f"host={other.socket_dir} port={other.port} user={other.user}"
    text = (target_toml("main", pg_server.dsn(db.info.dbname), ["good"])
            + target_toml("nokit", pg_server.dsn(bare))
            + target_toml("other", server_dsn, ["good"], 'databases = "all"\nexclude = ["postgres", "bare"]')
            + target_toml("otherbare", f"{server_dsn} dbname=bare")
            + target_toml("down", unreachable_dsn()))
    return str(write_inventory(tmp_path, text))


def test_all_targets_one_row_each_and_the_worst_exit_code(inventory_file):
    result = run_cli("--json", "check", "--all", "--inventory", inventory_file, "--parallel", "4", *QUIET)
    data = json.loads(result.output)  # one JSON document: nothing else was printed
    rows = {r["target"]: r for r in data["targets"]}
    assert list(rows) == ["main", "nokit", "other/app1", "other/app2", "otherbare", "down"]
    for name in ("main", "other/app1", "other/app2"):
        assert rows[name]["status"] in ("ok", "info", "warning"), rows[name]
        assert rows[name]["report"]["summary"]["database"] == rows[name]["database"]
    for name in ("nokit", "otherbare"):
        assert rows[name]["status"] == "unknown" and "not installed" in rows[name]["error"]
    assert rows["down"]["status"] == "unknown" and "cannot connect" in rows["down"]["error"]
    # Nagios precedence: a warning outranks the unknown targets, which outrank ok
    expected = "warning" if any(r["status"] == "warning" for r in rows.values()) else "unknown"
    assert data["status"] == expected
    assert result.exit_code == data["exit_code"] == {"unknown": 3, "warning": 1}[expected]

    # the reachable kit databases only, with a critical check: critical wins over everything
    result = run_cli("check", "--tag", "good", "--target", "down", "--inventory", inventory_file)
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[-1].startswith("CRITICAL: 4 target(s): 3 critical (main, other/app1, other/app2), "
                                "1 unknown (down)")
    for name in ("main", "other/app1", "other/app2", "down"):
        assert sum(1 for line in lines if line.startswith(f"│ {name} ")) == 1

    result = run_cli("check", "--tag", "good", "--inventory", inventory_file, "--format", "nagios", *QUIET)
    assert result.output.startswith("PGMAINT ") and "3 target(s)" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_bad_choice_is_unknown_for_monitoring(inventory_file):
    result = run_cli("check", "--target", "nope", "--inventory", inventory_file)
    assert result.exit_code == 3 and "no target 'nope'" in result.output
    assert run_cli("check", "--all", "--inventory", inventory_file, "--format", "prometheus").exit_code == 2


@pytest.fixture
def fresh(other):
    """A database without the kit on the second server, for this test only."""
    with psycopg.connect(other.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE fresh")
        yield "fresh"
        conn.execute("DROP DATABASE fresh WITH (FORCE)")


def test_deploy_all_is_idempotent_and_status_follows(tmp_path, pg_server, make_database, other, fresh):
    bare1, bare2 = make_database(), make_database()
    server_dsn = f"host={other.socket_dir} port={other.port} user={other.user}"
    text = (target_toml("a", pg_server.dsn(bare1)) + target_toml("b", pg_server.dsn(bare2))
            + target_toml("other", server_dsn, extra='databases = "all"\nexclude = ["postgres", "bare"]')
            + target_toml("down", unreachable_dsn()))
    path = str(write_inventory(tmp_path, text))
    result = run_cli("--json", "status", "--all", "--inventory", path)
    data = json.loads(result.output)  # the shape of every fleet command's JSON
    rows = {r["target"]: r for r in data["targets"]}
    assert result.exit_code == data["exit_code"] == 1 and rows["down"]["exit_code"] == 1
    assert rows["a"]["outcome"] == "not installed" and rows["other/app1"]["outcome"] == "up to date"
    assert not rows["down"]["ok"] and "cannot connect" in rows["down"]["error"]

    result = run_cli("--json", "deploy", "--all", "--inventory", path, "--dry-run")
    assert {r["target"]: r["outcome"] for r in json.loads(result.output)["targets"]}["b"].startswith(
        "would apply")

    result = run_cli("--json", "deploy", "--all", "--inventory", path, "--parallel", "4")
    rows = {r["target"]: r for r in json.loads(result.output)["targets"]}
    assert result.exit_code == 1  # the unreachable one; the others went on
    assert rows["a"]["outcome"] == rows["b"]["outcome"] == rows["other/fresh"]["outcome"] == "deployed"
    assert rows["other/app1"]["outcome"] == "up to date"
    result = run_cli("deploy", "--all", "--inventory", path)
    assert result.exit_code == 1
    assert result.output.count("up to date") == 5 and "not ok: down (failed)" in result.output

    result = run_cli("--json", "status", "--tag", "none", "--inventory", path)
    assert result.exit_code != 0 and "has tag 'none'" in result.output
    result = run_cli("--json", "status", "--target", "a", "--target", "other/fresh", "--inventory", path)
    assert result.exit_code == 0
    assert [r["outcome"] for r in json.loads(result.output)["targets"]] == ["up to date", "up to date"]
    assert run_cli("deploy", "--all", "--adopt", "--inventory", path).exit_code == 2
