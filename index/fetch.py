"""Fetching a web page, PDF or feed for ingest, with a guard against server-side request
forgery (SSRF).

A server that fetches any URL a client names can be made to read what only it can reach:
its own admin ports, the LAN, a cloud's metadata service. So the host of every hop is
resolved here, every address it resolves to is checked (loopback, private, link-local,
shared, multicast and reserved addresses are refused unless ``allow_private``), and the
connection goes to the address that was checked, never to a second lookup that could
answer differently (DNS rebinding). httpcore is used rather than httpx or urllib because it
takes a network backend: the check sits at the one place every connection is made, so no
redirect, proxy setting or URL trick goes around it. Redirects are followed here, hop by
hop, each one checked again.

Every fetch has one deadline for the whole of it (connect, headers, body, redirects), so a
page that trickles a byte a second cannot hold a worker; bodies stop at the size limit,
compressed ones too.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
USER_AGENT = "rag-articles/0.1 (article fetcher)"
# Well-known ports of other protocols (mail, ssh, databases...) are never fetched from: a
# web page lives on 80, 443 or a high port.
_LOW_PORTS_ALLOWED = {80, 443}
_REDIRECTS = {301, 302, 303, 307, 308}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class FetchError(Exception):
    """A URL that could not be fetched; the message says why and what to do."""


class FetchRefused(FetchError):
    """A URL the guard will not fetch (scheme, port or address)."""


@dataclass(frozen=True)
class FetchOptions:
    """Limits of one fetch. ``refuse`` adds networks to refuse even with
    ``allow_private`` (a deployment's own deny list)."""

    timeout: float = 30.0
    max_bytes: int = 25_000_000
    max_redirects: int = 5
    allow_private: bool = False
    refuse: tuple[Network, ...] = ()


@dataclass(frozen=True)
class Fetched:
    """A fetched body and where it finally came from."""

    url: str  # as asked
    final_url: str  # after redirects
    content_type: str  # media type, lower case, without parameters
    charset: str | None
    body: bytes


def check_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL we may fetch, or FetchRefused saying why."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise FetchRefused(f"not a valid URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchRefused(f"only http and https URLs are fetched, not {scheme or 'this'}:"
                           " (give a local file as a path instead)")
    if parts.username is not None or parts.password is not None:
        raise FetchRefused("URLs with a user name or password in them are not fetched")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise FetchRefused("the URL has no host")
    port = port or (443 if scheme == "https" else 80)
    if port < 1024 and port not in _LOW_PORTS_ALLOWED:
        raise FetchRefused(f"port {port} is not a web port; pages are fetched from ports 80, "
                           "443 and 1024 and above")
    return scheme, host, port


def normalised(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped (::ffff:a.b.c.d) or NAT64 IPv6 address reaches, else
    the address itself: every check compares what the connection really reaches."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def address_problem(address: IPAddress, options: FetchOptions) -> str | None:
    """Why ``address`` may not be connected to, or None when it may."""
    inner = normalised(address)
    if any(a in net for a in {address, inner} for net in options.refuse
           if net.version == a.version):
        return "a refused network"
    if options.allow_private:
        return None
    if inner.is_unspecified:
        return "not a public internet address (an unspecified address)"
    if inner.is_loopback:
        return "a loopback address"
    if inner.is_link_local:
        return "a link-local address (where cloud metadata services live)"
    if inner.is_private:
        return "a private network address"
    if inner.is_multicast or inner.is_unspecified or inner.is_reserved or not inner.is_global:
        return "not a public internet address"
    return None


def resolve(host: str, port: int, options: FetchOptions) -> list[str]:
    """Every address ``host`` resolves to, all checked; FetchRefused if any is refused."""
    host = host.rstrip(".")  # 'localhost.' is localhost
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve host {host!r} ({exc}); check the URL") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    for text in addresses:
        problem = address_problem(ipaddress.ip_address(text.split("%", 1)[0]), options)
        if problem is not None:
            raise FetchRefused(
                f"{host} resolves to {text}, {problem}: refused, so that the server cannot "
                "be made to read its own network (set RAG_FETCH_ALLOW_PRIVATE=1 to allow "
                "it on a machine of your own)")
    if not addresses:
        raise FetchError(f"host {host!r} has no address")
    return addresses


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose reads and writes all end at one deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def _left(self, timeout: float | None) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("the fetch's time limit passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                     self._left(timeout)), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Connects only to checked addresses: resolves the host, checks every address, then
    connects to those addresses themselves (TLS still verifies the host name)."""

    def __init__(self, options: FetchOptions, deadline: float) -> None:
        self._options = options
        self._deadline = deadline
        self._plain = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        last: Exception | None = None
        for address in resolve(host, port, self._options):
            left = self._deadline - time.monotonic()
            if left <= 0:
                break
            try:
                stream = self._plain.connect_tcp(address, port, min(timeout or left, left),
                                                 local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise httpcore.ConnectError(f"cannot connect to {host}:{port} ({last or 'timed out'})")

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None
                            ) -> httpcore.NetworkStream:
        raise FetchRefused("unix sockets are never fetched from")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def fetch(url: str, options: FetchOptions, accept: Iterable[str]) -> Fetched:
    """GET ``url`` (following at most ``options.max_redirects`` redirects, each checked);
    the body must be one of the media types ``accept``. Raises FetchError saying why."""
    wanted = set(accept)
    deadline = time.monotonic() + options.timeout
    current = url.strip()
    try:
        with httpcore.ConnectionPool(network_backend=_GuardedBackend(options, deadline),
                                     max_connections=2, retries=0) as pool:
            for _hop in range(options.max_redirects + 1):
                check_url(current)
                result = _get(pool, current, options, wanted)
                if isinstance(result, Fetched):
                    return Fetched(url, current, result.content_type, result.charset,
                                   result.body)
                current = result
            raise FetchError(f"more than {options.max_redirects} redirects; open the URL in "
                             "a browser and give the address it ends at")
    except (httpcore.TimeoutException, TimeoutError) as exc:
        raise FetchError(f"timed out: no complete answer within {options.timeout:g} s "
                         "(RAG_FETCH_TIMEOUT)") from exc
    except httpcore.UnsupportedProtocol as exc:
        raise FetchRefused(f"unsupported URL ({exc})") from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.ProxyError) as exc:
        raise FetchError(f"the connection failed ({type(exc).__name__}: {exc or 'closed'}); "
                         "check the URL, or try again later") from exc


def _get(pool: httpcore.ConnectionPool, url: str, options: FetchOptions,
         wanted: set[str]) -> Fetched | str:
    """One request: the Fetched body, or the next URL when the answer is a redirect."""
    headers = [(b"User-Agent", USER_AGENT.encode()), (b"Accept-Encoding", b"gzip, deflate"),
               (b"Accept", ", ".join(sorted(wanted)).encode() + b", */*;q=0.1")]
    timeouts = {"connect": options.timeout, "read": options.timeout,
                "write": options.timeout, "pool": options.timeout}
    with pool.stream("GET", _ascii_url(url), headers=headers,
                     extensions={"timeout": timeouts}) as response:
        head = {k.decode("latin-1").lower(): v.decode("latin-1")
                for k, v in response.headers}
        if response.status in _REDIRECTS and head.get("location"):
            return urljoin(url, head["location"].strip())
        if not 200 <= response.status < 300:
            raise FetchError(f"the server answered HTTP {response.status}; check the URL")
        media, charset = _content_type(head.get("content-type", ""))
        if media not in wanted:
            raise FetchError(f"the server sent {media or 'no content type'}, not "
                             f"{_names(wanted)}")
        declared = head.get("content-length", "")
        if declared.isdigit() and int(declared) > options.max_bytes:
            raise FetchError(_too_big(int(declared), options.max_bytes))
        stream: Iterator[bytes] = response.iter_stream()
        body = _read_body(stream, head.get("content-encoding", ""), options.max_bytes)
    return Fetched(url, url, media, charset, body)


def _read_body(chunks: Iterator[bytes], encoding: str, limit: int) -> bytes:
    """The body, decompressed when gzip or deflate, refused once past ``limit`` bytes
    (compressed or not: a 10 KB gzip bomb stops at the limit, not at its 10 GB)."""
    encoding = encoding.strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
        raise FetchError(f"the server sent the body in an encoding we cannot read "
                         f"({encoding})")
    inflate = (zlib.decompressobj(16 + zlib.MAX_WBITS) if "gzip" in encoding
               else zlib.decompressobj() if encoding == "deflate" else None)
    out = bytearray()
    for chunk in chunks:
        piece = chunk if inflate is None else inflate.decompress(chunk, limit + 1 - len(out))
        out.extend(piece)
        if len(out) > limit:
            raise FetchError(_too_big(None, limit))
        if inflate is not None and inflate.unconsumed_tail:
            raise FetchError(_too_big(None, limit))
    return bytes(out)


def _too_big(size: int | None, limit: int) -> str:
    told = f"{size / 1e6:.3g} MB, " if size is not None else ""
    return (f"the page is {told}over the {limit / 1e6:.3g} MB limit (raise RAG_MAX_FILE_MB "
            "to allow it)")


def _content_type(value: str) -> tuple[str, str | None]:
    media, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, val = param.strip().partition("=")
        if key.lower() == "charset" and val:
            charset = val.strip("\"' ").lower()
    return media.strip().lower(), charset


def _names(types: set[str]) -> str:
    labels = {"text/html": "a web page", "application/pdf": "a PDF"}
    named = sorted({labels.get(t, t) for t in types})
    return " or ".join(named)


def _ascii_url(url: str) -> str:
    """The URL with an internationalised host in its ASCII (IDNA) form, as httpcore needs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host.isascii():
        return url
    netloc = host.encode("idna").decode("ascii")
    if parts.port is not None:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()
