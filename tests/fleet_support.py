"""Helpers for the fleet and exporter tests: a second server, inventories, the CLI."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from click.testing import CliRunner, Result

from orchestrator import deploy
from orchestrator.cli import cli
from orchestrator.sandbox import Sandbox, SandboxInfo, free_port


@contextmanager
def second_server(bindir: Path, databases: dict[str, bool]) -> Iterator[SandboxInfo]:
    """A throwaway server of its own with ``databases`` (name -> deploy the kit there)."""
    base = Path(tempfile.mkdtemp(prefix="pgmaint-fleet-"))
    base.chmod(0o755)
    box = Sandbox(base / "pg")
    try:
        info = box.start(fast=True, cron=False, bindir=bindir)
        with psycopg.connect(info.conninfo(), autocommit=True) as conn:
            for name in databases:
                conn.execute(f'CREATE DATABASE "{name}"')
        for name, kit in databases.items():
            if kit:
                with psycopg.connect(info.conninfo(name), autocommit=True) as conn:
                    deploy.deploy(conn)
        yield info
    finally:
        box.destroy()
        shutil.rmtree(base, ignore_errors=True)


def unreachable_dsn() -> str:
    """A DSN of a TCP port where nothing listens (connection refused at once)."""
    return f"host=127.0.0.1 port={free_port()} dbname=nowhere user=nobody connect_timeout=2"


def write_inventory(directory: Path, text: str, name: str = "pgmaint.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def target_toml(name: str, dsn: str, tags: list[str] | None = None, extra: str = "") -> str:
    tag_list = ", ".join(f'"{t}"' for t in (tags or []))
    return f'[targets.{name}]\ndsn = "{dsn}"\ntags = [{tag_list}]\n{extra}\n'


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)
