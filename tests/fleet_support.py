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


@contextmanager
def serving(app: object) -> Iterator[str]:
    """An exporter application served on a free port: yields its base URL."""
    import threading

    from orchestrator.exporter import server

    httpd = server.make(app, "127.0.0.1", free_port())  # type: ignore[arg-type]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
        app.refresher.close()  # type: ignore[attr-defined]


def http_get(url: str, timeout: float = 30.0) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def parse_exposition(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text format as {metric: [(labels, value)]} (prometheus-client's parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


@contextmanager
def prometheus(config: str) -> Iterator[str]:
    """Debian's prometheus binary with ``config``, its data in a temp dir, on a free port
    (never the system service's 9090): yields its base URL once it is ready."""
    import subprocess
    import time

    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed: make setup (Debian package prometheus)")
    base = Path(tempfile.mkdtemp(prefix="pgmaint-prom-"))
    (base / "prometheus.yml").write_text(config, encoding="utf-8")
    port = free_port()
    log = (base / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [binary, f"--config.file={base / 'prometheus.yml'}",
         f"--storage.tsdb.path={base / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not (_listening(port) and http_get(f"{url}/-/ready", timeout=2)[0] == 200):
            if proc.poll() is not None or time.monotonic() > deadline:
                why = (base / "prometheus.log").read_text()[-2000:]
                raise RuntimeError(f"prometheus did not start: {why}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def prom_query(url: str, query: str) -> list[dict]:
    import json
    import urllib.parse

    status, body = http_get(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": query}))
    data = json.loads(body)
    assert status == 200 and data["status"] == "success", body
    return data["data"]["result"]
