"""Notify targets: apprise URLs from ``--to``, ``$PGMAINT_NOTIFY_URLS`` (space-separated) and
a TOML config file (``--config`` or ``$PGMAINT_NOTIFY_CONFIG``). URLs hold secrets, so they
stay on the host: the database knows a target by its name and a masked label.

Config file::

    [defaults]                      # optional: the route of targets that set none
    min_severity = "warning"        # info, warning or critical
    kinds = []                      # run, health, backup, or kind:object-prefix

    [targets.ops-slack]
    url = "slack://T000/B000/XXXX"  # or url_env = "SLACK_URL": read from the environment
    min_severity = "critical"
    kinds = ["run", "backup", "health:backup_freshness"]
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apprise

from orchestrator.errors import PgmaintError

SEVERITIES = ("info", "warning", "critical")
KINDS = ("run", "health", "backup")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")
URLS_ENV = "PGMAINT_NOTIFY_URLS"
CONFIG_ENV = "PGMAINT_NOTIFY_CONFIG"
_TARGET_KEYS = {"url", "url_env", "min_severity", "kinds"}


@dataclass(frozen=True)
class Target:
    """One place messages go: its name (what the database knows), the apprise URL (never
    shown: ``label`` masks its secrets) and its route."""

    name: str
    url: str = field(repr=False)
    label: str
    min_severity: str = "warning"
    kinds: tuple[str, ...] = ()

    def plugin(self) -> Any:
        """The apprise plugin for the URL (checked at load time)."""
        return apprise.Apprise.instantiate(self.url)


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "?"


def _check_url(url: str, where: str) -> str:
    """The URL's masked label, or an error naming where the URL came from (never the URL)."""
    plugin = apprise.Apprise.instantiate(url.strip()) if url and url.strip() else None
    if plugin is None:
        raise PgmaintError(f"invalid notify target {where}: apprise does not accept the URL "
                           f"'{_scheme(url)}://...' (URL forms: https://github.com/caronc/apprise/wiki)")
    return str(plugin.url(privacy=True))[:500]


def _check_route(min_severity: str, kinds: tuple[str, ...], where: str) -> None:
    if min_severity not in SEVERITIES:
        raise PgmaintError(f"invalid min_severity {min_severity!r} for {where}: "
                           "use info, warning or critical")
    for kind in kinds:
        head, sep, tail = kind.partition(":")
        if head not in KINDS or (sep and not tail):
            raise PgmaintError(f"invalid event kind {kind!r} for {where}: use run, health or backup, "
                               "optionally with the start of the object after a colon "
                               "(health:backup_freshness)")


def url_target(url: str, where: str, min_severity: str, kinds: tuple[str, ...]) -> Target:
    """A target given as a bare URL: named after its scheme and a hash of the URL."""
    label = _check_url(url, where)
    _check_route(min_severity, kinds, where)
    digest = hashlib.sha256(url.strip().encode()).hexdigest()[:10]
    name = re.sub(r"[^A-Za-z0-9]", "", _scheme(url))[:20] or "url"
    return Target(f"{name}-{digest}", url.strip(), label, min_severity, kinds)


def _kinds(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise PgmaintError(f"invalid kinds for {where}: a list of strings such as [\"run\", \"backup\"]")
    return tuple(value)


def config_targets(path: Path) -> list[Target]:
    """The targets of a config file, checked; errors name the file and the target."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PgmaintError(f"cannot read notify config {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PgmaintError(f"notify config {path} is not valid TOML: {exc}") from exc
    unknown = set(data) - {"defaults", "targets"}
    if unknown:
        raise PgmaintError(f"notify config {path}: unknown section(s) {', '.join(sorted(unknown))}")
    defaults = data.get("defaults", {})
    default_severity = defaults.get("min_severity", "warning")
    default_kinds = _kinds(defaults.get("kinds", []), f"[defaults] in {path}")
    targets = []
    for name, spec in data.get("targets", {}).items():
        where = f"target {name!r} in {path}"
        if not NAME.match(name):
            raise PgmaintError(f"invalid target name {name!r} in {path}: letters, digits, _ . : and -")
        if not isinstance(spec, dict) or set(spec) - _TARGET_KEYS:
            extra = ", ".join(sorted(set(spec) - _TARGET_KEYS)) if isinstance(spec, dict) else "not a table"
            raise PgmaintError(f"{where}: unknown key(s) {extra} (use url or url_env, min_severity, kinds)")
        if ("url" in spec) == ("url_env" in spec):
            raise PgmaintError(f"{where}: give exactly one of url and url_env")
        url = spec.get("url") or os.environ.get(str(spec["url_env"]), "")
        if not url:
            raise PgmaintError(f"{where}: environment variable {spec['url_env']} is not set")
        kinds = _kinds(spec.get("kinds", list(default_kinds)), where)
        severity = str(spec.get("min_severity", default_severity))
        _check_route(severity, kinds, where)
        targets.append(Target(name, str(url).strip(), _check_url(str(url), where), severity, kinds))
    return targets


def load(to: tuple[str, ...], config: Path | None, min_severity: str, kinds: tuple[str, ...]) -> list[Target]:
    """Every target from --to, $PGMAINT_NOTIFY_URLS and the config file, checked: a URL that
    apprise does not accept, a bad route or two targets of one name stop the start."""
    targets = [url_target(u, f"#{i} of --to", min_severity, kinds) for i, u in enumerate(to, 1)]
    env_urls = os.environ.get(URLS_ENV, "").split()
    targets += [url_target(u, f"#{i} of ${URLS_ENV}", min_severity, kinds) for i, u in enumerate(env_urls, 1)]
    path = config or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if path is not None:
        targets += config_targets(path)
    if not targets:
        raise PgmaintError(f"no notify targets: give --to URL, ${URLS_ENV} "
                           f"or a config file (--config, ${CONFIG_ENV})")
    seen: dict[str, Target] = {}
    for target in targets:
        if target.name in seen:
            raise PgmaintError(f"notify target {target.name} is given twice")
        seen[target.name] = target
    return targets


def find(spec: str, config: Path | None) -> Target:
    """The target ``spec`` names: a URL, or a target of the config file."""
    if "://" in spec:
        return url_target(spec, "given", "info", ())
    path = config or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    targets = config_targets(path) if path is not None else []
    for target in targets:
        if target.name == spec:
            return target
    where = f"in {path}" if path is not None else f"(no config file: --config or ${CONFIG_ENV})"
    raise PgmaintError(f"no notify target named {spec!r} {where}; give a URL or a configured name")
