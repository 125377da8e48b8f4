"""The OpenAI-compatible endpoint: any OpenAI client can ask the articles.

Citations ride in the extra field ``citations`` (and the whole result in ``result``) of the
response, or of the final chunk when streaming.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from rag.result import Answer
from ui.api import ERRORS, ServiceDep, require_key
from ui.api_base import (
    MAX_TURN_CHARS,
    Collection,
    ErrorBody,
    ErrorResponse,
    chain,
    check_question,
    first_event,
    known_query_only,
)
from ui.errors import ApiError
from ui.service import ArticleService, Filters, Turn

log = logging.getLogger(__name__)

MODEL_ID = "rag-articles"


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(str(p.get("text", "")) for p in self.content
                            if p.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """The OpenAI chat request; sampling options are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1, max_length=100)
    stream: bool = False
    top_k: int | None = Field(None, ge=1, le=50)
    filters: Filters | None = None
    collection: Collection = None


v1 = APIRouter(prefix="/v1", tags=["openai"], responses=ERRORS,
               dependencies=[Depends(require_key), Depends(known_query_only)])


@v1.get("/models")
async def models() -> dict[str, Any]:
    """The one model: the articles, answered with citations."""
    return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0,
                                        "owned_by": "rag-articles"}]}


@v1.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, service: ServiceDep) -> Response:
    """The last user message is the question, earlier ones the history. Citations ride
    in the extra field `citations` (and the full result in `result`), in the response or
    in the final stream chunk."""
    question, history = _conversation(service, body.messages)
    events = await run_in_threadpool(service.ask_stream, question, body.top_k, body.filters,
                                     history, body.collection)
    reply_id = f"chatcmpl-{uuid.uuid4().hex}"
    if not body.stream:
        answer = await run_in_threadpool(_final, events)
        return JSONResponse(_completion(reply_id, body.model, answer))
    first = await run_in_threadpool(first_event, events)
    return StreamingResponse(_openai_chunks(reply_id, body.model, first, events),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


def _conversation(service: ArticleService,
                  messages: list[ChatMessage]) -> tuple[str, list[Turn]]:
    """The question (the last message, the user's) and the history before it; every
    message is held to a length limit, not only the last."""
    if messages[-1].role != "user":
        raise ApiError(422, "validation_error", "messages: the last message must be the "
                       "user's question")
    for n, message in enumerate(messages[:-1]):
        if len(message.text()) > MAX_TURN_CHARS:
            raise ApiError(422, "validation_error", f"messages.{n}: {len(message.text())} "
                           f"characters, over the {MAX_TURN_CHARS} character limit of a "
                           "message")
    question = check_question(service, messages[-1].text())
    history = [Turn(m.role, m.text()) for m in messages[:-1]
               if m.role in ("user", "assistant") and m.text().strip()]
    return question, history


def _final(events: Iterator[str | Answer]) -> Answer:
    answer = None
    for item in events:
        if isinstance(item, Answer):
            answer = item
    if answer is None:
        raise RuntimeError("the assistant produced no answer")
    return answer


def _citations(answer: Answer) -> list[dict[str, Any]]:
    return [c.model_dump() for c in answer.citations]


def _completion(reply_id: str, model: str, answer: Answer) -> dict[str, Any]:
    return {"id": reply_id, "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": answer.answer}}],
            "citations": _citations(answer), "result": answer.model_dump()}


async def _openai_chunks(reply_id: str, model: str, first: str | Answer | None,
                         rest: Iterator[str | Answer]) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        data = {"id": reply_id, "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": [{"index": 0, "delta": delta,
                                             "finish_reason": finish}], **extra}
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    items: list[str | Answer] = [first] if first is not None else []
    try:
        async for item in chain(items, rest):
            if isinstance(item, Answer):
                # A streamed sentence the check removed cannot be unsent: the final chunk
                # carries the checked text in result.answer.
                yield chunk({}, "stop", citations=_citations(item), result=item.model_dump())
            elif item:
                yield chunk({"content": item})
    except Exception as exc:
        log.exception("stream failed")
        body = ErrorBody(status=500, code="stream_failed", message=str(exc))
        yield f"data: {ErrorResponse(error=body).model_dump_json()}\n\n"
    yield "data: [DONE]\n\n"
