"""pgmaint run: the cleanup rules (orchestrator.cleanup) and optimize (orchestrator.optimize)."""

from orchestrator.cleanup import run_group
from orchestrator.optimize import optimize_cmd

run_group.add_command(optimize_cmd)

__all__ = ["run_group"]
