"""Fleets: the inventory of targets (pgmaint.toml) and commands over many databases and servers."""
