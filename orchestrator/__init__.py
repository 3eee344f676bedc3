"""pgmaint orchestrator: deploys the in-database maintenance kit and drives it from the CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pgmaint")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0+unknown"
