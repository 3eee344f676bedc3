"""Exceptions that reach the user as one line on stderr and a meaningful exit code."""

import click


class PgmaintError(click.ClickException):
    """An operational failure: printed as ``Error: <message>``, exit code 1."""

    exit_code = 1


class ConnectionFailed(PgmaintError):
    """The database could not be reached (exit code 1)."""


class NotInstalled(PgmaintError):
    """The kit is not deployed in the target database (exit code 1)."""
