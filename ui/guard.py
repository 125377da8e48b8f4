"""What every route passes through, Gradio's own included: a body limit, a same-origin rule
for writes, a brake on password guessing, and the record of chat uploads.

Starlette has no body limit and Gradio's routes none of their own (a 155 MB JSON once took
the server to 2.5 GB); a page on another site could post an upload into the store (CSRF);
and a wrong token was answered as fast as it could be guessed. Each is one ASGI layer here.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ui.uploads import UploadRegistry

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
UPLOAD_PATHS = ("/api/articles", "/gradio_api/upload")
LOGIN_PATHS = ("/login", "/login/")


def error_json(status: int, code: str, message: str,
               headers: dict[str, str] | None = None) -> JSONResponse:
    """The API's one error shape, for answers given before any route runs."""
    body = {"error": {"status": status, "code": code, "message": message, "details": []}}
    return JSONResponse(body, status_code=status, headers=headers)


class TooLarge(Exception):
    """The body went past its limit while being read."""


class BodyLimit:
    """Refuse bodies over a limit on every route: by Content-Length before reading, else
    while streaming. Uploads (``UPLOAD_PATHS``) have the upload limit, everything else the
    request limit."""

    def __init__(self, app: ASGIApp, request_bytes: int, upload_bytes: int) -> None:
        self.app = app
        self.request_bytes = request_bytes
        self.upload_bytes = upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "").rstrip("/")
        limit = self.upload_bytes if path in UPLOAD_PATHS else self.request_bytes
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        if limit == self.request_bytes:
            # Small bodies are read here, so one over the limit is refused before a route's
            # parser sees it (FastAPI turns any read error into a vague 400).
            body = await _read_at_most(receive, limit)
            if body is None:
                await _too_large(limit)(scope, receive, send)
                return
            await self.app(scope, _replay(body, receive), send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, _counting(receive, limit), sending)
        except TooLarge:
            if not started:
                await _too_large(limit)(scope, receive, send)


async def _read_at_most(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it passes ``limit`` (or the client went away)."""
    body, more = b"", True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > limit:
            return None
    return body


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives ``body`` once, then whatever the connection says next."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _counting(receive: Receive, limit: int) -> Receive:
    """A receive that raises TooLarge once more than ``limit`` body bytes have come in."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise TooLarge
        return message

    return counted


def _too_large(limit: int) -> JSONResponse:
    return error_json(413, "too_large", f"request body is over the {limit / 1e6:.2f} MB "
                      "limit (RAG_MAX_REQUEST_KB, or RAG_MAX_UPLOAD_MB for uploads)",
                      headers={"Connection": "close"})


LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


class AllowedHosts:
    """Requests are answered only for the host names the server was told it serves.

    A page on ``rebind.example`` can make its name resolve to 127.0.0.1 and then talk to the
    server as its own origin; its requests still carry ``Host: rebind.example``, which is
    refused here. The Origin rule cannot see this: the page's origin and Host agree."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app = app
        self.any = "*" in allowed
        self.allowed = {h.lower().strip("[]") for h in (*LOCAL_HOSTS, *allowed)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not self.any:
            host = Headers(scope=scope).get("host", "")
            name = urlsplit(f"//{host}").hostname or ""
            if name not in self.allowed:
                shown = host.encode("ascii", "replace").decode()[:100] or "(none)"
                await error_json(400, "host_not_allowed", f"this server does not answer for "
                                 f"the host {shown!r}: add the name to RAG_ALLOWED_HOSTS if "
                                 "clients reach it that way")(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SameOrigin:
    """Writes (POST, PUT, PATCH, DELETE) from a browser page of another origin are refused.

    Browsers send ``Origin`` (or at least ``Referer``) with such requests; clients that are
    not browsers (curl, the openai SDK) send neither and are unaffected. The server's own
    origin is the one the request was addressed to (its Host); others must be listed in
    RAG_ALLOWED_ORIGINS.
    """

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app = app
        self.allowed = {_origin(a) for a in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in UNSAFE_METHODS:
            headers = Headers(scope=scope)
            claimed = headers.get("origin") or headers.get("referer")
            if claimed is not None and not self._ok(claimed, headers.get("host", "")):
                await error_json(403, "forbidden_origin", "requests that change data are "
                                 f"accepted only from this server's own pages, not from "
                                 f"{_origin(claimed) or 'an opaque origin'} (add it to "
                                 "RAG_ALLOWED_ORIGINS to allow it)")(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _ok(self, claimed: str, host: str) -> bool:
        origin = _origin(claimed)
        if not origin:  # "null": a sandboxed frame or a file:// page
            return False
        return urlsplit(origin).netloc.lower() == host.lower() or origin in self.allowed


def _origin(url: str) -> str:
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


class AuthThrottle:
    """A client address that fails authentication ``per_minute`` times within a minute gets
    429 (with Retry-After) for everything until the oldest failure is a minute old.

    Failures: any 401 answer (a missing or wrong bearer token), and a refused chat login.
    A correct key is refused too while blocked, or guessing would simply go on.
    """

    def __init__(self, app: ASGIApp, per_minute: int, window: float = 60.0) -> None:
        self.app = app
        self.per_minute = per_minute
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        wait = self._blocked_for(client)
        if wait > 0:
            await error_json(429, "too_many_requests", "too many failed authentication "
                             f"attempts from {client}; try again in {wait} s",
                             headers={"Retry-After": str(wait)})(scope, receive, send)
            return
        login = scope.get("method") == "POST" and scope.get("path", "") in LOGIN_PATHS

        async def watching(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if status == 401 or (login and status == 400):
                    self._fail(client)
            await send(message)

        await self.app(scope, receive, watching)

    def _fail(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, deque()).append(time.monotonic())

    def _blocked_for(self, client: str) -> int:
        now = time.monotonic()
        with self._lock:
            failures = self._failures.get(client)
            if not failures:
                return 0
            while failures and now - failures[0] > self.window:
                failures.popleft()
            if not failures:
                del self._failures[client]
                return 0
            if len(failures) < self.per_minute:
                return 0
            return max(1, int(self.window - (now - failures[0])) + 1)


class UploadTracker:
    """Records which browser uploaded which files through the chat (``/gradio_api/upload``).

    A browser without the registry's cookie gets a random one with its first upload; the
    paths Gradio answers with are recorded under it, for the chat to claim.
    """

    def __init__(self, app: ASGIApp, registry: UploadRegistry) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope.get("method") != "POST"
                or scope.get("path", "").rstrip("/") != "/gradio_api/upload"):
            await self.app(scope, receive, send)
            return
        client = client_cookie(Headers(scope=scope).get("cookie", ""))
        fresh = client is None
        client = client or secrets.token_urlsafe(24)
        body = bytearray()
        status = 0

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if fresh:
                    message = {**message, "headers": [*message.get("headers", []), (
                        b"set-cookie", f"{UploadRegistry.COOKIE}={client}; Path=/; HttpOnly; "
                        "SameSite=Strict".encode())]}
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body") and status == 200:
                    _record(self.registry, client, bytes(body))
            await send(message)

        await self.app(scope, receive, recording)


def _record(registry: UploadRegistry, client: str, body: bytes) -> None:
    try:
        paths = json.loads(body)
    except ValueError:
        return
    if isinstance(paths, list):
        registry.record(client, [p for p in paths if isinstance(p, str)])


def client_cookie(header: str) -> str | None:
    """The upload registry's cookie from a Cookie header, if any."""
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(header)
    except Exception:  # a malformed Cookie header is no cookie
        return None
    morsel = cookie.get(UploadRegistry.COOKIE)
    return morsel.value if morsel is not None and morsel.value else None

