"""Running one piece of work on many targets: concurrently (``parallel`` at a time), each
target on its own connection, a failure or an unreachable target never stopping the others;
results come back in the targets' order, with a progress bar on a terminal (stderr) and no
line printed while the work runs, so output of different targets never interleaves."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Generic, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orchestrator import db
from orchestrator.fleet.inventory import Target

T = TypeVar("T")


@dataclass
class Outcome(Generic[T]):
    """One target's result (``value``) or its failure (``error``, one line)."""

    target: Target
    seconds: float
    value: T | None = None
    error: str | None = None
    failure: BaseException | None = None


def run_all(targets: list[Target], work: Callable[[Target], T], parallel: int,
            label: str = "targets") -> list[Outcome[T]]:
    """``work(target)`` for every target; exceptions become outcomes with ``error``."""

    def one(target: Target) -> Outcome[T]:
        started = time.monotonic()
        if target.error:
            return Outcome(target, 0.0, error=target.error)
        try:
            value = work(target)
        except Exception as exc:
            message = exc.format_message() if hasattr(exc, "format_message") else db.error_line(exc)
            return Outcome(target, time.monotonic() - started, error=message, failure=exc)
        return Outcome(target, time.monotonic() - started, value=value)

    results: dict[str, Outcome[T]] = {}
    console = Console(stderr=True)
    progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True, disable=not console.is_terminal)
    with progress, ThreadPoolExecutor(max_workers=max(1, min(parallel, len(targets) or 1))) as pool:
        task = progress.add_task(label, total=len(targets))
        futures = {pool.submit(one, t): t.name for t in targets}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            progress.advance(task)
    return [results[t.name] for t in targets]

