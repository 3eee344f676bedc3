"""``pgmaint backup verify``: prove a backup is intact and restorable.

Levels, each including the cheaper checks before it:
  list     sha256 and size of every file against the manifest, then the archive's table
           of contents has a data entry for every table, sequence and large object the
           snapshot recorded (cheap, but a truncated dump still lists fine);
  read     + ``pg_restore -f /dev/null``: every data block read and decompressed;
  restore  list + a restore into a scratch database created with the source's encoding
           and locale (``--exit-on-error``), run as the unprivileged role maint_restore
           (orchestrator.backup.load), then row counts, sequence values and object counts,
           read as maint_restore too, compared with the manifest. The scratch database is
           always dropped. The tables' expected row counts are counted in the archive's
           data (pg_dump wrote it from the backup's snapshot; :func:`archive_rows`) when the
           manifest has none (``backup create`` no longer counts them during the dump).
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from orchestrator import db
from orchestrator.backup import catalog, facts, files, runas
from orchestrator.backup import load as load_mod
from orchestrator.backup import toc as toc_mod
from orchestrator.backup.errors import BackupError, PreflightRefused
from orchestrator.backup.tools import ClientTools, find_tools

LEVELS = catalog.VERIFY_LEVELS


@dataclass
class VerifyResult:
    backup_id: int
    path: str
    level: str
    ok: bool
    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    at: str = ""
    # restore level: "schema.name" -> rows of each table as counted in the archive
    # (verify.json only; the catalog row gets the total)
    archive_rows: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        if self.ok:
            return f"ok ({self.level}): " + "; ".join(self.checks)
        return (
            f"failed ({self.level}): "
            + "; ".join(self.problems[:5])
            + (f" (+{len(self.problems) - 5} more)" if len(self.problems) > 5 else "")
        )


def locate(root: Path, database: str, backup_id: int | None, system_identifier: str) -> files.Entry:
    """The backup with this id, or the newest one (``None``), of ``database`` on the server
    ``system_identifier``; backups in the layout before system identifiers count too."""
    dirs = files.database_dirs(root, database, system_identifier)
    dbdir = dirs[0]
    entries = files.scan_all(dirs)
    if backup_id is None:
        good = [e for e in entries if e.is_backup]
        if not good:
            raise BackupError(f"no backups of database {database!r} in {dbdir}")
        return good[-1]
    matches = [e for e in entries if e.backup_id == backup_id]
    if len(matches) > 1:
        # ids come from maint.backups, which starts again at 1 when the kit is reinstalled
        # (or the database recreated): never guess which one was meant
        raise BackupError(
            f"{len(matches)} backups of database {database!r} have id {backup_id} "
            f"({', '.join(str(e.path) for e in matches)}); the catalog was reset in between. "
            "Move the ones you do not mean out of the backup directory, or use --latest"
        )
    for e in matches:
        if not e.is_backup:
            raise BackupError(f"backup {backup_id} in {e.path} is not usable: {e.reason}")
        return e
    raise BackupError(f"no backup with id {backup_id} of database {database!r} in {dbdir}")


def archive_path(entry: files.Entry) -> Path:
    assert entry.manifest is not None
    return entry.path / entry.manifest["dump"]


def check_hashes(entry: files.Entry) -> list[str]:
    """Every difference between the files on disk and the manifest's sizes and sha256."""
    assert entry.manifest is not None
    problems = []
    for f in entry.manifest["files"]:
        path = entry.path / f["name"]
        if not path.is_file():
            problems.append(f"{f['name']}: missing")
            continue
        size, digest = files.sha256_file(path)
        if size != f["bytes"]:
            problems.append(f"{f['name']}: {size} bytes, manifest says {f['bytes']}")
        elif digest != f["sha256"]:
            problems.append(f"{f['name']}: sha256 differs from the manifest (corrupted)")
    listed = {f["name"] for f in entry.manifest["files"]}
    dump = archive_path(entry)
    for path in files.files_of(dump):
        name = str(path.relative_to(entry.path))
        if name not in listed:
            problems.append(f"{name}: not in the manifest")
    return problems


def check_toc(toc: toc_mod.Toc, recorded: dict[str, Any]) -> list[str]:
    """Each recorded table and materialized view has a data entry (matched by oid), each
    sequence a SEQUENCE SET, and the large objects are all there."""
    data_oids = {
        e.oid for e in toc.entries if e.rest.startswith(("TABLE DATA ", "MATERIALIZED VIEW DATA "))
    }
    seq_sets = {e.rest for e in toc.entries if e.rest.startswith("SEQUENCE SET ")}
    problems = []
    for rel in recorded["relations"]:
        if rel["kind"] == "S":
            if not any(
                d.startswith(f"SEQUENCE SET {rel['schema']} {rel['name']} ") for d in seq_sets
            ):
                problems.append(f"no SEQUENCE SET entry for {rel['schema']}.{rel['name']}")
        elif rel["oid"] not in data_oids:
            problems.append(f"no data entry for {rel['schema']}.{rel['name']} (oid {rel['oid']})")
    lo = int(recorded.get("large_objects", 0))
    descs = [e.rest for e in toc.entries]
    blobs = sum(1 for d in descs if d.startswith("BLOB ") and not d.startswith("BLOB METADATA"))
    has_lo_data = any(d.startswith(("BLOBS ", "LARGE OBJECTS ")) for d in descs)
    if lo and not has_lo_data:
        problems.append(f"no large-object data entry for {lo} large object(s)")
    elif lo and blobs and blobs != lo:
        problems.append(f"{blobs} large objects in the archive, {lo} recorded")
    return problems


def read_through(tools: ClientTools, archive: Path) -> list[str]:
    """Read and decompress every block: catches truncation and corruption."""
    proc = toc_mod.run_tool([tools.path("pg_restore"), "--file=/dev/null", str(archive)])
    return (
        []
        if proc.returncode == 0
        else [f"pg_restore could not read the archive: {toc_mod.last_error(proc)}"]
    )


def scratch_prefix(conn: psycopg.Connection) -> str:
    """Scratch databases of verifications of the database ``conn`` is connected to."""
    row = conn.execute(
        "SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()"
    ).fetchone()
    assert row is not None
    return f"pgmaint_verify_{row[0]}_"


def sweep_scratch(conn: psycopg.Connection, prefix: str) -> list[str]:
    """Drop scratch databases a killed verification left behind.

    Only while holding this database's verify lock, so no live verification's scratch
    database is dropped."""
    names = [
        r[0]
        for r in conn.execute(
            "SELECT datname FROM pg_catalog.pg_database WHERE pg_catalog.starts_with(datname, %s)",
            (prefix,),
        ).fetchall()
    ]
    for name in names:
        drop_database(conn, name)
    return names


@contextlib.contextmanager
def verify_lock(conn: psycopg.Connection) -> Iterator[bool]:
    """This database's verify lock if it can be had now (already held by ``pgmaint backup
    verify``; taken for the duration by ``create --verify restore``); yields whether held."""
    held = conn.execute(
        "SELECT maint.task_lock_holder(%s) = pg_catalog.pg_backend_pid()", (catalog.VERIFY_TASK,)
    ).fetchone()
    if held and held[0]:
        yield True
        return
    got = conn.execute("SELECT maint.try_task_lock(%s)", (catalog.VERIFY_TASK,)).fetchone()
    try:
        yield bool(got and got[0])
    finally:
        if got and got[0]:
            conn.execute("SELECT maint.task_unlock(%s)", (catalog.VERIFY_TASK,))


def drop_database(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def restore_and_compare(
    conn: psycopg.Connection,
    dsn: str,
    tools: ClientTools,
    entry: files.Entry,
    jobs: int,
    toc: toc_mod.Toc,
) -> tuple[list[str], list[str], dict[str, int]]:
    """(problems, notes, the tables' rows counted in the archive) of a test restore into a
    scratch database, which is always dropped; ``toc`` is the archive's table of contents."""
    assert entry.manifest is not None
    me = runas.check_role(conn)
    prefix = scratch_prefix(conn)
    with verify_lock(conn) as locked:
        notes = []
        if locked:
            swept = sweep_scratch(conn, prefix)
            if swept:
                notes.append(f"dropped {len(swept)} scratch database(s) of an earlier run")
        name = f"{prefix}{entry.manifest['id']}_{secrets.token_hex(3)}"
        try:
            problems, more, counted = _restore_compare(conn, dsn, tools, entry, jobs, name, me, toc)
        finally:
            drop_database(conn, name)
        return problems, notes + more, counted


def _unforce_row_security(scratch: psycopg.Connection) -> None:
    """The scratch tables belong to maint_restore, and an owner bypasses row level
    security unless it is FORCEd: unforce it so every row is counted."""
    for schema, table in scratch.execute(
        """SELECT n.nspname, c.relname FROM pg_catalog.pg_class AS c
             JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
            WHERE c.relforcerowsecurity AND c.relkind IN ('r', 'p')"""
    ).fetchall():
        scratch.execute(
            sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(
                sql.Identifier(schema, table)
            )
        )


def _scratch_facts(login: runas.Login, name: str) -> dict[str, Any]:
    """The restored database's facts, read on a session of maint_restore."""
    with login.connect(name, autocommit=True) as scratch:
        _unforce_row_security(scratch)
        scratch.autocommit = False
        scratch.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        # an error rather than silently filtered counts if a policy still applied
        scratch.execute("SELECT pg_catalog.set_config('row_security', 'off', true)")
        actual = facts.collect(scratch)
        scratch.rollback()
        return actual


def _restore_compare(
    conn: psycopg.Connection,
    dsn: str,
    tools: ClientTools,
    entry: files.Entry,
    jobs: int,
    name: str,
    me: runas.Caller,
    toc: toc_mod.Toc,
) -> tuple[list[str], list[str], dict[str, int]]:
    """Restore as maint_restore and read the scratch database's facts as maint_restore."""
    assert entry.manifest is not None
    props = entry.manifest["database_properties"]
    expected = dict(entry.manifest["facts"])
    counted: dict[str, int] = {}
    if any(r["kind"] == "r" and "rows" not in r for r in expected["relations"]):
        # the snapshot's table rows as pg_dump wrote them: counted in the archive
        try:
            in_archive = archive_rows(tools, archive_path(entry), toc)
        except BackupError as exc:
            return [str(exc)], [], {}
        relations = []
        for r in expected["relations"]:
            if r["kind"] == "r" and "rows" not in r:
                r = {**r, "rows": in_archive.get(r["oid"])}
                if r["rows"] is not None:
                    counted[f"{r['schema']}.{r['name']}"] = r["rows"]
            relations.append(r)
        expected["relations"] = relations
    try:
        with load_mod.load(
            conn, dsn, tools, archive_path(entry), name, props, me=me, toc=toc, jobs=jobs
        ) as loaded:
            try:
                actual = _scratch_facts(loaded.login, name)
            except psycopg.Error as exc:
                problem = f"could not read the restored scratch database: {db.error_line(exc)}"
                return [problem], loaded.notes, counted
    except BackupError as exc:
        return [str(exc)], [], counted
    notes = loaded.notes
    if loaded.plan.event_triggers:
        notes.append(
            f"{len(loaded.plan.event_triggers)} event trigger(s) not restored (creating one "
            f"needs a superuser, and it would fire on later DDL): "
            + ", ".join(loaded.plan.event_triggers)
        )
    if loaded.plan.skipped_cron:  # pg_cron left out: its extension row is the one expected difference
        expected["objects"] = {k: v for k, v in expected["objects"].items() if k != "extensions"}
        actual["objects"] = {k: v for k, v in actual["objects"].items() if k != "extensions"}
    if counted:
        notes.append(
            f"the expected rows of {len(counted)} table(s) ({sum(counted.values())} rows) were "
            "counted in the archive, which pg_dump wrote from the backup's snapshot"
        )
    return facts.compare(expected, actual), notes, counted


def archive_rows(tools: ClientTools, archive: Path, toc: toc_mod.Toc) -> dict[int, int]:
    """Table oid (in the source) -> rows in the archive: pg_restore writes the data of
    the TABLE DATA entries as COPY blocks, in the order of its --use-list, and they are
    counted as they stream by (nothing is written to disk)."""
    data = [e for e in toc.entries if e.rest.startswith("TABLE DATA ")]
    if not data:
        return {}
    with tempfile.TemporaryDirectory(prefix="pgmaint-rows-") as tmp:
        list_file = Path(tmp) / "data.list"
        list_file.write_text("".join(e.line + "\n" for e in data))
        with subprocess.Popen(
            [tools.path("pg_restore"), "--file=-", f"--use-list={list_file}", str(archive)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            try:
                counts = facts.count_copy_rows(proc.stdout)
            except ValueError as exc:
                counts = None
                problem = str(exc)
            stderr = proc.stderr.read().decode(errors="replace")
            rc = proc.wait()
    if rc != 0:
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        raise BackupError(
            "pg_restore could not read the archive's data to count its rows: "
            + (lines[-1] if lines else f"exit code {rc}")
        )
    if counts is None or len(counts) != len(data):
        raise BackupError(
            f"could not count the archive's rows: {len(data)} table data entries, "
            f"{'no' if counts is None else len(counts)} COPY blocks"
            + (f" ({problem})" if counts is None else "")
        )
    return {e.oid: n for e, n in zip(data, counts, strict=True)}


def verify(
    conn: psycopg.Connection | None,
    dsn: str,
    entry: files.Entry,
    level: str,
    *,
    jobs: int = 1,
    run_id: int | None = None,
) -> VerifyResult:
    """Verify one backup at ``level``; records the outcome in verify.json and, when
    ``conn`` (the source database) and the journaled ``run_id`` making the verification
    are given, in its catalog row."""
    if level not in LEVELS:
        raise ValueError(f"unknown verify level {level!r}: use list, read or restore")
    assert entry.manifest is not None and entry.backup_id is not None
    t0 = time.monotonic()
    result = VerifyResult(entry.backup_id, str(entry.path), level, ok=False)
    problems = check_hashes(entry)
    if not problems:
        result.checks.append(f"{len(entry.manifest['files'])} file(s) match their sha256")
        dump_major = int(str(entry.manifest["pg_dump_version"]).split(".")[0].split()[0])
        server = conn.info.server_version if conn is not None else 0
        tools = find_tools(max(server, dump_major * 10000))
        archive = archive_path(entry)
        toc: toc_mod.Toc | None = None
        try:
            toc = toc_mod.read(tools, archive)
            problems = check_toc(toc, entry.manifest["facts"])
        except BackupError as exc:
            problems = [str(exc)]
        if not problems:
            n = sum(1 for r in entry.manifest["facts"]["relations"] if r["kind"] != "S")
            result.checks.append(f"TOC has data for all {n} table(s)")
        if not problems and level == "read":
            problems = read_through(tools, archive)
            if not problems:
                result.checks.append("every data block reads back")
        if not problems and level == "restore":
            if conn is None:
                raise PreflightRefused("a restore verification needs a database connection")
            assert toc is not None
            problems, result.notes, result.archive_rows = restore_and_compare(
                conn, dsn, tools, entry, jobs, toc
            )
            if not problems:
                n = len(entry.manifest["facts"]["relations"])
                result.checks.append(
                    f"restored into a scratch database: {n} row counts / sequence values "
                    "and all object counts match"
                )
    result.problems = problems
    result.ok = not problems
    result.seconds = round(time.monotonic() - t0, 3)
    result.at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with contextlib.suppress(OSError):
        files.write_json_atomic(entry.path / files.VERIFY_FILE, asdict(result))
    if conn is not None and run_id is not None:
        record(conn, run_id, result)
    return result


def record(conn: psycopg.Connection, run_id: int, result: VerifyResult) -> bool:
    """Update the backup's catalog row: 'verified' on success, 'failed' otherwise; False
    when the backup is not in this catalog (another database's, or a copy)."""
    return catalog.record_verification(
        conn,
        run_id,
        result.backup_id,
        result.path,
        level=result.level,
        ok=result.ok,
        result=result.summary(),
        detail=_catalog_detail(result),
    )


def _catalog_detail(result: VerifyResult) -> dict[str, Any]:
    """The verification for the catalog row: the archive's row counts as a total (a
    database may have thousands of tables; verify.json has each)."""
    detail = asdict(result)
    counts = detail.pop("archive_rows")
    if counts:
        detail["archive_rows_total"] = sum(counts.values())
        detail["archive_tables_counted"] = len(counts)
    return detail
