"""The ``pgmaint`` command line (click)."""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import re
import sys
import threading
import traceback
from typing import Any

import click
import psycopg

from orchestrator import db
from orchestrator.errors import NotInstalled, PgmaintError
from orchestrator.output import Settings

# Each command is imported when it is used (``pgmaint backup create`` loads the backup
# package, not the web console, the exporter or yoyo): name -> "module:attribute".
COMMANDS = {
    "backup": "orchestrator.backup.cmd:backup_group",
    "check": "orchestrator.check:check_cmd",
    "demo": "orchestrator.commands.sandbox:demo_cmd",
    "deploy": "orchestrator.commands.kit:deploy_cmd",
    "exporter": "orchestrator.exporter.commands:exporter_cmd",
    "history": "orchestrator.commands.kit:history_cmd",
    "inventory": "orchestrator.fleet.commands:inventory_group",
    "notify": "orchestrator.notify.commands:notify_group",
    "rules": "orchestrator.cleanup:rules_group",
    "run": "orchestrator.commands.run:run_group",
    "sandbox": "orchestrator.commands.sandbox:sandbox_group",
    "schedule": "orchestrator.commands.schedule:schedule_group",
    "status": "orchestrator.commands.kit:status_cmd",
    "undo": "orchestrator.cleanup:undo_cmd",
    "uninstall": "orchestrator.commands.kit:uninstall_cmd",
    "web": "orchestrator.web.commands:web_cmd",
}


class PgmaintGroup(click.Group):
    """Turns every failure into one line on stderr; --verbose adds the traceback. Commands
    listed in ``lazy`` are imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort, click.ClickException):
            raise
        except psycopg.Error as exc:
            self._verbose_trace(ctx)
            if _kit_missing(exc):
                raise NotInstalled(
                    f"pgmaint is not installed in this database ({db.error_line(exc)}); "
                    "run 'pgmaint deploy'"
                ) from exc
            raise PgmaintError(db.error_line(exc)) from exc
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:
            self._verbose_trace(ctx)
            raise PgmaintError(f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _verbose_trace(ctx: click.Context) -> None:
        obj = ctx.find_object(Settings)
        if obj is not None and obj.verbose:
            traceback.print_exc()


def duration(value: str) -> str:
    """A PostgreSQL duration setting (500ms, 30s, 2min, 1h), or a usage error (exit 2)."""
    if not re.fullmatch(r"\s*\d+(\.\d+)?\s*(us|ms|s|min|h|d)?\s*", value):
        raise click.BadParameter(f"{value!r} is not a duration such as 500ms, 30s, 2min or 1h")
    return value.strip()


def _kit_missing(exc: psycopg.Error) -> bool:
    """A kit object is missing: the kit is not deployed here (or only partly)."""
    missing = (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction,
               psycopg.errors.InvalidSchemaName, psycopg.errors.UndefinedObject)
    text = str(exc)
    return isinstance(exc, missing) and ('"maint.' in text or "maint." in text or '"maint"' in text)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from orchestrator import __version__  # importlib.metadata: only when asked

        click.echo(f"pgmaint, version {__version__}")
        ctx.exit()


# commands that check trust in the kit themselves (deploy: with its own hint), use only a
# kit they deployed into a database they just created (demo), need none (uninstall reads
# only pg_catalog and drops the kit), or never use the kit (sandbox)
UNGUARDED = frozenset({"deploy", "uninstall", "demo", "sandbox"})


@click.group(cls=PgmaintGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--dsn",
    envvar="PGMAINT_DSN",
    default="",
    show_envvar=True,
    help="libpq connection string or URI. Default: libpq's PG* variables and ~/.pgpass.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks on errors.")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and exit.")
@click.pass_context
def cli(ctx: click.Context, dsn: str, as_json: bool, verbose: bool) -> None:
    """pgmaint: PostgreSQL maintenance that lives in the database (schema maint)."""
    ctx.obj = Settings(dsn=dsn, json=as_json, verbose=verbose)
    if ctx.invoked_subcommand not in UNGUARDED:
        # every connection a command opens to the kit database first checks that the kit
        # is owned by you or a superuser (orchestrator.trust)
        ctx.with_resource(db.kit_guard(dsn))


def main() -> None:
    """The ``pgmaint`` entry point. A command's work is over when ``cli`` returns: the output
    is flushed, the atexit handlers run (temporary directories, logging), and the process
    ends without the interpreter's finalization, which tears down every imported module and
    took 40 to 70 ms here, a fifth of a ``pgmaint check``. Files, connections and child
    processes are closed by the commands themselves; with a non-daemon thread still running,
    the interpreter exits as usual and waits for it."""
    try:
        cli(prog_name="pgmaint")
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    _finish(code)


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    click.echo(str(value), err=True)  # sys.exit("message"): shown, exit code 1
    return 1


def _finish(code: int) -> None:
    _flush()
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    main_thread = threading.main_thread()
    busy = any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not main_thread)
    if busy or run_exitfuncs is None:
        sys.exit(code)
    run_exitfuncs()
    _flush()  # what the handlers printed
    os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (pgmaint ... | head)
            stream.flush()
