"""Real receivers for notification tests: an HTTP server on 127.0.0.1 that records the JSON
bodies apprise's json:// target posts (and answers the status codes a test queues), and an
SMTP server (aiosmtpd) that records the mails."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


class HttpReceiver:
    """Records every POST; answers 200, or the next code of ``codes`` (e.g. [500])."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.codes: list[int] = []
        self.refused: list[dict[str, Any]] = []
        self.delay = 0.0
        self.arrived = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                body["_received"] = time.time()
                receiver.arrived += 1
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver._lock:
                    code = receiver.codes.pop(0) if receiver.codes else 200
                    (receiver.posts if code < 300 else receiver.refused).append(body)
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass                # the sender died while we waited (a test kills it)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"json://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, n: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The accepted posts once there are at least ``n`` (or after ``timeout``)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.posts) < n:
            time.sleep(0.05)
        return list(self.posts)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Mailbox:
    def __init__(self) -> None:
        self.mails: list[Message] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.mails.append(message_from_bytes(envelope.content))
        return "250 OK"


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


@contextmanager
def smtp_receiver() -> Iterator[tuple[int, list[Message]]]:
    """A local SMTP server on a free port: (port, the mails it received)."""
    box = _Mailbox()
    with socket.socket() as probe:          # aiosmtpd's start-up check needs a real port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, box.mails
    finally:
        controller.stop()
