"""How the chat shows answers and sources: escaped text, clickable citations, the page's
style and its one script.

Article text is untrusted, so everything taken from it is escaped before it is shown: the
chat's Markdown is backslash-escaped and the sources panel is built with ``html.escape``.
The only markup added is ours: each ``[n]`` of an answer becomes a link to ``#rag-cite-T-n``
(turn T, citation n), which the page's script turns into "select that answer's sources and
scroll to the cited sentence".
"""

from __future__ import annotations

import html
import re
from typing import Any

_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~&$=^\"'])")
_ESCAPED_MARKER = re.compile(r"\\\[(\d{1,3})\\\]")

CSS = """
.rag-source { border: 1px solid var(--border-color-primary); border-radius: 8px;
              padding: 8px 10px; margin-bottom: 8px; scroll-margin: 80px; }
.rag-source.rag-selected { border: 2px solid var(--color-accent); }
.rag-source-head { font-weight: 600; }
.rag-source-meta { color: var(--body-text-color-subdued); font-size: 0.85em; }
.rag-passage { white-space: pre-wrap; margin: 6px 0 0 0; font-size: 0.92em; }
.rag-passage mark { background: #fde68a; color: inherit; }
.rag-selected .rag-passage mark { background: #fbbf24; }
#rag-chatbot a[href^="#rag-cite-"] { text-decoration: none; font-weight: 600; }
#rag-header p { margin: 0; }
#rag-filter-error { color: var(--error-text-color); min-height: 0; }
#rag-articles table { table-layout: fixed; width: 100%; }
#rag-articles td, #rag-articles th { overflow-wrap: anywhere; }
/* A phone: the chat, the question, then the selected answer's sources, then the rest. */
@media (max-width: 760px) {
  #rag-main-row { flex-direction: column !important; }
  #rag-chat-col { display: contents !important; }
  #rag-chatbot { order: 1; height: 55vh !important; }
  #rag-question { order: 2; }
  #rag-buttons { order: 3; }
  #rag-sources-col { order: 4; }
  #rag-filters, #rag-filter-error, #rag-examples { order: 5; }
}
"""

# Clicking an [n] of an answer: Gradio's own message click selects that answer (its sources
# fill the panel, tagged with the turn); this waits for them, marks the card and scrolls to
# the highlighted sentence. Only links the chat made (#rag-cite-T-n) are handled. On a phone
# the sidebar starts closed.
HEAD = """
<script>
(() => {
  const until = (find, ms) => new Promise((done) => {
    const start = Date.now();
    const look = () => {
      const found = find();
      if (found || Date.now() - start > ms) { done(found); } else { setTimeout(look, 50); }
    };
    look();
  });
  document.addEventListener("click", async (event) => {
    const link = event.target.closest && event.target.closest('a[href^="#rag-cite-"]');
    if (!link) { return; }
    event.preventDefault();
    const parts = /^#rag-cite-(\\d+)-(\\d+)$/.exec(link.getAttribute("href") || "");
    if (!parts) { return; }
    const card = await until(() => document.querySelector(
      `#rag-sources .rag-source-list[data-turn="${parts[1]}"] #rag-source-${parts[2]}`), 8000);
    if (!card) { return; }
    document.querySelectorAll("#rag-sources .rag-selected")
      .forEach((c) => c.classList.remove("rag-selected"));
    card.classList.add("rag-selected");
    (card.querySelector("mark") || card).scrollIntoView({block: "center"});
  }, true);
  // On a phone the conversations sidebar would cover the chat: it starts closed there.
  if (window.matchMedia("(max-width: 760px)").matches) {
    until(() => document.querySelector("#rag-sidebar.open .toggle-button"), 20000)
      .then((toggle) => toggle && toggle.click());
  }
})();
</script>
"""


def escape_markdown(text: str) -> str:
    """Text shown literally by the Markdown renderer: no links, images, HTML or emphasis."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def sources_html(citations: list[dict[str, Any]], turn: int | None = None) -> str:
    """The sources panel: per citation, title (linked when there is a url), source, date and
    the passage with its supporting sentences marked. ``turn`` is the answer's place in the
    chat, for the citation links' script."""
    if not citations:
        return "<p class='rag-source-meta'>Sources of the selected answer appear here.</p>"
    cards = "\n".join(_source_html(c) for c in citations)
    tag = "" if turn is None else f" data-turn='{int(turn)}'"
    return f"<div class='rag-source-list'{tag}>{cards}</div>"


def _source_html(c: dict[str, Any]) -> str:
    title = html.escape(str(c.get("title") or "(untitled)"))
    url = str(c.get("url") or "")
    if url.startswith(("http://", "https://")):
        title = (f"<a href=\"{html.escape(url, quote=True)}\" target=\"_blank\" "
                 f"rel=\"noopener noreferrer nofollow\">{title}</a>")
    page = f"page {int(c['page'])}" if c.get("page") else ""
    meta = " · ".join(html.escape(str(x)) for x in (c.get("source"), c.get("published"), page)
                      if x)
    marker = int(c.get("marker", 0))
    return (f"<div class='rag-source' id='rag-source-{marker}'>"
            f"<div class='rag-source-head'>[{marker}] {title}</div>"
            f"<div class='rag-source-meta'>{meta}</div>"
            f"<blockquote class='rag-passage'>{_marked_passage(c)}</blockquote></div>")


def _marked_passage(c: dict[str, Any]) -> str:
    """The passage, escaped, with the highlight spans (article offsets) wrapped in <mark>."""
    text = str(c.get("text", ""))
    base = int(c.get("start", 0))
    spans = sorted((max(0, int(a) - base), min(len(text), int(b) - base))
                   for a, b in c.get("highlights", []))
    out, pos = [], 0
    for a, b in spans:
        if b <= pos or a >= len(text):
            continue
        a = max(a, pos)
        out += [html.escape(text[pos:a]), "<mark>", html.escape(text[a:b]), "</mark>"]
        pos = b
    out.append(html.escape(text[pos:]))
    return _BLANK_LINES.sub("\n\n", "".join(out))


def cite_links(escaped: str, turn: int | None, markers: set[int]) -> str:
    """Each escaped ``\\[n\\]`` that is one of the answer's citations as a link to it."""
    if turn is None:
        return escaped

    def link(match: re.Match[str]) -> str:
        n = int(match[1])
        return f"[\\[{n}\\]](#rag-cite-{turn}-{n})" if n in markers else match[0]

    return _ESCAPED_MARKER.sub(link, escaped)


def answer_markdown(turn: dict[str, Any], index: int | None = None) -> str:
    """An assistant turn for the chat: the short answer in bold, the answer (its [n] linked
    to the sources when ``index``, its place in the chat, is given), why it abstained, a
    removal note, the cited titles."""
    markers = {int(c.get("marker", 0)) for c in turn.get("citations", [])}
    text = escape_markdown(turn["content"])
    short = str(turn.get("short") or "")
    if short and turn["content"].startswith(short):  # the lead, in bold
        text = f"**{escape_markdown(short)}**{text[len(escape_markdown(short)):]}"
    elif short:
        text = f"**{escape_markdown(short)}** — {text}"
    parts = [cite_links(text, index, markers)]
    if turn.get("asked_as"):
        parts.insert(0, f"*Asked as: {escape_markdown(str(turn['asked_as']))}*")
    if turn.get("reason"):
        parts.append(f"*Why: {escape_markdown(str(turn['reason']))}.*")
    if turn.get("removed"):
        n = turn["removed"]
        parts.append(f"*{n} unsupported sentence{'s' if n != 1 else ''} removed by the "
                     "citation check.*")
    cited = [f"\\[{c['marker']}\\] {escape_markdown(str(c.get('title', '')))}"
             for c in turn.get("citations", [])]
    if cited:
        parts.append("Sources: " + " · ".join(cited))
    return "\n\n".join(parts)


def chat_messages(saved: dict[str, Any] | None) -> list[dict[str, str]]:
    """The Chatbot's messages from a conversation's turns (raw text is kept; display is
    derived, so a change here applies to chats saved before it)."""
    shown = []
    for index, turn in enumerate((saved or {}).get("turns", [])):
        if turn.get("notice"):  # our own text, not the articles'
            content = turn["content"]
        elif turn["role"] == "assistant":
            content = answer_markdown(turn, index)
        else:
            content = escape_markdown(turn["content"])
        shown.append({"role": turn["role"], "content": content})
    return shown


def turn_sources(saved: dict[str, Any] | None, index: int) -> str:
    """The sources panel for the turn at ``index`` (an answer), or the last answer's."""
    turns = (saved or {}).get("turns", [])
    if 0 <= index < len(turns) and turns[index]["role"] == "assistant":
        return sources_html(turns[index].get("citations", []), index)
    return last_sources(saved)


def last_sources(saved: dict[str, Any] | None) -> str:
    turns = (saved or {}).get("turns", [])
    for index in range(len(turns) - 1, -1, -1):
        if turns[index]["role"] == "assistant":
            return sources_html(turns[index].get("citations", []), index)
    return sources_html([])
