"""``pgmaint inventory check``: every chosen target, probed concurrently, as a table or JSON."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from orchestrator.fleet import inventory
from orchestrator.fleet.expand import expand
from orchestrator.fleet.probe import Facts, probe
from orchestrator.output import emit, table

F = TypeVar("F", bound=Callable[..., Any])


def inventory_option(func: F) -> F:
    return click.option("--inventory", "inventory_path", type=click.Path(path_type=Path, dir_okay=False),
                        default=None, help=f"The inventory file (default: ${inventory.ENV}, then "
                        f"./{inventory.FILENAME}).")(func)


def selection_options(func: F) -> F:
    func = click.option("--all", "all_targets", is_flag=True, help="Every target of the inventory.")(func)
    func = click.option("--tag", "tags", multiple=True, metavar="TAG",
                        help="The targets with this tag (repeatable).")(func)
    return click.option("--target", "names", multiple=True, metavar="NAME",
                        help="A target by name; SERVER/DB picks one database of a server target "
                        "(repeatable).")(func)


def parallel_option(func: F) -> F:
    return click.option("--parallel", default=8, show_default=True, type=click.IntRange(1, 64),
                        help="How many targets to work on at once.")(func)


def fleet_options(func: F) -> F:
    """--target, --tag, --all, --inventory and --parallel, for a command that also works on a fleet."""
    return selection_options(inventory_option(parallel_option(func)))


def chosen(path: Path | None, names: tuple[str, ...], tags: tuple[str, ...], all_targets: bool,
           *, default_all: bool = False, timeout: float = 5.0, parallel: int = 8) -> list[inventory.Target]:
    """The targets chosen on the command line, server targets expanded."""
    inv = inventory.load(inventory.find(path))
    if default_all and not (names or tags or all_targets):
        all_targets = True
    return expand(inv.select(names, tags, all_targets), timeout=timeout, parallel=parallel)


@click.group("inventory")
def inventory_group() -> None:
    """The fleet's inventory (pgmaint.toml): targets with a DSN or service and tags."""


@inventory_group.command("check")
@inventory_option
@selection_options
@click.option("--parallel", default=8, show_default=True, type=click.IntRange(1, 64),
              help="How many targets to probe at once.")
@click.option("--timeout", default=5.0, show_default=True, type=click.FloatRange(0.5, 300),
              help="Seconds to connect and to read each target.")
@click.pass_context
def inventory_check(ctx: click.Context, inventory_path: Path | None, names: tuple[str, ...],
                    tags: tuple[str, ...], all_targets: bool, parallel: int, timeout: float) -> None:
    """Connect to every target (or those chosen) and report the server version, whether the
    kit is deployed (and its version), the kit's roles and pg_cron.

    Exit code 1 when any target is unreachable."""
    targets = chosen(inventory_path, names, tags, all_targets, default_all=True, timeout=timeout,
                     parallel=parallel)
    with ThreadPoolExecutor(max_workers=min(parallel, max(1, len(targets)))) as pool:
        facts: list[Facts] = list(pool.map(lambda t: probe(t, timeout), targets))

    def render(out: Console) -> None:
        out.print(table("pgmaint inventory", ["target", "database", "server", "kit", "roles (member of)",
                                              "pg_cron", "error"],
                        ((f.target, f.database, f.server_version,
                          _kit_text(f), _roles_text(f), f.pg_cron, f.error) for f in facts)))
        down = [f.target for f in facts if not f.reachable]
        out.print(f"{len(facts)} target(s), {len(facts) - len(down)} reachable"
                  + (f"; unreachable: {', '.join(down)}" if down else ""))

    emit(ctx, [f.as_dict() for f in facts], render)
    if any(not f.reachable for f in facts):
        ctx.exit(1)


def _kit_text(f: Facts) -> str:
    if not f.reachable:
        return ""
    return f"{f.kit} {f.kit_version}" if f.kit_version else f.kit


def _roles_text(f: Facts) -> str:
    if not f.reachable:
        return ""
    if not f.roles:
        return "none"
    return ", ".join(r + ("*" if r in f.member_of else "") for r in f.roles)
