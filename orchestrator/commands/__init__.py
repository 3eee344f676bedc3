"""The commands defined outside a concern's own package: the kit (deploy, uninstall, status,
history), the sandbox and demo, and the schedule. ``orchestrator.cli`` loads each on use."""
