"""What irx knows about its own outputs: a ledger of the files it wrote, and claims on files being written.

The ledger lives in irx's cache folder (``IRX_CACHE_DIR``, else ``~/.cache/irx``), one file per output
folder under ``outputs/``, one JSON line per written file: its name, size and modification time, the
task and the source. A file is irx's own output only while its size and time still match its line (a
file the user replaced or edited is the user's again). irx uses it to replace only its own outputs with
``--overwrite`` and to recognise earlier outputs among the inputs (a shell glob rerun, a folder that
holds earlier outputs). Nothing is written into the user's folders for it.

A claim is a hidden file ``.<output name>.irx-claim`` created exclusively beside an output before it
is worked on and removed when it is done, so that two runs on one folder share the work instead of
both doing every file. A claim whose owner is gone (a killed run) is taken over.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from irx.media.atomic import HOST_TAG, owner_is_gone, remove_orphans, short_name

__all__ = ["Claim", "LedgerEntry", "Ledgers", "cleanup_stale_claims", "forget_folder", "record_output", "try_claim"]

_CLAIM_MARK = ".irx-claim"


def _ledger_file(folder: Path) -> Path:
    from irx.zoo.hub import irx_cache_dir  # noqa: PLC0415 - the zoo's cache rules, imported when first needed

    digest = hashlib.sha256(os.fsencode(folder)).hexdigest()[:24]
    return irx_cache_dir() / "outputs" / f"{digest}.jsonl"


@dataclass(frozen=True)
class LedgerEntry:
    name: str
    size: int
    mtime_ns: int
    inode: int
    task: str
    source: str


def record_output(path: Path, *, task: str, source: Path) -> None:
    """Note in the ledger that irx just wrote ``path`` (best effort: an unwritable cache is not fatal)."""
    try:
        info = path.stat()
        line = json.dumps(
            {
                "name": path.name,
                "size": info.st_size,
                "mtime_ns": info.st_mtime_ns,
                "inode": info.st_ino,
                "task": task,
                "source": str(source.resolve()),
            }
        )
        ledger = _ledger_file(path.parent.resolve())
        ledger.parent.mkdir(parents=True, exist_ok=True)
        # One O_APPEND write per line, so concurrent runs never interleave within a line.
        fd = os.open(ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            os.write(fd, (line + "\n").encode("utf-8", "surrogateescape"))
        finally:
            os.close(fd)
    except OSError:
        pass


def forget_folder(folder: Path) -> None:
    """Drop the ledger of ``folder`` (a temporary folder irx removes itself, as in stdin/stdout mode)."""
    try:
        _ledger_file(folder.resolve()).unlink(missing_ok=True)
    except OSError:
        pass


class Ledgers:
    """Reads the ledgers of the folders a run looks at, each once."""

    def __init__(self) -> None:
        self._folders: dict[Path, dict[str, LedgerEntry]] = {}

    def _entries(self, folder: Path) -> dict[str, LedgerEntry]:
        """The last entry per name for ``folder``."""
        if folder in self._folders:
            return self._folders[folder]
        entries: dict[str, LedgerEntry] = {}
        try:
            text = _ledger_file(folder).read_bytes().decode("utf-8", "surrogateescape")
        except OSError:
            text = ""
        for line in text.splitlines():
            try:
                data = json.loads(line)
                entry = LedgerEntry(
                    str(data["name"]),
                    int(data["size"]),
                    int(data["mtime_ns"]),
                    int(data["inode"]),
                    str(data["task"]),
                    str(data["source"]),
                )
            except (ValueError, KeyError, TypeError):
                continue  # a damaged line only forgets that one output
            entries[entry.name] = entry
        self._folders[folder] = entries
        return entries

    def entry(self, path: Path) -> LedgerEntry | None:
        """The entry of ``path`` if it is an output irx wrote and nobody changed since, else None."""
        try:
            info = path.stat()
            folder = path.parent.resolve()
        except OSError:
            return None
        entry = self._entries(folder).get(path.name)
        if entry is None or (entry.size, entry.mtime_ns, entry.inode) != (info.st_size, info.st_mtime_ns, info.st_ino):
            return None
        return entry


# ---------------------------------------------------------------------------------------- claims
def _claim_path(output: Path) -> Path:
    return output.with_name(f".{short_name(output.name)}{_CLAIM_MARK}")


@dataclass
class Claim:
    path: Path

    def release(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass


def _claim_owner(path: Path) -> tuple[str, int, float] | None:
    try:
        host, pid = path.read_text().split()
        return host, int(pid), path.stat().st_mtime
    except (OSError, ValueError):
        return None


def try_claim(output: Path) -> Claim | int:
    """Claim ``output`` for this process; if a live run holds it, return that run's pid instead."""
    path = _claim_path(output)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            owner = _claim_owner(path)
            if owner is not None and not owner_is_gone(*owner):
                return owner[1]
            if owner is None and _young(path):
                return 0  # being written by its owner right now
            try:
                os.unlink(path)  # a killed run's claim: take it over
            except FileNotFoundError:
                pass
            continue
        except FileNotFoundError:
            output.parent.mkdir(parents=True, exist_ok=True)
            continue
        try:
            os.write(fd, f"{HOST_TAG} {os.getpid()}\n".encode())
        finally:
            os.close(fd)
        return Claim(path)
    return 0


def _young(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime < 10
    except OSError:
        return False


def cleanup_stale_claims(folder: Path) -> list[Path]:
    """Remove claims left in ``folder`` by killed runs; return the removed paths."""
    try:
        candidates = list(folder.glob(f".*{_CLAIM_MARK}"))
    except OSError:
        return []
    return remove_orphans(candidates, _claim_owner)
