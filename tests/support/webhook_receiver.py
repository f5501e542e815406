"""A webhook receiver on 127.0.0.1 for tests: keeps every body POSTed to it, in a thread.

It can be stopped and started again on the same port (a receiver down for a while), made slow
(``delay_s``) or made to answer with another status (``status``, ``location``).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from taskhold.server import free_port


class WebhookReceiver:
    def __init__(self, *, delay_s: float = 0.0, status: int = 200) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.delay_s = delay_s
        self.status = status
        self.location: str | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                receiver.bodies.append(body)
                receiver.headers.append(dict(self.headers))
                self.send_response(receiver.status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
