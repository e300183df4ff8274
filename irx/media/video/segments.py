"""Segments and resume: the video encoded in pieces of N frames in a work folder, then joined by remuxing.

Each segment has its own encoder (so it starts with a keyframe) and is written as a small packet file;
a manifest records the source and the plan, so a rerun with resume keeps the finished segments only
when nothing changed.
"""

from __future__ import annotations

import heapq
import io
import json
import os
import shutil
import struct
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from irx._stages import Stopped
from irx.errors import IrxError
from irx.media.atomic import atomic_output, cleanup_stale_temps
from irx.media.video.flow import FrameRestorer, _mux_copied
from irx.media.video.plan import _add_video_stream, _from_engine, _open_output, _Plan
from irx.media.video.probe import _open_input, _video_stream

DEFAULT_SEGMENT_SECONDS = 60
_SEG_MAGIC = b"IRXSEG1\n"
_SEG_RECORD = struct.Struct("<qqqiI")  # pts, dts, duration, flags, size
_NO_TS = -(2**63)


class _SegmentWriter:
    """One segment: a fresh encoder (so it starts with a keyframe) writing packets to a file."""

    def __init__(self, path: Path, plan: _Plan, first_index: int) -> None:
        self.plan = plan
        self.first_index = first_index
        self.frames = 0
        self._stack = ExitStack()
        tmp = self._stack.enter_context(atomic_output(path, overwrite=True))
        self._file = open(tmp, "wb")  # noqa: SIM115 - closed in finish/abort
        self._file.write(_SEG_MAGIC)
        # A container that is never written gives the encoder the same settings as the final output
        # (e.g. global headers for mp4/mkv), so its packets can be muxed there as they are.
        self._dummy = av.open(io.BytesIO(), "w", format=plan.muxer)
        self._stream = _add_video_stream(self._dummy, plan)

    def encode(self, image: np.ndarray, pts: int, duration: int) -> None:
        self._write(self._stream.encode(_from_engine(image, self.plan, pts, duration)))
        self.frames += 1

    def _write(self, packets: list[Any]) -> None:
        for packet in packets:
            data = bytes(packet)
            dts = packet.dts if packet.dts is not None else _NO_TS
            pts = packet.pts if packet.pts is not None else _NO_TS
            flags = 1 if packet.is_keyframe else 0
            self._file.write(b"P" + _SEG_RECORD.pack(pts, dts, packet.duration or 0, flags, len(data)) + data)

    def finish(self) -> None:
        self._write(self._stream.encode(None))
        trailer = json.dumps(
            {
                "first_frame": self.first_index,
                "frames": self.frames,
                "extradata": (self._stream.codec_context.extradata or b"").hex(),
            }
        ).encode()
        self._file.write(b"E" + struct.pack("<I", len(trailer)) + trailer)
        self._file.close()
        self._dummy.close()
        self._stack.close()  # renames the segment into place

    def abort(self) -> None:
        for close in (self._file.close, self._dummy.close):
            with suppress(Exception):  # the segment is discarded anyway
                close()
        self._stack.__exit__(Stopped, Stopped(), None)  # atomic_output removes the temp file


class _SegmentSink:
    def __init__(self, work: Path, plan: _Plan, segment_frames: int) -> None:
        self.work, self.plan, self.n = work, plan, segment_frames
        self.current: _SegmentWriter | None = None
        self.current_number = -1
        self.written = 0

    def frame(self, index: int, image: np.ndarray, pts: int, duration: int) -> None:
        number = index // self.n
        if self.current is None or number != self.current_number:
            if self.current is not None:
                self.current.finish()
                self.written += 1
            self.current = _SegmentWriter(_segment_path(self.work, number), self.plan, index)
            self.current_number = number
        self.current.encode(image, pts, duration)

    def packet(self, packet: Any, index: int) -> None:  # copied streams are taken from the source when joining
        pass

    def finish(self) -> None:
        if self.current is not None:
            self.current.finish()
            self.written += 1
            self.current = None

    def abort(self) -> None:
        if self.current is not None:
            self.current.abort()
            self.current = None


def _segment_path(work: Path, number: int) -> Path:
    return work / f"seg-{number:06d}.irxseg"


def _read_segment(path: Path) -> tuple[dict[str, Any], Iterator[tuple[int, int, int, int, bytes]]]:
    """Return a segment's trailer and an iterator over its packets (pts, dts, duration, flags, data)."""
    with open(path, "rb") as f:
        if f.read(len(_SEG_MAGIC)) != _SEG_MAGIC:
            raise IrxError(f"{path}: not an irx segment; delete the folder {path.parent} and run again")
        while True:
            tag = f.read(1)
            if tag == b"P":
                _, _, _, _, size = _SEG_RECORD.unpack(f.read(_SEG_RECORD.size))
                f.seek(size, os.SEEK_CUR)
            elif tag == b"E":
                (length,) = struct.unpack("<I", f.read(4))
                trailer = json.loads(f.read(length))
                break
            else:
                raise IrxError(f"{path}: damaged irx segment; delete the folder {path.parent} and run again")

    def packets() -> Iterator[tuple[int, int, int, int, bytes]]:
        with open(path, "rb") as f:
            f.seek(len(_SEG_MAGIC))
            while f.read(1) == b"P":
                pts, dts, duration, flags, size = _SEG_RECORD.unpack(f.read(_SEG_RECORD.size))
                yield pts, dts, duration, flags, f.read(size)

    return trailer, packets()


def _work_folder(dst: Path) -> Path:
    return dst.parent / f".{dst.name}.irx-segments"


def _manifest(src: Path, plan: _Plan, segment_frames: int, scale: int, engine: FrameRestorer) -> dict[str, Any]:
    stat = src.stat()
    return {
        "version": 1,
        "source": str(src.resolve()),
        "source_size": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
        "segment_frames": segment_frames,
        "scale": scale,
        # An engine may say which model and settings it runs, so a resume never mixes two models.
        "engine": str(getattr(engine, "fingerprint", None)),
        "plan": plan.fingerprint(),
    }


def _finished_segments(work: Path, segment_frames: int) -> tuple[int, bool]:
    """Count the finished segments from the first one on; True if the last of them ends the video."""
    count = 0
    ended = False
    while _segment_path(work, count).is_file():
        trailer, _ = _read_segment(_segment_path(work, count))
        count += 1
        if trailer["frames"] < segment_frames:
            ended = True
            break
    return count, ended


def _prepare_work(work: Path, manifest: dict[str, Any], resume: bool, warnings: list[str]) -> tuple[int, bool]:
    """Set up the work folder; return (finished segments to keep, whether they cover the whole video)."""
    manifest_path = work / "manifest.json"
    if work.is_dir() and resume:
        cleanup_stale_temps(work)
        try:
            previous = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            previous = None
        # Compare through JSON so tuples and lists (and other round-trip changes) do not differ.
        wanted = json.loads(json.dumps(manifest))
        if previous is not None and {k: v for k, v in previous.items() if k != "total_frames"} == wanted:
            count, ended = _finished_segments(work, manifest["segment_frames"])
            total = previous.get("total_frames")
            if total is not None and count * manifest["segment_frames"] >= total:
                ended = True
            return count, ended
        warnings.append("the unfinished segments of an earlier run used other settings or another source; started over")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    _write_json(manifest_path, manifest)
    return 0, False


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


def _join_segments(
    dst: Path, work: Path, count: int, plan: _Plan, src: Path, keep_audio: bool, overwrite: bool
) -> tuple[int, list[str], dict[str, int]]:
    """Remux the video segments and the source's other streams into dst (no re-encoding)."""
    warnings: list[str] = []
    trailers = []
    for number in range(count):
        trailer, _ = _read_segment(_segment_path(work, number))
        trailers.append(trailer)
    with _open_input(src) as source, atomic_output(dst, overwrite=overwrite) as tmp:
        video_in = _video_stream(source, src)
        out, video, streams, stream_warnings, copied = _open_output(tmp, plan, source, video_in, keep_audio)
        warnings += stream_warnings
        try:
            out.start_encoding()  # opens the encoder: the same settings give the same stream headers
            extradata = (video.codec_context.extradata or b"").hex()
            if any(t["extradata"] != extradata for t in trailers):
                raise IrxError(
                    f"the segments in {work} do not match this encoder build; delete that folder and run again"
                )
            tb = plan.time_base

            def video_packets() -> Iterator[tuple[Fraction, int, int, Any]]:
                last_dts: int | None = None
                for number in range(count):
                    _, packets = _read_segment(_segment_path(work, number))
                    for pts, dts, duration, flags, data in packets:
                        packet = av.Packet(data)
                        packet.pts = None if pts == _NO_TS else pts
                        if dts == _NO_TS:
                            dts = pts
                        # Each segment's encoder starts its own decode clock; keep dts increasing across joins.
                        if last_dts is not None and dts <= last_dts:
                            dts = last_dts + 1
                        last_dts = dts
                        packet.dts = dts
                        packet.duration = duration
                        packet.is_keyframe = bool(flags & 1)
                        packet.time_base = tb
                        yield dts * tb, 0, -1, packet

            def copied_packets() -> Iterator[tuple[Fraction, int, int, Any]]:
                if not streams:
                    return
                wanted = [s for s in source.streams if s.index in streams]
                for packet in source.demux(wanted):
                    if not packet.size:
                        continue
                    stamp = packet.dts if packet.dts is not None else packet.pts
                    when = stamp * packet.time_base if stamp is not None else Fraction(0)
                    yield when, 1, packet.stream.index, packet

            bad: dict[int, int] = {}
            # Interleave by time so the muxer does not have to hold one stream back.
            merged = heapq.merge(video_packets(), copied_packets(), key=lambda t: (t[0], t[1]))
            for _, _, index, packet in merged:
                if index < 0:
                    packet.stream = video
                    out.mux(packet)
                else:
                    packet.stream = streams[index]
                    _mux_copied(out, packet, index, bad)
            for index, n in bad.items():
                warnings.append(f"{n} packets of stream #{index} had invalid timestamps and were left out")
            out.close()
        except BaseException:
            with suppress(Exception):  # the temp file is discarded anyway
                out.close()
            raise
    return sum(t["frames"] for t in trailers), warnings, copied


