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
# Encoders that take odd sizes with subsampled chroma (checked by tests/test_video_size.py); the others refuse.
_ODD_SIZES_OK = frozenset({"libsvtav1", "libvpx-vp9", "ffv1", "mpeg4"})
# Subsampled pixel format -> the same depth at full chroma resolution, which allows any size.
_FULL_CHROMA = {
    "yuv420p": "yuv444p", "yuv422p": "yuv444p", "nv12": "yuv444p",
    "yuv420p10le": "yuv444p10le", "yuv422p10le": "yuv444p10le", "p010le": "yuv444p10le",
    "yuv420p12le": "yuv444p12le", "yuv422p12le": "yuv444p12le",
}
# Hardware encoders are found by FFmpeg's capability flags; these are the formats and APIs irx lists.
HARDWARE_FORMATS = ("h264", "hevc", "av1")
_HARDWARE_APIS = {
    "nvenc": "NVIDIA NVENC", "qsv": "Intel Quick Sync", "vaapi": "VA-API", "videotoolbox": "Apple VideoToolbox",
    "amf": "AMD AMF", "mf": "Windows Media Foundation", "v4l2m2m": "V4L2 mem2mem", "vulkan": "Vulkan",
    "mediacodec": "Android MediaCodec",
}
# Pixel formats that are GPU surfaces: irx hands encoders frames in memory, never these.
_SURFACE_FORMATS = frozenset(
    {"cuda", "qsv", "amf", "vaapi", "videotoolbox_vld", "d3d11", "d3d12", "dxva2_vld", "vulkan", "drm_prime",
     "mediacodec", "opencl"}
)
# Visually near-transparent defaults: a restoration tool should not throw its work away in the encoder.
_DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libsvtav1": 28, "libvpx-vp9": 28, "mpeg4": 3}
_PRESET_OPTION = {"libx264": "preset", "libx265": "preset", "libsvtav1": "preset", "libvpx-vp9": "cpu-used"}
# Hardware encoders by API: the option --crf sets (their constant-quality mode) and their presets.
_HARDWARE_QUALITY = {"nvenc": "cq", "qsv": "global_quality", "vaapi": "qp", "amf": "qp_i"}
_HARDWARE_PRESETS = {
    "nvenc": ("preset", ("p1", "p2", "p3", "p4", "p5", "p6", "p7", "slow", "medium", "fast", "hq", "ll", "llhq")),
    "qsv": ("preset", ("veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")),
    "amf": ("quality", ("speed", "balanced", "quality")),
}
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
    """The software encoders irx knows how to drive that this PyAV's FFmpeg has."""
    return [name for name in KNOWN_ENCODERS if _encoder(name) is not None]


def hardware_video_encoders() -> list[str]:
    """The H.264/HEVC/AV1 hardware encoders this PyAV's FFmpeg was built with (usable or not here)."""
    return sorted(name for name in av.codecs_available if _hardware_api(name) is not None)


@dataclass(frozen=True)
class EncoderInfo:
    """A video encoder of this FFmpeg build and whether it opens on this machine."""

    name: str
    format: str  # what it writes: h264, hevc, av1, vp9...
    api: str  # "software" or the hardware API (NVIDIA NVENC, Intel Quick Sync...)
    problem: str | None  # why it does not open here; None: it opened

    @property
    def usable(self) -> bool:
        return self.problem is None


def video_encoders() -> list[EncoderInfo]:
    """Every encoder `codec` takes: irx's software ones (built into FFmpeg, they always open) and the
    hardware ones, each opened once for real to see whether its device and driver are here."""
    found = []
    for name in available_video_encoders():
        codec = _encoder(name)
        found.append(EncoderInfo(name, codec.canonical_name if codec else name, "software", None))
    for name in hardware_video_encoders():
        codec = _encoder(name)
        api = _hardware_api(name) or ""
        found.append(EncoderInfo(name, codec.canonical_name if codec else name, _HARDWARE_APIS.get(api, api),
                                 _open_problem(name)))
    return found


def _hardware_api(name: str) -> str | None:
    """The API suffix (nvenc, qsv...) of a hardware H.264/HEVC/AV1 encoder; None for anything else."""
    codec = _encoder(name)
    if codec is None or codec.canonical_name not in HARDWARE_FORMATS:
        return None
    flags = av.codec.codec.Capabilities
    if not codec.capabilities & (flags.hardware | flags.hybrid):
        return None
    return name.rsplit("_", 1)[-1]


def _open_problem(
    name: str, width: int = 256, height: int = 256, pix_fmt: str | None = None, options: dict[str, str] | None = None
) -> str | None:
    """Open the encoder as the video would; None when it opens, else FFmpeg's own reason in one line.

    Hardware encoders are in many builds but open only with their device and driver ("Cannot load
    libcuda.so.1"), so that is checked before the model loads rather than at the first frame.
    """
    context = av.CodecContext.create(name, "w")
    context.width, context.height = width, height
    context.pix_fmt = pix_fmt or next(iter(_formats(name)), "yuv420p")
    context.time_base = Fraction(1, 25)
    context.framerate = Fraction(25)
    context.options = dict(options or {})
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)  # FFmpeg says why only in its log
    try:
        with av.logging.Capture() as logs:
            context.open()
    except (av.error.FFmpegError, OSError, ValueError) as error:
        said = list(dict.fromkeys(" ".join(text.split()) for _, _, text in logs if text.strip()))
        return "; ".join(said[:2]) if said else _ff_message(error)
    finally:
        av.logging.set_level(previous)
    return None


@dataclass(frozen=True)
class _Plan:
    muxer: str
    codec: str
    pix_fmt: str
    bit_depth: int  # of the output pixel format
    in_rgb: str  # rgb24 or rgb48le: how decoded frames are handed to the engine
    width: int  # encoded size: the restored frames', padded to even where the pixel format needs it
    height: int
    frame_width: int  # size of the restored frames
    frame_height: int
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
    return [fmt.name for fmt in (found.video_formats or []) if fmt.name not in _SURFACE_FORMATS] if found else []


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
        for candidate in ("yuv420p10le", "yuv420p12le", "yuv420p16le", "p010le"):
            if candidate in formats:
                return candidate
        warnings.append(f"encoder {codec} cannot store {info.bit_depth}-bit video; the output is 8-bit")
    if "yuv420p" in formats or not formats:
        return "yuv420p"
    return formats[0]


def _subsampled(pix_fmt: str) -> tuple[bool, bool]:
    """Whether the chroma planes are halved across, and down (4:2:0: both; 4:2:2: across)."""
    try:
        fmt = av.VideoFormat(pix_fmt)
    except (ValueError, TypeError):
        return False, False
    return fmt.chroma_width(2) < 2, fmt.chroma_height(2) < 2


def _fit_odd_size(
    codec: str, pix_fmt: str, width: int, height: int, options: VideoOptions, warnings: list[str]
) -> tuple[str, tuple[int, int]]:
    """Pixel format and encoded (height, width) for frames of an odd size.

    x264, x265 and the hardware encoders refuse odd sizes with subsampled chroma (FFmpeg says only
    "Generic error in an external library"). H.264/HEVC crop in chroma units and PyAV cannot set a
    container's crop fields, so the exact size is kept by the 4:4:4 format of the same depth where the
    encoder has it; where it does not, or the pixel format was asked for, the frames are padded (edge
    pixels repeated) to even and the video is that much larger. Either way the warning says which.
    """
    across, down = _subsampled(pix_fmt)
    odd = (across and width % 2) or (down and height % 2)
    if not odd or codec in _ODD_SIZES_OK:
        return pix_fmt, (height, width)
    full = _FULL_CHROMA.get(pix_fmt)
    if full in _formats(codec) and not options.pix_fmt:
        warnings.append(
            f"the output is {width}x{height}, an odd size {pix_fmt} cannot hold in {codec}; written as {full} "
            "(full colour resolution) to keep the exact size"
        )
        return full, (height, width)
    padded = (height + (height % 2 if down else 0), width + (width % 2 if across else 0))
    warnings.append(
        f"the output is {width}x{height}, an odd size {pix_fmt} cannot hold in {codec}; padded to "
        f"{padded[1]}x{padded[0]} (edge pixels repeated)"
    )
    return pix_fmt, padded


def _pick_codec(muxer: str, ext: str, info: VideoInfo, options: VideoOptions) -> str:
    if options.codec:
        if _encoder(options.codec) is None:
            raise UsageError(
                f"encoder {options.codec!r} is not available in this PyAV/FFmpeg build; available: "
                f"{', '.join(available_video_encoders() + hardware_video_encoders()) or 'none'} "
                "(`irx video-encoders` says which open on this machine)",
                param="codec",
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


def _plan_output(
    info: VideoInfo, stream: Any, dst: Path, size: tuple[int, int], options: VideoOptions
) -> tuple[_Plan, list[str]]:
    """The output plan for restored frames of ``size`` (height, width)."""
    ext = dst.suffix.lower()
    muxer = _MUXERS.get(ext)
    if muxer is None:
        raise UsageError(
            f"{dst}: unknown video extension {ext or '(none)'}; use one of {', '.join(sorted(VIDEO_EXTENSIONS))}"
        )
    warnings: list[str] = []
    codec = _pick_codec(muxer, ext, info, options)
    pix_fmt = _pick_pix_fmt(codec, info, options, warnings)
    frame_height, frame_width = size
    pix_fmt, (height, width) = _fit_odd_size(codec, pix_fmt, frame_width, frame_height, options, warnings)
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
    elif (api := _hardware_api(codec)) is not None:
        _hardware_options(codec, api, options, codec_options)
    elif crf is not None:
        codec_options["crf"] = str(crf)
    if codec == "libx265":
        codec_options["x265-params"] = "log-level=error"
    if codec == "libvpx-vp9":
        codec_options["row-mt"] = "1"
    if codec == "libsvtav1":
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner to stderr otherwise
    if options.preset is not None and _hardware_api(codec) is None:
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
    if _hardware_api(codec) is not None:
        problem = _open_problem(codec, width, height, pix_fmt, codec_options)
        if problem:
            raise UsageError(
                f"encoder {codec} does not open on this machine ({problem}); choose another codec "
                "(`irx video-encoders` lists the ones that open here)",
                param="codec",
            )
    plan = _Plan(
        muxer=muxer,
        codec=codec,
        pix_fmt=pix_fmt,
        bit_depth=depth,
        in_rgb="rgb48le" if info.bit_depth > 8 else "rgb24",
        width=width,
        height=height,
        frame_width=frame_width,
        frame_height=frame_height,
        rate=rate,
        time_base=time_base,
        codec_options=codec_options,
        container_options=container_options,
        matrix=_sws_matrix(tags[3], info.height),  # the input's: the frames were decoded with it
        in_range=in_range,
        out_range=out_range,
        color_tags=tags,
        sample_aspect_ratio=Fraction(sar) if sar else None,
        display_matrix=info.display_matrix,
        qscale=qscale,
    )
    return plan, warnings


def _hardware_options(codec: str, api: str, options: VideoOptions, codec_options: dict[str, str]) -> None:
    """--crf and --preset in the hardware encoder's own terms (each API names them differently)."""
    if options.crf is not None:
        key = _HARDWARE_QUALITY.get(api)
        if key is None:
            raise UsageError(f"irx does not know the constant-quality setting of {codec}; drop crf", param="crf")
        codec_options[key] = str(options.crf)
        if api == "amf":  # AMF takes a QP per frame type in its constant-QP mode
            codec_options.update({"rc": "cqp", "qp_p": str(options.crf), "qp_b": str(options.crf)})
        if api == "vaapi":
            codec_options["rc_mode"] = "CQP"
    if options.preset is not None:
        key, presets = _HARDWARE_PRESETS.get(api, (None, ()))
        if key is None:
            raise UsageError(f"encoder {codec} has no presets irx knows; drop the preset", param="preset")
        if str(options.preset) not in presets:
            raise UsageError(f"{codec} has no preset {options.preset!r}; choose one of: {', '.join(presets)}")
        codec_options[key] = str(options.preset)


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
    pad = (plan.height - image.shape[0], plan.width - image.shape[1])
    if pad != (0, 0):  # odd size padded to what the encoder takes (see _fit_odd_size)
        image = np.pad(image, ((0, pad[0]), (0, pad[1]), (0, 0)), mode="edge")
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

