"""The output plan: which codec, pixel format, encoder options and streams a restored video is written with.

Everything is decided before the first frame is decoded, so impossible settings fail up front; the
frame converters between PyAV frames and the engine's RGB uint8 (uint16) arrays live here too, as they
follow the plan.
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from irx.errors import UsageError
from irx.media.video.probe import VIDEO_EXTENSIONS, VideoInfo, _bit_depth, _ff_message

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



def available_video_encoders() -> list[str]:
    """The encoders irx knows how to drive that this PyAV's FFmpeg has."""
    return [name for name in KNOWN_ENCODERS if _encoder(name) is not None]


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
            raise UsageError(f"encoder {codec} has no presets; drop the preset", param="preset")
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
    """A decoded frame as RGB uint8 (rgb24) or uint16 (rgb48le) samples: the engine takes them across the
    bus as they are and converts them to float on the device."""
    return frame.to_ndarray(
        format=plan.in_rgb,
        src_colorspace=plan.matrix,
        dst_colorspace=plan.matrix,
        src_color_range=plan.in_range,
        dst_color_range="JPEG",
    )


def _as_samples(image: np.ndarray, dtype: type) -> np.ndarray:
    """Restored pixels (uint8, uint16 or float in [0, 1]) as the encoder's uint8/uint16 samples."""
    if image.dtype == dtype:
        return image
    if image.dtype.kind == "u":  # the other integer depth (e.g. an 8-bit source into a 10-bit output)
        image = image.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)
    return (np.clip(image, 0.0, 1.0) * float(np.iinfo(dtype).max) + 0.5).astype(dtype)


def _from_engine(image: np.ndarray, plan: _Plan, pts: int, duration: int) -> Any:
    if plan.bit_depth > 8:
        frame = av.VideoFrame.from_ndarray(_as_samples(image, np.uint16), format="rgb48le")
    else:
        frame = av.VideoFrame.from_ndarray(_as_samples(image, np.uint8), format="rgb24")
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

