"""Video restoration in one process: decode -> restore -> encode with PyAV.

Three stages overlap, joined by bounded queues so memory does not grow with the video's length:

    decode thread:  demux + decode + convert to RGB uint8 (uint16)  --q_in-->
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

The package is split by job: ``probe`` (what the input holds), ``plan`` (how the output is
written), ``flow`` (the three stages and their messages), ``segments`` (segments and resume), ``split``
(one video cut at keyframes into parts for several engines); this module is the entry point.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import av

from irx.errors import InputError, IrxError, UsageError
from irx.media.atomic import atomic_output
from irx.media.video.flow import FrameRestorer, _DirectSink, _Flow, _run_flow, frames_in_flight_bound, restored_size
from irx.media.video.plan import (
    _MUXERS,
    EncoderInfo,
    VideoOptions,
    _open_output,
    _Plan,
    _plan_output,
    available_video_encoders,
    hardware_video_encoders,
    video_encoders,
)
from irx.media.video.probe import (
    VIDEO_EXTENSIONS,
    VideoInfo,
    _ff_message,
    _open_input,
    _video_stream,
    is_video_path,
    probe_video,
)
from irx.media.video.segments import (
    DEFAULT_SEGMENT_SECONDS,
    _finished_segments,
    _join_segments,
    _manifest,
    _prepare_work,
    _SegmentSink,
    _work_folder,
    _write_json,
)

__all__ = [
    "VIDEO_EXTENSIONS",
    "EncoderInfo",
    "FrameRestorer",
    "VideoInfo",
    "VideoOptions",
    "VideoResult",
    "available_video_encoders",
    "check_video_output",
    "frames_in_flight_bound",
    "hardware_video_encoders",
    "is_video_path",
    "probe_video",
    "restore_video",
    "video_encoders",
    "restore_video_split",
]


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


def check_video_output(
    src: Path | str, dst: Path | str, options: VideoOptions, engine: FrameRestorer | None = None
) -> list[str]:
    """Plan ``dst`` as restore_video would and return the plan's warnings, without restoring anything.

    ``engine`` (anything with ``scale`` or ``output_size``) gives the output size; None plans the
    input's. Raises UsageError for impossible output settings (codec, pixel format, preset, container),
    so a typo stops the run before the model loads, and InputError for an unreadable input.
    """
    src, dst = Path(src), Path(dst)
    info = probe_video(src)
    size = restored_size(engine, info.height, info.width) if engine is not None else (info.height, info.width)
    with _open_input(src) as probe:
        _, warnings = _plan_output(info, _video_stream(probe, src), dst, size, options)
    return warnings


def restore_video(
    src: Path | str,
    dst: Path | str,
    engine: FrameRestorer,
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
    _check_request(src, dst, options)
    info = probe_video(src)
    size = restored_size(engine, info.height, info.width)
    with _open_input(src) as probe:
        plan, warnings = _plan_output(info, _video_stream(probe, src), dst, size, options)
    segment_frames = options.segment_frames
    if options.resume and segment_frames == 0:
        segment_frames = max(1, round(float(info.fps or 25) * DEFAULT_SEGMENT_SECONDS))
    total = info.estimated_frames
    exact = info.frames is not None
    with write_errors(dst, segmented=segment_frames > 0):
        if segment_frames > 0:
            return _restore_segmented(
                src, dst, engine, options, plan, segment_frames, total, exact, on_progress, warnings
            )
        return _restore_direct(src, dst, engine, options, plan, total, exact, on_progress, warnings)


def _check_request(src: Path, dst: Path, options: VideoOptions) -> None:
    """The checks of a restore request that need no decoding (UsageError)."""
    if options.batch_size < 1 or options.segment_frames < 0:
        raise UsageError("batch size must be at least 1 and segment frames at least 0")
    if dst.suffix.lower() not in _MUXERS:
        raise UsageError(
            f"{dst}: unknown video extension {dst.suffix or '(none)'}; use one of {', '.join(sorted(VIDEO_EXTENSIONS))}"
        )
    if src.exists() and dst.exists() and src.resolve() == dst.resolve():
        raise UsageError(f"{dst}: the output would overwrite its own input; choose another output")
    if dst.exists() and not options.overwrite:
        raise UsageError(f"{dst}: already exists; use overwrite to replace it or choose another output", param="overwrite")


@contextmanager
def write_errors(dst: Path, *, segmented: bool) -> Iterator[None]:
    """Word the OS and FFmpeg errors of writing ``dst`` as one-line IrxErrors."""
    try:
        yield
    except OSError as error:
        if isinstance(error, IrxError):
            raise
        if error.errno == errno.ENOSPC:
            hint = " (run again with --resume to keep the finished segments)" if segmented else ""
            raise IrxError(f"{dst}: disk full while writing the video; free some space and run again{hint}") from None
        raise IrxError(f"{dst}: cannot write the video ({_ff_message(error)})") from None
    except av.error.FFmpegError as error:
        raise IrxError(f"{dst}: encoding failed ({_ff_message(error)}); try another codec or pix_fmt", param=("codec", "pix_fmt")) from None


def _restore_direct(
    src: Path,
    dst: Path,
    engine: FrameRestorer,
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
    engine: FrameRestorer,
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


# Last: the split path builds on restore_video and VideoResult above.
from irx.media.video.split import restore_video_split  # noqa: E402
