"""``pgmaint exporter``: serve the fleet's metrics to Prometheus."""

from __future__ import annotations

from pathlib import Path

import click
from psycopg import conninfo

from orchestrator.errors import PgmaintError
from orchestrator.exporter import server
from orchestrator.exporter.cache import Refresher
from orchestrator.exporter.collect import Settings, fetch
from orchestrator.fleet import inventory
from orchestrator.fleet.commands import inventory_option
from orchestrator.fleet.inventory import Target
from orchestrator.output import settings as cli_settings


def listen_address(value: str) -> tuple[str, int]:
    """``host:port`` (IPv4 address or name) as a pair, or a usage error."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r} is not HOST:PORT such as 127.0.0.1:9187")
    return host, int(port)


def targets_for(dsn: str, path: Path | None) -> list[Target]:
    """The inventory's targets; with --dsn (or $PGMAINT_DSN) and no --inventory, that one
    database, named after it."""
    if dsn and path is None:
        try:
            name = conninfo.conninfo_to_dict(dsn).get("dbname") or "default"
        except Exception as exc:
            raise PgmaintError(f"--dsn is not a libpq connection string: {exc}") from exc
        return [Target(str(name), dsn)]
    return list(inventory.load(inventory.find(path)).targets)


def build(targets: list[Target], settings: Settings, min_interval: float, parallel: int = 8) -> server.App:
    """The exporter's WSGI application over ``targets``."""
    refresher = Refresher(lambda t: fetch(t, settings), min_interval, settings.timeout, parallel,
                          log=lambda line: click.echo(line, err=True))
    return server.App(server.Fleet(targets, min_interval, settings.timeout), refresher)


@click.command("exporter")
@click.option("--listen", default="127.0.0.1:9187", show_default=True, metavar="HOST:PORT",
              callback=lambda _c, _p, v: listen_address(v), help="Where to serve /metrics and /probe.")
@inventory_option
@click.option("--min-interval", default=30.0, show_default=True, type=click.FloatRange(0, 86400),
              help="Seconds a target's metrics are served from the cache before it is read again.")
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(0.5, 300),
              help="Seconds a target may take (connect and query); then pgmaint_up is 0.")
@click.option("--max-age", default="15 minutes", show_default=True,
              help="Recorded health samples younger than this are served; other checks run at refresh.")
@click.option("--objects-per-check", default=20, show_default=True, type=click.IntRange(1, 1000),
              help="Objects per check with their own status series; the rest are one '_other' series.")
@click.option("--parallel", default=8, show_default=True, type=click.IntRange(1, 64),
              help="How many targets are read at once.")
@click.pass_context
def exporter_cmd(ctx: click.Context, listen: tuple[str, int], inventory_path: Path | None,
                 min_interval: float, timeout: float, max_age: str, objects_per_check: int,
                 parallel: int) -> None:
    """Serve every inventory target's maint.metrics() to Prometheus: /metrics (all targets)
    and /probe?target=NAME (one). See docs/fleet.md."""
    targets = targets_for(cli_settings(ctx).dsn, inventory_path)
    settings = Settings(timeout=timeout, max_age=max_age, objects_per_check=objects_per_check)
    app = build(targets, settings, min_interval, parallel)
    host, port = listen
    try:
        httpd = server.make(app, host, port)
    except OSError as exc:
        raise PgmaintError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    click.echo(f"pgmaint exporter on http://{host}:{port}/metrics ({len(targets)} inventory target(s))",
               err=True)
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
        app.refresher.close()
