"""One video in parts, restored in parallel: cut at clean keyframes, one part per worker, joined by remuxing.

    split = plan_split(src, dst, engine, options, parts=8)   # None: the video cannot be cut
    numbers = start_split(split)                            # the parts still to do (resume keeps the others)
    results = [restore_part(split, n, engine) for n in numbers]   # any process that sees the files
    video_result = join_parts(split)

A part is the frames whose timestamps lie between two keyframes. Its worker seeks to the first keyframe,
decodes to the first frame of the next part (whose timestamp ends the last frame's duration, exactly as in
the whole-file run) and encodes the part as a segment of the resume machinery (irx.media.video.segments),
so the join is the one the segmented single-process path uses: the same frames, timestamps and copied
audio/subtitle packets as one process restoring the whole file. A keyframe is a cut only when no frame
after it is shown before it or vice versa (then the parts decode independently); a video without such a
keyframe, or with frames without timestamps, is not split (plan_split returns None).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irx import _stages
from irx.errors import IrxError
from irx.media.video import VideoResult, _check_request, _result, restore_video, write_errors
from irx.media.video.flow import FrameRestorer, Window, _Flow, _run_flow, restored_size
from irx.media.video.plan import VideoOptions, _plan_output, _Plan
from irx.media.video.probe import _open_input, _video_stream, probe_video
from irx.media.video.segments import (
    _join_segments,
    _manifest,
    _prepare_work,
    _segment_path,
    _SegmentWriter,
    _work_folder,
)

__all__ = ["PartResult", "SplitPlan", "join_parts", "plan_split", "restore_part", "restore_video_split", "start_split"]


@dataclass(frozen=True)
class SplitPlan:
    """How one video is cut into parts and written; picklable, so it can travel to other processes."""

    src: Path
    dst: Path
    plan: _Plan
    windows: tuple[Window, ...]
    options: VideoOptions
    scale: int
    engine: str  # the engine's fingerprint: a resume never mixes parts of two models
    declared_frames: int | None  # the header's exact frame count, if it has one
    warnings: tuple[str, ...] = ()

    @property
    def work(self) -> Path:
        return _work_folder(self.dst)


@dataclass
class PartResult:
    number: int
    frames: int
    decode_errors: int = 0
    damaged: int = 0
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _cut_points(src: Path) -> tuple[list[tuple[int, int, int]], int]:
    """Keyframes where the video can be cut, as (packet position, pts, seek timestamp), and the packet count.

    Only packets are read (no decoding). A keyframe is a cut when every earlier packet is shown before it;
    open-GOP leading frames after it that are shown earlier stay with the part before (whose worker
    decodes on to the keyframe). Any packet without a timestamp: no cuts at all.
    """
    cuts: list[tuple[int, int, int]] = []
    count = 0
    latest: int | None = None
    with _open_input(src) as container:
        video = _video_stream(container, src)
        for packet in container.demux(video):
            if not packet.size:
                continue
            if packet.pts is None:
                return [], count
            if packet.is_keyframe and latest is not None and packet.pts > latest:
                # Seeking lands on the last keyframe at or before the target: aim at the smaller of its
                # stamps, so it is this keyframe or an earlier one (frames before the part are skipped).
                seek = min(packet.pts, packet.dts if packet.dts is not None else packet.pts)
                cuts.append((count, packet.pts, seek))
            latest = packet.pts if latest is None else max(latest, packet.pts)
            count += 1
    return cuts, count


def _choose(cuts: list[tuple[int, int, int]], count: int, parts: int) -> list[tuple[int, int, int]]:
    """Up to parts - 1 cuts, each the one nearest an even share of the packets."""
    chosen: list[tuple[int, int, int]] = []
    for i in range(1, parts):
        target = count * i / parts
        best = min(cuts, key=lambda cut: abs(cut[0] - target))
        if best not in chosen:
            chosen.append(best)
    return sorted(chosen)


def plan_split(
    src: Path | str, dst: Path | str, frames: Any, options: VideoOptions, parts: int, engine: str = "None"
) -> SplitPlan | None:
    """Plan ``dst`` as restore_video would and cut ``src`` into up to ``parts`` parts; None if it cannot be cut.

    ``frames`` is what restores the frames, or anything with its ``scale`` and ``output_size`` (the output
    size comes from it, as in restore_video).

    Raises what restore_video raises up front: UsageError for impossible settings, InputError for an
    unreadable input.
    """
    src, dst = Path(src), Path(dst)
    _check_request(src, dst, options)
    info = probe_video(src)
    scale = int(getattr(frames, "scale", 1) or 1)
    size = restored_size(frames, info.height, info.width)
    with _open_input(src) as probe:
        plan, warnings = _plan_output(info, _video_stream(probe, src), dst, size, options)
    if parts < 2:
        return None
    cuts, count = _cut_points(src)
    if not cuts:
        return None
    chosen = _choose(cuts, count, parts)
    windows = [Window(None, None, chosen[0][1])]
    for (_, pts, seek), following in zip(chosen, [*chosen[1:], None]):
        windows.append(Window(seek, pts, following[1] if following is not None else None))
    return SplitPlan(src, dst, plan, tuple(windows), options, scale, engine, info.frames, tuple(warnings))


def _split_manifest(split: SplitPlan) -> dict[str, Any]:
    class _Fingerprint:
        fingerprint = split.engine

    manifest = _manifest(split.src, split.plan, 0, split.scale, _Fingerprint())
    return {**manifest, "parts": [[w.seek, w.first_pts, w.end_pts] for w in split.windows]}


def start_split(split: SplitPlan) -> list[int]:
    """Set up the work folder; return the numbers of the parts to restore (with resume, the unfinished ones)."""
    warnings: list[str] = []
    _prepare_work(split.work, _split_manifest(split), split.options.resume, warnings)
    return [n for n in range(len(split.windows)) if not _segment_path(split.work, n).is_file()]


class _PartSink:
    """Encodes one part as one segment file (a fresh encoder, so it starts with a keyframe)."""

    def __init__(self, path: Path, plan: _Plan) -> None:
        self.writer = _SegmentWriter(path, plan, 0)

    def frame(self, index: int, image: Any, pts: int, duration: int) -> None:
        self.writer.encode(image, pts, duration)

    def packet(self, packet: Any, index: int) -> None:  # copied streams come from the source when joining
        pass

    def finish(self) -> None:
        self.writer.finish()

    def abort(self) -> None:
        self.writer.abort()


def restore_part(
    split: SplitPlan,
    number: int,
    engine: FrameRestorer,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> PartResult:
    """Restore part ``number`` of ``split`` with ``engine`` into its segment file (atomic)."""
    window = split.windows[number]
    sink = _PartSink(_segment_path(split.work, number), split.plan)
    with write_errors(split.dst, segmented=True):
        flow = _run_flow(split.src, split.plan, engine, split.options, sink, set(), 0, None, on_progress,
                         window=window)
    if window.first_pts is not None and flow.frames_decoded == 0:
        raise IrxError(f"{split.src}: part {number} holds no frame; the video cannot be split there")
    return PartResult(number, flow.frames_decoded, flow.decode_errors, flow.damaged, flow.warnings,
                      dict(flow.seconds))


def join_parts(split: SplitPlan, results: Sequence[PartResult] = ()) -> VideoResult:
    """Remux the finished parts with the source's audio, subtitles and other streams into ``dst`` (atomic).

    ``results`` are the parts restored by this run (those kept by a resume have none) and give the counts.
    """
    options = split.options
    count = len(split.windows)
    missing = [n for n in range(count) if not _segment_path(split.work, n).is_file()]
    if missing:
        raise IrxError(f"{split.dst}: parts {missing} of the video were not restored")
    with write_errors(split.dst, segmented=True):
        frames, join_warnings, copied = _join_segments(
            split.dst, split.work, count, split.plan, split.src, options.keep_audio, options.overwrite
        )
    shutil.rmtree(split.work, ignore_errors=True)
    flow = _Flow(max(1, options.batch_size))
    warnings = list(split.warnings)
    for part in sorted(results, key=lambda r: r.number):
        flow.decode_errors += part.decode_errors
        flow.damaged += part.damaged
        warnings += part.warnings
        for key, value in part.seconds.items():
            flow.seconds[key] += value
    if split.declared_frames and frames < split.declared_frames:
        warnings.append(
            f"only {frames} frames could be decoded but the file declares {split.declared_frames}; it may be damaged or truncated"
        )
    restored = sum(part.frames for part in results)
    return _result(split.dst, split.plan, frames, copied, warnings + join_warnings, flow, options, frames - restored, count)


def restore_video_split(
    src: Path | str,
    dst: Path | str,
    engines: Sequence[FrameRestorer],
    options: VideoOptions | None = None,
    *,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> VideoResult:
    """restore_video with several engines (devices): the parts are shared out as the engines get free.

    One engine, or a video that cannot be cut, is restore_video with the first engine.
    """
    options = options or VideoOptions()
    first = engines[0]
    split = None
    if len(engines) > 1:
        split = plan_split(src, dst, first, options, 2 * len(engines), str(getattr(first, "fingerprint", None)))
    if split is None:
        return restore_video(src, dst, first, options, on_progress=on_progress)
    todo = start_split(split)
    lock = threading.Lock()
    results: list[PartResult] = []
    errors: list[BaseException] = []
    done_by_part: dict[int, int] = {}
    total = probe_video(split.src).estimated_frames

    def progress(number: int) -> Callable[[int, int | None], None]:
        def report(done: int, _: int | None) -> None:
            with lock:
                done_by_part[number] = done
                frames = sum(done_by_part.values())
            if on_progress is not None:
                on_progress(frames, total)

        return report

    def work(engine: FrameRestorer) -> None:
        while True:
            with lock:
                if errors or not todo:
                    return
                number = todo.pop(0)
            try:
                result = restore_part(split, number, engine, progress(number))
            except BaseException as error:  # noqa: BLE001 - the first error is raised by the caller
                with lock:
                    errors.append(error)
                return
            with lock:
                results.append(result)

    threads = [threading.Thread(target=work, args=(engine,), name=f"irx-part-{i}", daemon=True)
               for i, engine in enumerate(engines)]
    for thread in threads:
        thread.start()
    try:
        _stages.join(threads)
    except BaseException:
        with lock:
            errors.append(KeyboardInterrupt())  # the others finish their part (kept for --resume) and stop
        _stages.join(threads, patient=True)
        raise
    if errors:
        raise errors[0]
    return join_parts(split, results)
