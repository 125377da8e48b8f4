"""A token gate in front of a real `chroma run`: what Chroma Cloud does with x-chroma-token.

The open-source Chroma server has no token check of its own, so the tests put this reverse
proxy on a loopback port: a request without the right ``x-chroma-token`` gets 401, any other
is forwarded to the Chroma server unchanged (method, path, body) and its answer returned.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class ChromaTokenGate:
    """Forwards to ``upstream`` the requests that carry ``token``; counts the refused ones."""

    def __init__(self, upstream: str, token: str) -> None:
        self.upstream = upstream
        self.token = token
        self.refused = 0
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("x-chroma-token") != gate.token:
                    gate.refused += 1
                    self._reply(401, b'{"error":"Unauthorized","message":"bad token"}',
                                "application/json")
                    return
                with httpx.Client(timeout=60) as client:
                    got = client.request(self.command, f"{gate.upstream}{self.path}",
                                         content=body, headers={
                                             "Content-Type": self.headers.get(
                                                 "Content-Type", "application/json")})
                self._reply(got.status_code, got.content,
                            got.headers.get("content-type", "application/json"))

            def _reply(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> ChromaTokenGate:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
