"""Console sessions: kept in this process's memory only, never in a cookie or on disk.

A session holds the PostgreSQL role and password the user logged in with (each request
connects as that role, so the role's grants decide what it sees and may do), a CSRF token
for its forms, and its times. It ends after ``idle`` seconds without a request, after
``absolute`` seconds in any case, at logout, and when the console stops. The cookie
carries only a random token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

COOKIE = "pgmaint_console"


@dataclass
class Session:
    token: str
    role: str
    password: str = field(repr=False)
    can_act: bool
    superuser: bool
    csrf: str
    created: float
    seen: float
    target: str = ""  # the console's database (an inventory target's name) this session logged in to


class SessionStore:
    """Sessions by token, with idle and absolute expiry (seconds)."""

    def __init__(self, idle: float, absolute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle = idle
        self.absolute = absolute
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._ended: dict[str, float] = {}  # tokens of sessions that expired, and when: still "expired"
        self._secret = secrets.token_bytes(32)  # signs confirmation tokens; new at every start

    def create(
        self, role: str, password: str, *, can_act: bool, superuser: bool, target: str = ""
    ) -> Session:
        now = self._clock()
        s = Session(
            token=secrets.token_urlsafe(32),
            role=role,
            password=password,
            can_act=can_act,
            superuser=superuser,
            csrf=secrets.token_urlsafe(32),
            created=now,
            seen=now,
            target=target,
        )
        with self._lock:
            self._expire(now)
            self._sessions[s.token] = s
        return s

    def get(self, token: str | None) -> tuple[Session | None, bool]:
        """(the session, False), or (None, True) when the token named one that expired,
        or (None, False) when there is none."""
        if not token:
            return None, False
        now = self._clock()
        with self._lock:
            s = self._sessions.get(token)
            if s is None:
                return None, token in self._ended
            if now - s.seen > self.idle or now - s.created > self.absolute:
                del self._sessions[token]
                self._ended[token] = now
                return None, True
            s.seen = now
            return s, False

    def drop(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)

    def _expire(self, now: float) -> None:
        for token in [
            t
            for t, s in self._sessions.items()
            if now - s.seen > self.idle or now - s.created > self.absolute
        ]:
            del self._sessions[token]
            self._ended[token] = now
        for token in [t for t, at in self._ended.items() if now - at > self.absolute]:
            del self._ended[token]

    # --- confirmation tokens: proof that the confirmation page was shown -----------------

    def confirmation(self, s: Session, action: str, issued: int | None = None) -> str:
        """A token for ``action`` (e.g. ``rule:5:rows=120``) bound to this session and time."""
        issued = int(time.time()) if issued is None else issued
        mac = hmac.new(self._secret, f"{s.token}|{action}|{issued}".encode(), hashlib.sha256).hexdigest()
        return f"{issued}.{mac}"

    def confirmed(self, s: Session, action: str, token: str | None, max_age: int = 600) -> bool:
        """Whether ``token`` was issued for ``action`` in this session less than max_age s ago."""
        if not token or "." not in token:
            return False
        issued_text, _ = token.split(".", 1)
        if not issued_text.isdigit():
            return False
        issued = int(issued_text)
        if not 0 <= time.time() - issued <= max_age:
            return False
        return hmac.compare_digest(token, self.confirmation(s, action, issued))


class LoginThrottle:
    """Slows password guessing: after ``limit`` failed logins from one client within
    ``window`` seconds, further attempts from it are refused until the window passes."""

    def __init__(
        self, limit: int = 5, window: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, list[float]] = {}

    def blocked(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        now = self._clock()
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if now - t < self.window]
            self._failures[client] = recent
            return 0.0 if len(recent) < self.limit else self.window - (now - recent[0])

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, []).append(self._clock())

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)
