"""The ``rag`` command. Heavy modules are imported inside commands so ``--help`` stays fast."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.filters import Filters
    from rag.result import Answer
    from ui.settings import Settings

log = logging.getLogger("rag")

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2


def _common() -> argparse.ArgumentParser:
    """Options every command takes, accepted before or after the command name."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS,
                        help="data folder (default ./.rag, or RAG_DATA_DIR)")
    common.add_argument("--collection", default=argparse.SUPPRESS,
                        help="collection (corpus) name (default 'articles', or RAG_COLLECTION)")
    common.add_argument("--chroma-url", default=argparse.SUPPRESS,
                        help="use a Chroma server at this URL (or RAG_CHROMA_URL)")
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                        help="TOML or JSON settings file (or RAG_CONFIG)")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="only warnings and errors on stderr; no progress bars")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="rag", parents=[common],
        description="Answer questions about your articles, citing the passages used.",
        epilog="Settings come from RAG_* environment variables; see the README.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", parents=[common], help="read articles into the store",
                       description="Read .txt/.md/.html/.json/.jsonl/.pdf/.docx files "
                       "(folders recursively) and web pages or PDFs by http(s) URL, split "
                       "and store them (searchable by their words at once), then embed "
                       "them. Unchanged articles are skipped; changed ones replaced. Exit 1 "
                       "if any file or URL failed.")
    p.add_argument("paths", nargs="+", metavar="PATH_OR_URL",
                   help="a file, a folder, or an http(s) URL of a page or PDF")
    p.add_argument("--prune", action="store_true",
                   help="remove stored articles of a .json/.jsonl file that the file no longer "
                   "holds (without it they are kept and reported)")
    p.add_argument("--no-wait", action="store_true",
                   help="stop once the articles are stored and searchable by their words; "
                   "`rag serve` (or the next `rag ingest`) embeds them")
    # Not writes=True: it takes the write lock for storing, and per batch while embedding.
    p.set_defaults(run=cmd_ingest)

    p = sub.add_parser("ask", parents=[common], help="ask questions, get cited answers",
                       description="Answer each question from the stored articles, citing "
                       "passages as [n]. With --json: one result object per line.")
    p.add_argument("questions", nargs="+", metavar="QUESTION")
    p.add_argument("--top-k", type=int, default=None, help="passages to retrieve (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON result per question")
    _add_filter_options(p)
    p.add_argument("--as-of", type=_day, default=None, metavar="YYYY-MM-DD",
                   help="the day the question is asked about: articles published shortly "
                   "before it are favoured, later ones demoted")
    p.set_defaults(run=cmd_ask)

    p = sub.add_parser("list", parents=[common], help="list stored articles",
                       description="List stored articles with their passage counts.")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(run=cmd_list)

    p = sub.add_parser("remove", parents=[common], help="delete an article",
                       description="Delete an article and its passages by id (see rag list).")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.set_defaults(run=cmd_remove, writes=True)
    _add_eval_parser(sub, common)
    add_feeds_command(sub, common)
    add_serve_command(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="rag: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "chromadb", "urllib3", "httpcore", "pypdf"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from index.embedder import EmbedderError
    from index.feeds import FeedError
    from index.fetch import FetchError
    from index.lock import LockTimeout
    from index.store import StoreError
    from rag.llm import LLMError

    try:
        settings = _settings(args)
        run: Callable[[argparse.Namespace, Settings], int] = args.run
        with _lock_for_writers(args, settings):
            return run(args, settings)
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return EXIT_OK
    except (StoreError, EmbedderError, LLMError, LockTimeout, FeedError, FetchError, ValueError,
            OSError) as exc:
        print(f"rag: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("rag: interrupted", file=sys.stderr)
        return 130


def _settings(args: argparse.Namespace) -> Settings:
    from ui.settings import load_settings

    config = getattr(args, "config", None) or os.environ.get("RAG_CONFIG")
    return load_settings(Path(config) if config else None,
                         data_dir=getattr(args, "data_dir", None),
                         collection=getattr(args, "collection", None),
                         chroma_url=getattr(args, "chroma_url", None))


def _lock_for_writers(args: argparse.Namespace, settings: Settings) -> AbstractContextManager[Any]:
    """Commands that write hold the data folder's lock, so two of them serialise."""
    if not getattr(args, "writes", False):
        return nullcontext()
    from ui.wiring import write_lock

    return write_lock(settings, on_wait=lambda msg: print(f"rag: {msg}", file=sys.stderr))


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from itertools import chain

    from index.embedder import LazyEmbedder
    from index.ingest import embed_waiting, ingest_results
    from index.readers import read_paths
    from index.web import looks_like_url
    from ui.wiring import build_embedder, build_store, embedder_name, split_options, write_lock

    quiet = getattr(args, "quiet", False)
    urls = [p for p in args.paths if looks_like_url(p)]
    paths = [p for p in args.paths if not looks_like_url(p)]
    # Loaded only if something needs embedding: re-ingesting an unchanged corpus skips the model.
    embedder = LazyEmbedder(embedder_name(settings), lambda: build_embedder(settings))
    results = chain(read_paths(paths, int(settings.max_file_mb * 1_000_000)),
                    _fetched(urls, settings, quiet))
    # The first stage holds the data folder's lock; the second takes it per batch it stores.
    with write_lock(settings, on_wait=lambda msg: print(f"rag: {msg}", file=sys.stderr)):
        store = build_store(settings)
        report = ingest_results(results, store, embedder, options=split_options(settings),
                                progress=not quiet, prune=args.prune, wait=False)
    if not args.no_wait and report.waiting:
        with _embed_lease(settings):
            report.embedded += embed_waiting(store, embedder, progress=not quiet,
                                             lock=lambda: write_lock(settings)).embedded
        report.waiting = store.pending_count()
    for failure in report.failures:
        print(f"rag: failed: {failure}", file=sys.stderr)
    for note in report.missing_notes():
        print(f"rag: {note}", file=sys.stderr)
    print(report.summary())
    return EXIT_PARTIAL if report.failed else EXIT_OK


def _embed_lease(settings: Settings) -> AbstractContextManager[Any]:
    """One embedder per data folder: a `rag serve` already embedding this folder's pending
    passages finishes them, and this command waits for it."""
    from index.lock import WriteLock
    from ui.backfill import EMBED_LOCK

    def waiting(_message: str) -> None:
        print("rag: another process is embedding this data folder's passages; waiting for "
              "it", file=sys.stderr)

    return WriteLock(settings.data_dir, settings.lock_timeout, on_wait=waiting,
                     name=EMBED_LOCK)


def _fetched(urls: list[str], settings: Settings, quiet: bool) -> Iterable[Any]:
    """The articles of ``urls``, fetched one by one under a progress bar."""
    if not urls:
        return []
    from tqdm import tqdm

    from index.web import read_url
    from ui.wiring import fetch_options

    options = fetch_options(settings)
    with tqdm(urls, unit="url", desc="fetching", disable=quiet) as bar:
        return [read_url(url, options) for url in bar]


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from ui.wiring import build

    components = build(settings, create=False)
    if components.store.passage_count() == 0:
        print("rag: the store is empty: run `rag ingest PATH` first", file=sys.stderr)
        return EXIT_ERROR
    for question in args.questions:
        filters = _filters(args)
        if args.json:
            answer = components.assistant.ask(question, top_k=args.top_k, filters=filters,
                                              as_of=args.as_of)
            print(answer.model_dump_json(), flush=True)
        else:
            print_streamed_answer(components.assistant.ask_stream(
                question, top_k=args.top_k, filters=filters, as_of=args.as_of))
    return EXIT_OK


def print_streamed_answer(events: Iterable[str | Answer]) -> None:
    """Print text as the answerer writes it, then the checked answer and its sources.

    The checked text is printed again only when it differs from what was streamed (the
    check dropped or renumbered something), with a line saying so.
    """
    from rag.result import Answer

    streamed: list[str] = []
    for event in events:
        if isinstance(event, Answer):
            print(_after_stream(event, "".join(streamed)), flush=True)
            return
        streamed.append(event)
        print(event, end="", flush=True)


def _after_stream(answer: Answer, streamed: str) -> str:
    checked = format_answer(answer)
    if answer.removed_sentences:
        s = "" if answer.removed_sentences == 1 else "s"
        note = (f"[citation check: removed {answer.removed_sentences} unsupported "
                f"sentence{s}; checked answer below]")
        return f"\n\n{note}\n{checked}" if streamed else f"{note}\n{checked}"
    if " ".join(streamed.split()) == " ".join(answer.answer.split()):
        return checked[len(answer.answer):] if streamed else checked
    return f"\n\n[checked answer]\n{checked}" if streamed else checked


def format_answer(answer: Answer) -> str:
    """The answer (and why it abstained, or its short answer when the text does not lead
    with it), then each cited passage with its article's title, source and date."""
    lines = [answer.answer]
    if answer.abstained and answer.abstain_reason:
        lines.append(f"(why: {answer.abstain_reason})")
    elif answer.short_answer and not answer.answer.startswith(answer.short_answer):
        lines.append(f"(short answer: {answer.short_answer})")
    for c in answer.citations:
        page = f"p. {c.page}" if c.page else ""
        meta = " · ".join(x for x in (c.source, c.published, page, c.url) if x)
        lines += ["", f"[{c.marker}] {c.title}", f"    {meta}"]
        lines += textwrap.wrap(c.text, width=96, initial_indent="    ",
                               subsequent_indent="    ")
    return "\n".join(lines) + "\n"


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from index.store import CollectionNotFound
    from ui.wiring import build_store

    try:
        articles = sorted(build_store(settings, create=False).articles(),
                          key=lambda a: (a.title.lower(), a.id))
    except CollectionNotFound:
        articles = []
    if args.json:
        print(json.dumps([a.as_dict() for a in articles], ensure_ascii=False))
        return EXIT_OK
    for a in articles:
        print(f"{a.id}\t{a.passages} passages\t{a.title[:70]}\t{a.source}")
    print(f"{len(articles)} articles", file=sys.stderr)
    return EXIT_OK


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    from ui.wiring import build_store

    store = build_store(settings, create=False)
    missing = [i for i in args.ids if not store.remove_article(i)]
    for article_id in missing:
        print(f"rag: no article with id {article_id!r} (see `rag list`)", file=sys.stderr)
    print(f"removed {len(args.ids) - len(missing)} article(s)")
    return EXIT_PARTIAL if missing else EXIT_OK


def add_serve_command(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                      common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="run the chat and HTTP API server",
                       description="Serve the chat at /, the JSON API at /api, an "
                       "OpenAI-compatible endpoint at /v1 and API docs at /docs, on one port.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                   "127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.set_defaults(run=cmd_serve)


def add_feeds_command(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                      common: argparse.ArgumentParser) -> None:
    from ui.cli_feeds import add_feeds_parser

    add_feeds_parser(sub, common)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from ui.server import serve

    serve(settings, host=args.host, port=args.port)
    return EXIT_OK


def _add_filter_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", action="append", default=[], metavar="SOURCE",
                   help="only passages from this source (repeatable), e.g. www.cnn.com")
    p.add_argument("--article", action="append", default=[], metavar="ID",
                   help="only passages of this article id (repeatable; see rag list)")
    p.add_argument("--exclude", action="append", default=[], metavar="ID",
                   help="never use this article id: answer as if it were not stored "
                   "(repeatable)")
    p.add_argument("--since", metavar="YYYY-MM-DD", type=_day_text,
                   help="only articles published on or after")
    p.add_argument("--until", metavar="YYYY-MM-DD", type=_day_text,
                   help="only articles published on or before")


def _day(text: str) -> date:
    """An as-of date for argparse: YYYY-MM-DD (or YYYY/MM/DD)."""
    from rag.eval import parse_day

    day = parse_day(text)
    if day is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)")
    return day


def _day_text(text: str) -> str:
    """A filter date for argparse: a real YYYY-MM-DD day (2025-13-45 is refused)."""
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date on the calendar "
                                         "(YYYY-MM-DD)") from None


def _filters(args: argparse.Namespace) -> Filters | None:
    """The filter options as a Filters model (ValueError names a malformed date)."""
    from pydantic import ValidationError

    from rag.filters import Filters

    try:
        filters = Filters(sources=args.source, article_ids=args.article,
                          exclude_article_ids=args.exclude,
                          published_from=args.since, published_to=args.until)
    except ValidationError as exc:
        raise ValueError("--since/--until take dates as YYYY-MM-DD") from exc
    return None if filters.is_empty() else filters


def _add_eval_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                     common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("eval", parents=[common], help="measure retrieval and answers",
                       description="Run a JSONL file of questions ({id, question, answers?, "
                       "gold_urls?, unanswerable?, date?, history?, exclude_ids?}) and print "
                       "Hits@1/5/10, MRR@10, AnsIn@5, answer accuracy (cited and containing an "
                       "answer string), short-answer accuracy, follow-up accuracy, over-refusal "
                       "and false-answer rates, citation precision, abstention rate and "
                       "retrieval latency. A row with history is a follow-up asked after those "
                       "turns; exclude_ids are articles the row is asked without. With "
                       "--articles, those articles are ingested first into a collection of "
                       "their own, leaving yours untouched.")
    p.add_argument("questions", type=Path, metavar="QUESTIONS.jsonl")
    p.add_argument("--articles", type=Path, metavar="ARTICLES.jsonl",
                   help="articles to evaluate on (ingested once into an eval collection)")
    p.add_argument("--top-k", type=int, default=None,
                   help="passages given to the answerer (default: RAG_TOP_K)")
    p.add_argument("--retriever", choices=["hybrid", "dense", "bm25"], default=None,
                   help="retrieval to measure (default: RAG_RETRIEVER, hybrid)")
    p.add_argument("--ignore-dates", action="store_true",
                   help="ask without each row's 'date' as the as-of day")
    p.add_argument("--no-answers", action="store_true",
                   help="measure retrieval only (skip answering: faster)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.set_defaults(run=cmd_eval)


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from rag.eval import load_questions
    from ui.evaluation import open_eval, run_eval

    questions = load_questions(args.questions)
    quiet = getattr(args, "quiet", False)
    if args.retriever:
        settings = settings.model_copy(update={"retriever": args.retriever})
    components = open_eval(settings, args.articles, progress=not quiet)
    settings = components.settings
    if components.store.passage_count() == 0:
        print("rag: the store is empty: give --articles or run `rag ingest PATH` first",
              file=sys.stderr)
        return EXIT_ERROR
    top_k = args.top_k or settings.top_k
    with tqdm(total=len(questions), unit="question", desc="eval", disable=quiet) as bar:
        result = run_eval(components, questions, top_k, answers=not args.no_answers,
                          use_dates=not args.ignore_dates,
                          progress=lambda n: bar.update(n) and None)
    metrics = result.metrics()
    if args.json:
        print(json.dumps(metrics))
    else:
        print(f"retriever: {components.assistant.retriever.name}; collection "
              f"{settings.collection!r}; top-k {top_k}")
        for key, value in metrics.items():
            print(f"{key:<22} {'-' if value is None else value}")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
