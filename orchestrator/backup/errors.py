"""Errors of ``pgmaint backup`` with their documented exit codes.

0 ok, 1 error, 2 usage (click), 3 preflight refused, 4 another run holds the lock,
5 verification failed.
"""

from orchestrator.errors import PgmaintError


class BackupError(PgmaintError):
    """A backup step failed (exit code 1)."""


class PreflightRefused(PgmaintError):
    """A check before the work refused to start it: version, space, target exists (exit 3)."""

    exit_code = 3


class BackupLocked(PgmaintError):
    """Another pgmaint backup run holds the task lock of this database (exit 4)."""

    exit_code = 4


class VerificationFailed(PgmaintError):
    """A backup did not pass verification: hashes, TOC, read-through or restore (exit 5)."""

    exit_code = 5
