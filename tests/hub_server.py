"""A tiny fake Hugging Face Hub for tests: a threaded HTTP server on 127.0.0.1, random port.

It answers what ``huggingface_hub`` (2.x, file_download.py) asks for a file download:

- ``HEAD/GET /{repo_id}/resolve/{revision}/{filename}``
  - LFS file: ``302`` to ``http://localhost:{port}/cdn/{n}`` (same server, another host name, as
    the real Hub redirects to its CDN), with ``X-Repo-Commit``, ``X-Linked-Etag: "<sha256>"``,
    ``X-Linked-Size`` and the pointer's ``ETag``. huggingface_hub stops at that redirect (the
    target is not a Hub host) and reads the file's metadata from it.
  - regular (git) file: ``200`` with ``ETag: "<git blob sha1>"`` and ``X-Repo-Commit``.
  - unknown repo / revision / file: ``404`` with ``X-Error-Code`` RepoNotFound / RevisionNotFound /
    EntryNotFound, as the Hub does.
- ``HEAD/GET /cdn/{n}[/name]``: the bytes, with ``Range: bytes=a-[b]`` answered by ``206``; also
  the plain addresses of ``add_url_file`` (files outside the Hub, for url records).

Faults tests can inject: a wrong declared hash (``declared_sha256=``), a GET that stops after N
bytes and closes the connection (``cut_next_get``), a body shorter than announced
(``short_body``), HTTP 500 for the N-th request (``fail_requests``). Every request is logged in
``requests`` (method, path, headers) so tests can count them.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


@dataclass
class FakeFile:
    content: bytes
    lfs: bool = True
    declared_sha256: str | None = None  # what the server claims; default the true hash
    short_body: bool = False  # send fewer bytes than Content-Length says, as a complete response

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def git_sha1(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.content) + self.content).hexdigest()

    @property
    def etag(self) -> str:
        return (self.declared_sha256 or self.sha256) if self.lfs else self.git_sha1


@dataclass
class LoggedRequest:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)


def commit_for(repo_id: str, revision: str) -> str:
    """A stable 40-hex commit id per repo and revision."""
    return hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()


def free_port() -> int:
    """A port with nothing listening (for "server is down" tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeHub:
    def __init__(self, cdn_host: str = "localhost") -> None:
        self.files: dict[tuple[str, str, str], FakeFile] = {}
        self.cdn: list[FakeFile] = []
        self.requests: list[LoggedRequest] = []
        self.cut_next_get: dict[int, int] = {}  # cdn index -> bytes to send before hanging up
        self.fail_requests: set[int] = set()  # 1-based request numbers answered with HTTP 500
        self.cdn_host = cdn_host
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- content
    def add_file(self, repo_id: str, filename: str, content: bytes, *, revision: str = "main",
                 lfs: bool = True, declared_sha256: str | None = None, short_body: bool = False) -> FakeFile:
        f = FakeFile(content, lfs=lfs, declared_sha256=declared_sha256, short_body=short_body)
        self.files[(repo_id, revision, filename)] = f
        # A pinned commit hash serves the same files as its branch.
        self.files[(repo_id, commit_for(repo_id, revision), filename)] = f
        self.cdn.append(f)
        return f

    def add_url_file(self, name: str, content: bytes) -> str:
        """Serve ``content`` at a plain address (no Hub headers), as a GitHub release asset is."""
        f = FakeFile(content)
        self.cdn.append(f)
        return f"{self.endpoint}/cdn/{self.cdn_index(f)}/{name}"

    def cdn_index(self, f: FakeFile) -> int:
        return next(i for i, g in enumerate(self.cdn) if g is f)

    # ---- lifecycle
    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- helpers for tests
    def count(self, method: str | None = None, prefix: str = "") -> int:
        return sum(1 for r in self.requests if (method is None or r.method == method) and r.path.startswith(prefix))

    def _log(self, handler: BaseHTTPRequestHandler) -> int:
        with self._lock:
            self.requests.append(LoggedRequest(handler.command, handler.path, dict(handler.headers.items())))
            return len(self.requests)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeHub

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    # ---- routing
    def _serve(self, body: bool) -> None:
        number = self.fake._log(self)
        if number in self.fake.fail_requests:
            self._reply(500, {"X-Error-Message": "injected failure"})
            return
        path = urlsplit(self.path).path
        if path.startswith("/cdn/"):
            self._serve_cdn(int(path.split("/")[2]), body)
            return
        if "/resolve/" not in path:
            self._reply(404, {"X-Error-Code": "RepoNotFound"})
            return
        repo_id, rest = path.lstrip("/").split("/resolve/", 1)
        revision, _, filename = rest.partition("/")
        repo_id, revision, filename = unquote(repo_id), unquote(revision), unquote(filename)
        repo_files = {k: v for k, v in self.fake.files.items() if k[0] == repo_id}
        if not repo_files:
            self._reply(404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
            return
        if not any(k[1] == revision for k in repo_files):
            self._reply(404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"})
            return
        commit = revision if len(revision) == 40 else commit_for(repo_id, revision)
        f = repo_files.get((repo_id, revision, filename))
        if f is None:
            self._reply(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit})
            return
        if f.lfs:
            location = f"http://{self.fake.cdn_host}:{self.fake.port}/cdn/{self.fake.cdn_index(f)}"
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{f.etag}\nsize {len(f.content)}\n"
            self._reply(302, {
                "Location": location,
                "X-Repo-Commit": commit,
                "X-Linked-Etag": f'"{f.etag}"',
                "X-Linked-Size": str(len(f.content)),
                "ETag": '"' + hashlib.sha1(pointer.encode()).hexdigest() + '"',
            })
            return
        self._send_content(f, body, {"ETag": f'"{f.etag}"', "X-Repo-Commit": commit}, cut=None)

    def _serve_cdn(self, index: int, body: bool) -> None:
        if index >= len(self.fake.cdn):
            self._reply(404, {})
            return
        f = self.fake.cdn[index]
        cut = self.fake.cut_next_get.pop(index, None) if body else None
        self._send_content(f, body, {"ETag": f'"{f.sha256}"'}, cut=cut)

    # ---- responses
    def _reply(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_content(self, f: FakeFile, body: bool, headers: dict[str, str], cut: int | None) -> None:
        data = f.content
        total = len(data)
        start, end = 0, total - 1
        status = 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            first, _, last = rng[len("bytes="):].partition("-")
            start = int(first or 0)
            end = min(int(last), total - 1) if last else total - 1
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{total}"
        chunk = data[start:end + 1]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(chunk)))
        if f.short_body:
            chunk = chunk[: len(chunk) // 2]
            # Announce the short length as complete: the client only notices through the size check.
            self._headers_buffer = [h for h in self._headers_buffer if not h.startswith(b"Content-Length")]
            self.send_header("Content-Length", str(len(chunk)))
        if cut is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        if not body:
            return
        if cut is not None:
            # Hang up mid-body: the client sees a connection closed before Content-Length bytes.
            self.wfile.write(chunk[:cut])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(chunk)


def isolate_hub_env(monkeypatch, tmp_path, endpoint: str) -> dict[str, str]:
    """Point huggingface_hub and irx at ``endpoint`` and at fresh folders under ``tmp_path``.

    irx reads HF_ENDPOINT / HF_HUB_CACHE / HF_HUB_OFFLINE at call time; huggingface_hub reads some
    of them at import, so its constants are patched too (no request can leave for huggingface.co).
    """
    import huggingface_hub.constants as hf_constants

    paths = {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
        "IRX_CACHE_DIR": str(tmp_path / "irx-cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "IRX_WEIGHTS_DIR": str(tmp_path / "weights"),
    }
    for key, value in paths.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "IRX_CONFIG", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(key, raising=False)
    # hf_hub_url swaps the template's prefix for endpoint= only when the two constants agree.
    monkeypatch.setattr(hf_constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", paths["HF_HUB_CACHE"])
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "AGENT_HARNESSES_PATH", str(tmp_path / "hf" / "agents.json"))
    # Small chunks so that a cut transfer is resumed with a Range request (default chunk: 10 MB).
    monkeypatch.setattr(hf_constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    try:  # huggingface_hub >= 1.x asks the Hub for an "agent harness" list once per process
        from huggingface_hub.utils import _detect_agent

        monkeypatch.setattr(_detect_agent, "_registry", getattr(_detect_agent, "_EMPTY_REGISTRY", {}), raising=False)
    except ImportError:
        pass
    return paths
