"""The console's plumbing: routes, sessions and CSRF on every request, one connection as the
logged-in role per request, security headers, error pages. The pages are in pages.py."""

from __future__ import annotations

import secrets
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from orchestrator import db, trust
from orchestrator.errors import PgmaintError
from orchestrator.web import auth, render
from orchestrator.web.sessions import COOKIE, LoginThrottle, Session, SessionStore

LOGIN_COOKIE = "pgmaint_login"  # the login form's CSRF token (double submit), before any session
STATIC = Path(__file__).parent / "static"
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class Settings:
    targets: dict[str, str]  # name -> the kit database's DSN (no user, no password), in menu order
    idle: float = 30 * 60  # a session ends after this many seconds without a request
    absolute: float = 12 * 3600  # ... and this long after login in any case
    secure_cookies: bool = False  # TLS here or at the proxy: cookies only over https
    backup_dir: Path | None = None  # where backups are, when not where the catalog says


@dataclass
class Ctx:
    """One request of a logged-in user: its session, its connection, who it is."""

    request: Request
    form: FormData | None
    session: Session
    conn: psycopg.Connection
    me: dict[str, Any]
    console: Console
    timings: dict[str, float] = field(default_factory=dict)

    def param(self, name: str, default: str = "") -> str:
        return str(self.request.query_params.get(name, default)).strip()

    def field(self, name: str) -> str:
        return "" if self.form is None else str(self.form.get(name, "")).strip()


class Refused(Exception):
    """A request answered with an error page: status, title, one-line message."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


Handler = Callable[[Ctx], Response]


class Console:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sessions = SessionStore(settings.idle, settings.absolute)
        self.throttle = LoginThrottle()
        self.env = render.environment()

    # --- rendering -------------------------------------------------------------------------

    def page(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status_code)

    def render(self, ctx: Ctx | None, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        if ctx is not None:
            context.setdefault("me", ctx.me)
            context.setdefault("target", ctx.session.target if len(self.settings.targets) > 1 else None)
            context.setdefault("csrf", ctx.session.csrf)
            context.setdefault("path", ctx.request.url.path)
        return self.page(template, status_code, **context)

    def error(self, ctx: Ctx | None, status_code: int, title: str, message: str) -> HTMLResponse:
        return self.render(ctx, "error.html", status_code, title=title, message=message)

    def _cookie(self, response: Response, name: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=True,
            samesite="strict",
            secure=self.settings.secure_cookies,
            path="/",
        )

    def dsn(self, session: Session) -> str:
        """The DSN of the database the session logged in to."""
        return self.settings.targets[session.target]

    # --- requests of logged-in users ---------------------------------------------------------

    def route(self, handler: Handler, *, action: bool = False) -> Callable[[Request], Any]:
        """An endpoint: GET pages read; ``action`` pages are POSTs that change something and
        need a valid CSRF token and a role that may act (maint_admin)."""

        async def endpoint(request: Request) -> Response:
            form = await request.form() if request.method == "POST" else None
            return await run_in_threadpool(self._handle, request, form, handler, action)

        return endpoint

    def _handle(self, request: Request, form: FormData | None, handler: Handler, action: bool) -> Response:
        started = time.perf_counter()
        session, expired = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            if request.method == "GET":
                target = "/login?expired=1" if expired else "/login"
                if request.url.path != "/":
                    target += ("&" if "?" in target else "?") + "next=" + request.url.path
                return RedirectResponse(target, status_code=303)
            return self.error(
                None,
                401,
                "Session expired" if expired else "Not logged in",
                "Your session has ended; nothing was changed. Log in again and repeat the action."
                if expired
                else "Log in first; nothing was changed.",
            )
        if request.method == "POST":
            token = "" if form is None else str(form.get("csrf", ""))
            if not token or not secrets.compare_digest(token, session.csrf):
                return self.error(
                    None,
                    403,
                    "Form token missing or wrong",
                    "This form did not carry this session's security token, so nothing was "
                    "changed. Reload the page and try again.",
                )
        try:
            conn = auth.connect(self.dsn(session), session.role, session.password)
        except trust.KitUntrusted as exc:
            return self.error(None, 503, "Kit not trusted", exc.message)
        except PgmaintError as exc:
            if "authentication failed" in exc.message:  # the password changed since the login
                self.sessions.drop(session.token)
                return self.error(
                    None,
                    401,
                    "Log in again",
                    "The server no longer accepts this session's "
                    "password (it was changed); nothing was changed. Log in again.",
                )
            return self.error(None, 503, "Database unreachable", exc.message)
        ctx: Ctx | None = None
        try:
            with conn.cursor(row_factory=dict_row) as cur:
                me = cur.execute("SELECT * FROM maint.console_session()").fetchone()
            assert me is not None
            ctx = Ctx(request=request, form=form, session=session, conn=conn, me=me, console=self)
            if action and not me["can_act"]:
                response = self.error(
                    ctx,
                    403,
                    "Not allowed",
                    f"Role {me['role']} may read but not act (it is not a member of "
                    "maint_admin); nothing was changed.",
                )
            else:
                response = handler(ctx)
        except Refused as exc:
            response = self.error(ctx, exc.status, exc.title, exc.message)
        except psycopg.errors.InsufficientPrivilege as exc:
            response = self.error(ctx, 403, "Not allowed", db.error_line(exc))
        except psycopg.errors.NoDataFound as exc:
            response = self.error(ctx, 404, "Not found", db.error_line(exc))
        except (psycopg.errors.DataError, psycopg.errors.InvalidParameterValue) as exc:
            response = self.error(ctx, 400, "Invalid value", db.error_line(exc))
        except psycopg.Error as exc:
            response = self.error(ctx, 500, "Database error", db.error_line(exc))
        finally:
            conn.close()
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    # --- login and logout ----------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        form = await request.form() if request.method == "POST" else None
        return await run_in_threadpool(self._login, request, form)

    def _login(self, request: Request, form: FormData | None) -> Response:
        next_path = request.query_params.get("next", "/")
        if not next_path.startswith("/") or next_path.startswith(("//", "/\\")):  # never off-site
            next_path = "/"
        if form is None:
            note = "Your session expired: log in again." if request.query_params.get("expired") else None
            return self._login_page(next_path, note=note)
        token = str(form.get("login_token", ""))
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not token or not cookie or not secrets.compare_digest(token, cookie):
            return self._login_page(
                next_path, error="The login form expired or came from elsewhere: try again.", status_code=403
            )
        client = request.client.host if request.client else "?"
        wait = self.throttle.blocked(client)
        if wait:
            return self._login_page(
                next_path, error=f"Too many failed logins: wait {int(wait) + 1} s.", status_code=429
            )
        role = str(form.get("role", ""))
        target = str(form.get("target", "")) or next(iter(self.settings.targets))
        if target not in self.settings.targets:
            return self._login_page(
                next_path, error=f"no database {target!r} in this console", role=role, status_code=400
            )
        try:
            who = auth.login(self.settings.targets[target], role, str(form.get("password", "")))
        except auth.LoginRefused as exc:
            self.throttle.failed(client)
            return self._login_page(next_path, error=str(exc), role=role, target=target, status_code=401)
        self.throttle.succeeded(client)
        session = self.sessions.create(
            who.role,
            str(form.get("password", "")),
            can_act=who.can_act,
            superuser=who.superuser,
            target=target,
        )
        response = RedirectResponse(next_path, status_code=303)
        self._cookie(response, COOKIE, session.token)
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    def _login_page(
        self,
        next_path: str,
        *,
        error: str | None = None,
        note: str | None = None,
        role: str = "",
        target: str = "",
        status_code: int = 200,
    ) -> Response:
        token = secrets.token_urlsafe(24)
        response = self.page(
            "login.html",
            status_code,
            login_token=token,
            error=error,
            note=note,
            role=role,
            next=next_path,
            targets=list(self.settings.targets),
            target=target,
            database=auth.database_name(next(iter(self.settings.targets.values()))),
        )
        self._cookie(response, LOGIN_COOKIE, token, max_age=3600)
        return response

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        session, _ = self.sessions.get(request.cookies.get(COOKIE))
        if session is not None:
            if not secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
                return self.error(
                    None,
                    403,
                    "Form token missing or wrong",
                    "This form did not carry this session's security token. Reload and try again.",
                )
            self.sessions.drop(session.token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response


def _security_headers(app: Starlette) -> Callable[..., Any]:
    async def middleware(
        scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (k.lower().encode(), v.encode())
                    for k, v in HEADERS.items()
                    if k.lower().encode() not in present
                ]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


def create_app(settings: Settings) -> Any:
    """The ASGI application of the console."""
    from orchestrator.web import pages

    console = Console(settings)
    r = console.route
    routes = [
        Route("/login", console.login, methods=["GET", "POST"]),
        Route("/logout", console.logout, methods=["POST"]),
        Route("/", r(pages.overview)),
        Route("/health", r(pages.health)),
        Route("/runs", r(pages.runs)),
        Route("/runs/{run_id:int}", r(pages.run)),
        Route("/runs/{run_id:int}/undo", r(pages.undo_confirm)),
        Route("/runs/{run_id:int}/undo", r(pages.undo_execute, action=True), methods=["POST"]),
        Route("/cleanup", r(pages.cleanup)),
        Route("/cleanup/{rule_id:int}", r(pages.rule)),
        Route("/cleanup/{rule_id:int}/run", r(pages.rule_confirm)),
        Route("/cleanup/{rule_id:int}/run", r(pages.rule_execute, action=True), methods=["POST"]),
        Route("/backups", r(pages.backups)),
        Route("/backups/{backup_id:int}/verify", r(pages.backup_verify, action=True), methods=["POST"]),
        Route("/schedule", r(pages.schedule)),
        Route("/space", r(pages.space)),
        Route("/space/sample", r(pages.space_sample, action=True), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    async def not_found(request: Request, exc: HTTPException) -> Response:
        titles = {404: "Not found", 405: "Method not allowed"}
        return console.error(
            None,
            exc.status_code,
            titles.get(exc.status_code, "Error"),
            f"{request.method} {request.url.path}: {exc.detail}",
        )

    async def failed(request: Request, exc: Exception) -> Response:
        # a bug, not a refusal: the page says so in one line, the console's log has the traceback
        traceback.print_exception(exc, file=sys.stderr)
        return console.error(
            None,
            500,
            "Unexpected error",
            f"{request.method} {request.url.path} failed: {type(exc).__name__}: {exc}",
        )

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found, Exception: failed})
    app.state.console = console
    return _security_headers(app)
