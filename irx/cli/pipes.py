"""`irx denoise - -o -`: one image from stdin to stdout, through the same run as files.

The bytes read from stdin go to a private temporary folder under the name their format implies, the run
writes its output there, and the output's bytes are copied to stdout. While the run goes on, file
descriptor 1 points at stderr, so nothing a library prints can mix with the image; stdout gets the image
and nothing else (nothing at all when the restore fails).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from irx.errors import InputError, UsageError
from irx.summary import RunSummary

STDIO = "-"


@dataclass
class PipeRun:
    """Where a piped run reads and writes, inside its temporary folder."""

    inputs: list[str]
    output: Path | None
    to_stdout: bool
    names: dict[str, str]  # temporary path -> the name the user knows ("-")


def wants_pipe(inputs: list[str], output: Path | None) -> bool:
    return STDIO in inputs or (output is not None and str(output) == STDIO)


@contextmanager
def piped(inputs: list[str], output: Path | None, out_format: str | None) -> Iterator[PipeRun]:
    """Set up a piped run in a temporary folder, removed afterwards."""
    from irx.media.formats import sniff_extension  # noqa: PLC0415
    from irx.media.outputs import forget_folder  # noqa: PLC0415
    from irx.media.sources import FORMAT_SUFFIX  # noqa: PLC0415

    if len(inputs) != 1:
        raise UsageError("stdin/stdout mode takes exactly one input (`-` for stdin, or one file with -o -)")
    to_stdout = inputs[0] == STDIO or str(output) == STDIO
    with tempfile.TemporaryDirectory(prefix="irx-pipe-") as tmp:
        folder = Path(tmp)
        names: dict[str, str] = {}
        source = Path(inputs[0])
        if inputs[0] == STDIO:
            data = sys.stdin.buffer.read()
            if not data:
                raise InputError("stdin: no image data (0 bytes) on stdin")
            ext = sniff_extension(data)
            if ext is None:
                raise InputError("stdin: not a recognised image (PNG, JPEG, WebP, TIFF, BMP, AVIF, HEIC, JXL, GIF, EXR)")
            source = folder / f"stdin{ext}"
            source.write_bytes(data)
            names[str(source)] = STDIO
        target = output
        if to_stdout:
            ext = FORMAT_SUFFIX[out_format.lower()] if out_format else source.suffix
            target = folder / f"stdout{ext}"
        try:
            yield PipeRun([str(source)], target, to_stdout, names)
        finally:
            forget_folder(folder)  # the ledger need not remember a folder that is about to vanish


@contextmanager
def stdout_for_data_only() -> Iterator[Callable[[bytes], None]]:
    """Point fd 1 (and sys.stdout) at stderr while the run goes on; yield a writer to the real stdout."""
    real = sys.stdout
    real.flush()
    try:
        fd = real.fileno()
    except (OSError, ValueError, AttributeError):  # a test runner's captured stdout: no descriptor to move
        fd = None
    saved = os.dup(fd) if fd is not None else None
    if fd is not None:
        os.dup2(sys.stderr.fileno(), fd)
    sys.stdout = sys.stderr
    pending: list[bytes] = []
    try:
        yield pending.append
    finally:
        sys.stdout.flush()
        sys.stdout = real
        if saved is not None and fd is not None:
            os.dup2(saved, fd)
            os.close(saved)
        buffer = getattr(real, "buffer", None)
        for chunk in pending:
            if buffer is not None:
                buffer.write(chunk)
            else:
                real.write(chunk.decode("latin-1"))
        real.flush()


def rename_in_summary(summary: RunSummary, names: dict[str, str]) -> None:
    """Name the temporary stdin file `-` in the summary, as the user wrote it."""
    summary.processed[:] = [names.get(p, p) for p in summary.processed]
    summary.skipped[:] = [names.get(p, p) for p in summary.skipped]
    for entry in (*summary.failed, *summary.warnings):
        path = entry.get("path", "")
        entry["path"] = names.get(path, path)
        for temp, shown in names.items():
            entry["reason"] = entry.get("reason", "").replace(temp, shown)


class RenamedReporter:
    """A reporter that shows the temporary stdin file as `-`, whatever the method."""

    def __init__(self, inner: object, names: dict[str, str]) -> None:
        self.inner = inner
        self.names = names

    def __getattr__(self, attr: str) -> Callable[..., object]:
        method = getattr(self.inner, attr)

        def call(*args: object, **kwargs: object) -> object:
            shown = [self.names.get(a, a) if isinstance(a, str) else a for a in args]
            return method(*shown, **kwargs)

        return call
