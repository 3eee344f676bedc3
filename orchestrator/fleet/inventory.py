"""The inventory: ``pgmaint.toml``, the targets a fleet command or the exporter works on.

Found in ``--inventory``, ``$PGMAINT_INVENTORY`` or ``./pgmaint.toml``::

    [targets.shop]                        # one database
    dsn = "host=db1 dbname=shop user=ops"
    tags = ["prod", "eu"]

    [targets.billing]                     # a libpq service (~/.pg_service.conf)
    service = "billing"

    [targets.db2]                         # every database of a server except templates,
    dsn = "host=db2 user=ops"             # listed from pg_database at run time and named
    databases = "all"                     # db2/<database>
    exclude = ["postgres"]

Passwords never go in the file (``~/.pgpass``, the service file or ``$PGPASSWORD``): a
DSN with a password, an unknown key, a duplicate name or a bad value is an error that
names the file and the line.

API: :func:`find` and :func:`load` give an :class:`Inventory`; :meth:`Inventory.select`
the chosen :class:`Target` list; ``orchestrator.fleet.expand.expand`` resolves the
server-wide ones.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo

from orchestrator.errors import PgmaintError

ENV = "PGMAINT_INVENTORY"
FILENAME = "pgmaint.toml"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")
_KEYS = {"dsn", "service", "tags", "databases", "exclude"}
_SECRET_KEYS = {"password"}


class InventoryError(PgmaintError):
    """A bad inventory file: one line naming the file and the line (exit code 2)."""

    exit_code = 2


@dataclass(frozen=True)
class Target:
    """One database (or, with ``server``, every database of a server, see ``expand``).

    ``dsn`` never holds a password; ``error`` is set on a server target whose databases
    could not be listed (it is then reported as unreachable)."""

    name: str
    dsn: str
    tags: tuple[str, ...] = ()
    server: bool = False
    exclude: tuple[str, ...] = ()
    error: str | None = field(default=None, compare=False)

    @property
    def dbname(self) -> str:
        return conninfo.conninfo_to_dict(self.dsn).get("dbname") or ""


@dataclass(frozen=True)
class Inventory:
    """The targets of one file, in file order."""

    path: Path
    targets: tuple[Target, ...]

    def names(self) -> list[str]:
        return [t.name for t in self.targets]

    def select(self, names: tuple[str, ...] | list[str] = (), tags: tuple[str, ...] | list[str] = (),
               all_targets: bool = False) -> list[Target]:
        """The targets named (``srv/db`` picks one database of a server target), those with
        any of ``tags``, or all of them; in file order, each once. Unknown names and tags
        that match nothing are errors; choosing nothing is an error too."""
        if not (names or tags or all_targets):
            raise PgmaintError("choose targets with --target NAME, --tag TAG or --all")
        by_name = {t.name: t for t in self.targets}
        chosen: list[Target] = []
        for name in names:
            head, _, db = name.partition("/")
            target = by_name.get(head)
            if target is None or (db and not target.server) or (target.server and "/" in name and not db):
                known = ", ".join(by_name) or "none"
                raise PgmaintError(f"no target {name!r} in {self.path} (targets: {known})")
            chosen.append(one_database(target, db) if db else target)
        for tag in tags:
            tagged = [t for t in self.targets if tag in t.tags]
            if not tagged:
                raise PgmaintError(f"no target in {self.path} has tag {tag!r}")
            chosen += tagged
        if all_targets:
            chosen += self.targets
        unique: dict[str, Target] = {}
        for target in chosen:
            unique.setdefault(target.name, target)
        return list(unique.values())


def one_database(server: Target, dbname: str) -> Target:
    """The target for one database of a server target: named ``server/dbname``."""
    params = conninfo.conninfo_to_dict(server.dsn)
    params["dbname"] = dbname
    return Target(f"{server.name}/{dbname}", conninfo.make_conninfo(**params), server.tags)


def find(explicit: Path | None = None) -> Path:
    """The inventory file: ``explicit``, else ``$PGMAINT_INVENTORY``, else ``./pgmaint.toml``."""
    if explicit is not None:
        return explicit
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    here = Path.cwd() / FILENAME
    if here.is_file():
        return here
    raise PgmaintError(f"no inventory: give --inventory FILE, set ${ENV} or create ./{FILENAME}")


def load(path: Path) -> Inventory:
    """Read and check an inventory file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PgmaintError(f"cannot read inventory {path}: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(_toml_message(path, str(exc))) from exc
    lines = _Lines(path, text)
    for key in data:
        if key != "targets":
            raise lines.error(f"unknown key {key!r} (the file holds [targets.NAME] tables)", key=key)
    targets_table = data.get("targets", {})
    if not isinstance(targets_table, dict):
        raise lines.error("'targets' must be a table of [targets.NAME] tables", key="targets")
    return Inventory(path, tuple(_target(name, spec, lines) for name, spec in targets_table.items()))


def _target(name: str, spec: Any, lines: _Lines) -> Target:
    where = lines.for_target(name)
    if not NAME.match(name):
        raise where.error(f"invalid target name {name!r}: letters, digits, '_', '.' and '-', at most 63")
    if not isinstance(spec, dict):
        raise where.error(f"target {name!r} must be a table ([targets.{name}])")
    for key in spec:
        if key not in _KEYS:
            raise where.error(f"unknown key {key!r} in target {name!r} (keys: {', '.join(sorted(_KEYS))})",
                              key=key)
    for key in ("dsn", "service", "databases"):
        if key in spec and not isinstance(spec[key], str):
            raise where.error(f"{key} of target {name!r} must be a string", key=key)
    if "dsn" not in spec and "service" not in spec:
        raise where.error(f"target {name!r} needs a dsn or a service")
    try:
        params = conninfo.conninfo_to_dict(spec.get("dsn", ""))
    except psycopg.ProgrammingError as exc:
        raise where.error(f"dsn of target {name!r} is not a libpq connection string: "
                          f"{str(exc).strip().splitlines()[0]}", key="dsn") from exc
    if _SECRET_KEYS & set(params):
        raise where.error(f"dsn of target {name!r} holds a password: keep passwords in ~/.pgpass, the "
                          "service file or $PGPASSWORD, never in the inventory", key="dsn")
    if "service" in spec:
        params["service"] = spec["service"]
    tags = _strings(spec, "tags", name, where, TAG)
    exclude = _strings(spec, "exclude", name, where, None)
    server = False
    if "databases" in spec:
        if spec["databases"] != "all":
            raise where.error(f"databases of target {name!r} must be \"all\" (every database of the server "
                              "except templates)", key="databases")
        if "dbname" in params:
            raise where.error(f"target {name!r} has databases = \"all\" and a dbname: give one of them",
                              key="databases")
        server = True
    elif exclude:
        raise where.error(f"exclude of target {name!r} needs databases = \"all\"", key="exclude")
    return Target(name, conninfo.make_conninfo(**params), tags, server, exclude)


def _strings(spec: dict[str, Any], key: str, name: str, where: _Where,
             pattern: re.Pattern[str] | None) -> tuple[str, ...]:
    value = spec.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise where.error(f"{key} of target {name!r} must be a list of strings such as [\"prod\", \"eu\"]",
                          key=key)
    for v in value:
        if pattern is not None and not pattern.match(v):
            raise where.error(f"invalid tag {v!r} in target {name!r}: letters, digits, '_', '.', ':' and '-'",
                              key=key)
    return tuple(value)


def _toml_message(path: Path, message: str) -> str:
    """tomllib's message as ``file:line: what``; a table declared twice is a duplicate target."""
    m = re.search(r"\(at line (\d+), column \d+\)\s*$", message)
    line = f":{m.group(1)}" if m else ""
    what = message[: m.start()].strip() if m else message
    dup = re.match(r"Cannot declare \('targets', '([^']*)'\) twice", what)
    if dup:
        what = f"target {dup.group(1)!r} is defined twice (names are unique)"
    elif what.startswith("Cannot overwrite a value"):
        what = "a key is given twice"
    return f"{path}{line}: not a valid inventory: {what}"


@dataclass(frozen=True)
class _Where:
    lines: _Lines
    line: int
    name: str | None

    def error(self, message: str, key: str | None = None) -> InventoryError:
        line = self.line
        if key is not None:
            line = self.lines.key_line(key, self.line) or line
        return InventoryError(f"{self.lines.path}:{line}: {message}")


class _Lines:
    """Line numbers for messages (tomllib gives none for values): the line of a target's
    table header, and of a key inside it."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.rows = text.splitlines()

    def for_target(self, name: str) -> _Where:
        quoted = re.escape(name)
        header = re.compile(rf"^\s*\[\s*targets\s*\.\s*(\"{quoted}\"|'{quoted}'|{quoted})\s*\]")
        inline = re.compile(rf"^\s*(targets\s*\.\s*)?(\"{quoted}\"|'{quoted}'|{quoted})\s*=")
        for i, row in enumerate(self.rows, 1):
            if header.match(row) or inline.match(row):
                return _Where(self, i, name)
        return _Where(self, 1, name)

    def key_line(self, key: str, start: int) -> int | None:
        pattern = re.compile(rf"^\s*(\"{re.escape(key)}\"|{re.escape(key)})\s*=")
        for i in range(start, len(self.rows) + 1):
            row = self.rows[i - 1]
            if i > start and row.lstrip().startswith("["):
                break
            if pattern.match(row) or (i == start and re.search(rf"\b{re.escape(key)}\s*=", row)):
                return i
        return None

    def error(self, message: str, key: str) -> InventoryError:
        """An error about a top-level key or table."""
        pattern = re.compile(rf"^\s*(\[+\s*)?(\"{re.escape(key)}\"|{re.escape(key)})\s*[.=\]]")
        line = next((i for i, row in enumerate(self.rows, 1) if pattern.match(row)), 1)
        return InventoryError(f"{self.path}:{line}: {message}")
