"""pgmaint orchestrator: deploys the in-database maintenance kit and drives it from the CLI."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # __version__ reads the installed metadata (importlib.metadata: tens of milliseconds at
    # every start-up) only when something asks for it
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("pgmaint")
    except PackageNotFoundError:  # running from a checkout that was never installed
        value = "0.0.0+unknown"
    globals()["__version__"] = value
    return value
