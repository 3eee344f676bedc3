"""The maintenance-window gate of a host task (optimize --execute, backup create/verify/prune
--execute) for one fleet target: the same ``maint._window_gate`` call as the one-database
``host_gate``, but a target outside its window is a row of its own ("skipped") instead of the
end of the command."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from orchestrator import db
from orchestrator.schedule_windows import window_gate, with_setting


@dataclass
class Gate:
    """``dsn``: the DSN to run the task with (an override is carried in its options);
    ``time_limit``: clipped to the window's end; ``skipped``: why the task did not start."""

    dsn: str
    time_limit: timedelta | None = None
    skipped: str | None = None


def gate(dsn: str, task: str, override: str | None, time_limit: timedelta | None = None) -> Gate:
    with db.connection(dsn, application_name="pgmaint") as conn:
        g = window_gate(conn, task, f"{time_limit.total_seconds()} seconds" if time_limit else None,
                        override, {"override_window": override} if override else {})
        seconds = conn.execute("SELECT extract(epoch FROM %s::interval)::float8",
                               (g.get("time_limit"),)).fetchone()
    if not g.get("run"):
        return Gate(dsn, skipped=f"outside maintenance window {g.get('window')} (journaled as skipped run "
                                 f"{g.get('run_id')}; next opening {g.get('next_open')})")
    if g.get("override"):
        dsn = with_setting(dsn, "pgmaint.window_override", str(override))
    if time_limit is not None and seconds and seconds[0] is not None:
        time_limit = timedelta(seconds=seconds[0])
    return Gate(dsn, time_limit)
