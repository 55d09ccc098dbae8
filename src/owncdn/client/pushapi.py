"""``PushApi``: the control-plane calls of a push over plain keep-alive HTTP/1.1.

    api = PushApi("http://127.0.0.1:8400", token)
    api.missing_blobs(hashes); api.put_bundle(body); api.create_release(env, service, manifest)

``Client`` (httpx) needs about a tenth of a second to import; a push of one changed
file takes less than that in all, so `owncdn push` talks through this class, built
on ``client/http11.py`` (a small HTTP/1.1 connection: ``http.client`` with ``email``
and ``ssl`` took about 25 ms more to import).

Rules:
1. The methods a push needs, with ``Client``'s names, arguments and results
   (``missing_blobs``, ``put_blob``, ``put_bundle``, ``announce_release``,
   ``create_release``, ``create_release_with_blobs``, ``release_status``, and for a dry
   run ``services``, ``releases`` and ``release_manifest``); every failure is an
   ``ApiError`` as in ``Client`` Rule 2 (status 0 and ``"unreachable"`` /
   ``"timeout"`` when there is no answer).
2. One keep-alive connection per thread (uploads run in several threads; kept by
   thread id, so a thread started later may take over a finished one's). A
   connection idle for more than ``IDLE_SECONDS`` is opened anew before it is used,
   so a request never meets a connection the server already closed; a request that
   finds its reused connection broken before any answer is sent again once on a new
   one only when repeating it is harmless (every call here but creating a release:
   blobs are content-addressed).
3. The token goes only in the ``Authorization`` header and never into a message.
4. ``put_bundle_files`` sends a bundle of files without reading them here: each blob's
   record header, then the file's bytes with ``sendfile`` (``http11`` Rule 5), or from
   memory when the hashing kept them (``push`` Rule 11). A file
   whose size changed since it was hashed raises ``SiteError`` (nothing of it stored:
   the body is cut short). Such a body can be sent again, so Rule 2's retry applies.
5. Answers are read with ``client/leanjson.py`` (no ``json``, no ``re``: about 5 ms of
   the command's start, which in a first push held up the hashing while an upload
   thread imported it); request bodies are written without ``json`` too: a ``Manifest``
   as its canonical encoding (``manifest.py`` Rule 6), BLAKE3 names as they are.
   ``json`` writes only what those do not cover (a manifest given as a dict, SHA-256
   names).
6. ``missing_blobs`` remembers in ``partial`` (``{name: bytes}``) what the control plane
   says it kept of each blob asked about from an upload that broke (``api/blobs.py``
   Rule 7); ``put_blob(..., size=S, offset=N)`` sends the bytes from ``N`` of a blob of
   ``S`` with ``Content-Range: bytes N-(S-1)/S``, and once stored appends ``N`` to
   ``resumed`` (the bytes not sent again). ``Client`` does the same.
"""

from __future__ import annotations

import time
from _thread import allocate_lock, get_ident  # not threading: about 1 ms of a one-file push's start

from owncdn.core.content.bundle import header
from owncdn.core.content.digest import all_blake3_names
from owncdn.core.content.manifest import Manifest

from . import leanjson
from .errors import ApiError
from .http11 import Connection, FileChanged, FilePiece, ProtocolError, Response
from .sitedir import SiteError

TYPE_CHECKING = False  # not from typing: `owncdn push` starts without importing it
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

__all__ = ["PushApi"]

IDLE_SECONDS = 2.0
BUNDLE_TYPE = "application/x-owncdn-bundle"


class PushApi:
    """The push endpoints of the control plane at ``base_url``."""

    takes_views = True  # a bundle body may be a memoryview (client/push.py Rule 2)
    sends_files = True  # put_bundle_files (Rule 4)

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 60) -> None:
        self.base_url = base_url.rstrip("/")
        split = split_url(self.base_url)
        if split is None:
            raise ApiError(0, "unreachable", f"{base_url!r} is not an http:// or https:// URL of a control plane")
        self._scheme, self._host, self._port, path = split
        self._prefix = path.rstrip("/")
        self.timeout = timeout
        self._headers = {"User-Agent": "owncdn-push", "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._conns: dict[int, tuple[Connection, float]] = {}  # thread id -> (its connection, last used)
        self._lock = allocate_lock()
        self.partial: dict[str, int] = {}  # Rule 6
        self.resumed: list[int] = []  # Rule 6: the bytes each resumed upload did not send again

    def __repr__(self) -> str:
        return f"<PushApi {self.base_url}>"

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, {}
        for conn, _ in conns.values():
            conn.close()

    def __enter__(self) -> PushApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the calls (Rule 1) -----------------------------------------------------------

    def missing_blobs(self, hashes: list[str]) -> list[str]:
        """Rule 6: the answer's kept partial uploads go to ``partial``."""
        hashes = list(hashes)
        answer = self._call("POST", "/v1/blobs/missing", _names_body(hashes))
        remember_partials(self.partial, hashes, answer)
        return answer["missing"]

    def put_blob(self, sha256: str, content: bytes | Iterable[bytes], size: int | None = None,
                 offset: int = 0) -> dict[str, Any]:
        """``size``: the blob's; from ``offset``, ``content`` is its bytes from there (Rule 6)."""
        resumed = {"Content-Range": resumed_range(offset, size)} if offset else None
        stored = self._call("PUT", f"/v1/blobs/{quote(sha256, safe='')}", content, "application/octet-stream",
                            size - offset if offset else size, headers=resumed)
        if offset:
            self.resumed.append(offset)
        return stored

    def put_bundle(self, content: bytes | Iterable[bytes], size: int | None = None) -> dict[str, Any]:
        return self._call("POST", "/v1/blobs/bundle", content, BUNDLE_TYPE, size)

    def put_bundle_files(self, blobs: list[tuple[str, int, str]], kept=None) -> dict[str, Any]:
        """Rule 4: a bundle of these ``(sha256, size, file)``; a file's bytes that
        ``kept`` (``sitedir.Kept``) holds are sent from there."""
        pieces: list[bytes | FilePiece] = []
        for sha, size, path in blobs:
            data = kept.take(path) if kept is not None else None
            pieces += (header(sha, size), data if data is not None and len(data) == size else FilePiece(path, size))
        total = sum(len(p) if isinstance(p, bytes) else p.size for p in pieces)
        try:
            return self._call("POST", "/v1/blobs/bundle", pieces, BUNDLE_TYPE, total)
        except FileChanged as exc:
            raise SiteError(f"{exc}: it changed while it was being pushed; push again") from None

    def create_release(self, env: str, service: str, manifest: dict[str, Any] | Manifest,
                       comment: str = "") -> dict[str, Any]:
        return self._call("POST", f"/v1/services/{quote(service, safe='')}/releases?env={quote(env, safe='')}"
                          + _comment_query(comment), manifest_body(manifest), retry=False)

    def announce_release(self, env: str, service: str, manifest: dict[str, Any] | Manifest) -> dict[str, Any]:
        """Tell the edges about the release whose blobs are about to be uploaded, so they
        fetch them as they land (``POST .../releases/upcoming``)."""
        return self._call("POST", f"/v1/services/{quote(service, safe='')}/releases/upcoming?env={quote(env, safe='')}",
                          manifest_body(manifest))

    def create_release_with_blobs(self, env: str, service: str, body: bytes | Iterable[bytes],
                                  size: int | None = None, base: str | None = None,
                                  comment: str = "") -> dict[str, Any]:
        """One request: the manifest (or with ``base``, its changes from that manifest) and
        new blobs as a bundle (``release_bundle``)."""
        query = f"env={quote(env, safe='')}" + (f"&base={quote(base, safe='')}" if base else "") + _comment_query(comment)
        return self._call("POST", f"/v1/services/{quote(service, safe='')}/releases/bundle?{query}",
                          body, BUNDLE_TYPE, size, retry=False)

    def services(self, env: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/envs/{quote(env, safe='')}/services")

    def releases(self, env: str, service: str, limit: int = 50, current: bool = False) -> list[dict[str, Any]]:
        return self._call("GET", f"/v1/services/{quote(service, safe='')}/releases?env={quote(env, safe='')}"
                                 f"&limit={int(limit)}" + ("&current=true" if current else ""))

    def release_manifest(self, env: str, service: str, number: int) -> dict[str, Any]:
        return self._call("GET", f"/v1/services/{quote(service, safe='')}/releases/{int(number)}/manifest"
                                 f"?env={quote(env, safe='')}")

    def release_status(self, env: str, service: str, number: int, wait: float | None = None) -> dict[str, Any]:
        """Which edges serve release ``number``; with ``wait``, answered once every edge in
        contact serves it (or failed), or after ``wait`` seconds."""
        query = f"env={quote(env, safe='')}" + (f"&wait={wait:g}" if wait else "")
        return self._call("GET", f"/v1/services/{quote(service, safe='')}/releases/{int(number)}/status?{query}",
                          timeout=self.timeout + (wait or 0))

    # -- plumbing (Rule 2) ---------------------------------------------------------------

    def _connection(self, fresh: bool = False) -> tuple[Connection, bool]:
        """This thread's connection and whether it was used before."""
        conn, used_at = self._conns.get(get_ident(), (None, 0.0))
        if conn is not None and (fresh or time.monotonic() - used_at > IDLE_SECONDS):
            conn.close()
            conn = None
        if conn is not None:
            return conn, True
        conn = Connection(self._host, self._port, timeout=self.timeout, tls=self._scheme == "https")
        with self._lock:
            self._conns[get_ident()] = (conn, 0.0)
        return conn, False

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
              size: int | None = None, retry: bool = True, timeout: float | None = None,
              headers: dict[str, str] | None = None) -> Any:
        headers = {**self._headers, **headers} if headers else dict(self._headers)
        if body is not None:
            headers["Content-Type"] = content_type
            headers["Content-Length"] = str(len(body) if isinstance(body, (bytes, bytearray, memoryview)) else size)
        fresh = False
        while True:
            conn, reused = self._connection(fresh)
            try:
                conn.settimeout(timeout or self.timeout)
                response = conn.request(method, self._prefix + path, headers, body)
            except TimeoutError:
                conn.close()
                raise ApiError(0, "timeout", f"the control plane at {self.base_url} did not answer in time") from None
            except (OSError, ProtocolError) as exc:
                conn.close()
                if reused and retry and not fresh and isinstance(body, (bytes, bytearray, memoryview, list, type(None))):
                    fresh = True  # the server closed the kept connection: once more on a new one
                    continue
                from owncdn.client.unreachable import unreachable  # only when it failed

                raise unreachable(self.base_url, exc) from None
            with self._lock:
                self._conns[get_ident()] = (conn, time.monotonic())
            return _result(response, method, self.base_url + path.split("?")[0])


def _result(response: Response, method: str, url: str) -> Any:
    status, data = response.status, response.body
    if status >= 400:
        try:
            error = leanjson.loads(data)["error"]
            return_error = ApiError(status, str(error["code"]), str(error["message"]), error.get("problems"))
        except (ValueError, KeyError, TypeError):
            text = data[:200].decode("utf-8", "replace").strip()
            return_error = ApiError(status, "http_error", f"{method} {url} answered HTTP {status}" + (f": {text}" if text else ""))
        raise return_error
    if status == 204 or not data:
        return None
    try:
        return leanjson.loads(data)
    except ValueError:
        raise ApiError(status, "bad_response", f"{url} answered {status} with a body that is not JSON; "
                                               "is this an owncdn control plane?") from None


_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(text: str, safe: str = "") -> str:
    """``urllib.parse.quote(text, safe="")``: every byte of the UTF-8 text but the
    unreserved ones percent-encoded (`owncdn push` starts without importing
    ``urllib.parse``, which brings ``ipaddress``: about 2 ms)."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode("utf-8"))


def split_url(url: str) -> tuple[str, str, int | None, str] | None:
    """``(scheme, host, port, path)`` of an http(s) URL, the host lowercased and without
    brackets (as ``urllib.parse.urlsplit`` gives them), or None when it is not one."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        return None
    rest = rest.split("#", 1)[0].split("?", 1)[0]
    netloc, slash, path = rest.partition("/")
    host_port = netloc.rpartition("@")[2]
    if host_port.startswith("["):
        host, bracket, after = host_port[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            return None
        port_text = after[1:]
    else:
        host, _, port_text = host_port.partition(":")
    if not host:
        return None
    port = None
    if port_text:
        if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
            return None
        port = int(port_text)
    return scheme, host.lower(), port, slash + path


def remember_partials(partial: dict[str, int], asked: list[str], answer: dict[str, Any]) -> None:
    """Rule 6: what a missing answer says is kept of the blobs asked about."""
    if partial:
        for sha in asked:
            partial.pop(sha, None)
    kept = answer.get("partial")
    if kept:
        partial.update(kept)


def resumed_range(offset: int, size: int | None) -> str:
    """The Content-Range of a blob's bytes from ``offset`` to its end (RFC 9110 §14.5)."""
    if size is None or not 0 < offset < size:
        raise ValueError(f"a resumed upload starts inside the blob: offset {offset}, size {size}")
    return f"bytes {offset}-{size - 1}/{size}"


def _comment_query(comment: str) -> str:
    """``&comment=...`` for a release create (``releases`` Rule 16), or nothing."""
    return f"&comment={quote(comment, safe='')}" if comment else ""


def _json(value: Any) -> bytes:
    """A request body that Rule 5's encodings below do not cover."""
    import json

    return json.dumps(value, separators=(",", ":")).encode()


def _names_body(names: list[str]) -> bytes:
    """Rule 5: ``{"hashes": names}``; BLAKE3 names (hex and ``-b3``) need no escaping."""
    if names and all_blake3_names(names):
        return ('{"hashes":["' + '","'.join(names) + '"]}').encode()
    return _json({"hashes": names})


def manifest_body(manifest: dict[str, Any] | Manifest) -> bytes:
    """Rule 5: ``{"manifest": ...}``, a ``Manifest`` as its canonical encoding."""
    if isinstance(manifest, Manifest):
        return b'{"manifest":' + manifest.canonical() + b"}"
    return _json({"manifest": manifest})
