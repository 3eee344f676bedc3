"""Locate the SQL that ships with the kit (installed wheel first, then the checkout)."""

import os
from importlib import resources
from pathlib import Path


def sql_dir() -> Path:
    """Directory holding ``migrations/`` and ``functions/``.

    ``PGMAINT_SQL_DIR`` overrides (used by tests that stage an upgrade); an installed
    wheel carries the SQL as ``orchestrator/sql``; a checkout has it at the top level.
    """
    override = os.environ.get("PGMAINT_SQL_DIR")
    if override:
        return Path(override)
    packaged = Path(str(resources.files("orchestrator"))) / "sql"
    if (packaged / "migrations").is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "sql"
