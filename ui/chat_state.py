"""The chat's conversations, kept in the browser (local storage): new, switch, rename, delete.

The whole state rides in each request that needs it, so it is held to a size well under the
request limit (RAG_MAX_REQUEST_KB): the oldest conversations go first, then the oldest turns
of the open one. Everything in it came from the browser, so it is checked and trimmed
before use, never trusted.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

MAX_CHATS = 30
MAX_TURNS = 40  # per conversation: the newest are kept
MAX_TITLE = 80
NEW_TITLE = "New chat"

Chats = dict[str, Any]  # {"chats": [{"id", "title", "turns", "updated"}], "current": id}


def empty() -> Chats:
    first = _new_chat()
    return {"chats": [first], "current": first["id"]}


def _new_chat() -> dict[str, Any]:
    return {"id": secrets.token_hex(6), "title": NEW_TITLE, "turns": [], "updated": time.time()}


def load(saved: Any) -> Chats:
    """A well-formed state from what the browser sent (or an older single-chat save)."""
    if not isinstance(saved, dict):
        return empty()
    if "chats" not in saved and isinstance(saved.get("turns"), list):  # the one-chat format
        chat = {**_new_chat(), "turns": saved["turns"][-MAX_TURNS:]}
        chat["title"] = _title_of(chat["turns"])
        return {"chats": [chat], "current": chat["id"]}
    chats = [_chat(c) for c in saved.get("chats", []) if isinstance(c, dict)][:MAX_CHATS]
    if not chats:
        return empty()
    ids = [c["id"] for c in chats]
    current = saved.get("current") if saved.get("current") in ids else ids[0]
    return {"chats": chats, "current": current}


def _chat(raw: dict[str, Any]) -> dict[str, Any]:
    turns = [t for t in raw.get("turns", []) if isinstance(t, dict)
             and t.get("role") in ("user", "assistant") and isinstance(t.get("content"), str)]
    title = str(raw.get("title") or "")[:MAX_TITLE] or _title_of(turns)
    updated = raw.get("updated")
    return {"id": str(raw.get("id") or secrets.token_hex(6))[:32], "title": title,
            "turns": turns[-MAX_TURNS:],
            "updated": float(updated) if isinstance(updated, int | float) else 0.0}


def _title_of(turns: list[dict[str, Any]]) -> str:
    first = next((t["content"] for t in turns if t["role"] == "user"), "")
    words = " ".join(str(first).split())
    return (words[:MAX_TITLE - 1] + "…") if len(words) > MAX_TITLE else (words or NEW_TITLE)


def current(state: Chats) -> dict[str, Any]:
    return next(c for c in state["chats"] if c["id"] == state["current"])


def choices(state: Chats) -> list[tuple[str, str]]:
    """(title, id) of every conversation, the most recently used first."""
    ordered = sorted(state["chats"], key=lambda c: -c["updated"])
    return [(c["title"], c["id"]) for c in ordered]


def new(state: Chats) -> Chats:
    """Open a new conversation (the open one, if still empty, is reused)."""
    if not current(state)["turns"]:
        return state
    chat = _new_chat()
    return {"chats": [chat, *state["chats"]][:MAX_CHATS], "current": chat["id"]}


def switch(state: Chats, chat_id: str | None) -> Chats:
    if any(c["id"] == chat_id for c in state["chats"]):
        return {**state, "current": chat_id}
    return state


def rename(state: Chats, title: str | None) -> Chats:
    text = " ".join((title or "").split())[:MAX_TITLE]
    if text:
        current(state)["title"] = text
    return state


def delete(state: Chats) -> Chats:
    """Delete the open conversation; the most recent other one opens (or a new one)."""
    rest = [c for c in state["chats"] if c["id"] != state["current"]]
    if not rest:
        return empty()
    latest = max(rest, key=lambda c: c["updated"])
    return {"chats": rest, "current": latest["id"]}


def save_turns(state: Chats, turns: list[dict[str, Any]], budget: int) -> Chats:
    """The open conversation with ``turns``, titled by its first question, and the whole
    state trimmed to ``budget`` bytes of JSON."""
    chat = current(state)
    chat["turns"] = turns[-MAX_TURNS:]
    chat["updated"] = time.time()
    if chat["title"] == NEW_TITLE:
        chat["title"] = _title_of(chat["turns"])
    while _size(state) > budget:
        others = [c for c in state["chats"] if c["id"] != chat["id"]]
        if others:
            oldest = min(others, key=lambda c: c["updated"])
            state["chats"] = [c for c in state["chats"] if c["id"] != oldest["id"]]
        elif len(chat["turns"]) > 2:
            chat["turns"] = chat["turns"][2:]
        else:
            break
    return state


def _size(state: Chats) -> int:
    return len(json.dumps(state, ensure_ascii=False).encode())
