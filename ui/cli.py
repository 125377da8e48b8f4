"""The ``rag`` command: parse, call the application service (ui.service), print.

Heavy modules are imported inside commands so ``--help`` stays fast. Nothing here touches the
store, the lock or the models directly: every use case is a method of ``ArticleService``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.result import Answer
    from ui.service import ArticleService, Filters
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
    p.set_defaults(run=cmd_remove)
    _add_eval_parser(sub, common)
    add_feeds_command(sub, common)
    add_serve_command(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the command's own usage, not the top-level one, names what is wrong
        _subparser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="rag: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "chromadb", "urllib3", "httpcore", "pypdf"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ui.errors import DOMAIN_ERRORS

    try:
        settings = _settings(args)
        run: Callable[[argparse.Namespace, Settings], int] = args.run
        with logging_redirect_tqdm():  # a log line is printed above the progress bars
            return run(args, settings)
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return EXIT_OK
    except (*DOMAIN_ERRORS, ValueError, OSError) as exc:
        print(f"rag: error: {_message(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("rag: interrupted", file=sys.stderr)
        return 130


def _subparser(parser: argparse.ArgumentParser,
               args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the command (and sub-command) that was given, else ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                return _subparser(chosen, args)
    return parser


def _message(exc: BaseException) -> str:
    """One line: a missing file says which, not errno's words."""
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"{exc.filename}: no such file"
    return str(exc)


def _settings(args: argparse.Namespace) -> Settings:
    from ui.settings import load_settings

    config = getattr(args, "config", None) or os.environ.get("RAG_CONFIG")
    return load_settings(Path(config) if config else None,
                         data_dir=getattr(args, "data_dir", None),
                         collection=getattr(args, "collection", None),
                         chroma_url=getattr(args, "chroma_url", None))


def _service(settings: Settings, answers: bool = False) -> ArticleService:
    from ui.service import ArticleService

    return ArticleService.from_settings(settings, answers=answers)


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    quiet = getattr(args, "quiet", False)
    service = _service(settings)
    report = service.ingest_sources(args.paths, prune=args.prune, progress=not quiet,
                                    fetched=lambda urls: _fetched(service, urls, quiet),
                                    wait=not args.no_wait)
    for failure in report.failures:
        print(f"rag: failed: {failure}", file=sys.stderr)
    for note in report.missing_notes():
        print(f"rag: {note}", file=sys.stderr)
    print(report.summary())
    return EXIT_PARTIAL if report.failed else EXIT_OK


def _fetched(service: ArticleService, urls: Sequence[str], quiet: bool) -> Iterable[Any]:
    """The articles of ``urls``, fetched one by one under a progress bar."""
    if not urls:
        return []
    from tqdm import tqdm

    with tqdm(urls, unit="url", desc="fetching", disable=quiet) as bar:
        return [service.fetch_url(url) for url in bar]


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    service = _service(settings, answers=True)
    filters = _filters(args)
    several = len(args.questions) > 1
    for n, question in enumerate(args.questions):
        if args.json:
            answer = service.ask(question, top_k=args.top_k, filters=filters,
                                 as_of=args.as_of)
            print(answer.model_dump_json(), flush=True)
            continue
        if several:
            print(f"{'' if n == 0 else chr(10)}Q: {question.strip()}", flush=True)
        print_streamed_answer(service.ask_stream(question, top_k=args.top_k, filters=filters,
                                                 as_of=args.as_of))
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
    if not streamed or _same(streamed, answer.answer):
        return checked[len(answer.answer):] if streamed else checked
    moves = _renumbered(answer)
    if moves and _same(_MARKER.sub(lambda m: f"[{moves.get(m[1], m[1])}]", streamed),
                       answer.answer):
        # Only the numbers changed: the text stays printed once, the note maps them.
        mapping = ", ".join(f"[{old}] is [{new}]" for old, new in moves.items() if old != new)
        return f"\n[citations renumbered: {mapping}]" + checked[len(answer.answer):]
    return f"\n\n[checked answer]\n{checked}"


_MARKER = re.compile(r"\[(\d+)\]")


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def _renumbered(answer: Answer) -> dict[str, str]:
    """Marker as the answerer wrote it (its passage's position) -> marker as checked."""
    position = {p.passage_id: n for n, p in enumerate(answer.passages, start=1)}
    return {str(position[c.passage_id]): str(c.marker) for c in answer.citations
            if c.passage_id in position}


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
    from ui.errors import CollectionNotFound

    try:
        articles = _service(settings).articles()
    except CollectionNotFound:
        articles = []
    if args.json:
        print(json.dumps([a.as_dict() for a in articles], ensure_ascii=False))
        return EXIT_OK
    for a in articles:
        print(f"{a.id}\t{plural(a.passages, 'passage')}\t{_shortened(a.title, 70)}\t"
              f"{a.source}")
    print(plural(len(articles), "article"), file=sys.stderr)
    return EXIT_OK


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    missing = _service(settings).remove_many(args.ids)
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
    """An as-of date for argparse: a real YYYY-MM-DD (or YYYY/MM/DD) day."""
    try:
        return date.fromisoformat(text.strip().replace("/", "-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date on the calendar "
                                         "(YYYY-MM-DD)") from None


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

    from ui.service import Filters

    try:
        filters = Filters(sources=args.source, article_ids=args.article,
                          exclude_article_ids=args.exclude,
                          published_from=args.since, published_to=args.until)
    except ValidationError as exc:
        from ui.errors import first_problem

        raise ValueError(f"--since/--until: {first_problem(exc)}") from exc
    return None if filters.is_empty() else filters


def plural(count: int, noun: str) -> str:
    """'1 passage', '2 passages'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _shortened(text: str, width: int) -> str:
    """``text`` cut at a word boundary to at most ``width`` characters, '…' marking a cut."""
    if len(text) <= width:
        return text
    cut = text[:width - 1].rsplit(" ", 1)[0] if " " in text[:width - 1] else text[:width - 1]
    return cut.rstrip(" ,;:-") + "…"


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
    p.add_argument("--compare", action="store_true",
                   help="also measure the dense side and the BM25 side alone on the same rows "
                   "(retrieval figures), printed beside the main figures")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.set_defaults(run=cmd_eval)


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    quiet = getattr(args, "quiet", False)
    if args.retriever:
        settings = settings.model_copy(update={"retriever": args.retriever})
    service = _service(settings, answers=not args.no_answers)
    bars: list[Any] = []  # opened at the first row, so a bad file prints only its error

    def advance(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="question", desc="eval", disable=quiet))
        bars[0].update(done - bars[0].n)

    try:
        found = service.evaluate(args.questions, args.articles, args.top_k,
                                 answers=not args.no_answers,
                                 use_dates=not args.ignore_dates, progress=advance,
                                 compare=args.compare)
    finally:
        for bar in bars:
            bar.close()
    metrics = found["metrics"]
    sides = found.get("compare", {})
    if args.json:
        print(json.dumps({**metrics, "compare": sides} if sides else metrics))
        return EXIT_OK
    print(f"retriever: {found['retriever']}; collection {found['collection']!r}; "
          f"top-k {found['top_k']}")
    print(_metrics_table({found["retriever"]: metrics, **sides}))
    return EXIT_OK


def _metrics_table(columns: dict[str, dict[str, Any]]) -> str:
    """One line per metric, one column per retriever (the main one first)."""
    def cell(value: Any) -> str:
        return "-" if value is None else str(value)

    names = list(columns)
    first = columns[names[0]]
    if len(names) == 1:
        return "\n".join(f"{key:<22} {cell(value)}" for key, value in first.items())
    lines = [f"{'':<22} " + " ".join(f"{n:>10}" for n in names)]
    lines += [f"{key:<22} " + " ".join(f"{cell(columns[n][key]):>10}" for n in names)
              for key in first]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
