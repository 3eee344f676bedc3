"""An archive's table of contents (``pg_restore --list``) and the lists we restore from.

A listing line reads ``<dump id>; <catalog oid> <object oid> <desc> <schema> <tag> <owner>``
(schema ``-`` when none, owner empty when none). Names are not quoted there, so a
line is matched against strings we build from catalog names ("desc schema tag"),
never split on spaces and never executed.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.backup.errors import BackupError
from orchestrator.backup.tools import ClientTools

LINE = re.compile(r"^(\d+); (\d+) (\d+) (.*)$")
# a plain or double-quoted SQL identifier, as pg_dump writes them
_IDENT = r'(?:[a-z_][a-z0-9_$]*|"(?:[^"]|"")+")'
CREATE_EXTENSION = re.compile(
    rf"^CREATE EXTENSION IF NOT EXISTS ({_IDENT}) WITH SCHEMA ({_IDENT});$", re.M
)
_LARGE_OBJECT_KEY = re.compile(r"^BLOB - (\d+)$")
_LARGE_OBJECT_OWNER = re.compile(rf"^ALTER LARGE OBJECT (\d+) OWNER TO ({_IDENT});$", re.M)
_CRON = re.compile(r"^(EXTENSION - pg_cron |COMMENT - EXTENSION pg_cron |[A-Z ]+? cron )")


@dataclass(frozen=True)
class Entry:
    """One listing line: ``rest`` is "<desc> <schema> <tag> <owner>"."""

    line: str
    dump_id: int
    catalog: int
    oid: int
    rest: str


@dataclass
class Toc:
    entries: list[Entry] = field(default_factory=list)
    # owner of each large object by OID, read from the statements of pg_dump 17+'s
    # "BLOB METADATA" entries (their tag is a range of OIDs that may interleave with
    # another owner's range, so the listing alone does not tell)
    large_objects: dict[int, str] = field(default_factory=dict)

    def lines(self, keep: Callable[[Entry], bool] | None = None) -> str:
        """A ``pg_restore --use-list`` file of the entries ``keep`` accepts."""
        return "".join(e.line + "\n" for e in self.entries if keep is None or keep(e))

    def named(self, prefix: str) -> list[str]:
        """Names of the entries whose rest starts with ``prefix`` (e.g. "EVENT TRIGGER - "),
        the owner dropped: for messages."""
        return [
            e.rest[len(prefix) :].rsplit(" ", 1)[0]
            for e in self.entries
            if e.rest.startswith(prefix)
        ]

    def database_owner(self, database: str, roles: Iterable[str]) -> str | None:
        """The owner of the source database ``database`` (its DATABASE entry), when it is
        one of ``roles``."""
        key = f"DATABASE - {database}"
        return self.owners([key], roles).get(key)

    def owners(self, keys: Iterable[str], roles: Iterable[str]) -> dict[str, str]:
        """The owner of each object whose key ("<desc> <schema> <tag>") has a listing
        line ending in " <owner>" with an owner among ``roles``. A key that more than
        one line (or one line in more than one way) matches is left out: ambiguous."""
        wanted = set(keys)
        role_set = {r for r in roles if r}
        found: dict[str, str] = {}
        ambiguous: set[str] = set()
        for e in self.entries:
            rest = e.rest
            matches = []
            i = rest.find(" ")
            while i != -1:
                key, owner = rest[:i], rest[i + 1 :]
                if key in wanted and owner in role_set:
                    matches.append((key, owner))
                i = rest.find(" ", i + 1)
            for key, owner in matches:
                if len(matches) > 1 or (key in found and found[key] != owner):
                    ambiguous.add(key)
                found[key] = owner
        for key in wanted - found.keys():
            m = _LARGE_OBJECT_KEY.match(key)
            if m and self.large_objects.get(int(m.group(1))) in role_set:
                found[key] = self.large_objects[int(m.group(1))]
        return {k: v for k, v in found.items() if k not in ambiguous}


def run_tool(args: list[str]) -> subprocess.CompletedProcess[str]:
    """A client program (pg_restore) with its output captured and no stdin."""
    return subprocess.run(
        args, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )


def last_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The last error line of pg_restore (``pg_restore: error: ...``) or of psql, which
    runs the script when pg_restore cannot (``psql:<stdin>:12: ERROR:  ...``, followed by
    CONTEXT lines), without psql's position prefix."""
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.search(r"\berror\b", ln, re.IGNORECASE)] or lines
    if not errors:
        return f"exit code {proc.returncode}"
    return re.sub(r"^psql:[^:]*:\d+: ", "", errors[-1])


def parse(text: str) -> Toc:
    toc = Toc()
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            toc.entries.append(
                Entry(line, int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4))
            )
    return toc


def read(tools: ClientTools, archive: Path) -> Toc:
    """Every entry of the archive, the DATABASE entry included (``--create``), and the
    owners of its large objects when pg_dump 17+ grouped them."""
    proc = run_tool([tools.path("pg_restore"), "--list", "--create", str(archive)])
    if proc.returncode != 0:
        raise BackupError(f"pg_restore --list failed: {last_error(proc)}")
    toc = parse(proc.stdout)
    toc.large_objects = _large_object_owners(tools, archive, toc)
    return toc


def _script(tools: ClientTools, archive: Path, toc: Toc, keep: Callable[[Entry], bool],
            what: str) -> str | None:
    """The SQL pg_restore writes for the entries ``keep`` accepts (None: there are none)."""
    listing = toc.lines(keep)
    if not listing:
        return None
    with tempfile.TemporaryDirectory(prefix="pgmaint-toc-") as tmp:
        list_file = Path(tmp) / "entries.list"
        list_file.write_text(listing)
        proc = run_tool(
            [tools.path("pg_restore"), "--file=-", f"--use-list={list_file}", str(archive)]
        )
    if proc.returncode != 0:
        raise BackupError(f"pg_restore could not read the {what}: {last_error(proc)}")
    return proc.stdout


def _large_object_owners(tools: ClientTools, archive: Path, toc: Toc) -> dict[int, str]:
    """OID -> owner from the ``ALTER LARGE OBJECT .. OWNER TO`` statements pg_restore
    writes for each large object of a grouped ("BLOB METADATA") entry."""
    script = _script(tools, archive, toc, lambda e: e.rest.startswith("BLOB METADATA - "),
                     "large objects")
    if script is None:
        return {}
    return {int(oid): unquote(owner) for oid, owner in _LARGE_OBJECT_OWNER.findall(script)}


def is_cron(e: Entry) -> bool:
    """pg_cron installs only in the server's cron database: a scratch or new one never is."""
    return bool(_CRON.match(e.rest))


def is_database(e: Entry) -> bool:
    return e.rest.startswith(("DATABASE - ", "DATABASE PROPERTIES - "))


def is_event_trigger(e: Entry) -> bool:
    return e.rest.startswith(("EVENT TRIGGER - ", "COMMENT - EVENT TRIGGER "))


def is_privilege(e: Entry) -> bool:
    return e.rest.startswith(("ACL ", "DEFAULT ACL "))


def unquote(ident: str) -> str:
    return ident[1:-1].replace('""', '"') if ident.startswith('"') else ident


def extensions(tools: ClientTools, archive: Path, toc: Toc) -> list[tuple[str, str]]:
    """(name, schema) of each extension the archive creates, in archive order, read from
    pg_dump's own ``CREATE EXTENSION IF NOT EXISTS .. WITH SCHEMA ..`` statements."""
    def keep(e: Entry) -> bool:
        return e.rest.startswith("EXTENSION - ") and not is_cron(e)

    script = _script(tools, archive, toc, keep, "extensions")
    if script is None:
        return []
    found = [(unquote(a), unquote(b)) for a, b in CREATE_EXTENSION.findall(script)]
    expected = sum(1 for e in toc.entries if keep(e))
    if len(found) != expected:
        raise BackupError(
            f"the archive lists {expected} extension(s) but {len(found)} CREATE EXTENSION "
            "statement(s) could be read"
        )
    return found
