"""Downloads from the Hugging Face Hub, with SHA-256 verification and a corruption-proof cache.

irx uses huggingface_hub's own cache (``HF_HUB_CACHE``, default ``$HF_HOME/hub``) and conventions
(``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, ``HF_TOKEN`` for gated or private repos). huggingface_hub
reads those variables once, at import; irx reads them again at each call and passes ``endpoint=``
and ``cache_dir=`` explicitly, so a changed environment (or a test) takes effect.

What irx adds on top of ``hf_hub_download``:

- a cache hit makes no network request at all (``hf_hub_download`` sends a HEAD even then);
- every file is hashed and compared with the SHA-256 the Hub declares for it (the ETag of an LFS
  file, which is also the name of its blob in the cache) and with the record's pinned hash;
- a file that does not match is deleted and fetched once more, then the download fails;
- cached files are re-checked on use; their hashes are remembered by size and mtime in
  ``$IRX_CACHE_DIR/hashes.json`` (default ``~/.cache/irx``) so that repeated runs read nothing.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import huggingface_hub
from huggingface_hub import constants as hf_constants
from tqdm.auto import tqdm

from irx.errors import ModelError, UsageError
from irx.zoo.records import atomic_write_text, sha256_file

log = logging.getLogger(__name__)

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_SHA1_RE = re.compile(r"^[0-9a-f]{40}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


# ---------------------------------------------------------------- settings, read at call time


@dataclass(frozen=True)
class HubSettings:
    endpoint: str
    cache_dir: Path
    offline: bool
    etag_timeout: float


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    value = value.strip().lower()
    return True if value in _TRUE else False if value in _FALSE else None


def is_offline(offline: bool | None = None) -> bool:
    """True when ``offline`` is True or HF_HUB_OFFLINE is set (read now, not at import)."""
    if offline:
        return True
    env = _env_flag("HF_HUB_OFFLINE")
    if env is None:
        env = _env_flag("TRANSFORMERS_OFFLINE")
    if env is not None:
        return env
    return bool(getattr(hf_constants, "HF_HUB_OFFLINE", False))


def hub_cache_dir() -> Path:
    """huggingface_hub's cache folder, by its own precedence, from the current environment."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.path.expandvars(os.environ[name])).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "huggingface" / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def hub_settings(offline: bool | None = None) -> HubSettings:
    endpoint = (os.environ.get("HF_ENDPOINT") or hf_constants.ENDPOINT).rstrip("/")
    try:
        timeout = float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or hf_constants.DEFAULT_ETAG_TIMEOUT)
    except ValueError:
        timeout = 10.0
    return HubSettings(endpoint=endpoint, cache_dir=hub_cache_dir(), offline=is_offline(offline), etag_timeout=timeout)


def irx_cache_dir() -> Path:
    """irx's own small cache (file hashes): ``IRX_CACHE_DIR``, else ``$XDG_CACHE_HOME/irx``."""
    if os.environ.get("IRX_CACHE_DIR"):
        return Path(os.environ["IRX_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "irx"


# ---------------------------------------------------------------- hf:// addresses


@dataclass(frozen=True)
class HubFile:
    """One file of a Hub model repo at a revision."""

    repo_id: str
    filename: str
    revision: str = "main"

    @property
    def uri(self) -> str:
        return f"hf://{self.repo_id}/{self.filename}@{self.revision}"


def parse_hf_uri(uri: str) -> HubFile:
    """``hf://owner/repo/path/to/file[@revision]`` -> HubFile (revision defaults to main)."""
    if not uri.startswith("hf://"):
        raise UsageError(f"{uri!r} is not an hf:// address; expected hf://owner/repo/file[@revision]")
    parts = uri[len("hf://"):].split("/", 2)
    if len(parts) < 3 or not all(parts):
        raise UsageError(f"{uri!r} needs an owner, a repo and a file: hf://owner/repo/file[@revision]")
    owner, repo, rest = parts
    filename, _, revision = rest.partition("@")
    filename = filename.strip("/")
    if not filename or ".." in filename.split("/") or "@" in owner + repo:
        raise UsageError(f"{uri!r} is not a valid hf:// address: hf://owner/repo/file[@revision]")
    return HubFile(f"{owner}/{repo}", filename, revision or "main")


# ---------------------------------------------------------------- hash cache and checks


_hash_lock = threading.Lock()


def _hash_cache_path() -> Path:
    return irx_cache_dir() / "hashes.json"


def _read_hash_cache() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(_hash_cache_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_hash_entry(key: str, entry: dict[str, Any] | None) -> None:
    with _hash_lock:
        data = _read_hash_cache()
        if entry is None:
            if data.pop(key, None) is None:
                return
        else:
            data[key] = entry
        try:
            atomic_write_text(_hash_cache_path(), json.dumps(data, indent=1, sort_keys=True))
        except OSError as exc:  # a read-only home only costs a re-hash next time
            log.debug("cannot write %s: %s", _hash_cache_path(), exc)


def git_blob_sha1(path: str | os.PathLike[str]) -> str:
    """The git object id of a file (the ETag the Hub gives files not stored with LFS)."""
    size = os.path.getsize(path)
    digest = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def declared_hash(path: str | os.PathLike[str]) -> str | None:
    """The hash the Hub declared for a cached file: the name of the blob its snapshot links to."""
    real = Path(os.path.realpath(path))
    if real.parent.name == "blobs" and (_SHA256_RE.match(real.name) or _SHA1_RE.match(real.name)):
        return real.name
    return None


def check_file(
    path: str | os.PathLike[str],
    *,
    pinned: str | None = None,
    declared: str | None = None,
    fresh: bool = False,
    use_cache: bool = True,
) -> str | None:
    """None when the file matches every hash known for it, else what is wrong (one phrase).

    Known hashes: ``declared`` (default: read from the cache's blob name), ``pinned`` (the
    record's), and, for a file checked before, the hash it had then. ``fresh`` marks a file just
    downloaded (its earlier hash is no reference). ``use_cache=False`` always re-reads the file.
    """
    p = Path(path)
    key = os.path.realpath(p)
    try:
        st = os.stat(key)
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc})"
    declared = declared or declared_hash(p)
    entry = None if fresh else _read_hash_cache().get(key)
    if use_cache and entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
        actual = str(entry.get("sha256"))
    else:
        try:
            actual = sha256_file(key)
        except OSError as exc:
            return f"cannot read it ({exc.strerror or exc})"
    problem = None
    if declared and _SHA256_RE.match(declared) and actual != declared:
        problem = f"its SHA-256 {actual[:12]}... differs from the {declared[:12]}... the Hub declares"
    elif declared and _SHA1_RE.match(declared) and git_blob_sha1(key) != declared:
        problem = f"its git hash differs from the {declared[:12]}... the Hub declares"
    elif pinned and actual != pinned.lower():
        problem = f"its SHA-256 {actual[:12]}... differs from the pinned {pinned[:12]}..."
    elif entry and not declared and not pinned and entry.get("sha256") != actual:
        problem = "it changed since irx verified it"
    if problem is None:
        _write_hash_entry(key, {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": actual})
    return problem


def verified_sha256(path: str | os.PathLike[str]) -> str | None:
    """The SHA-256 irx recorded for a file when it last verified it (None if never)."""
    entry = _read_hash_cache().get(os.path.realpath(path))
    return str(entry["sha256"]) if entry and "sha256" in entry else None


def remove_cached(path: str | os.PathLike[str]) -> None:
    """Delete a cached file: its snapshot entry and the blob it points to."""
    p = Path(path)
    real = Path(os.path.realpath(p))
    for victim in {p, real}:
        try:
            victim.unlink()
        except FileNotFoundError:
            pass
    _write_hash_entry(str(real), None)


# ---------------------------------------------------------------- cache and download


def cached_file(ref: HubFile, settings: HubSettings | None = None) -> Path | None:
    """The cached copy of a Hub file, without any network request (None if not cached)."""
    s = settings or hub_settings()
    found = huggingface_hub.try_to_load_from_cache(
        ref.repo_id, ref.filename, cache_dir=str(s.cache_dir), revision=ref.revision
    )
    if isinstance(found, str) and os.path.isfile(found):
        return Path(found)
    return None


class _SilentBar(tqdm):  # type: ignore[misc]
    """A progress bar that never draws (for --quiet)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        kwargs.pop("name", None)
        super().__init__(*args, **kwargs)


def _download_kwargs(quiet: bool) -> dict[str, Any]:
    params = inspect.signature(huggingface_hub.hf_hub_download).parameters
    kwargs: dict[str, Any] = {}
    if quiet and "tqdm_class" in params:
        kwargs["tqdm_class"] = _SilentBar
    return kwargs


def _is_network_error(exc: BaseException) -> bool:
    module = type(exc).__module__.split(".")[0]
    return module in ("httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3") or isinstance(
        exc, (ConnectionError, TimeoutError)
    )


def _hub_error(exc: BaseException, ref: HubFile, s: HubSettings) -> ModelError | None:
    """A ModelError that says what to do, or None for a transfer problem worth one retry."""
    from huggingface_hub import errors as hf_errors

    if isinstance(exc, hf_errors.GatedRepoError):
        return ModelError(
            f"{ref.repo_id} is gated: accept its terms on the Hub, then set HF_TOKEN (or run `hf auth login`)"
        )
    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        return ModelError(f"repository {ref.repo_id} was not found on {s.endpoint} (a private repo needs HF_TOKEN)")
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return ModelError(f"revision {ref.revision!r} of {ref.repo_id} was not found on {s.endpoint}")
    if isinstance(exc, hf_errors.EntryNotFoundError):
        return ModelError(f"{ref.filename} is not in {ref.repo_id}@{ref.revision} on {s.endpoint}")
    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        return ModelError(f"{ref.uri} is not cached and huggingface_hub is in offline mode (HF_HUB_OFFLINE)")
    if isinstance(exc, hf_errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return ModelError(f"the Hub refused access to {ref.repo_id} (HTTP {status}); set HF_TOKEN to a token that can read it")
        return ModelError(
            f"the Hub failed to serve {ref.uri} (HTTP {status}); try again later, or use --offline with a cached or bundled model"
        )
    if isinstance(exc, hf_errors.LocalEntryNotFoundError) or _is_network_error(exc):
        return ModelError(
            f"cannot reach the Hub at {s.endpoint} to fetch {ref.uri} ({type(exc).__name__}); check the connection "
            "or HF_ENDPOINT, or use --offline with a cached or bundled model"
        )
    if isinstance(exc, OSError):
        return None  # e.g. huggingface_hub's size "consistency check" on a cut transfer
    return ModelError(f"downloading {ref.uri} failed: {type(exc).__name__}: {exc}")


@contextmanager
def _hub_errors(ref: HubFile, s: HubSettings) -> Iterator[None]:
    try:
        yield
    except ModelError:
        raise
    except Exception as exc:
        err = _hub_error(exc, ref, s)
        if err is None:
            raise
        raise err from exc


def _irx_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("irx")
    except PackageNotFoundError:  # running from a checkout
        return "dev"


def _normalize_etag(etag: str | None) -> str | None:
    if not etag:
        return None
    return etag.removeprefix("W/").strip('"').lower()


def fetch(
    ref: HubFile,
    *,
    pinned_sha256: str | None = None,
    force: bool = False,
    offline: bool | None = None,
    quiet: bool = False,
) -> Path:
    """The local path of a Hub file, downloaded and verified if needed.

    A verified cache hit returns without touching the network. A cached copy that fails its
    check is deleted and, when online, fetched again. A download is hashed and compared with the
    Hub's declared SHA-256 and ``pinned_sha256``; on a mismatch it is deleted and fetched once
    more, then ModelError.
    """
    s = hub_settings(offline)
    if force and s.offline:
        raise ModelError(f"cannot download {ref.uri} again (force) while irx is offline; drop offline or HF_HUB_OFFLINE", param=("force", "offline"))
    if not force:
        cached = cached_file(ref, s)
        if cached is not None:
            problem = check_file(cached, pinned=pinned_sha256)
            if problem is None:
                return cached
            remove_cached(cached)
            if s.offline:
                raise ModelError(
                    f"the cached copy of {ref.uri} was damaged ({problem}) and has been removed; "
                    "go online and run `irx models download` again"
                )
            log.warning("the cached copy of %s was damaged (%s); downloading it again", ref.uri, problem)
    if s.offline:
        raise ModelError(
            f"{ref.uri} is not in the local cache ({s.cache_dir}) and irx is offline (--offline or HF_HUB_OFFLINE=1); "
            "run `irx models download` once while online, or use a bundled model"
        )

    url = huggingface_hub.hf_hub_url(ref.repo_id, ref.filename, revision=ref.revision, endpoint=s.endpoint)
    # Our own HEAD first: it fails fast when the Hub is unreachable (hf_hub_download would retry
    # for ~20 s) and tells us the hash the Hub declares before any byte is downloaded.
    with _hub_errors(ref, s):
        meta = huggingface_hub.get_hf_file_metadata(url, timeout=s.etag_timeout, endpoint=s.endpoint)
    declared = _normalize_etag(meta.etag)
    if pinned_sha256 and declared and _SHA256_RE.match(declared) and declared != pinned_sha256.lower():
        raise ModelError(
            f"the Hub now serves a different {ref.filename} for {ref.repo_id}@{ref.revision} "
            f"(SHA-256 {declared[:12]}..., irx pins {pinned_sha256[:12]}...); irx refuses it: update irx or pin a revision"
        )

    problem = "unknown"
    for attempt in (1, 2):
        try:
            with _hub_errors(ref, s):
                local = huggingface_hub.hf_hub_download(
                    ref.repo_id,
                    ref.filename,
                    revision=ref.revision,
                    cache_dir=str(s.cache_dir),
                    endpoint=s.endpoint,
                    etag_timeout=s.etag_timeout,
                    force_download=force or attempt > 1,
                    library_name="irx",
                    library_version=_irx_version(),
                    **_download_kwargs(quiet),
                )
        except OSError as exc:  # a transfer that ended short; huggingface_hub left no file behind
            problem = f"the transfer was incomplete ({str(exc).splitlines()[0][:120]})"
        else:
            path = Path(local)
            problem = check_file(path, pinned=pinned_sha256, declared=declared, fresh=True) or ""
            if not problem:
                return path
            remove_cached(path)
        if attempt == 1:
            log.warning("download of %s failed verification (%s); trying once more", ref.uri, problem)
    raise ModelError(
        f"could not get a valid copy of {ref.uri}: {problem}; nothing was kept. Try again later; if it "
        "persists, the file on the Hub does not match its declared hash"
    )
