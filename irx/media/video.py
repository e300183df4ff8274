"""Video restoration in one process: decode -> restore -> encode with PyAV.

Three stages overlap, joined by bounded queues so memory does not grow with the video's length:

    decode thread:  demux + decode + convert to float32 RGB  --q_in-->
    calling thread: batches of frames through ``engine.restore``  --q_out-->
    encode thread:  convert back + encode + mux (or write a segment)

Every decoded frame is written once, in order, with its own timestamp (variable frame rate kept).
Audio, subtitle, data and attachment streams are copied packet by packet (no re-encoding) and
container/stream metadata, chapters, colour tags and the rotation matrix are kept.

Output goes to a temporary file renamed onto ``dst`` at the end (``atomic_output``). With
``segment_frames > 0`` (or ``resume=True``) the video is instead encoded as segments of N frames,
each by a fresh encoder (so each starts with a keyframe) into a hidden work folder beside ``dst``;
a rerun with ``resume=True`` keeps the finished segments and restarts at the first unfinished one.
The segments are then joined by remuxing (no re-encode) together with the copied streams.
See docs/video.md for the details and the reasons.
"""

from __future__ import annotations

import errno
import heapq
import io
import json
import os
import queue
import re
import shutil
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import numpy as np

from irx.errors import InputError, IrxError, UsageError
from irx.media.atomic import atomic_output, cleanup_stale_temps

__all__ = [
    "VIDEO_EXTENSIONS",
    "Engine",
    "VideoInfo",
    "VideoOptions",
    "VideoResult",
    "available_video_encoders",
    "frames_in_flight_bound",
    "is_video_path",
    "probe_video",
    "restore_video",
]

VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"})
# dst extension -> libavformat muxer
_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
# muxer -> (encoders tried for 8-bit, encoders tried for >8-bit), first available wins.
# AVI gets the lossless FFV1: AVI is mostly used for capture/archival and cannot hold B-frames well.
_DEFAULT_ENCODERS = {
    "mp4": (("libx264", "libx265", "libsvtav1", "mpeg4"), ("libx265", "libx264", "libsvtav1")),
    "mov": (("libx264", "libx265", "libsvtav1", "mpeg4"), ("libx265", "libx264", "libsvtav1")),
    "matroska": (
        ("libx264", "libx265", "libsvtav1", "libvpx-vp9", "ffv1"),
        ("libx265", "libx264", "libsvtav1", "ffv1"),
    ),
    "webm": (("libvpx-vp9", "libsvtav1"), ("libvpx-vp9", "libsvtav1")),
    "avi": (("ffv1", "mpeg4"), ("ffv1",)),
}
KNOWN_ENCODERS = ("libx264", "libx265", "libsvtav1", "libvpx-vp9", "ffv1", "mpeg4")
# Visually near-transparent defaults: a restoration tool should not throw its work away in the encoder.
_DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libsvtav1": 28, "libvpx-vp9": 28, "mpeg4": 3}
_PRESET_OPTION = {"libx264": "preset", "libx265": "preset", "libsvtav1": "preset", "libvpx-vp9": "cpu-used"}
# The presets each encoder takes, checked up front: x264 prints its own error lines for a bad one.
_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
_PRESETS = {
    "libx264": _X26X_PRESETS,
    "libx265": _X26X_PRESETS,
    "libsvtav1": tuple(str(n) for n in range(-2, 14)),
    "libvpx-vp9": tuple(str(n) for n in range(-8, 9)),
}
# Input pixel formats kept as they are when the encoder supports them (others fall back by bit depth).
_KEEP_PIX_FMTS = frozenset(
    {
        "yuv420p",
        "yuv422p",
        "yuv444p",
        "yuv420p10le",
        "yuv422p10le",
        "yuv444p10le",
        "yuv420p12le",
        "yuv422p12le",
        "yuv444p12le",
        "gray",
        "gray10le",
        "gray12le",
        "gbrp",
        "gbrp10le",
        "gbrp12le",
        "bgr0",
    }
)
# mkv statistics tags and muxer-written tags that would be stale on the re-encoded video.
_STALE_TAGS = frozenset(
    {
        "duration",
        "encoder",
        "bps",
        "number_of_frames",
        "number_of_bytes",
        "major_brand",
        "minor_version",
        "compatible_brands",
    }
)
DEFAULT_SEGMENT_SECONDS = 60
_SEG_MAGIC = b"IRXSEG1\n"
_SEG_RECORD = struct.Struct("<qqqiI")  # pts, dts, duration, flags, size
_NO_TS = -(2**63)
_SEG_NAME = re.compile(r"^seg-(\d{6})\.irxseg$")
_MAX_WARNINGS = 50


class Engine(Protocol):
    """What restore_video needs from a model runner."""

    scale: int

    def restore(self, images: Sequence[np.ndarray]) -> list[np.ndarray]: ...


@dataclass
class VideoOptions:
    """How to encode the restored video (None means: a sensible default for the container)."""

    codec: str | None = None  # libx264, libx265, libsvtav1, libvpx-vp9, ffv1, mpeg4
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None  # default: the input's (bit depth kept)
    keep_audio: bool = True  # False drops audio; subtitles, data and attachments are always kept
    batch_size: int = 4
    resume: bool = False
    segment_frames: int = 0  # >0: encode in segments of N frames (resume=True alone picks ~60 s)
    overwrite: bool = False


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


@dataclass
class VideoResult:
    path: Path
    frames: int  # frames written to dst
    width: int
    height: int
    codec: str
    pix_fmt: str
    container: str
    copied_streams: dict[str, int] = field(default_factory=dict)  # type -> count
    decode_errors: int = 0  # packets the decoder rejected (those frames are missing)
    damaged_frames: int = 0  # frames decoded with errors (concealed, written)
    warnings: list[str] = field(default_factory=list)
    resumed_frames: int = 0  # frames taken from segments of an earlier run
    segments: int = 0
    max_frames_in_flight: int = 0  # decoded but not yet encoded; <= frames_in_flight_bound(batch_size)
    queue_high_water: dict[str, int] = field(default_factory=dict)
    # seconds: decode/engine/encode busy, and the calling thread waiting on decode or encode
    stage_seconds: dict[str, float] = field(default_factory=dict)


def frames_in_flight_bound(batch_size: int) -> int:
    """Most frames held in memory at once by restore_video (queues + batch + encoder hand-off)."""
    # q_in (2B) + the two the decoder holds (one waits for the next frame's timestamp) + the batch
    # being restored (B) + q_out (2 batches) + the batch being encoded (B). The encoder's own
    # look-ahead is bounded by its settings and not counted.
    return 6 * batch_size + 2


def is_video_path(path: Path | str) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def available_video_encoders() -> list[str]:
    """The encoders irx knows how to drive that this PyAV's FFmpeg has."""
    return [name for name in KNOWN_ENCODERS if _encoder(name) is not None]


# ----------------------------------------------------------------------------------------------
# probing


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


# ----------------------------------------------------------------------------------------------
# output plan


@dataclass(frozen=True)
class _Plan:
    muxer: str
    codec: str
    pix_fmt: str
    bit_depth: int  # of the output pixel format
    in_rgb: str  # rgb24 or rgb48le: how decoded frames are handed to the engine
    width: int
    height: int
    rate: Fraction | None
    time_base: Fraction  # encoder time base; output pts are in it
    codec_options: dict[str, str]
    container_options: dict[str, str]
    matrix: str  # swscale YUV matrix, the same both ways so colours survive the round trip
    in_range: str  # MPEG (limited) or JPEG (full) for the decoded frames
    out_range: str  # the same for the encoded frames
    color_tags: tuple[int, int, int, int]  # range, primaries, trc, space copied from the input
    sample_aspect_ratio: Fraction | None
    display_matrix: tuple[int, ...] | None
    qscale: int | None = None  # mpeg4 only

    def fingerprint(self) -> dict[str, Any]:
        data = asdict(self)
        data["rate"] = str(self.rate)
        data["time_base"] = str(self.time_base)
        data["sample_aspect_ratio"] = str(self.sample_aspect_ratio)
        return data


def _encoder(name: str) -> Any | None:
    try:
        codec = av.Codec(name, "w")
    except (ValueError, av.error.FFmpegError):
        return None
    return codec if codec.type == "video" else None


def _muxer_accepts(muxer: str, codec: str) -> bool:
    probe = av.open(io.BytesIO(), "w", format=muxer)
    try:
        probe.add_stream(codec)
        return True
    except ValueError:
        return False
    finally:
        probe.close()


def _formats(codec: str) -> list[str]:
    found = _encoder(codec)
    return [fmt.name for fmt in (found.video_formats or [])] if found else []


def _is_rgb(pix_fmt: str) -> bool:
    try:
        return bool(av.VideoFormat(pix_fmt).is_rgb)
    except (ValueError, TypeError):
        return False


def _pick_pix_fmt(codec: str, info: VideoInfo, options: VideoOptions, warnings: list[str]) -> str:
    formats = _formats(codec)
    if options.pix_fmt:
        if formats and options.pix_fmt not in formats:
            raise UsageError(
                f"encoder {codec} cannot write pixel format {options.pix_fmt}; it supports: {', '.join(formats)}"
            )
        return options.pix_fmt
    source = info.pix_fmt.replace("yuvj", "yuv")
    if source in formats and source in _KEEP_PIX_FMTS:
        return source
    if info.bit_depth > 8:
        for candidate in ("yuv420p10le", "yuv420p12le", "yuv420p16le"):
            if candidate in formats:
                return candidate
        warnings.append(f"encoder {codec} cannot store {info.bit_depth}-bit video; the output is 8-bit")
    if "yuv420p" in formats or not formats:
        return "yuv420p"
    return formats[0]


def _pick_codec(muxer: str, ext: str, info: VideoInfo, options: VideoOptions) -> str:
    if options.codec:
        if _encoder(options.codec) is None:
            raise UsageError(
                f"encoder {options.codec!r} is not available in this PyAV/FFmpeg build; "
                f"available: {', '.join(available_video_encoders()) or 'none'}"
            )
        if not _muxer_accepts(muxer, options.codec):
            raise UsageError(
                f"{options.codec} video cannot be stored in {ext} files; choose another --codec or output container"
            )
        return options.codec
    wanted_depth = _bit_depth(options.pix_fmt) if options.pix_fmt else info.bit_depth
    eight_bit, high_bit = _DEFAULT_ENCODERS[muxer]
    usable = [name for name in (high_bit if wanted_depth > 8 else eight_bit) if _encoder(name) is not None]
    if wanted_depth > 8:
        for name in usable:
            if any(_bit_depth(fmt) > 8 and fmt.startswith(("yuv4", "gbrp", "gray")) for fmt in _formats(name)):
                return name
        usable += [name for name in eight_bit if _encoder(name) is not None]
    if not usable:
        raise UsageError(
            f"no video encoder for {ext} files in this PyAV/FFmpeg build (tried {', '.join(eight_bit)}); "
            "choose another output container"
        )
    return usable[0]


def _sws_matrix(space: int, height: int) -> str:
    # AVColorSpace values -> swscale matrix; unspecified follows what players assume (HD: BT.709).
    if space == 1:
        return "ITU709"
    if space in (5, 6):
        return "ITU601"
    if space == 7:
        return "SMPTE240M"
    if space in (9, 10):
        return "BT2020"
    if space == 4:
        return "FCC"
    return "ITU709" if height >= 720 else "ITU601"


def _plan_output(info: VideoInfo, stream: Any, dst: Path, scale: int, options: VideoOptions) -> tuple[_Plan, list[str]]:
    ext = dst.suffix.lower()
    muxer = _MUXERS.get(ext)
    if muxer is None:
        raise UsageError(
            f"{dst}: unknown video extension {ext or '(none)'}; use one of {', '.join(sorted(VIDEO_EXTENSIONS))}"
        )
    warnings: list[str] = []
    codec = _pick_codec(muxer, ext, info, options)
    pix_fmt = _pick_pix_fmt(codec, info, options, warnings)
    depth = _bit_depth(pix_fmt)
    rate = info.fps
    time_base = info.time_base
    # AVI has no timestamps of its own (one chunk per tick), and MPEG-4 part 2 limits the time base.
    if (muxer == "avi" or (codec == "mpeg4" and time_base.denominator > 65535)) and rate:
        time_base = 1 / rate.limit_denominator(65535)
    codec_options: dict[str, str] = {}
    crf = options.crf if options.crf is not None else _DEFAULT_CRF.get(codec)
    qscale = None
    if codec == "mpeg4":
        qscale = max(1, min(31, crf or 3))
    elif codec == "ffv1":
        if options.crf is not None:
            warnings.append("ffv1 is lossless; --crf is ignored")
        codec_options.update({"level": "3", "slicecrc": "1"})
    elif crf is not None:
        codec_options["crf"] = str(crf)
    if codec == "libx265":
        codec_options["x265-params"] = "log-level=error"
    if codec == "libvpx-vp9":
        codec_options["row-mt"] = "1"
    if codec == "libsvtav1":
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner to stderr otherwise
    if options.preset is not None:
        key = _PRESET_OPTION.get(codec)
        if key is None:
            raise UsageError(f"encoder {codec} has no presets; drop --preset")
        if str(options.preset) not in _PRESETS[codec]:
            raise UsageError(f"{codec} has no preset {options.preset!r}; choose one of: {', '.join(_PRESETS[codec])}")
        codec_options[key] = str(options.preset)
    container_options: dict[str, str] = {}
    if muxer in ("mp4", "mov") and time_base.numerator == 1:
        # Otherwise the mp4 muxer picks its own track time base and timestamps get rounded.
        container_options["video_track_timescale"] = str(time_base.denominator)
    cc = stream.codec_context
    # RGB has no limited range; YUV keeps the input's range both ways so levels do not shift.
    yuv_range = "JPEG" if (int(cc.color_range or 0) == 2 or info.pix_fmt.startswith("yuvj")) else "MPEG"
    in_range = "JPEG" if _is_rgb(info.pix_fmt) else yuv_range
    out_range = "JPEG" if _is_rgb(pix_fmt) else yuv_range
    tags = (
        2 if out_range == "JPEG" else int(cc.color_range or 0),
        int(cc.color_primaries or 2),
        int(cc.color_trc or 2),
        int(cc.colorspace or 2),
    )
    if _is_rgb(pix_fmt):
        tags = (2, tags[1], tags[2], 0)  # AVCOL_SPC_RGB
    sar = stream.sample_aspect_ratio
    plan = _Plan(
        muxer=muxer,
        codec=codec,
        pix_fmt=pix_fmt,
        bit_depth=depth,
        in_rgb="rgb48le" if info.bit_depth > 8 else "rgb24",
        width=info.width * scale,
        height=info.height * scale,
        rate=rate,
        time_base=time_base,
        codec_options=codec_options,
        container_options=container_options,
        matrix=_sws_matrix(tags[3], info.height),
        in_range=in_range,
        out_range=out_range,
        color_tags=tags,
        sample_aspect_ratio=Fraction(sar) if sar else None,
        display_matrix=info.display_matrix,
        qscale=qscale,
    )
    return plan, warnings


def _add_video_stream(container: Any, plan: _Plan) -> Any:
    stream = container.add_stream(plan.codec, rate=plan.rate or 25, options=dict(plan.codec_options))
    stream.width, stream.height = plan.width, plan.height
    stream.pix_fmt = plan.pix_fmt
    stream.time_base = plan.time_base
    cc = stream.codec_context
    cc.time_base = plan.time_base
    # Without this flag FFmpeg's encoders drop the frame durations we set (packets get duration 0).
    cc.flags |= av.codec.context.Flags.frame_duration
    if plan.sample_aspect_ratio:
        cc.sample_aspect_ratio = plan.sample_aspect_ratio
    cc.color_range, cc.color_primaries, cc.color_trc, cc.colorspace = plan.color_tags
    if plan.qscale is not None:
        cc.qscale = True
        cc.global_quality = plan.qscale * 118  # FF_QP2LAMBDA
    if plan.display_matrix:
        stream.set_display_matrix(list(plan.display_matrix))
    return stream


def _to_engine(frame: Any, plan: _Plan) -> np.ndarray:
    array = frame.to_ndarray(
        format=plan.in_rgb,
        src_colorspace=plan.matrix,
        dst_colorspace=plan.matrix,
        src_color_range=plan.in_range,
        dst_color_range="JPEG",
    )
    scale = np.float32(1 / 65535 if plan.in_rgb == "rgb48le" else 1 / 255)
    return array.astype(np.float32) * scale


def _from_engine(image: np.ndarray, plan: _Plan, pts: int, duration: int) -> Any:
    if plan.bit_depth > 8:
        data = (np.clip(image, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
        frame = av.VideoFrame.from_ndarray(data, format="rgb48le")
    else:
        data = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(data, format="rgb24")
    frame = frame.reformat(
        format=plan.pix_fmt,
        src_colorspace=plan.matrix,
        dst_colorspace=plan.matrix,
        src_color_range="JPEG",
        dst_color_range=plan.out_range,
    )
    frame.pts = pts
    frame.duration = duration
    frame.time_base = plan.time_base
    return frame


def _clean_tags(metadata: dict[str, str]) -> dict[str, str]:
    tags = {
        key: value
        for key, value in metadata.items()
        if key.lower() not in _STALE_TAGS and not key.upper().startswith("_STATISTICS")
    }
    # The mp4 demuxer reports a track title as "name" but its muxer (and mkv) write "title".
    if "name" in tags and "title" not in tags:
        tags["title"] = tags.pop("name")
    return tags


def _open_output(
    path: Path, plan: _Plan, src: Any, video_in: Any, keep_audio: bool
) -> tuple[Any, Any, dict[int, Any], list[str], dict[str, int]]:
    """Create the output container with the video stream and copies of the other streams."""
    out = av.open(str(path), "w", format=plan.muxer, container_options=dict(plan.container_options))
    warnings: list[str] = []
    copied: dict[str, int] = {}
    streams: dict[int, Any] = {}
    try:
        out.metadata.update(_clean_tags(dict(src.metadata)))
        video = _add_video_stream(out, plan)
        video.metadata.update(_clean_tags(dict(video_in.metadata)))
        video.disposition = video_in.disposition
        ext = path.suffix.lower()
        for stream in src.streams:
            if stream.index == video_in.index:
                continue
            label = f"{stream.type} stream #{stream.index} ({_stream_codec(stream)})"
            if stream.type == "video":
                warnings.append(f"{label} is not restored and was left out")
                continue
            if stream.type == "audio" and not keep_audio:
                continue
            same_family = plan.muxer in src.format.name.split(",")
            # Attachments (fonts) exist only in Matroska; data tracks (timecodes, GPS) are container
            # specific. The muxer accepts both at first and fails when writing the header, so check here.
            if (stream.type == "attachment" and plan.muxer != "matroska") or (
                stream.type == "data" and not same_family
            ):
                warnings.append(f"{label} cannot be stored in {ext} files and was left out")
                continue
            try:
                copy = out.add_stream_from_template(stream)
            except (ValueError, av.error.FFmpegError) as error:
                if stream.type == "audio":
                    raise UsageError(
                        f"{label} cannot be stored in {ext} files ({_ff_message(error)}); use --no-audio or another container such as .mkv"
                    ) from None
                warnings.append(f"{label} cannot be stored in {ext} files and was left out")
                continue
            copy.metadata.update(_clean_tags(dict(stream.metadata)))
            copy.disposition = stream.disposition
            streams[stream.index] = copy
            copied[stream.type] = copied.get(stream.type, 0) + 1
        chapters = src.chapters()
        if chapters:
            out.set_chapters(chapters)
    except BaseException:
        out.close()
        raise
    return out, video, streams, warnings, copied


def _stream_codec(stream: Any) -> str:
    context = stream.codec_context
    return context.name if context is not None else getattr(stream, "codec_name", None) or "unknown"


# ----------------------------------------------------------------------------------------------
# the three-stage flow


class _Stopped(Exception):
    """The flow was stopped because another stage failed or was interrupted."""


class _TrackedQueue(queue.Queue):  # type: ignore[type-arg]
    """A bounded queue that records its highest occupancy."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.high_water = 0

    def _put(self, item: Any) -> None:
        super()._put(item)
        self.high_water = max(self.high_water, self._qsize())


class _Flow:
    """Queues, stop signals and counters shared by the three stages."""

    def __init__(self, batch_size: int) -> None:
        self.q_in = _TrackedQueue(2 * batch_size)
        self.q_out = _TrackedQueue(2)
        self.stop = threading.Event()  # decoder: stop reading
        self.encoder_failed = threading.Event()
        self.encoder_error: BaseException | None = None
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.warnings: list[str] = []
        self.decode_errors = 0
        self.damaged = 0
        self.frames_decoded = 0
        # Seconds each stage spent working and the calling thread spent waiting (where the time goes).
        self.seconds = {"decode": 0.0, "engine": 0.0, "encode": 0.0, "wait_for_decode": 0.0, "wait_for_encode": 0.0}

    def track(self, delta: int) -> None:
        with self._lock:
            self.in_flight += delta
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def warn(self, message: str) -> None:
        with self._lock:
            if len(self.warnings) < _MAX_WARNINGS:
                self.warnings.append(message)

    def put(self, q: queue.Queue, item: Any, stop: threading.Event) -> None:  # type: ignore[type-arg]
        while True:
            if stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue, stop: threading.Event) -> Any:  # type: ignore[type-arg]
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    raise _Stopped from None


def _decode_worker(
    flow: _Flow, src: Path, plan: _Plan, copy_indices: set[int], start_frame: int, expected: tuple[int | None, bool]
) -> None:
    """Demux and decode ``src``; queue ("frame", index, array, pts, duration) and ("packet", packet)."""
    try:
        with _open_input(src) as container:
            video = _video_stream(container, src)
            video.thread_type = "AUTO"
            wanted = [video] + [s for s in container.streams if s.index in copy_indices]
            tb_in = Fraction(video.time_base)
            rescale = tb_in != plan.time_base
            step = max(1, round(1 / (plan.rate * plan.time_base))) if plan.rate else 1
            prev_pts: int | None = None
            held: tuple[int, Any, int, int] | None = None
            index = 0

            def emit(number: int, frame: Any, pts: int, duration: int) -> None:
                if number >= start_frame:  # frames before it are in finished segments
                    started = time.perf_counter()
                    array = _to_engine(frame, plan)
                    flow.seconds["decode"] += time.perf_counter() - started
                    flow.track(+1)
                    flow.put(flow.q_in, ("frame", number, array, pts, duration), flow.stop)

            packets = container.demux(wanted)
            while not flow.stop.is_set():
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except (av.error.FFmpegError, ValueError) as error:
                    if index == 0:
                        raise InputError(
                            f"{src}: cannot read the video ({_ff_message(error)}); the file may be damaged"
                        ) from None
                    flow.warn(
                        f"reading stopped early after frame {index} ({_ff_message(error)}); the rest of the file is unreadable"
                    )
                    break
                if packet.stream.index != video.index:
                    if packet.size:
                        # The index travels with the packet: the input closes before the packet is muxed.
                        flow.put(flow.q_in, ("packet", packet, packet.stream.index), flow.stop)
                    continue
                started = time.perf_counter()
                try:
                    frames = packet.decode()
                    flow.seconds["decode"] += time.perf_counter() - started
                except (av.error.FFmpegError, ValueError) as error:
                    flow.decode_errors += 1
                    flow.warn(
                        f"damaged video data near frame {index} could not be decoded ({_ff_message(error)}); that frame is missing"
                    )
                    continue
                for frame in frames:
                    if frame.is_corrupt:
                        flow.damaged += 1
                        flow.warn(f"frame {index} is damaged in the input; written as the decoder concealed it")
                    pts = frame.pts
                    if pts is None:
                        pts = (prev_pts + step) if prev_pts is not None else 0
                    elif rescale:
                        pts = round(pts * tb_in / plan.time_base)
                    if prev_pts is not None and pts <= prev_pts:
                        flow.warn(
                            f"frame {index} has a timestamp that does not increase; moved after the previous frame"
                        )
                        pts = prev_pts + 1
                    duration = frame.duration or 0
                    duration = round(duration * tb_in / plan.time_base) if (rescale and duration) else duration
                    prev_pts = pts
                    # A frame is shown until the next one starts; the decoder's duration is only a
                    # guess (in mp4 it is a decode-time step), so hold each frame until the next arrives.
                    if held is not None:
                        emit(held[0], held[1], held[2], pts - held[2])
                    held = (index, frame, pts, duration or step)
                    index += 1
            if held is not None and not flow.stop.is_set():
                emit(*held)
            flow.frames_decoded = index
            if index == 0 and not flow.stop.is_set():
                raise InputError(f"{src}: no video frame could be decoded; the file is damaged or not a video")
            count, exact = expected
            # Decoders and demuxers skip some damage without an error: compare with what the file declares.
            if count and not flow.stop.is_set() and index < (count if exact else count - max(2, count // 100)):
                declared = "declares" if exact else "should have about"
                flow.warn(
                    f"only {index} frames could be decoded but the file {declared} {count}; it may be damaged or truncated"
                )
        flow.put(flow.q_in, ("end",), flow.stop)
    except _Stopped:
        return
    except BaseException as error:  # noqa: BLE001 - handed to the calling thread
        try:
            flow.put(flow.q_in, ("error", error), flow.stop)
        except _Stopped:
            return


class _Sink(Protocol):
    def frame(self, index: int, image: np.ndarray, pts: int, duration: int) -> None: ...
    def packet(self, packet: Any, index: int) -> None: ...
    def finish(self) -> None: ...
    def abort(self) -> None: ...


def _encode_worker(flow: _Flow, sink: _Sink, plan: _Plan) -> None:
    """Encode restored batches in order; ("abort",) drops the unfinished output, ("end",) completes it."""
    try:
        while True:
            batch = flow.get(flow.q_out, threading.Event())
            for item in batch:
                kind = item[0]
                if kind == "frame":
                    _, index, image, pts, duration = item
                    started = time.perf_counter()
                    sink.frame(index, image, pts, duration)
                    flow.seconds["encode"] += time.perf_counter() - started
                    flow.track(-1)
                elif kind == "packet":
                    sink.packet(item[1], item[2])
                elif kind == "end":
                    started = time.perf_counter()
                    sink.finish()  # flushes the encoder's look-ahead: part of the encode stage
                    flow.seconds["encode"] += time.perf_counter() - started
                    return
                elif kind == "abort":
                    sink.abort()
                    return
    except BaseException as error:  # noqa: BLE001 - handed to the calling thread
        flow.encoder_error = error
        flow.encoder_failed.set()
        flow.stop.set()
        with suppress(Exception):  # the first error is the one to report
            sink.abort()


def _run_flow(
    src: Path,
    plan: _Plan,
    engine: Engine,
    options: VideoOptions,
    sink: _Sink,
    copy_indices: set[int],
    start_frame: int,
    total: int | None,
    on_progress: Callable[[int, int | None], None] | None,
    exact_total: bool = False,
) -> _Flow:
    """Run decode -> engine -> encode to completion; the engine runs in this (the calling) thread."""
    batch_size = max(1, options.batch_size)
    flow = _Flow(batch_size)
    expected = (total, exact_total)
    decoder = threading.Thread(
        target=_decode_worker,
        args=(flow, src, plan, copy_indices, start_frame, expected),
        name="irx-decode",
        daemon=True,
    )
    encoder = threading.Thread(target=_encode_worker, args=(flow, sink, plan), name="irx-encode", daemon=True)
    decoder.start()
    encoder.start()
    done = start_frame
    pending: list[tuple[Any, ...]] = []
    frames_pending = 0
    # Packets of other streams ride along with the frames around them; cap a batch's length so a long
    # stretch of audio without video cannot pile up here.
    max_items = 8 * batch_size + 32

    def flush() -> None:
        nonlocal pending, frames_pending, done, reported
        if frames_pending:
            slots = [i for i, item in enumerate(pending) if item[0] == "frame"]
            images = [pending[i][2] for i in slots]
            started = time.perf_counter()
            restored = engine.restore(images)
            flow.seconds["engine"] += time.perf_counter() - started
            _check_restored(images, restored, engine.scale)
            for slot, image in zip(slots, restored):
                _, index, _, pts, duration = pending[slot]
                pending[slot] = ("frame", index, np.asarray(image, dtype=np.float32), pts, duration)
            done += len(slots)
        if pending:
            started = time.perf_counter()
            flow.put(flow.q_out, pending, flow.encoder_failed)
            flow.seconds["wait_for_encode"] += time.perf_counter() - started
        pending, frames_pending = [], 0
        if on_progress is not None and reported != done:
            reported = done
            on_progress(done, total)

    reported = -1
    try:
        if on_progress is not None and start_frame:
            on_progress(done, total)
        while True:
            started = time.perf_counter()
            item = flow.get(flow.q_in, flow.encoder_failed)
            flow.seconds["wait_for_decode"] += time.perf_counter() - started
            kind = item[0]
            if kind == "frame":
                pending.append(item)
                frames_pending += 1
                if frames_pending >= batch_size:
                    flush()
            elif kind == "packet":
                pending.append(item)
                if len(pending) >= max_items:
                    flush()
            elif kind == "end":
                flush()
                flow.put(flow.q_out, [("end",)], flow.encoder_failed)
                break
            else:  # ("error", exception) from the decoder
                raise item[1]
        encoder.join()
    except BaseException as error:
        flow.stop.set()
        if not flow.encoder_failed.is_set():
            # Let the encoder finish what is already restored (completes segments), then drop the rest.
            try:
                flow.put(flow.q_out, [("abort",)], flow.encoder_failed)
            except _Stopped:
                pass
        encoder.join()
        decoder.join(timeout=5)
        if isinstance(error, _Stopped) and flow.encoder_error is not None:
            raise flow.encoder_error from None
        raise
    decoder.join(timeout=5)
    if flow.encoder_error is not None:
        raise flow.encoder_error
    return flow


def _check_restored(images: Sequence[np.ndarray], restored: Sequence[np.ndarray], scale: int) -> None:
    if len(restored) != len(images):
        raise IrxError(f"the engine returned {len(restored)} frames for {len(images)}; this is a bug in the engine")
    for image, out in zip(images, restored):
        want = (image.shape[0] * scale, image.shape[1] * scale, 3)
        if tuple(np.shape(out)) != want:
            raise IrxError(
                f"the engine returned a frame of shape {np.shape(out)}, expected {want}; this is a bug in the engine"
            )


class _DirectSink:
    """Encodes frames and muxes copied packets into one output container."""

    def __init__(
        self, out: Any, video: Any, streams: dict[int, Any], plan: _Plan, flow_warn: Callable[[str], None]
    ) -> None:
        self.out, self.video, self.streams, self.plan = out, video, streams, plan
        self.frames = 0
        self._warn = flow_warn
        self._bad_packets: dict[int, int] = {}

    def frame(self, index: int, image: np.ndarray, pts: int, duration: int) -> None:
        self.out.mux(self.video.encode(_from_engine(image, self.plan, pts, duration)))
        self.frames += 1

    def packet(self, packet: Any, index: int) -> None:
        packet.stream = self.streams[index]
        _mux_copied(self.out, packet, index, self._bad_packets)

    def finish(self) -> None:
        self.out.mux(self.video.encode(None))
        for index, count in self._bad_packets.items():
            self._warn(f"{count} packets of stream #{index} had invalid timestamps and were left out")
        self.out.close()

    def abort(self) -> None:
        with suppress(Exception):  # the file is discarded anyway
            self.out.close()


def _mux_copied(out: Any, packet: Any, index: int, bad: dict[int, int]) -> None:
    try:
        out.mux(packet)
    except OSError:
        raise
    except (av.error.FFmpegError, ValueError):
        # A source packet the muxer rejects (e.g. non-increasing timestamps): skip it, report the count.
        bad[index] = bad.get(index, 0) + 1


# ----------------------------------------------------------------------------------------------
# segments (resume)


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
        self._stack.__exit__(_Stopped, _Stopped(), None)  # atomic_output removes the temp file


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


def _manifest(src: Path, plan: _Plan, segment_frames: int, scale: int, engine: Engine) -> dict[str, Any]:
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


# ----------------------------------------------------------------------------------------------
# public entry point


def check_video_output(src: Path | str, dst: Path | str, options: VideoOptions) -> list[str]:
    """Plan ``dst`` as restore_video would and return the plan's warnings, without restoring anything.

    Raises UsageError for impossible output settings (codec, pixel format, preset, container), so a
    typo stops the run before the model loads, and InputError for an unreadable input.
    """
    src, dst = Path(src), Path(dst)
    info = probe_video(src)
    with _open_input(src) as probe:
        _, warnings = _plan_output(info, _video_stream(probe, src), dst, 1, options)
    return warnings


def restore_video(
    src: Path | str,
    dst: Path | str,
    engine: Engine,
    options: VideoOptions | None = None,
    *,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> VideoResult:
    """Restore every frame of ``src`` with ``engine`` and write ``dst`` (container from its extension).

    Raises InputError for unreadable inputs, UsageError for impossible output settings and IrxError
    for write failures (full disk included). ``on_progress(frames_done, frames_total)`` is called after
    each batch; frames_total is None when the video does not say how long it is.
    """
    src, dst = Path(src), Path(dst)
    options = options or VideoOptions()
    if options.batch_size < 1 or options.segment_frames < 0:
        raise UsageError("batch size must be at least 1 and segment frames at least 0")
    if dst.suffix.lower() not in _MUXERS:
        raise UsageError(
            f"{dst}: unknown video extension {dst.suffix or '(none)'}; use one of {', '.join(sorted(VIDEO_EXTENSIONS))}"
        )
    if src.exists() and dst.exists() and src.resolve() == dst.resolve():
        raise UsageError(f"{dst}: the output would overwrite its own input; choose another output")
    if dst.exists() and not options.overwrite:
        raise UsageError(f"{dst}: already exists; use --overwrite to replace it or choose another output")
    info = probe_video(src)
    scale = int(getattr(engine, "scale", 1) or 1)
    with _open_input(src) as probe:
        plan, warnings = _plan_output(info, _video_stream(probe, src), dst, scale, options)
    segment_frames = options.segment_frames
    if options.resume and segment_frames == 0:
        segment_frames = max(1, round(float(info.fps or 25) * DEFAULT_SEGMENT_SECONDS))
    total = info.estimated_frames
    exact = info.frames is not None
    try:
        if segment_frames > 0:
            result = _restore_segmented(
                src, dst, engine, options, plan, segment_frames, total, exact, on_progress, warnings
            )
        else:
            result = _restore_direct(src, dst, engine, options, plan, total, exact, on_progress, warnings)
    except OSError as error:
        if isinstance(error, IrxError):
            raise
        if error.errno == errno.ENOSPC:
            hint = " (run again with --resume to keep the finished segments)" if segment_frames else ""
            raise IrxError(f"{dst}: disk full while writing the video; free some space and run again{hint}") from None
        raise IrxError(f"{dst}: cannot write the video ({_ff_message(error)})") from None
    except av.error.FFmpegError as error:
        raise IrxError(f"{dst}: encoding failed ({_ff_message(error)}); try another --codec or --pix-fmt") from None
    return result


def _restore_direct(
    src: Path,
    dst: Path,
    engine: Engine,
    options: VideoOptions,
    plan: _Plan,
    total: int | None,
    exact_total: bool,
    on_progress: Callable[[int, int | None], None] | None,
    warnings: list[str],
) -> VideoResult:
    with atomic_output(dst, overwrite=options.overwrite) as tmp, _open_input(src) as source:
        video_in = _video_stream(source, src)
        out, video, streams, stream_warnings, copied = _open_output(tmp, plan, source, video_in, options.keep_audio)
        warnings += stream_warnings
        flow_warnings: list[str] = []
        sink = _DirectSink(out, video, streams, plan, flow_warnings.append)
        try:
            flow = _run_flow(src, plan, engine, options, sink, set(streams), 0, total, on_progress, exact_total)
        except BaseException:
            sink.abort()
            raise
    return _result(dst, plan, sink.frames, copied, warnings + flow.warnings + flow_warnings, flow, options, 0, 0)


def _restore_segmented(
    src: Path,
    dst: Path,
    engine: Engine,
    options: VideoOptions,
    plan: _Plan,
    segment_frames: int,
    total: int | None,
    exact_total: bool,
    on_progress: Callable[[int, int | None], None] | None,
    warnings: list[str],
) -> VideoResult:
    work = _work_folder(dst)
    manifest = _manifest(src, plan, segment_frames, int(getattr(engine, "scale", 1) or 1), engine)
    kept, complete = _prepare_work(work, manifest, options.resume, warnings)
    start = kept * segment_frames
    flow = _Flow(max(1, options.batch_size))
    if not complete:
        sink = _SegmentSink(work, plan, segment_frames)
        flow = _run_flow(src, plan, engine, options, sink, set(), start, total, on_progress, exact_total)
        if flow.frames_decoded <= start and kept == 0:
            raise InputError(f"{src}: no video frame could be decoded")
        _write_json(work / "manifest.json", {**manifest, "total_frames": flow.frames_decoded})
    elif on_progress is not None:
        on_progress(start, total)
    count, _ = _finished_segments(work, segment_frames)
    frames, join_warnings, copied = _join_segments(dst, work, count, plan, src, options.keep_audio, options.overwrite)
    if complete is False and frames != flow.frames_decoded:
        raise IrxError(
            f"{work}: the segments hold {frames} frames but the video has {flow.frames_decoded}; delete that folder and run again"
        )
    shutil.rmtree(work, ignore_errors=True)
    resumed = min(start, frames)
    return _result(dst, plan, frames, copied, warnings + flow.warnings + join_warnings, flow, options, resumed, count)


def _result(
    dst: Path,
    plan: _Plan,
    frames: int,
    copied: dict[str, int],
    warnings: list[str],
    flow: _Flow,
    options: VideoOptions,
    resumed: int,
    segments: int,
) -> VideoResult:
    if flow.decode_errors:
        warnings.append(
            f"{flow.decode_errors} damaged video packets could not be decoded; those frames are missing from the output"
        )
    if flow.damaged:
        warnings.append(f"{flow.damaged} frames were damaged in the input and written as the decoder concealed them")
    return VideoResult(
        path=dst,
        frames=frames,
        width=plan.width,
        height=plan.height,
        codec=plan.codec,
        pix_fmt=plan.pix_fmt,
        container=plan.muxer,
        copied_streams=copied,
        decode_errors=flow.decode_errors,
        damaged_frames=flow.damaged,
        warnings=warnings,
        resumed_frames=resumed,
        segments=segments,
        max_frames_in_flight=flow.max_in_flight,
        queue_high_water={"decoded": flow.q_in.high_water, "restored": flow.q_out.high_water},
        stage_seconds={key: round(value, 3) for key, value in flow.seconds.items()},
    )
