"""Refreshes behind a cache: a target is read at most once per ``min_interval`` however
often it is scraped; concurrent scrapes of a target share one refresh; a scrape waits for a
refresh at most until its deadline, then serves the target's previous result when there is
one (its age says so; the refresh itself ends within the timeout) and reports it down
(``timed out``) when there is none."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for

from orchestrator.exporter.collect import Result
from orchestrator.fleet.inventory import Target


class Refresher:
    def __init__(self, fetch: Callable[[Target], Result], min_interval: float, timeout: float,
                 parallel: int = 8, log: Callable[[str], None] | None = None) -> None:
        self._fetch = fetch
        self._log = log
        self.min_interval = min_interval
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="pgmaint-refresh")
        self._lock = threading.Lock()
        self._done: dict[str, Result] = {}
        self._inflight: dict[str, Future[Result]] = {}

    def results(self, targets: list[Target]) -> list[Result]:
        """A result per target, in order: cached when younger than ``min_interval``, else
        refreshed (concurrently, at most ``parallel`` at a time) within ``timeout``."""
        now = time.monotonic()
        waiting: dict[str, Future[Result]] = {}
        with self._lock:
            for t in targets:
                cached = self._done.get(t.name)
                if cached is not None and now - cached.finished < self.min_interval:
                    continue
                future = self._inflight.get(t.name)
                if future is None:
                    future = self._pool.submit(self._refresh, t)
                    self._inflight[t.name] = future
                waiting[t.name] = future
        # a refresh may wait for a free worker: give the slowest batch its time too
        deadline = self.timeout + 1.0
        if waiting:
            wait_for(list(waiting.values()), timeout=deadline)
        out: list[Result] = []
        with self._lock:
            for t in targets:
                future = waiting.get(t.name)
                previous = self._done.get(t.name)
                if future is not None and not future.done() and previous is None:
                    out.append(Result(t.name, False, time.monotonic(), deadline,
                                      error=f"timed out after {deadline:.1f}s"))
                else:
                    assert previous is not None
                    out.append(previous)
        return out

    def _refresh(self, target: Target) -> Result:
        try:
            result = self._fetch(target)
        except BaseException as exc:  # fetch never raises; keep the cache consistent anyway
            result = Result(target.name, False, time.monotonic(), 0.0, error=str(exc))
        with self._lock:
            self._done[target.name] = result
            self._inflight.pop(target.name, None)
        if not result.up and self._log is not None:
            self._log(f"pgmaint exporter: target {target.name} is down: {result.error}")
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
