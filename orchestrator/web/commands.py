"""``pgmaint web``: serve the console for the database of --dsn."""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path

import click

from orchestrator.fleet import commands as fleet_commands
from orchestrator.fleet.commands import inventory_option, selection_options
from orchestrator.output import console, settings
from orchestrator.web import auth

BACKUP_DIR_ENV = "PGMAINT_BACKUP_DIR"  # the backup commands' --dir default too


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _seconds(text: str) -> float:
    """'90s', '30m', '2h' as seconds (1 s to 24 h)."""
    m = re.fullmatch(r"\s*(\d+)\s*([smh])\s*", text or "")
    if not m:
        raise click.BadParameter(f"{text!r}: give a number and s, m or h (e.g. 30m)")
    seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]
    if not 1 <= seconds <= 24 * 3600:
        raise click.BadParameter(f"{text!r}: between 1s and 24h")
    return float(seconds)


def _targets(
    dsn: str, path: Path | None, names: tuple[str, ...], tags: tuple[str, ...], all_targets: bool
) -> dict[str, str]:
    """The databases the console serves: the inventory's chosen targets (a server target
    expanded to its databases now), or the database of --dsn. Logins supply user and password."""
    if not (path or names or tags or all_targets):
        return {auth.database_name(dsn) or "database": auth.server_dsn(dsn)}
    chosen = fleet_commands.chosen(path, names, tags, all_targets, default_all=True)
    broken = [t for t in chosen if t.error]
    for t in broken:
        console(stderr=True).print(f"[yellow]warning:[/] target {t.name} left out: {t.error}")
    usable = {t.name: auth.server_dsn(t.dsn) for t in chosen if not t.error}
    if not usable:
        raise click.ClickException("no target of the inventory can be served")
    return usable


def _check_bind(host: str, port: int) -> None:
    """Fail with one line now rather than a server traceback later."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None


@click.command("web")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Serve https with this certificate (PEM); needs --tls-key.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The certificate's private key (PEM).",
)
@click.option(
    "--behind-proxy",
    is_flag=True,
    help="A reverse proxy terminates TLS in front of the console: trust its X-Forwarded-For "
    "and X-Forwarded-Proto (from --proxy-ip) and send cookies over https only.",
)
@click.option(
    "--proxy-ip",
    default="127.0.0.1",
    show_default=True,
    help="The proxy's address(es), comma-separated, whose forwarded headers are trusted.",
)
@click.option(
    "--session-timeout",
    default="30m",
    show_default=True,
    callback=lambda _c, _p, v: _seconds(v),
    help="A session ends after this long without a request (90s, 30m, 2h; at most 24h), and "
    "12 hours after login in any case.",
)
@click.option(
    "--backup-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=BACKUP_DIR_ENV,
    help=f"Where backups are (for 'verify now'); default: where the catalog says [env {BACKUP_DIR_ENV}].",
)
@inventory_option
@selection_options
@click.pass_context
def web_cmd(
    ctx: click.Context,
    host: str,
    port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
    behind_proxy: bool,
    proxy_ip: str,
    session_timeout: float,
    backup_dir: Path | None,
    inventory_path: Path | None,
    names: tuple[str, ...],
    tags: tuple[str, ...],
    all_targets: bool,
) -> None:
    """Serve the maintenance console for the database of --dsn, or for the inventory's
    targets (--inventory, --target, --tag, --all: the login page offers them).

    Users log in with a PostgreSQL role and password (the server must check passwords):
    maint_monitor members read, maint_admin members may also run cleanup rules, undo runs
    and verify backups. Binds to 127.0.0.1 unless --host says otherwise (docs/web.md)."""
    import uvicorn

    from orchestrator.web.app import Settings, create_app

    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("give both --tls-cert and --tls-key, or neither")
    tls = tls_cert is not None
    err = console(stderr=True)
    if not _loopback(host) and not tls and not behind_proxy:
        err.print(
            f"[yellow]warning:[/] serving http on {host}:{port} without TLS: passwords and session "
            "cookies cross the network in clear text. Use --tls-cert/--tls-key, or a reverse proxy "
            "with TLS and --behind-proxy (docs/web.md)."
        )
    _check_bind(host, port)
    targets = _targets(settings(ctx).dsn, inventory_path, names, tags, all_targets)
    app = create_app(
        Settings(
            targets=targets,
            idle=session_timeout,
            secure_cookies=tls or behind_proxy,
            backup_dir=backup_dir.resolve() if backup_dir else None,
        )
    )
    scheme = "https" if tls else "http"
    shown = f"[{host}]" if ":" in host else host
    where = (
        f"{len(targets)} databases of the inventory"
        if len(targets) > 1
        else auth.database_name(next(iter(targets.values()))) or "the database of --dsn"
    )
    console().print(f"pgmaint console for {where} at {scheme}://{shown}:{port}/ (Ctrl-C stops it)")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        server_header=False,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        proxy_headers=behind_proxy,
        forwarded_allow_ips=proxy_ip if behind_proxy else None,
    )
