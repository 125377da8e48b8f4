"""``rag feeds``: follow RSS and Atom feeds, list them, refresh them.

Every write goes through the service's queued jobs (which take the data folder's lock), as
the server's do, so a refresh here and one in `rag serve` take turns.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ui.jobs import Job
    from ui.settings import Settings

EXIT_OK, EXIT_PARTIAL = 0, 1


def add_feeds_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                     common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("feeds", parents=[common], help="follow RSS and Atom feeds",
                       description="Follow RSS and Atom feeds: each new entry's article is "
                       "ingested (its own full text when the feed carries it, else the page "
                       "it links to); entries already seen are skipped. `rag serve` can "
                       "refresh them on an interval (RAG_FEED_INTERVAL_MINUTES).")
    feeds = p.add_subparsers(dest="feeds_command", required=True, metavar="ACTION")
    a = feeds.add_parser("add", parents=[common], help="follow a feed and ingest its entries",
                         description="Fetch the feed, follow it (in --collection) and ingest "
                         "its entries. A page that is not a feed is refused.")
    a.add_argument("url", metavar="URL", help="the feed's http(s) address")
    a.set_defaults(run=cmd_feeds_add)
    a = feeds.add_parser("list", parents=[common], help="the followed feeds and their status",
                         description="List followed feeds: collection, last refresh, "
                         "status (ok, partial, failed, new), articles, last error.")
    a.add_argument("--json", action="store_true", help="print a JSON array")
    a.set_defaults(run=cmd_feeds_list)
    a = feeds.add_parser("refresh", parents=[common], help="ingest the feeds' new entries",
                         description="Fetch every followed feed (or those named) and ingest "
                         "the entries not seen before. Exit 1 if a feed or entry failed.")
    a.add_argument("urls", nargs="*", metavar="URL", help="only these feeds (default: all)")
    a.set_defaults(run=cmd_feeds_refresh)
    a = feeds.add_parser("remove", parents=[common], help="stop following a feed",
                         description="Stop following a feed; its articles stay (rag remove "
                         "deletes articles).")
    a.add_argument("url", metavar="URL")
    a.set_defaults(run=cmd_feeds_remove)


def _service(settings: Settings) -> Any:
    from ui.service import ArticleService

    return ArticleService.for_writes(settings)


def _follow(job: Job, quiet: bool) -> dict[str, Any]:
    """Wait for a job, with a progress bar over its passages and its note as the label;
    its result, or its error raised."""
    from tqdm import tqdm

    with tqdm(total=0, unit="passage", desc="fetching", disable=quiet) as bar:
        while not job.wait(0.2):
            done, total = job.progress
            bar.total = total
            bar.set_description((job.note or "embedding")[:60], refresh=False)
            bar.update(done - bar.n)
    if job.error is not None:
        raise job.error
    assert job.result is not None
    return job.result


def _print_outcome(result: dict[str, Any]) -> int:
    for outcome in result["files"]:
        for error in outcome["errors"]:
            print(f"rag: failed: {error}", file=sys.stderr)
    feeds = result.get("feeds", [])
    for feed in feeds:
        note = f" ({feed['error']})" if feed["error"] else ""
        print(f"{feed['url']}: {feed['status']}{note}")
    print(f"articles: {result['added']} added, {result['unchanged']} unchanged, "
          f"{result['replaced']} replaced, {result['failed']} failed; passages written: "
          f"{result['passages']}")
    bad_feed = any(f["status"] in ("failed", "partial") for f in feeds)
    return EXIT_PARTIAL if result["failed"] or bad_feed else EXIT_OK


def cmd_feeds_add(args: argparse.Namespace, settings: Settings) -> int:
    from ui.errors import SOURCE_ERRORS

    service = _service(settings)
    try:
        result = _follow(service.submit_feed_add(args.url), getattr(args, "quiet", False))
    except SOURCE_ERRORS as exc:  # this feed failed: say so, as for a bad file
        message = str(exc) if str(exc).startswith(args.url) else f"{args.url}: {exc}"
        print(f"rag: failed: {message}", file=sys.stderr)
        return EXIT_PARTIAL
    return _print_outcome(result)


def cmd_feeds_refresh(args: argparse.Namespace, settings: Settings) -> int:
    service = _service(settings)
    if not service.feeds():
        print("rag: no feeds are followed yet: rag feeds add URL", file=sys.stderr)
        return EXIT_OK
    result = _follow(service.submit_feed_refresh(args.urls), getattr(args, "quiet", False))
    return _print_outcome(result)


def cmd_feeds_list(args: argparse.Namespace, settings: Settings) -> int:
    from ui.service import list_feeds

    feeds = list_feeds(settings)
    if args.json:
        print(json.dumps(feeds, ensure_ascii=False))
        return EXIT_OK
    for feed in feeds:
        checked = _when(feed["last_checked"])
        error = f"\t{feed['error']}" if feed["error"] else ""
        print(f"{feed['url']}\t{feed['collection']}\t{feed['status']}\t{checked}\t"
              f"{feed['articles']} articles\t{feed['title'][:60]}{error}")
    print(f"{len(feeds)} feeds", file=sys.stderr)
    return EXIT_OK


def cmd_feeds_remove(args: argparse.Namespace, settings: Settings) -> int:
    service = _service(settings)
    result = _follow(service.submit_feed_remove(args.url), quiet=True)
    if not result["removed"]:
        print(f"rag: not following {args.url} in collection {result['collection']!r} (see "
              "rag feeds list)", file=sys.stderr)
        return EXIT_PARTIAL
    print(f"no longer following {args.url}")
    return EXIT_OK


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "never checked"
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")

