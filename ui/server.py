"""One process, one port: the chat at '/', the JSON API at /api, OpenAI-compatible /v1,
interactive docs at /docs."""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from ui.settings import Settings
from ui.wiring import Components, build

if TYPE_CHECKING:
    from ui.service import ArticleService

log = logging.getLogger(__name__)

Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]
EVERY_ADDRESS = ("0.0.0.0", "::", "")  # bound to these, the server has no one address


def create_app(settings: Settings, components: Components | None = None,
               host: str = "127.0.0.1") -> FastAPI:
    """Build everything once (embedder, store, assistant) and return the ASGI app;
    ``host``: the address it will be bound to (its requests' Host is accepted)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from ui.api import create_api
    from ui.chat import CSS, HEAD, build_chat
    from ui.guard import AllowedHosts, AuthThrottle, BodyLimit, SameOrigin, UploadTracker
    from ui.service import ArticleService
    from ui.uploads import UploadRegistry, remove_stale_upload_folders

    remove_stale_upload_folders()
    service = ArticleService(components or build(settings))
    from ui.backfill import BackgroundEmbedder

    # Uploads return once searchable by their words; their vectors follow in the background
    # (and whatever `rag ingest --no-wait` or a killed ingest left is finished).
    service.background = BackgroundEmbedder(service).start()
    service.background.wake()
    if settings.feed_interval_minutes > 0:
        from ui.scheduler import FeedScheduler

        service.scheduler = FeedScheduler(service, settings.feed_interval_minutes * 60).start()
    app = create_api(service)
    app.router.lifespan_context = _closing(service, app.router.lifespan_context)
    key = settings.api_key
    uploads = UploadRegistry()

    def check_password(_user: str, password: str) -> bool:
        return key is not None and hmac.compare_digest(password.encode(),
                                                       key.get_secret_value().encode())

    chat = build_chat(service, uploads)
    mounted: FastAPI = gr.mount_gradio_app(
        app, chat, path="/", css=CSS, head=HEAD, footer_links=[], ssr_mode=False,
        auth=check_password if key is not None else None,
        auth_message="Enter the server's API key (RAG_API_KEY) as the password.",
        max_file_size=int(settings.max_file_mb * 1_000_000), enable_monitoring=False,
        mcp_server=False, pwa=False)
    # A mounted app never counts as launched, and then Gradio skips its own check that a
    # file value names an upload (any server path was accepted, copied and served).
    chat.has_launched = True
    # Outermost first: the brake on guessing, the origin rule, the size limit, uploads.
    mounted.add_middleware(UploadTracker, registry=uploads)
    mounted.add_middleware(BodyLimit, request_bytes=settings.max_request_kb * 1024,
                           upload_bytes=int(settings.max_upload_mb * 1_000_000))
    mounted.add_middleware(SameOrigin, allowed=settings.allowed_origins)
    mounted.add_middleware(AuthThrottle, per_minute=settings.auth_failures_per_minute)
    bound = [] if host in EVERY_ADDRESS else [host]
    mounted.add_middleware(AllowedHosts, allowed=[*bound, *settings.allowed_hosts])
    return mounted


def _closing(service: ArticleService, inner: Lifespan) -> Lifespan:
    """The app's lifespan, then the service's threads stopped on shutdown (Gradio's
    ``mount_gradio_app`` keeps this lifespan and adds its own around it)."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with inner(app):
            try:
                yield
            finally:
                await run_in_threadpool(service.close)

    return lifespan


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the server until interrupted."""
    import uvicorn

    app = create_app(settings, host=host)
    if host in EVERY_ADDRESS and not settings.allowed_hosts:
        log.warning("listening on every address: clients that use a name or address other "
                    "than localhost get 400 until it is listed in RAG_ALLOWED_HOSTS")
    log.info("serving on http://%s:%d (chat /, API /api, OpenAI /v1, docs /docs)", host, port)
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(),
                timeout_graceful_shutdown=5)
