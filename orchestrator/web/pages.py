"""The console's pages: each reads its maint.* functions (data.py), acts through actions.py,
and renders a template. Destructive actions go preview -> confirmation page (which
restates the counts and issues a confirmation token) -> POST with that token."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.responses import RedirectResponse, Response

from orchestrator.web import actions, data
from orchestrator.web.app import Ctx, Refused

CONFIRM_AGE = 600  # a confirmation page is good for 10 minutes
# what a run's rules, statements or steps show first; other columns follow in journal order
FIRST_COLUMNS = [
    "seq",
    "key",
    "rule_id",
    "table",
    "relation",
    "kind",
    "action",
    "status",
    "outcome",
    "deleted",
    "archived",
    "candidates",
    "batches",
    "duration_s",
    "fraction",
    "statement",
    "error",
    "message",
]


def _int(ctx: Ctx, name: str) -> int:
    return int(ctx.request.path_params[name])


def _flash(ctx: Ctx) -> str | None:
    """The one-line outcome a redirect after an action carries (?done=...)."""
    messages = {
        "rule": "The rule ran: this is its journal row.",
        "undo": "The undo ran: this is its journal row.",
        "verify": "Verification started: this run finishes when the backup is checked (reload to follow it).",
        "sample": "A size sample was taken.",
    }
    return messages.get(ctx.param("done"))


def overview(ctx: Ctx) -> Response:
    return ctx.console.render(ctx, "overview.html", areas=data.overview(ctx.conn))


def health(ctx: Ctx) -> Response:
    login_dsn = None
    if ctx.session.superuser:  # pg_cron's job history is readable by superusers only
        from psycopg import conninfo

        login_dsn = conninfo.make_conninfo(
            ctx.console.dsn(ctx.session), user=ctx.session.role, password=ctx.session.password
        )
    h = data.health(ctx.conn, login_dsn)
    return ctx.console.render(ctx, "health.html", h=h)


def runs(ctx: Ctx) -> Response:
    before = ctx.param("before")
    f = data.RunFilter(
        task=ctx.param("task"),
        status=ctx.param("status"),
        source=ctx.param("source"),
        since=ctx.param("since"),
        until=ctx.param("until"),
        q=ctx.param("q"),
        before=int(before) if before.isdigit() else None,
    )
    found = data.runs(ctx.conn, f)
    older = None
    if len(found) == data.PAGE:
        older = "/runs?" + urlencode({**f.query(), "before": found[-1]["id"]})
    return ctx.console.render(
        ctx,
        "runs.html",
        runs=found,
        f=f,
        tasks=data.run_tasks(ctx.conn),
        statuses=data.RUN_STATUSES,
        sources=data.RUN_SOURCES,
        older=older,
    )


def run(ctx: Ctx) -> Response:
    r = data.run(ctx.conn, _int(ctx, "run_id"))
    return ctx.console.render(ctx, "run.html", run=r, flash=_flash(ctx), detail=_detail(r["detail"]))


def _detail(detail: Any) -> dict[str, Any]:
    """A run's journaled detail split for display: lists of objects become tables (rules,
    statements, steps), the rest a list of facts."""
    tables: dict[str, list[dict[str, Any]]] = {}
    facts: dict[str, Any] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
                tables[key] = [{"key": k, **v} for k, v in value.items()]
            elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                tables[key] = value
            else:
                facts[key] = value
    tables_out = {}
    for name, items in tables.items():
        columns: list[str] = []
        for item in items:
            columns += [c for c in item if c not in columns]
        columns.sort(key=lambda c: FIRST_COLUMNS.index(c) if c in FIRST_COLUMNS else len(FIRST_COLUMNS))
        tables_out[name] = {"columns": columns, "rows": items}
    return {"tables": tables_out, "facts": facts}


def undo_confirm(ctx: Ctx) -> Response:
    run_id = _int(ctx, "run_id")
    r = data.run(ctx.conn, run_id)
    if not r["restorable"]:
        raise Refused(409, "Nothing to undo", f"Run {run_id} has no archived rows left to put back.")
    token = ctx.console.sessions.confirmation(ctx.session, f"undo:{run_id}:{r['restorable']}")
    return ctx.console.render(ctx, "undo.html", run=r, token=token)


def undo_execute(ctx: Ctx) -> Response:
    run_id = _int(ctx, "run_id")
    restorable = ctx.field("restorable")
    if not ctx.console.sessions.confirmed(
        ctx.session, f"undo:{run_id}:{restorable}", ctx.field("confirm"), CONFIRM_AGE
    ):
        raise Refused(
            400,
            "Confirmation missing",
            "An undo needs its confirmation page first (or that page is older than 10 minutes): "
            f"nothing was changed. Open /runs/{run_id}/undo and confirm there.",
        )
    try:
        undo_id = actions.undo(ctx.conn, run_id)
    except actions.ActionFailed as exc:
        return _failed(ctx, "Undo failed", exc)
    return RedirectResponse(f"/runs/{undo_id}?done=undo", status_code=303)


def cleanup(ctx: Ctx) -> Response:
    return ctx.console.render(ctx, "cleanup.html", rules=data.rules(ctx.conn))


def rule(ctx: Ctx) -> Response:
    r = data.rule(ctx.conn, _int(ctx, "rule_id"))
    return ctx.console.render(ctx, "rule.html", rule=r, confirm=False)


def _rows_token(r: dict[str, Any]) -> str:
    return f"rule:{r['rule_id']}:{r['would_delete']}"


def rule_confirm(ctx: Ctx) -> Response:
    """The confirmation page: the preview again, now, with the counts the run is about."""
    r = data.rule(ctx.conn, _int(ctx, "rule_id"))
    problem = _runnable(r)
    if problem:
        raise Refused(409, "Cannot run this rule", problem)
    if not ctx.me["can_act"]:
        raise Refused(
            403,
            "Not allowed",
            f"Role {ctx.me['role']} may read but not act (it is not a member of maint_admin).",
        )
    token = ctx.console.sessions.confirmation(ctx.session, _rows_token(r))
    return ctx.console.render(ctx, "rule.html", rule=r, confirm=True, token=token)


def _runnable(r: dict[str, Any]) -> str | None:
    if not r["enabled"]:
        return f"Rule {r['rule_id']} is disabled: enable it first (SELECT maint.enable_rule({r['rule_id']}))."
    if r["error"]:
        return f"The preview of rule {r['rule_id']} failed: {r['error']}"
    if not r["would_delete"]:
        return f"Rule {r['rule_id']} would remove nothing now."
    if r["refused"]:
        return (
            f"Rule {r['rule_id']} would remove {r['fraction'] * 100:.1f} % of {r['target']}, more than its "
            f"max_fraction {r['max_fraction'] * 100:.0f} %: the run would refuse it. Check the rule; "
            "forcing it is for SQL or the CLI, not the console."
        )
    return None


def rule_execute(ctx: Ctx) -> Response:
    rule_id = _int(ctx, "rule_id")
    shown = ctx.field("would_delete")
    if not ctx.console.sessions.confirmed(
        ctx.session, f"rule:{rule_id}:{shown}", ctx.field("confirm"), CONFIRM_AGE
    ):
        raise Refused(
            400,
            "Confirmation missing",
            "Running a rule needs its confirmation page first (or that page is older than 10 "
            f"minutes): nothing was changed. Open /cleanup/{rule_id}/run and confirm there.",
        )
    r = data.rule(ctx.conn, rule_id)
    problem = _runnable(r)
    if problem:
        raise Refused(409, "Cannot run this rule", problem + " Nothing was changed.")
    try:
        run_id = actions.run_rule(ctx.conn, r)
    except actions.ActionFailed as exc:
        return _failed(ctx, "The rule's run failed", exc)
    return RedirectResponse(f"/runs/{run_id}?done=rule", status_code=303)


def _failed(ctx: Ctx, title: str, exc: actions.ActionFailed) -> Response:
    return ctx.console.render(ctx, "error.html", 409, title=title, message=str(exc), run_id=exc.run_id)


def backups(ctx: Ctx) -> Response:
    found = data.backups(ctx.conn)
    series = {"t": [], "mb": [], "seconds": []}
    for b in reversed(found):
        if b["status"] in ("completed", "verified") and b["bytes"] is not None:
            series["t"].append(b["started_at"].timestamp())
            series["mb"].append(round(b["bytes"] / 1048576, 2))
            series["seconds"].append(float(b["duration_s"] or 0))
    return ctx.console.render(ctx, "backups.html", backups=found, series=series, flash=_flash(ctx))


def backup_verify(ctx: Ctx) -> Response:
    backup_id = _int(ctx, "backup_id")
    b = data.backup(ctx.conn, backup_id)
    if b is None:
        raise Refused(404, "Not found", f"No backup with id {backup_id} in the catalog.")
    if b["status"] not in ("completed", "verified", "failed") or not b["path"]:
        raise Refused(
            409, "Cannot verify", f"Backup {backup_id} is {b['status']}: there is nothing to verify yet."
        )
    level = ctx.field("level") or "read"
    try:
        run_id = actions.start_verify(
            ctx.console.dsn(ctx.session),
            ctx.session.role,
            ctx.session.password,
            b,
            level,
            ctx.console.settings.backup_dir,
        )
    except actions.ActionFailed as exc:
        return _failed(ctx, "Verification not started", exc)
    return RedirectResponse(f"/runs/{run_id}?done=verify", status_code=303)


def schedule(ctx: Ctx) -> Response:
    return ctx.console.render(ctx, "schedule.html", **data.schedule(ctx.conn))


def space(ctx: Ctx) -> Response:
    return ctx.console.render(ctx, "space.html", flash=_flash(ctx), **data.space(ctx.conn))


def space_sample(ctx: Ctx) -> Response:
    try:
        actions.take_sample(ctx.conn)
    except actions.ActionFailed as exc:
        return _failed(ctx, "Size sample failed", exc)
    return RedirectResponse("/space?done=sample", status_code=303)
