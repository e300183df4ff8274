"""Probing a video: what the file holds (streams, size, pixel format, frame rate, rotation), read with PyAV.

Also the small helpers every other part uses to open an input and find the video stream in it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from irx.errors import InputError

VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"})


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    container: str
    codec: str
    frames: int | None  # from the header; None if the container does not say
    fps: Fraction | None  # average frame rate
    time_base: Fraction
    duration: float | None  # seconds
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    rotation: int  # degrees counter-clockwise from the display matrix
    audio_streams: int
    subtitle_streams: int
    data_streams: int
    stream_index: int  # index of the video stream that is restored
    display_matrix: tuple[int, ...] | None = None

    @property
    def estimated_frames(self) -> int | None:
        """The header's frame count, else duration x frame rate, else None."""
        if self.frames:
            return self.frames
        if self.duration and self.fps:
            return max(1, round(self.duration * float(self.fps)))
        return None



def is_video_path(path: Path | str) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _ff_message(error: BaseException) -> str:
    return str(getattr(error, "strerror", None) or error).strip().rstrip(".")


def _open_input(path: Path) -> Any:
    if not path.is_file():
        raise InputError(f"{path}: no such video file")
    try:
        return av.open(str(path), metadata_errors="replace")
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as error:
        raise InputError(
            f"{path}: cannot read as a video ({_ff_message(error)}); check that the file is complete and not damaged"
        ) from None


def _video_stream(container: Any, path: Path) -> Any:
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise InputError(f"{path}: has no video stream")


def _bit_depth(pix_fmt: str) -> int:
    try:
        return max(component.bits for component in av.VideoFormat(pix_fmt).components) or 8
    except (ValueError, TypeError):
        return 8


def _tag_seconds(metadata: Any) -> float | None:
    """The per-stream DURATION tag Matroska files carry ("HH:MM:SS.fraction")."""
    value = metadata.get("DURATION") or metadata.get("duration")
    if not value:
        return None
    try:
        hours, minutes, seconds = value.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def probe_video(path: Path | str) -> VideoInfo:
    """Read a video's header and first frame; raise InputError if it cannot be decoded."""
    path = Path(path)
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        if stream.codec_context is None:
            raise InputError(f"{path}: no decoder for its video codec in this FFmpeg build")
        first = None
        try:
            for first in container.decode(stream):
                break
        except (av.error.FFmpegError, ValueError) as error:
            raise InputError(
                f"{path}: cannot decode its video ({_ff_message(error)}); the file may be damaged"
            ) from None
        if first is None:
            raise InputError(f"{path}: contains no decodable video frame; the file may be damaged or truncated")
        matrix = None
        for side in first.side_data:
            if side.type == av.sidedata.sidedata.Type.DISPLAYMATRIX and len(bytes(side)) == 36:
                matrix = struct.unpack("<9i", bytes(side))
        rate = stream.average_rate or stream.guessed_rate
        duration = None
        if stream.duration:
            duration = float(stream.duration * stream.time_base)
        elif _tag_seconds(stream.metadata) is not None:
            duration = _tag_seconds(stream.metadata)
        elif container.duration:
            duration = container.duration / 1_000_000
        pix_fmt = first.format.name
        return VideoInfo(
            path=path,
            container=container.format.name,
            codec=stream.codec_context.name,
            frames=stream.frames or None,
            fps=Fraction(rate) if rate else None,
            time_base=Fraction(stream.time_base),
            duration=duration,
            width=first.width,
            height=first.height,
            pix_fmt=pix_fmt,
            bit_depth=_bit_depth(pix_fmt),
            rotation=round(first.rotation or 0),
            audio_streams=len(container.streams.audio),
            subtitle_streams=len(container.streams.subtitles),
            data_streams=len(container.streams.data),
            stream_index=stream.index,
            display_matrix=matrix,
        )


