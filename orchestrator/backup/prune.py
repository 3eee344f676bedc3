"""``pgmaint backup prune``: retention computed from manifests, dry run by default.

Only good backups count: a manifest, and no failed verification. The newest good backup
is never deleted, and never fewer than ``keep_last`` good ones remain. A good backup is
deleted only when it is outside the newest ``keep_last`` AND (when ``keep_days`` is
given) older than ``keep_days``. Garbage (partials, directories without a manifest) and
backups whose last verification failed are listed and removed separately.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.backup import files


@dataclass
class PrunePlan:
    keep: list[dict[str, Any]] = field(default_factory=list)
    delete: list[dict[str, Any]] = field(default_factory=list)
    garbage: list[dict[str, Any]] = field(default_factory=list)
    executed: bool = False

    @property
    def freed_bytes(self) -> int:
        return sum(int(x.get("bytes") or 0) for x in self.delete + self.garbage)


def is_good(entry: files.Entry) -> bool:
    return entry.is_backup and not (entry.verify is not None and not entry.verify.get("ok"))


def age_days(manifest: dict[str, Any], now: float) -> float:
    started = datetime.strptime(manifest["started_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (now - started.timestamp()) / 86400


def describe(entry: files.Entry, now: float) -> dict[str, Any]:
    m = entry.manifest or {}
    return {
        "id": entry.backup_id,
        "path": str(entry.path),
        "started_at": m.get("started_at"),
        "age_days": round(age_days(m, now), 2) if m else None,
        "bytes": m.get("bytes") if m else files_size(entry.path),
        "reason": entry.reason,
    }


def files_size(path: Path) -> int:
    return sum(p.stat().st_size for p in files.files_of(path)) if path.exists() else 0


def plan(
    dirs: Path | list[Path],
    keep_last: int | None,
    keep_days: float | None,
    now: float | None = None,
) -> PrunePlan:
    """The plan for the backups in ``dirs`` (a database's directories in both layouts),
    counted together."""
    if keep_last is None and keep_days is None:
        raise ValueError("say what to keep: --keep-last N and/or --keep-days D")
    now = time.time() if now is None else now
    entries = files.scan_all([dirs] if isinstance(dirs, Path) else dirs)
    good = [e for e in entries if is_good(e)]
    out = PrunePlan()
    for e in entries:
        if not e.is_backup:
            out.garbage.append(describe(e, now))
        elif not is_good(e):
            d = describe(e, now)
            d["reason"] = (
                "verification failed: " + "; ".join((e.verify or {}).get("problems", []))[:200]
            )
            out.garbage.append(d)
    floor = max(keep_last or 0, 1)  # the newest good backup always stays
    newest_first = list(reversed(good))
    for i, e in enumerate(newest_first):
        d = describe(e, now)
        assert e.manifest is not None
        old = keep_days is None or age_days(e.manifest, now) > keep_days
        if i >= floor and old:
            d["reason"] = (
                f"beyond the newest {floor}"
                if keep_days is None
                else f"beyond the newest {floor} and older than {keep_days:g} days"
            )
            out.delete.append(d)
        else:
            d["reason"] = (
                f"among the newest {floor}" if i < floor else f"younger than {keep_days:g} days"
            )
            out.keep.append(d)
    return out


def execute(p: PrunePlan) -> None:
    for item in p.garbage + p.delete:
        files.remove(Path(item["path"]))
    p.executed = True
