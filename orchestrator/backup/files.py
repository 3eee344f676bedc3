"""Files on disk: the backup directory layout, hashing, fsync and atomic writes.

Layout: ``<root>/<system identifier>/<database>/<UTC timestamp>-<id>/`` holds the dump
(``database.dump`` or ``database.d/``), optionally ``globals.sql``, then ``manifest.json``,
written last. The server's system identifier (``maint.backup_system_identifier()``) keeps
two servers that each have a database ``app`` apart. While pg_dump runs everything lives in
``.partial-<timestamp>-<id>/`` next to the final directory, on the same filesystem, and is
renamed into place once complete and synced. A directory without a manifest is not a
backup: it is garbage, swept by the next run.

Backups written before the system identifier was part of the layout live in
``<root>/<database>/``: they are still read (list, verify, restore, prune), never written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
VERIFY_FILE = "verify.json"
PARTIAL_PREFIX = ".partial-"
NAME_RE = re.compile(r"^(\d{8}T\d{6}Z)-(\d+)$")


def _safe_name(database: str) -> str:
    """A database name as a directory name: kept readable but made path-safe."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", lambda m: f"%{ord(m.group()):02X}", database)
    if safe in (".", ".."):
        safe = safe.replace(".", "%2E")
    return safe


def database_dir(root: Path, database: str, system_identifier: str) -> Path:
    """Where new backups of ``database`` on the server ``system_identifier`` go."""
    if not system_identifier.isdigit():
        raise ValueError(f"not a system identifier: {system_identifier!r}")
    return root / system_identifier / _safe_name(database)


def legacy_database_dir(root: Path, database: str) -> Path:
    """The directory of backups written before the layout had the system identifier."""
    return root / _safe_name(database)


def database_dirs(root: Path, database: str, system_identifier: str) -> list[Path]:
    """Every directory that may hold backups of ``database``: the current layout's, then
    the older one's."""
    return [database_dir(root, database, system_identifier), legacy_database_dir(root, database)]


def backup_name(started_epoch: float, backup_id: int) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started_epoch)) + f"-{backup_id}"


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (so a rename in it is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def files_of(top: Path) -> Iterator[Path]:
    """Every regular file under ``top`` (or ``top`` itself), in a stable order."""
    if top.is_file():
        yield top
        return
    for path in sorted(top.rglob("*")):
        if path.is_file():
            yield path


def sha256_file(path: Path, *, sync: bool = False) -> tuple[int, str]:
    """(size, sha256 hex) of a file; ``sync`` also fsyncs it."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
        if sync:
            os.fsync(f.fileno())
    return size, h.hexdigest()


def hash_tree(base: Path, top: Path, *, sync: bool = False) -> list[dict[str, Any]]:
    """[{name (relative to base), bytes, sha256}] for every file under ``top``."""
    out = []
    for path in files_of(top):
        size, digest = sha256_file(path, sync=sync)
        out.append({"name": str(path.relative_to(base)), "bytes": size, "sha256": digest})
    if sync and top.is_dir():
        for d in [top, *(p for p in top.rglob("*") if p.is_dir())]:
            fsync_path(d)
    return out


def write_json_atomic(path: Path, data: Any) -> str:
    """Write JSON via temp file + fsync + rename + fsync(dir). Returns its sha256."""
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
    raw = text.encode()
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)
    return hashlib.sha256(raw).hexdigest()


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def commit_dir(partial: Path, final: Path) -> None:
    """Rename a finished, synced partial directory into place, durably."""
    fsync_path(partial)
    os.replace(partial, final)
    fsync_path(final.parent)


@dataclass
class Entry:
    """A directory under a database directory: a backup, or garbage."""

    path: Path
    backup_id: int | None
    manifest: dict[str, Any] | None
    verify: dict[str, Any] | None
    reason: str | None  # why it is garbage; None for a backup

    @property
    def is_backup(self) -> bool:
        return self.manifest is not None


def scan(dbdir: Path) -> list[Entry]:
    """Backups (with a readable manifest) and garbage, oldest first."""
    entries: list[Entry] = []
    if not dbdir.is_dir():
        return entries
    for path in sorted(dbdir.iterdir()):
        if path.name.startswith(PARTIAL_PREFIX) or path.name.startswith(".manifest"):
            entries.append(Entry(path, None, None, None, "unfinished run (partial)"))
            continue
        m = NAME_RE.match(path.name)
        if not m or not path.is_dir():
            continue  # not ours: never touched
        backup_id = int(m.group(2))
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            entries.append(Entry(path, backup_id, None, None, "no manifest (run did not finish)"))
            continue
        try:
            manifest = read_json(manifest_path)
        except (OSError, ValueError):
            entries.append(Entry(path, backup_id, None, None, "unreadable manifest"))
            continue
        verify = None
        if (path / VERIFY_FILE).is_file():
            try:
                verify = read_json(path / VERIFY_FILE)
            except (OSError, ValueError):
                verify = None
        entries.append(Entry(path, backup_id, manifest, verify, None))
    entries.sort(key=lambda e: ((e.manifest or {}).get("started_at", ""), e.path.name))
    return entries


def scan_all(dirs: list[Path]) -> list[Entry]:
    """:func:`scan` of several directories (both layouts), oldest first."""
    entries = [e for d in dirs for e in scan(d)]
    entries.sort(key=lambda e: ((e.manifest or {}).get("started_at", ""), e.path.name))
    return entries


def entry_at(path: Path) -> Entry | None:
    """The backup (or garbage) at ``path``; None when there is nothing there."""
    if not path.is_dir():
        return None
    return next((e for e in scan(path.parent) if e.path == path), None)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def sweep(dbdir: Path) -> list[str]:
    """Remove leftovers of failed or killed runs; returns what was removed.

    Call only while holding the backup task lock, so no live run's partial is touched.
    """
    removed = []
    for entry in scan(dbdir):
        if not entry.is_backup:
            remove(entry.path)
            removed.append(entry.path.name)
    return removed


def free_bytes(path: Path) -> int:
    """Bytes available to us on the filesystem holding ``path`` (or its nearest parent)."""
    p = path
    while not p.exists():
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize
