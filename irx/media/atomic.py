"""Atomic file output: write to a temporary file in the destination folder, then rename.

Nothing a user owns is ever half-written: the destination either keeps its old
content (or stays absent) or receives the complete new file. Temporary files
are named ``.<name>.irx-tmp-<pid>-<host><random><suffix>`` so that encoders
that look at the extension still work, and so that leftovers of a killed run
can be recognised and removed by :func:`cleanup_stale_temps`. ``<host>`` (4
hex digits) tells this machine's temps from those of another machine writing
to the same shared folder, whose processes cannot be checked from here.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from irx.errors import IrxError

__all__ = [
    "OutputExistsError",
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_with",
    "cleanup_stale_temps",
    "is_temp_name",
    "owner_is_gone",
    "remove_orphans",
    "short_name",
]

_TEMP_MARK = ".irx-tmp-"
# ".<name>.irx-tmp-<pid>-<8 hex><suffix>"; the suffix is the destination's (may be empty).
_TEMP_RE = re.compile(
    r"^\..*\.irx-tmp-(?P<pid>\d+)-(?P<host>[0-9a-f]{4})[0-9a-f]{4}(?:\.[^./\\]*)?$", re.DOTALL
)
# Keep temp names under the usual 255-byte file name limit even for long destinations.
_MAX_NAME_PART = 120
# Tells this machine's temp and claim files from another machine's on a shared folder.
HOST_TAG = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:4]
# A file of another machine cannot be checked for a live owner: it is stale once untouched this long.
FOREIGN_STALE_SECONDS = 24 * 3600


class OutputExistsError(IrxError, FileExistsError):
    """The destination exists and overwriting was not asked for."""


def is_temp_name(name: str) -> bool:
    """True if ``name`` looks like a temporary file made by :func:`atomic_output`."""
    return _TEMP_RE.match(name) is not None


def _exists_message(dest: Path) -> str:
    return f"{dest}: already exists; use --overwrite to replace it or choose another output"


def short_name(name: str, limit: int = _MAX_NAME_PART) -> str:
    """``name`` in at most ``limit`` bytes of UTF-8, for hidden helper files beside it.

    A long name is cut (never inside a character) and ends with a hash of the whole name, so two long
    names that start alike still get different helper files.
    """
    data = name.encode("utf-8", "surrogateescape")
    if len(data) <= limit:
        return name
    digest = hashlib.sha1(data).hexdigest()[:8]
    return data[: limit - 9].decode("utf-8", "ignore") + "~" + digest


def _create_temp(dest: Path) -> Path:
    """Create an empty, exclusive temp file next to ``dest`` and return its path."""
    name_part = short_name(dest.name)
    suffix = dest.suffix if len(dest.suffix.encode("utf-8", "surrogateescape")) <= 16 else ""
    while True:
        tmp = dest.with_name(
            f".{name_part}{_TEMP_MARK}{os.getpid()}-{HOST_TAG}{secrets.token_hex(2)}{suffix}"
        )
        try:
            # Mode 0o666 lets the umask decide, like a plain open() would; mkstemp's
            # 0o600 would leave every output readable by its owner only.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX only; Windows cannot open folders)."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on folders; the rename is done anyway
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        pass  # best effort: cleanup_stale_temps removes it on the next run


def _commit(tmp: Path, dest: Path, overwrite: bool) -> None:
    """Move ``tmp`` onto ``dest``; without overwrite, never replace a file that appeared meanwhile."""
    if overwrite:
        os.replace(tmp, dest)
        return
    try:
        # link() fails if dest exists, so there is no window between check and rename.
        os.link(tmp, dest)
    except FileExistsError:
        raise OutputExistsError(_exists_message(dest)) from None
    except OSError:
        # Filesystems without hard links (FAT, some network shares): check, then rename.
        if os.path.lexists(dest):
            raise OutputExistsError(_exists_message(dest)) from None
        os.replace(tmp, dest)
        return
    _remove_quietly(tmp)


@contextmanager
def atomic_output(
    dest: Path | str, *, overwrite: bool = False, make_parents: bool = True
) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; rename it onto ``dest`` if the block succeeds.

    The temp file exists (empty) when yielded and ends with ``dest``'s suffix.
    On any exception, KeyboardInterrupt included, the temp file is removed and
    ``dest`` is left as it was. Raises :class:`OutputExistsError` if ``dest``
    exists (checked before and, race-free, at the rename) unless ``overwrite``.
    Missing parent folders are created unless ``make_parents`` is False.
    """
    dest = Path(dest)
    if dest.is_dir():
        raise OutputExistsError(f"{dest}: is a folder; give a file name for the output")
    if not overwrite and os.path.lexists(dest):
        raise OutputExistsError(_exists_message(dest))
    if make_parents:
        dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(dest)
    try:
        yield tmp
        _fsync_file(tmp)
        _commit(tmp, dest, overwrite)
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_dir(dest.parent)


def atomic_write_bytes(dest: Path | str, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``dest`` atomically and return ``dest`` as a Path."""
    dest = Path(dest)
    with atomic_output(dest, overwrite=overwrite) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return dest


def atomic_write_with(dest: Path | str, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary path next to ``dest``, then rename it onto ``dest``
    (for writers that want a path, such as csv, matplotlib or Path.write_text)."""
    dest = Path(dest)
    with atomic_output(dest, overwrite=overwrite) as tmp:
        write(tmp)
    return dest


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":
        # os.kill on Windows would terminate the process; treat other pids as gone.
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    except OSError:
        return False
    return True


def _started_after(pid: int, when: float) -> bool:
    """True if process ``pid`` started after the time ``when`` (so it reuses the pid of a dead one); Linux only."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime"))
        started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return False
    return started > when + 1.0  # btime has one-second resolution


def owner_is_gone(host: str, pid: int, mtime: float) -> bool:
    """Whether the process that made a temp or claim file (last touched at ``mtime``) no longer runs.

    On this machine: its pid is not running, or is running a process started after the file was
    written (a reused pid). Another machine's files are stale only once untouched for a day.
    """
    if host != HOST_TAG:
        return time.time() - mtime > FOREIGN_STALE_SECONDS
    if pid == os.getpid():
        return False
    return not _pid_alive(pid) or _started_after(pid, mtime)


def cleanup_stale_temps(folder: Path | str, *, recursive: bool = False) -> list[Path]:
    """Remove temp files left in ``folder`` by killed runs; return the removed paths.

    Temps whose owner still runs (see :func:`owner_is_gone`; this process included) are
    kept so that a concurrent run in the same folder is not disturbed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    candidates = (
        folder.rglob(f".*{_TEMP_MARK}*")
        if recursive
        else folder.glob(f".*{_TEMP_MARK}*")
    )
    return remove_orphans(candidates, _temp_owner)


def _temp_owner(path: Path) -> tuple[str, int, float] | None:
    """(host, pid, mtime) of one of irx's temp files, None for anything else."""
    match = _TEMP_RE.match(path.name)
    if match is None or path.is_symlink():
        return None
    try:
        info = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return match.group("host"), int(match.group("pid")), info.st_mtime


def remove_orphans(paths: Iterable[Path], owner: Callable[[Path], tuple[str, int, float] | None]) -> list[Path]:
    """Remove the files among ``paths`` whose owner (host, pid, mtime) is known and gone; return them."""
    removed: list[Path] = []
    for path in sorted(paths):
        found = owner(path)
        if found is None or not owner_is_gone(*found):
            continue
        try:
            path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed
