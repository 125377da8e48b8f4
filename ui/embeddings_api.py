"""``POST /v1/embeddings``: the server's embedding model behind the OpenAI embeddings API.

So one machine with cores to spare (or several behind a load balancer) can embed for the
ingests of others: they set ``RAG_EMBEDDER=openai``, ``RAG_EMBED_BASE_URL`` to this server's
``/v1`` and ``RAG_EMBED_MODEL`` to the name this returns (the model's own name); the vectors
are checked against the model's reference vectors when the client starts, so its
collections keep that name. Any other OpenAI-compatible embeddings server works the same
way with its own model name.
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ui.api import ERRORS, ServiceDep, require_key
from ui.api_base import known_query_only
from ui.errors import ApiError

MAX_INPUTS = 256  # texts per request: a batch a client sends, not a corpus
MAX_INPUT_CHARS = 20_000  # the model reads 256 tokens; longer texts only cost tokenising
MAX_REQUEST_CHARS = 100_000  # all texts together: about 100 passages, seconds of work
_CHUNK = 32  # texts embedded between two looks at whether the client is still there


class EmbeddingsRequest(BaseModel):
    """The OpenAI embeddings request; ``encoding_format`` and ``user`` are accepted."""

    model: str | None = None
    input: str | list[str] = Field(description="A text or a list of texts.")
    encoding_format: str | None = Field(None, pattern="^(float|base64)$", description=(
        "'float' (a list of numbers, the default) or 'base64' (little-endian float32 bytes, "
        "what the openai SDK asks for)"))
    user: str | None = None


embeddings = APIRouter(prefix="/v1", tags=["openai"], responses=ERRORS,
                       dependencies=[Depends(require_key), Depends(known_query_only)])


@embeddings.post("/embeddings")
async def create_embeddings(body: EmbeddingsRequest, service: ServiceDep,
                            request: Request) -> dict[str, Any]:
    """Vectors of the texts (L2-normalised float32), in order. Embedded a few texts at a
    time; a client that has gone is not worked for any longer."""
    if not service.settings.embeddings_api:
        raise ApiError(404, "not_found", "this server does not embed for others "
                       "(RAG_EMBEDDINGS_API is off)")
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or len(texts) > MAX_INPUTS or any(
            not t or len(t) > MAX_INPUT_CHARS for t in texts) or sum(
            len(t) for t in texts) > MAX_REQUEST_CHARS:
        raise ApiError(422, "validation_error", f"input: 1 to {MAX_INPUTS} non-empty texts "
                       f"of at most {MAX_INPUT_CHARS} characters, {MAX_REQUEST_CHARS} in all")
    name = ""
    vectors: list[Any] = []
    for start in range(0, len(texts), _CHUNK):
        if await request.is_disconnected():
            raise ApiError(400, "client_gone", "the client closed the connection")
        name, part = await run_in_threadpool(service.embed_texts, texts[start:start + _CHUNK])
        vectors.extend(part)
    encoded = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
               if body.encoding_format == "base64" else v.tolist() for v in vectors]
    return {"object": "list", "model": name,
            "data": [{"object": "embedding", "index": i, "embedding": v}
                     for i, v in enumerate(encoded)],
            "usage": {"prompt_tokens": 0, "total_tokens": 0}}
