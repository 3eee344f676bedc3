"""The web console (`pgmaint web`) as a real process, driven by Debian's headless Chromium
through Playwright, against a real database with password logins:

* a monitor opens every page (charts draw on their canvas), filters the runs, and a forged
  action POST answers 403 and changes nothing;
* an admin previews, confirms, executes and undoes a cleanup rule (journaled with its role
  and source 'web'), and verifies a backup;
* a bad login, an expired session, a missing CSRF token or confirmation, and SQL-looking
  values in every filter each get a clear page and change nothing;
* cookies, headers, the browser's time zone, a phone's screen, and the bind warning.

Screenshots of every page go to $PGMAINT_SCREENSHOTS (default: a temporary directory that is
printed); `make screenshots` refreshes the ones in docs/screenshots."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from web_support import ROOT, UNVERIFIED, Console, WebDb, chromium, drop_web_db, free_port, make_web_db

PAGES = ["/", "/health", "/runs", "/cleanup", "/backups", "/schedule", "/space"]
CANVAS_PIXELS = """(selector) => {
  const c = document.querySelector(selector);
  if (!c) return -1;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
  return n;
}"""
EVIL = "x'); DROP TABLE app.users; --"
UNIT = ROOT / "contrib" / "systemd" / "pgmaint-web@.service"


@pytest.fixture(scope="module")
def web_db(pg_server: Any) -> Iterator[WebDb]:
    with pg_server.connect() as admin:
        db = make_web_db(pg_server, admin)
        try:
            yield db
        finally:
            drop_web_db(admin, db)


@pytest.fixture(scope="module")
def backup_dir(web_db: WebDb, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("web-backups")
    root.chmod(0o755)
    for _ in range(2):  # two points for the size and duration chart
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestrator",
                "--dsn",
                web_db.dsn,
                "backup",
                "create",
                "--dir",
                str(root),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    return root


@pytest.fixture(scope="module")
def console(web_db: WebDb, backup_dir: Path) -> Iterator[Console]:
    c = Console(web_db.dsn)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = Path(os.environ.get("PGMAINT_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    where.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {where}")
    return where


def role(db: WebDb, kind: str) -> tuple[str, str]:
    name = next(r for r in db.logins if r.startswith(f"web_{kind}_"))
    return name, db.logins[name]


def login(page: Page, console: Console, name: str, password: str) -> None:
    page.goto(console.url + "/login")
    page.fill("input[name=role]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def errors_of(page: Page) -> list[str]:
    found: list[str] = []
    page.on("pageerror", lambda e: found.append(str(e)))
    page.on("console", lambda m: found.append(m.text) if m.type == "error" else None)
    return found


def counts(db: WebDb) -> dict[str, int]:
    with db.connect() as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM app.{t}").fetchone()[0]  # type: ignore[index]
            for t in ("users", "sessions", "api_log", "audit_events")
        } | {"runs": conn.execute("SELECT count(*) FROM maint.runs").fetchone()[0]}  # type: ignore[index]


def test_a_monitor_opens_every_page_and_the_charts_draw(
    console: Console, web_db: WebDb, browser: Browser, shots: Path
) -> None:
    name, password = role(web_db, "monitor")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = errors_of(page)
    login(page, console, name, password)
    assert page.url == console.url + "/"
    assert "read only" in page.inner_text("header")
    for card in ("health", "runs", "backups", "schedule", "archive"):
        assert page.locator(f"#card-{card}").count() == 1
    assert "simulated failure: disk full" in page.inner_text("#card-runs")
    for path in PAGES:
        response = page.goto(console.url + path)
        assert response is not None and response.status == 200, path
        assert re.match(r"app;dur=\d", response.headers["server-timing"])
        page.screenshot(path=str(shots / f"{path.strip('/') or 'overview'}.png"), full_page=True)
    page.goto(console.url + "/health")
    assert page.locator("section.check").count() >= 1
    assert page.locator(".spark canvas").count() >= 60  # a chart per check
    assert page.evaluate(CANVAS_PIXELS, "#check-settings_sanity .spark canvas") > 50
    page.goto(console.url + "/backups")
    assert page.evaluate(CANVAS_PIXELS, "#backup-chart canvas") > 1000
    page.goto(console.url + "/cleanup")
    assert page.locator("a.button", has_text="Run").count() == 0  # a monitor gets no action
    assert page.locator("#rule-2").inner_text().count("300") >= 1  # the orphan preview
    page.goto(console.url + "/space")
    assert "app.api_log" in page.inner_text("main")
    page.goto(console.url + "/schedule")
    assert "health-sample" in page.inner_text("main")
    assert errors == []


def test_a_monitor_filters_the_runs(console: Console, web_db: WebDb, browser: Browser) -> None:
    name, password = role(web_db, "monitor")
    page = browser.new_page()
    login(page, console, name, password)
    page.goto(console.url + "/runs")
    all_rows = page.locator("table.runs tbody tr").count()
    assert all_rows >= 3
    page.select_option("select[name=status]", "failed")
    page.click("form.filters button[type=submit]")
    rows = page.locator("table.runs tbody tr")
    assert rows.count() == 1 and "web-test" in rows.inner_text() and "status=failed" in page.url
    page.goto(console.url + "/runs?q=DISK+FULL")
    assert page.locator("table.runs tbody tr").count() == 1
    page.goto(console.url + "/runs?task=cleanup_all&source=sql")
    assert page.locator("table.runs tbody tr").count() == 1
    today = time.strftime("%Y-%m-%d", time.gmtime())
    page.goto(console.url + f"/runs?since={today}&until={today}")
    assert page.locator("table.runs tbody tr").count() == all_rows
    page.goto(console.url + "/runs?until=2000-01-01")
    assert "No run matches" in page.inner_text("table.runs")
    with web_db.connect() as conn:
        run_id = conn.execute("SELECT max(id) FROM maint.runs WHERE task = 'cleanup_all'").fetchone()[0]  # type: ignore[index]
    page.goto(console.url + f"/runs/{run_id}")
    text = page.inner_text("main")
    assert "Rules" in text and "app.sessions" in text and "Parameters" in text


def _csrf(page: Page) -> str:
    return page.locator("input[name=csrf]").first.get_attribute("value") or ""


def _post(page: Page, url: str, form: dict[str, str]) -> tuple[int, str]:
    r = page.request.post(url, form=form, max_redirects=0)
    return r.status, r.text()


def test_a_monitors_forged_action_posts_get_403_and_change_nothing(
    console: Console, web_db: WebDb, browser: Browser
) -> None:
    name, password = role(web_db, "monitor")
    page = browser.new_page()
    login(page, console, name, password)
    page.goto(console.url + "/")
    csrf = _csrf(page)
    before = counts(web_db)
    with web_db.connect() as conn:
        run_id = conn.execute("SELECT max(id) FROM maint.runs WHERE task = 'cleanup_all'").fetchone()[0]  # type: ignore[index]
    for url, form in [
        ("/cleanup/2/run", {"would_delete": "300", "confirm": "1.x"}),
        (f"/runs/{run_id}/undo", {"restorable": "0", "confirm": "1.x"}),
        ("/backups/1/verify", {"level": "read"}),
        ("/space/sample", {}),
    ]:
        status, body = _post(page, console.url + url, {"csrf": csrf, **form})
        assert status == 403, url
        assert "may read but not act" in body and "nothing was changed" in body
    page.goto(console.url + "/cleanup/2/run")
    assert "Not allowed" in page.inner_text("main")
    assert counts(web_db) == before


def test_an_admin_previews_confirms_executes_and_undoes_a_rule(
    console: Console, web_db: WebDb, browser: Browser, shots: Path
) -> None:
    name, password = role(web_db, "admin")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = errors_of(page)
    login(page, console, name, password)
    before = counts(web_db)
    page.goto(console.url + "/cleanup")
    page.click("#rule-2 a.button")  # the orphan rule: Run…
    assert page.url.endswith("/cleanup/2/run")
    assert page.inner_text("#would-delete") == "300"
    assert "Delete 300 rows from app.sessions" in page.inner_text("#execute")
    page.screenshot(path=str(shots / "cleanup-confirm.png"), full_page=True)
    assert counts(web_db) == before  # the confirmation page changed nothing
    page.click("#execute")
    assert re.search(r"/runs/\d+\?done=rule$", page.url)
    text = page.inner_text("main")
    assert "The rule ran" in text and "succeeded" in text
    run_id = int(page.url.split("/runs/")[1].split("?")[0])
    after = counts(web_db)
    assert after["sessions"] == before["sessions"] - 300
    with web_db.connect() as conn:
        row = conn.execute(
            "SELECT task, status, dry_run, source, invoked_by, rows_affected FROM maint.runs WHERE id = %s",
            (run_id,),
        ).fetchone()
    assert row == ("orphans:2", "succeeded", False, "web", name, 300)
    page.screenshot(path=str(shots / "run-result.png"), full_page=True)
    page.click("a.button:has-text('Undo this run')")
    assert page.url.endswith(f"/runs/{run_id}/undo")
    assert page.inner_text("#restorable") == "300"
    page.click("#execute")
    assert re.search(r"/runs/\d+\?done=undo$", page.url), page.inner_text("main")
    undo_id = int(page.url.split("/runs/")[1].split("?")[0])
    assert counts(web_db)["sessions"] == before["sessions"]
    with web_db.connect() as conn:
        row = conn.execute(
            "SELECT task, status, source, invoked_by, rows_affected, parameters->>'run_id'"
            "  FROM maint.runs WHERE id = %s",
            (undo_id,),
        ).fetchone()
    assert row == ("undo", "succeeded", "web", name, 300, str(run_id))
    page.goto(console.url + f"/runs/{run_id}")
    assert f"run {undo_id}" in page.inner_text("main")  # undone by
    assert errors == []


def test_an_admin_verifies_a_backup(console: Console, web_db: WebDb, browser: Browser) -> None:
    name, password = role(web_db, "admin")
    page = browser.new_page()
    login(page, console, name, password)
    page.goto(console.url + "/backups")
    page.click("#backup-1 button:has-text('Verify')")
    assert re.search(r"/runs/\d+\?done=verify$", page.url)
    run_id = int(page.url.split("/runs/")[1].split("?")[0])
    deadline = time.monotonic() + 60
    status = "running"
    with web_db.connect() as conn:
        while status == "running" and time.monotonic() < deadline:
            status = conn.execute("SELECT status FROM maint.runs WHERE id = %s", (run_id,)).fetchone()[0]  # type: ignore[index]
            time.sleep(0.2)
        run = conn.execute(
            "SELECT task, source, invoked_by, error FROM maint.runs WHERE id = %s", (run_id,)
        ).fetchone()
        backup = conn.execute(
            "SELECT status, verify_level, verified_by FROM maint.backups WHERE id = 1"
        ).fetchone()
    assert status == "succeeded", run
    assert run is not None and run[:3] == ("backup-verify", "web", name)
    assert backup == ("verified", "read", name)
    page.reload()
    assert "succeeded" in page.inner_text("main")


def test_bad_logins_get_a_clear_page(console: Console, web_db: WebDb, browser: Browser) -> None:
    page = browser.new_page()
    monitor, password = role(web_db, "monitor")
    nobody, nobody_pw = role(web_db, "nobody")
    trusted, trusted_pw = role(web_db, "trust")
    cases = [
        (monitor, "wrong", "wrong role or password"),
        ("no_such_role_here", "x", "wrong role or password"),
        (nobody, nobody_pw, "may not use the console: grant it maint_monitor"),
        (trusted, trusted_pw, "without asking for a password"),
    ]
    for who, pw, expected in cases:
        login(page, console, who, pw)
        assert page.url.startswith(console.url + "/login"), who
        assert expected in page.inner_text("p.error"), who
    # a login form posted without its token (another site's form) is refused
    status, body = _post(page, console.url + "/login", {"role": monitor, "password": password})
    assert status == 403 and "came from elsewhere" in body


def test_a_login_never_redirects_off_site(console: Console, web_db: WebDb, browser: Browser) -> None:
    name, password = role(web_db, "monitor")
    for target, landed in [
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example", "/"),
        ("/runs", "/runs"),
    ]:
        page = browser.new_page()
        page.goto(console.url + "/login?" + urllib.parse.urlencode({"next": target}))
        page.fill("input[name=role]", name)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        assert page.url == console.url + landed, target
        page.close()


def test_a_console_over_the_inventory_offers_its_databases(
    web_db: WebDb, browser: Browser, pg_server: Any, tmp_path: Path
) -> None:
    inventory = tmp_path / "pgmaint.toml"
    inventory.write_text(
        f'[targets.shop]\ndsn = "{web_db.dsn}"\ntags = ["prod"]\n\n'
        f'[targets.ops]\ndsn = "{pg_server.dsn("postgres")}"\ntags = ["prod"]\n'
    )
    c = Console(web_db.dsn, "--inventory", str(inventory), "--tag", "prod")
    try:
        assert any("2 databases of the inventory" in line for line in c.lines), c.lines
        name, password = role(web_db, "monitor")
        page = browser.new_page()
        page.goto(c.url + "/login")
        assert page.locator("select[name=target] option").all_inner_texts() == ["shop", "ops"]
        page.select_option("select[name=target]", "ops")  # a database without the kit
        page.fill("input[name=role]", name)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        refused = page.inner_text("p.error")
        assert "the kit is not deployed" in refused and "database postgres" in refused, refused
        page.select_option("select[name=target]", "shop")
        page.fill("input[name=role]", name)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        assert page.url == c.url + "/"
        assert f"shop ({web_db.name})" in page.inner_text("header")
        # a login form naming a database the console does not serve changes nothing
        page.goto(c.url + "/login")
        token = page.locator("input[name=login_token]").get_attribute("value") or ""
        status, body = _post(
            page,
            c.url + "/login",
            {"login_token": token, "target": "elsewhere", "role": name, "password": password},
        )
        assert status == 400 and "no database &#39;elsewhere&#39; in this console" in body
    finally:
        c.stop()


def test_too_many_failed_logins_are_slowed(web_db: WebDb, browser: Browser) -> None:
    c = Console(web_db.dsn)
    try:
        page = browser.new_page()
        monitor, password = role(web_db, "monitor")
        for _ in range(5):
            login(page, c, monitor, "wrong")
        login(page, c, monitor, password)
        assert "Too many failed logins" in page.inner_text("p.error")
    finally:
        c.stop()


def test_an_expired_session_gets_a_clear_page_and_changes_nothing(web_db: WebDb, browser: Browser) -> None:
    c = Console(web_db.dsn, "--session-timeout", "2s")
    try:
        name, password = role(web_db, "admin")
        page = browser.new_page()
        login(page, c, name, password)
        page.goto(c.url + "/cleanup/2/run")
        csrf = _csrf(page)
        token = page.locator("input[name=confirm]").get_attribute("value") or ""
        before = counts(web_db)
        time.sleep(2.5)
        status, body = _post(
            page, c.url + "/cleanup/2/run", {"csrf": csrf, "confirm": token, "would_delete": "300"}
        )
        assert status == 401 and "Your session has ended; nothing was changed" in body
        assert counts(web_db) == before
        page.goto(c.url + "/runs")
        assert "/login?expired=1" in page.url and "Your session expired" in page.inner_text("main")
    finally:
        c.stop()


def test_actions_need_the_csrf_token_and_the_confirmation(
    console: Console, web_db: WebDb, browser: Browser
) -> None:
    name, password = role(web_db, "admin")
    page = browser.new_page()
    login(page, console, name, password)
    page.goto(console.url + "/cleanup/4/run")
    csrf = _csrf(page)
    token = page.locator("input[name=confirm]").get_attribute("value") or ""
    shown = page.locator("input[name=would_delete]").get_attribute("value") or ""
    before = counts(web_db)
    for form, status, text in [
        ({"confirm": token, "would_delete": shown}, 403, "security token"),
        ({"csrf": "forged", "confirm": token, "would_delete": shown}, 403, "security token"),
        ({"csrf": csrf, "would_delete": shown}, 400, "needs its confirmation page first"),
        (
            {"csrf": csrf, "confirm": token, "would_delete": str(int(shown) + 1)},
            400,
            "confirmation page first",
        ),
    ]:
        got, body = _post(page, console.url + "/cleanup/4/run", form)
        assert (got, text in body) == (status, True), form
    assert counts(web_db) == before
    # a rule that does not archive says so on its confirmation page
    page.goto(console.url + "/cleanup/4/run")
    assert "removed rows cannot be put back" in page.inner_text("main")
    assert counts(web_db) == before


def test_sql_looking_values_in_every_filter_get_a_clear_page(
    console: Console, web_db: WebDb, browser: Browser
) -> None:
    name, password = role(web_db, "monitor")
    page = browser.new_page()
    login(page, console, name, password)
    before = counts(web_db)
    for param, status, text in [
        ("task", 200, "No run matches"),
        ("q", 200, "No run matches"),
        ("status", 400, "unknown run status"),
        ("source", 400, "unknown run source"),
        ("since", 400, "invalid input syntax for type date"),
        ("until", 400, "invalid input syntax for type date"),
        ("before", 200, "run(s)"),
    ]:
        r = page.goto(console.url + "/runs?" + urllib.parse.urlencode({param: EVIL}))
        assert r is not None and (r.status, text in page.inner_text("main")) == (status, True), param
    for path in ["/runs/1'", "/cleanup/1;drop", "/runs/99999999", "/cleanup/424242"]:
        r = page.goto(console.url + urllib.parse.quote(path))
        assert r is not None and r.status == 404, path
    assert counts(web_db) == before


def test_cookies_and_headers_are_guarded(console: Console, web_db: WebDb, browser: Browser) -> None:
    name, password = role(web_db, "monitor")
    context = browser.new_context()
    page = context.new_page()
    login(page, console, name, password)
    cookie = next(c for c in context.cookies() if c["name"] == "pgmaint_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    r = page.goto(console.url + "/")
    assert r is not None
    headers = r.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
    page.click("button:has-text('Log out')")
    assert "/login" in page.url
    page.goto(console.url + "/runs")
    assert "/login" in page.url


def test_times_show_in_the_browsers_zone_with_utc_on_hover(
    console: Console, web_db: WebDb, browser: Browser
) -> None:
    name, password = role(web_db, "monitor")
    context = browser.new_context(timezone_id="Asia/Tokyo", locale="en-US")
    page = context.new_page()
    login(page, console, name, password)
    page.goto(console.url + "/runs")
    t = page.locator("table.runs time").first
    assert t.get_attribute("title").endswith(" UTC")
    assert "GMT+9" in t.inner_text()


def test_pages_fit_a_phone(console: Console, web_db: WebDb, browser: Browser, shots: Path) -> None:
    name, password = role(web_db, "monitor")
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, device_scale_factor=2)
    login(page, console, name, password)
    for path in PAGES:
        page.goto(console.url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 392, (path, width)
    page.goto(console.url + "/health")
    page.screenshot(path=str(shots / "phone-health.png"))


def test_the_console_serves_https_with_a_certificate(web_db: WebDb, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    c = Console(web_db.dsn, "--tls-cert", str(cert), "--tls-key", str(key), host="0.0.0.0")
    try:
        assert not any("without TLS" in line for line in c.lines), c.lines
        assert any(f"https://0.0.0.0:{c.port}/" in line for line in c.lines), c.lines
        with urllib.request.urlopen(c.url + "/login", context=UNVERIFIED) as r:
            assert r.status == 200 and "Secure" in r.headers["set-cookie"]
    finally:
        c.stop()
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "--dsn", web_db.dsn, "web", "--tls-cert", str(cert)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2 and "give both --tls-cert and --tls-key" in done.stderr


def test_binding_beyond_localhost_warns_without_tls(web_db: WebDb) -> None:
    c = Console(web_db.dsn, host="0.0.0.0")
    try:
        assert any("without TLS" in line for line in c.lines), c.lines
    finally:
        c.stop()
    c = Console(web_db.dsn, "--behind-proxy", host="0.0.0.0")
    try:
        assert not any("without TLS" in line for line in c.lines), c.lines
    finally:
        c.stop()
    busy = Console(web_db.dsn)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator", "--dsn", web_db.dsn, "web", "--port", str(busy.port)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=30,
        )
        assert done.returncode == 1 and f"cannot listen on 127.0.0.1:{busy.port}" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        busy.stop()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_systemd_unit_verifies_and_its_command_serves_the_console(web_db: WebDb, tmp_path: Path) -> None:
    port = free_port()
    env_file = tmp_path / "web-tests.env"
    env_file.write_text(f"PGMAINT_DSN={web_db.dsn}\nPGMAINT_WEB_PORT={port}\n")
    text = UNIT.read_text().replace("/usr/local/bin/pgmaint", str(Path(sys.executable).parent / "pgmaint"))
    text = text.replace("/etc/pgmaint/web-%i.env", str(env_file))
    text = re.sub(r"^(User|Group)=.*$", "", text, flags=re.M)
    unit = tmp_path / "pgmaint-web@tests.service"
    unit.write_text(text)
    verify = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True
    )
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    [exec_start] = re.findall(r"^ExecStart=(.+)$", text, re.M)
    argv = shlex.split(exec_start.replace("${PGMAINT_WEB_PORT}", str(port)))
    assert argv[1:4] == ["web", "--host", "127.0.0.1"] and "--behind-proxy" in argv
    proc = subprocess.Popen(
        argv,
        env={**os.environ, "PGMAINT_DSN": web_db.dsn},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                    assert r.status == 200 and "Log in to " + web_db.name in r.read().decode()
                    # behind a TLS proxy the cookies are for https only
                    assert "Secure" in r.headers["set-cookie"]
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (
                    proc.stdout.read() if proc.stdout else ""
                )
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_static_files_are_served_from_the_package(console: Console) -> None:
    for name in ("uPlot.iife.min.js", "console.js", "console.css"):
        with urllib.request.urlopen(f"{console.url}/static/{name}") as r:
            assert r.status == 200 and len(r.read()) > 500
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"{console.url}/static/../web_support.py")
    assert exc.value.code == 404
    _ = psycopg  # the tests read the database directly with psycopg
