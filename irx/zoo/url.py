"""Downloads of ``source="url"`` records (files outside the Hub, e.g. GitHub release assets).

A plain https address declares no hash, so every url record pins its SHA-256 (checked when the
record is defined). The transfer itself is done by pooch, a library made for hashed, cached
downloads: it writes to a temporary file in the target folder and moves it into place only when
the SHA-256 matches, so a wrong or cut file is never kept.

Files live in ``$IRX_CACHE_DIR/url/<sha256>/<filename>``: the folder is named by the pinned hash,
so a record whose pin changes never picks up the old file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from irx.errors import ModelError
from irx.zoo.hub import check_file, irx_cache_dir, is_offline, remove_cached
from irx.zoo.records import ModelRecord

log = logging.getLogger(__name__)


def url_cache_path(record: ModelRecord) -> Path:
    """Where the file of a url record is (or will be) kept."""
    assert record.sha256 is not None and record.filename is not None
    return irx_cache_dir() / "url" / record.sha256 / Path(record.filename).name


def cached_url_file(record: ModelRecord) -> Path | None:
    """The cached file of a url record, without any network request (None if absent)."""
    path = url_cache_path(record)
    return path if path.is_file() else None


def fetch_url(record: ModelRecord, *, force: bool = False, offline: bool | None = None, quiet: bool = False) -> Path:
    """The verified local file of a url record, downloaded first when needed."""
    assert record.source == "url" and record.url is not None and record.sha256 is not None
    path = url_cache_path(record)
    if force and is_offline(offline):
        raise ModelError(f"cannot download {record.name} again (force) while irx is offline; drop offline or HF_HUB_OFFLINE", param=("force", "offline"))
    if path.is_file() and not force:
        problem = check_file(path, pinned=record.sha256)
        if problem is None:
            return path
        remove_cached(path)
        if is_offline(offline):
            raise ModelError(
                f"the cached copy of {record.name} was damaged ({problem}) and has been removed; "
                "go online and run `irx models download` again"
            )
        log.warning("the cached copy of %s was damaged (%s); downloading it again", record.name, problem)
    if is_offline(offline):
        raise ModelError(
            f"{record.name} is not in the local cache ({path.parent}) and irx is offline (--offline or HF_HUB_OFFLINE=1); "
            "run `irx models download` once while online, or use a bundled model"
        )
    _download(record, path, quiet=quiet)
    problem = check_file(path, pinned=record.sha256, fresh=True)
    if problem:  # pooch checked the hash already; this only records it in irx's hash cache
        remove_cached(path)
        raise ModelError(f"the download of {record.name} failed verification ({problem}); nothing was kept")
    return path


def _download(record: ModelRecord, path: Path, *, quiet: bool) -> None:
    import pooch  # noqa: PLC0415 - only needed for a download
    import requests  # noqa: PLC0415 - pooch's transport

    if path.exists():
        remove_cached(path)  # --force: pooch would otherwise keep a file whose hash matches
    try:
        pooch.retrieve(
            record.url,
            known_hash=f"sha256:{record.sha256}",
            fname=path.name,
            path=path.parent,
            progressbar=not quiet,
        )
    except ValueError as exc:  # pooch: the SHA-256 does not match; its temporary file is gone
        raise ModelError(
            f"{record.url} served a file whose SHA-256 differs from the {record.sha256[:12]}... irx pins for "
            f"{record.name}; irx refused it and nothing was kept ({str(exc).splitlines()[0][:160]})"
        ) from None
    except requests.RequestException as exc:
        raise ModelError(
            f"cannot download {record.name} from {record.url} ({type(exc).__name__}); check the connection, "
            "or use --offline with a cached or bundled model"
        ) from None
