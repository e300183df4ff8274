"""The stage flow: decode thread -> engine (calling thread) -> encode thread, joined by bounded queues.

The queues carry typed messages: a decoded `Frame`, a `Packet` of a copied stream, `End` after the last
one, `Failed` for a decoder error handed to the calling thread and `Abort` for the encoder to drop
what it has not finished. Where the restored frames go is a `_Sink`: one output file (`_DirectSink`
here) or segments (irx.media.video.segments).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import numpy as np

from irx import _stages
from irx._stages import End, Stopped, TrackedQueue
from irx.errors import InputError, IrxError
from irx.media.video.plan import VideoOptions, _from_engine, _Plan, _to_engine
from irx.media.video.probe import _ff_message, _open_input, _video_stream

_MAX_WARNINGS = 50


class FrameRestorer(Protocol):
    """What restore_video needs from a model runner (irx.engine.Engine is one).

    Frames come back ``scale`` times larger, or of ``output_size(height, width)`` where the runner has
    that method (irx.pipeline's resizing runner: fractional scales, a given width or height).
    It gets RGB frames as uint8 (uint16 for deep video) HWC samples and may return them in that dtype or
    as float32 in [0, 1].
    """

    scale: int

    def restore(self, images: Sequence[np.ndarray]) -> list[np.ndarray]: ...


def restored_size(engine: FrameRestorer, height: int, width: int) -> tuple[int, int]:
    """(height, width) of ``engine``'s output for a frame of that size."""
    output_size = getattr(engine, "output_size", None)
    if output_size is not None:
        return tuple(output_size(height, width))  # type: ignore[return-value]
    scale = int(getattr(engine, "scale", 1) or 1)
    return height * scale, width * scale


def frames_in_flight_bound(batch_size: int) -> int:
    """Most frames held in memory at once by restore_video (queues + batch + encoder hand-off)."""
    # q_in (2B) + the two the decoder holds (one waits for the next frame's timestamp) + the batch
    # being restored (B) + q_out (2 batches) + the batch being encoded (B). The encoder's own
    # look-ahead is bounded by its settings and not counted.
    return 6 * batch_size + 2


# ---------------------------------------------------------------------------------------------- messages


@dataclass(slots=True)
class Frame:
    """A decoded frame (RGB uint8 or uint16) on its way to the engine, then the restored one to the encoder."""

    index: int
    image: np.ndarray
    pts: int
    duration: int


@dataclass(slots=True)
class Packet:
    """A packet of a copied stream; the stream index travels with it (the input closes before it is muxed)."""

    packet: Any
    stream: int


@dataclass(slots=True)
class Failed:
    """The decoder failed; the calling thread raises ``error``."""

    error: BaseException


@dataclass(frozen=True, slots=True)
class Window:
    """A stretch of the video for one worker (irx.media.video.split): the frames with ``first_pts <= pts < end_pts``.

    Timestamps are the input stream's; None is open-ended. Decoding starts from the keyframe at or before
    ``seek`` (None: the start of the file).
    """

    seek: int | None
    first_pts: int | None
    end_pts: int | None


@dataclass(slots=True)
class Abort:
    """The flow stopped: the encoder finishes nothing more and drops its unfinished output."""


Decoded = Frame | Packet | End | Failed  # what q_in carries
Restored = Frame | Packet | End | Abort  # what q_out's batches hold


# ---------------------------------------------------------------------------------------------- stages


class _Flow:
    """Queues, stop signals and counters shared by the three stages."""

    def __init__(self, batch_size: int) -> None:
        self.q_in = TrackedQueue(2 * batch_size)  # Decoded messages
        self.q_out = TrackedQueue(2)  # lists of Restored messages
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
        self.stop_reading = False  # a window's end was reached: the decoder stops, the rest of the flow goes on
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


def _decode_worker(
    flow: _Flow,
    src: Path,
    plan: _Plan,
    copy_indices: set[int],
    start_frame: int,
    expected: tuple[int | None, bool],
    window: Window | None = None,
) -> None:
    """Demux and decode ``src`` onto q_in: a Frame per frame from ``start_frame`` on, a Packet per copied packet.

    With a ``window`` only the frames inside it are sent (numbered from 0); the first frame after it is still
    decoded, since the last frame's duration is the step to the next one, as in the whole-file run.
    """
    try:
        with _open_input(src) as container:
            video = _video_stream(container, src)
            video.thread_type = "AUTO"
            if window is not None and window.seek is not None:
                container.seek(window.seek, stream=video, backward=True, any_frame=False)
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
                    _stages.put(flow.q_in, Frame(number, array, pts, duration), flow.stop)

            packets = container.demux(wanted)
            while not flow.stop.is_set() and not flow.stop_reading:
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
                        _stages.put(flow.q_in, Packet(packet, packet.stream.index), flow.stop)
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
                    if window is not None and _before(window, frame.pts):
                        continue
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
                    if window is not None and window.end_pts is not None and frame.pts >= window.end_pts:
                        if held is not None:
                            emit(held[0], held[1], held[2], pts - held[2])
                            held = None
                        flow.stop_reading = True
                        break
                    # A frame is shown until the next one starts; the decoder's duration is only a
                    # guess (in mp4 it is a decode-time step), so hold each frame until the next arrives.
                    if held is not None:
                        emit(held[0], held[1], held[2], pts - held[2])
                    held = (index, frame, pts, duration or step)
                    index += 1
            if held is not None and not flow.stop.is_set():
                if window is not None and window.end_pts is not None:
                    raise IrxError(f"{src}: the video ended before timestamp {window.end_pts}; it cannot be split there")
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
        _stages.put(flow.q_in, End(), flow.stop)
    except Stopped:
        return
    except BaseException as error:  # noqa: BLE001 - handed to the calling thread
        with suppress(Stopped):
            _stages.put(flow.q_in, Failed(error), flow.stop)


def _before(window: Window, pts: int | None) -> bool:
    """Whether a decoded frame comes before ``window`` (it belongs to an earlier one)."""
    if pts is None:
        raise IrxError("a video frame has no timestamp; the video cannot be split into parts")
    return window.first_pts is not None and pts < window.first_pts


class _Sink(Protocol):
    def frame(self, index: int, image: np.ndarray, pts: int, duration: int) -> None: ...
    def packet(self, packet: Any, index: int) -> None: ...
    def finish(self) -> None: ...
    def abort(self) -> None: ...


def _encode_worker(flow: _Flow, sink: _Sink, plan: _Plan) -> None:
    """Encode restored batches in order; Abort drops the unfinished output, End completes it."""
    try:
        while True:
            batch: list[Restored] = flow.q_out.get()  # the calling thread always ends with End or Abort
            for item in batch:
                match item:
                    case Frame():
                        started = time.perf_counter()
                        sink.frame(item.index, item.image, item.pts, item.duration)
                        flow.seconds["encode"] += time.perf_counter() - started
                        flow.track(-1)
                    case Packet():
                        sink.packet(item.packet, item.stream)
                    case End():
                        started = time.perf_counter()
                        sink.finish()  # flushes the encoder's look-ahead: part of the encode stage
                        flow.seconds["encode"] += time.perf_counter() - started
                        return
                    case Abort():
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
    engine: FrameRestorer,
    options: VideoOptions,
    sink: _Sink,
    copy_indices: set[int],
    start_frame: int,
    total: int | None,
    on_progress: Callable[[int, int | None], None] | None,
    exact_total: bool = False,
    window: Window | None = None,
) -> _Flow:
    """Run decode -> engine -> encode to completion; the engine runs in this (the calling) thread."""
    batch_size = max(1, options.batch_size)
    flow = _Flow(batch_size)
    expected = (total, exact_total)
    decoder = threading.Thread(
        target=_decode_worker,
        args=(flow, src, plan, copy_indices, start_frame, expected, window),
        name="irx-decode",
        daemon=True,
    )
    encoder = threading.Thread(target=_encode_worker, args=(flow, sink, plan), name="irx-encode", daemon=True)
    decoder.start()
    encoder.start()
    done = start_frame
    pending: list[Restored] = []
    frames: list[Frame] = []  # the frames among pending, restored in place
    # Packets of other streams ride along with the frames around them; cap a batch's length so a long
    # stretch of audio without video cannot pile up here.
    max_items = 8 * batch_size + 32

    def flush() -> None:
        nonlocal pending, frames, done, reported
        if frames:
            images = [frame.image for frame in frames]
            started = time.perf_counter()
            restored = engine.restore(images)
            flow.seconds["engine"] += time.perf_counter() - started
            _check_restored(images, restored, engine)
            for frame, image in zip(frames, restored):
                frame.image = np.asarray(image)
            done += len(frames)
        if pending:
            started = time.perf_counter()
            _stages.put(flow.q_out, pending, flow.encoder_failed)
            flow.seconds["wait_for_encode"] += time.perf_counter() - started
        pending, frames = [], []
        if on_progress is not None and reported != done:
            reported = done
            on_progress(done, total)

    reported = -1
    try:
        if on_progress is not None and start_frame:
            on_progress(done, total)
        while True:
            started = time.perf_counter()
            item: Decoded = _stages.get(flow.q_in, flow.encoder_failed)
            flow.seconds["wait_for_decode"] += time.perf_counter() - started
            match item:
                case Frame():
                    pending.append(item)
                    frames.append(item)
                    if len(frames) >= batch_size:
                        flush()
                case Packet():
                    pending.append(item)
                    if len(pending) >= max_items:
                        flush()
                case End():
                    flush()
                    _stages.put(flow.q_out, [item], flow.encoder_failed)
                    break
                case Failed():
                    raise item.error
        _stages.join([encoder])
    except BaseException as error:
        flow.stop.set()
        if not flow.encoder_failed.is_set():
            # Let the encoder finish what is already restored (completes segments), then drop the rest.
            with suppress(Stopped):
                _stages.put(flow.q_out, [Abort()], flow.encoder_failed)
        _stages.join([encoder], patient=True)
        decoder.join(timeout=5)
        if isinstance(error, Stopped) and flow.encoder_error is not None:
            raise flow.encoder_error from None
        raise
    decoder.join(timeout=5)
    if flow.encoder_error is not None:
        raise flow.encoder_error
    return flow


def _check_restored(images: Sequence[np.ndarray], restored: Sequence[np.ndarray], engine: FrameRestorer) -> None:
    if len(restored) != len(images):
        raise IrxError(f"the engine returned {len(restored)} frames for {len(images)}; this is a bug in the engine")
    for image, out in zip(images, restored):
        want = (*restored_size(engine, image.shape[0], image.shape[1]), 3)
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

