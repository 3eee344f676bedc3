"""The HTTP side: ``/metrics`` (every target), ``/probe?target=NAME`` (one, the
blackbox_exporter multi-target pattern), rendered with prometheus-client."""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from orchestrator.exporter.cache import Refresher
from orchestrator.exporter.collect import Result
from orchestrator.fleet.expand import expand
from orchestrator.fleet.inventory import Target, one_database

_OWN = {
    "pgmaint_up": "Whether the target answered maint.metrics() within the timeout (1) or not (0)",
    "pgmaint_scrape_duration_seconds": "How long the target's last refresh took",
    "pgmaint_scrape_age_seconds": "Age of the target's data served (refreshes are cached for --min-interval)",
}


class Fleet:
    """The targets the exporter serves; server targets are listed again at most once per
    ``min_interval``."""

    def __init__(self, targets: list[Target], min_interval: float, timeout: float) -> None:
        self._targets = targets
        self._min_interval = min_interval
        self._timeout = timeout
        self._lock = threading.Lock()
        self._expanded: tuple[float, list[Target]] | None = None

    def all(self) -> list[Target]:
        with self._lock:
            if self._expanded is None or time.monotonic() - self._expanded[0] >= self._min_interval:
                self._expanded = (time.monotonic(), expand(self._targets, timeout=self._timeout))
            return self._expanded[1]

    def one(self, name: str) -> Target | None:
        head, _, dbname = name.partition("/")
        for t in self._targets:
            if t.name == name and not t.server:
                return t
            if t.name == head and t.server and dbname and dbname not in t.exclude:
                return one_database(t, dbname)
        return None


class _Collector(Collector):
    def __init__(self, results: list[Result]) -> None:
        self._results = results

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}

        def family(name: str, kind: str, help_text: str | None) -> Metric:
            if name not in families:
                kind = kind if kind in ("gauge", "counter") else "gauge"
                families[name] = Metric(name, help_text or name, kind)
            elif help_text and families[name].documentation == name:
                families[name].documentation = help_text
            return families[name]

        now = time.monotonic()
        for r in self._results:
            own = {"pgmaint_up": 1.0 if r.up else 0.0,
                   "pgmaint_scrape_duration_seconds": round(r.seconds, 4),
                   "pgmaint_scrape_age_seconds": round(max(0.0, now - r.finished), 3)}
            for name, value in own.items():
                family(name, "gauge", _OWN[name]).add_sample(name, {"target": r.target}, value)
            for s in r.samples:
                labels = {"target": r.target, **s.labels}
                family(s.metric, s.kind, s.help).add_sample(s.metric, labels, s.value)
        yield from families.values()


def render(results: list[Result]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(results))
    return generate_latest(registry)


@dataclass
class App:
    """The WSGI application."""

    fleet: Fleet
    refresher: Refresher

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return self._metrics(self.fleet.all(), start_response)
        if path == "/probe":
            names = parse_qs(environ.get("QUERY_STRING", "")).get("target", [])
            if len(names) != 1:
                return _text(start_response, "400 Bad Request",
                             "give exactly one target: /probe?target=NAME\n")
            target = self.fleet.one(names[0])
            if target is None:
                return _text(start_response, "404 Not Found", f"no target {names[0]!r} in the inventory\n")
            return self._metrics([target], start_response)
        if path == "/":
            return _text(start_response, "200 OK", "pgmaint exporter: /metrics (every target), "
                         "/probe?target=NAME (one target)\n")
        return _text(start_response, "404 Not Found", "not found: /metrics or /probe?target=NAME\n")

    def _metrics(self, targets: list[Target], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = render(self.refresher.results(targets))
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
        return [body]


def _text(start_response: Callable[..., Any], status: str, text: str) -> Iterable[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
    return [body]


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def make(app: App, host: str, port: int) -> WSGIServer:
    """A threaded HTTP server for ``app`` (``serve_forever`` to run, ``shutdown`` to stop)."""
    return make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
