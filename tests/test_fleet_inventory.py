"""The inventory (pgmaint.toml): parsing errors name the file and line, selection, server
targets expanded from pg_database, and ``pgmaint inventory check`` against real servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fleet_support import run_cli, second_server, target_toml, unreachable_dsn, write_inventory

from orchestrator.errors import PgmaintError
from orchestrator.fleet import inventory
from orchestrator.fleet.expand import expand

GOOD = """\
# the fleet
[targets.shop]
dsn = "host=db1 dbname=shop user=ops"
tags = ["prod", "eu"]

[targets.billing]
service = "billing"
tags = ["prod"]

[targets.db2]
dsn = "host=db2 user=ops"
databases = "all"
exclude = ["postgres"]
tags = ["staging"]
"""


def test_a_good_file(tmp_path):
    inv = inventory.load(write_inventory(tmp_path, GOOD))
    assert inv.names() == ["shop", "billing", "db2"]
    shop, billing, db2 = inv.targets
    assert shop.tags == ("prod", "eu") and shop.dbname == "shop" and not shop.server
    assert billing.dsn == "service=billing"
    assert db2.server and db2.exclude == ("postgres",)


@pytest.mark.parametrize(("text", "line", "words"), [
    (GOOD + '\n[targets.shop]\ndsn = "host=x"\n', 16, "target 'shop' is defined twice"),
    (GOOD.replace('service = "billing"', 'service = "billing"\nport = 5433'), 8, "unknown key 'port'"),
    (GOOD.replace("host=db1 dbname=shop user=ops", "host=db1 dbname=shop password=hunter2"), 3,
     "holds a password"),
    (GOOD.replace("host=db1 dbname=shop user=ops", "postgresql://ops:hunter2@db1/shop"), 3,
     "holds a password"),
    (GOOD.replace('tags = ["prod"]', 'tags = "prod"'), 8, "tags of target 'billing' must be a list"),
    (GOOD.replace('tags = ["prod"]', "tags = [1, 2]"), 8, "must be a list of strings"),
    (GOOD + "\n[exporter]\nlisten = 1\n", 16, "unknown key 'exporter'"),
    (GOOD.replace('databases = "all"', 'databases = "some"'), 12, 'must be "all"'),
    (GOOD.replace('dsn = "host=db1 dbname=shop user=ops"', "dsn = host"), 3, "not a valid inventory"),
    (GOOD.replace('dsn = "host=db1 dbname=shop user=ops"', 'dsn = "host=db1 dbname"'), 3,
     "not a libpq connection string"),
])
def test_bad_files_name_the_file_and_the_line(tmp_path, text, line, words):
    path = write_inventory(tmp_path, text)
    with pytest.raises(inventory.InventoryError) as err:
        inventory.load(path)
    message = err.value.message
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message
    assert "\n" not in message and "hunter2" not in message
    # and through the CLI: one line on stderr, no traceback, exit code 2
    result = run_cli("inventory", "check", "--inventory", str(path))
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: {message}"


def test_finding_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv(inventory.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PgmaintError, match="no inventory"):
        inventory.find()
    here = write_inventory(tmp_path, GOOD)
    assert inventory.find() == here
    other = write_inventory(tmp_path, GOOD, "other.toml")
    monkeypatch.setenv(inventory.ENV, str(other))
    assert inventory.find() == other
    assert inventory.find(Path("given.toml")) == Path("given.toml")


def test_selection(tmp_path):
    inv = inventory.load(write_inventory(tmp_path, GOOD))
    assert [t.name for t in inv.select(tags=["prod"])] == ["shop", "billing"]
    assert [t.name for t in inv.select(["billing"], ["prod"])] == ["billing", "shop"]
    assert [t.name for t in inv.select(all_targets=True)] == ["shop", "billing", "db2"]
    one = inv.select(["db2/app"])
    assert one[0].name == "db2/app" and one[0].dbname == "app" and not one[0].server
    for bad, words in ((["nope"], "no target 'nope'"), (["shop/x"], "no target 'shop/x'")):
        with pytest.raises(PgmaintError, match=words):
            inv.select(bad)
    with pytest.raises(PgmaintError, match="has tag 'dev'"):
        inv.select(tags=["dev"])
    with pytest.raises(PgmaintError, match="--target NAME, --tag TAG or --all"):
        inv.select()


@pytest.fixture(scope="module")
def other_server(pg_bindir):
    with second_server(pg_bindir, {"app1": True, "app2": True, "bare": False}) as info:
        yield info


def test_inventory_check_against_real_servers(tmp_path, db, pg_server, make_database, other_server):
    """The test server's kit database, a database without the kit, every database of a
    second server (expanded from pg_database, postgres excluded) and an unreachable one."""
    bare = make_database()
    server_dsn = other_server.conninfo().replace("dbname=postgres", "").strip()
    text = (target_toml("kit", pg_server.dsn(db.info.dbname), ["prod"])
            + target_toml("nokit", pg_server.dsn(bare))
            + target_toml("other", server_dsn, ["prod"], 'databases = "all"\nexclude = ["postgres"]')
            + target_toml("down", unreachable_dsn()))
    path = write_inventory(tmp_path, text)
    expanded = expand(inventory.load(path).select(all_targets=True))
    assert [t.name for t in expanded] == ["kit", "nokit", "other/app1", "other/app2", "other/bare", "down"]

    result = run_cli("--json", "inventory", "check", "--inventory", str(path))
    assert result.exit_code == 1, result.output
    rows = {r["target"]: r for r in json.loads(result.output)}
    assert set(rows) == {"kit", "nokit", "other/app1", "other/app2", "other/bare", "down"}
    assert rows["kit"]["kit"] == "deployed" and rows["kit"]["kit_version"]
    assert rows["kit"]["server_version"].startswith(pg_server_major(pg_server))
    assert "maint_monitor" in rows["kit"]["roles"] and "maint_admin" in rows["kit"]["roles"]
    assert rows["kit"]["pg_cron"]
    assert rows["nokit"]["reachable"] and rows["nokit"]["kit"] == "not deployed"
    assert rows["other/app1"]["kit"] == "deployed" and rows["other/bare"]["kit"] == "not deployed"
    assert rows["other/app2"]["database"] == "app2"
    assert rows["other/app1"]["pg_cron"] == "not loaded"
    assert not rows["down"]["reachable"] and "cannot connect" in rows["down"]["error"]

    # the table, and only reachable targets: exit 0
    result = run_cli("inventory", "check", "--inventory", str(path), "--tag", "prod")
    assert result.exit_code == 0, result.output
    assert "other/app1" in result.output and "down" not in result.output
    assert "4 target(s), 4 reachable" in result.output

    # a server that cannot be listed is one unreachable row
    path2 = write_inventory(tmp_path, target_toml("gone", unreachable_dsn().replace(" dbname=nowhere", ""),
                                                  extra='databases = "all"'), "gone.toml")
    result = run_cli("inventory", "check", "--inventory", str(path2))
    assert result.exit_code == 1 and "unreachable: gone" in result.output


def pg_server_major(pg_server) -> str:
    with pg_server.connect() as conn:
        return conn.execute("SHOW server_version").fetchone()[0].split(".")[0]
