"""One refresh of one target: a short connection, ``maint.metrics()``, closed again.

The database does the work: every sample is a row of ``maint.metrics()`` (granted to
maint_monitor); the exporter adds the ``target`` label and its own facts (``pgmaint_up``,
how long the refresh took). A refresh is bounded by ``timeout``: libpq's
``connect_timeout`` and the session's ``statement_timeout``; the caller also stops waiting
at the deadline (see ``cache.Refresher``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg

from orchestrator import db, trust
from orchestrator.fleet.inventory import Target

APPLICATION_NAME = "pgmaint-exporter"
METRICS_SQL = ("SELECT m.metric, m.labels, m.value, m.kind, m.help"
               " FROM maint.metrics(max_age => %s::interval, objects_per_check => %s) AS m")


@dataclass(frozen=True)
class Sample:
    metric: str
    labels: dict[str, str]
    value: float
    kind: str
    help: str | None


@dataclass(frozen=True)
class Settings:
    """How a target is read: the refresh bound (seconds), the age under which recorded
    health samples are used instead of running the checks, the cap of objects per check."""

    timeout: float = 10.0
    max_age: str = "15 minutes"
    objects_per_check: int = 20


@dataclass
class Result:
    """What one refresh gave: samples, or ``up`` False and the reason."""

    target: str
    up: bool
    finished: float  # time.monotonic() at the end of the refresh
    seconds: float
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None


def fetch(target: Target, settings: Settings) -> Result:
    """Read one target's metrics; never raises (a failure is ``up`` False with its reason)."""
    started = time.monotonic()
    try:
        if target.error:
            raise RuntimeError(target.error)
        samples = _read(target, settings)
        return Result(target.name, True, time.monotonic(), time.monotonic() - started, samples)
    except Exception as exc:
        return Result(target.name, False, time.monotonic(), time.monotonic() - started,
                      error=db.error_line(exc))


def _read(target: Target, settings: Settings) -> list[Sample]:
    with db.connection(target.dsn, connect_timeout=max(2, round(settings.timeout)),
                       application_name=APPLICATION_NAME) as conn:
        conn.execute("SELECT pg_catalog.set_config('statement_timeout', %s, false)",
                     (f"{int(settings.timeout * 1000)}ms",))
        trust.require(conn)  # the kit's code runs with this role's rights
        try:
            rows = conn.execute(METRICS_SQL, (settings.max_age, settings.objects_per_check)).fetchall()
        except psycopg.errors.UndefinedFunction as exc:
            raise RuntimeError(f"maint.metrics() is missing in database {conn.info.dbname}: "
                               "run pgmaint deploy") from exc
        except psycopg.errors.InvalidSchemaName as exc:
            raise RuntimeError(f"the kit is not deployed in database {conn.info.dbname}: "
                               "run pgmaint deploy") from exc
    return [Sample(str(m), {str(k): str(v) for k, v in (labels or {}).items()}, float(v), str(kind), h)
            for m, labels, v, kind, h in rows]
