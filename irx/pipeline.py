"""The streaming pipeline: decode threads -> engine worker(s) -> encode threads, with bounded queues.

At most `prefetch` images are in flight at once (decoded, in the engine, or waiting to be written), so memory
does not grow with the number of files, and while the engine works on one batch the next images are being
decoded and the previous ones encoded: in steady state the device does not wait for the disk. With several
GPUs there is one engine worker per device pulling from the same queue, which shards files dynamically.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from irx import _stages
from irx._stages import End, Stopped
from irx.engine import Engine, PendingRestore
from irx.errors import InputError, IrxError
from irx.finish import alpha_as_grey, blend, pixel_strength, resize_pixels
from irx.media.compare import write_compare
from irx.media.formats import keeps_animation, restore_frames
from irx.media.image_io import DecodedImage, format_for_path, read_image, to_float, write_image, written_bit_depth
from irx.media.outputs import Claim, record_output, try_claim
from irx.media.sources import Job
from irx.summary import RunSummary


class Reporter(Protocol):
    """What the pipeline tells the user interface (see irx.cli.progress)."""

    def start(self, total_files: int) -> None: ...
    def file_done(self, name: str) -> None: ...
    def file_failed(self, name: str, reason: str, detail: str | None = None) -> None: ...
    def file_warning(self, name: str, message: str) -> None: ...
    def tiles(self, count: int) -> None: ...
    def tiles_planned(self, tiles: int, images: int) -> None: ...
    def video_progress(self, name: str, frames_done: int, frames_total: int | None) -> None: ...
    def stop(self) -> None: ...


class SilentReporter:
    def start(self, total_files: int) -> None: ...
    def file_done(self, name: str) -> None: ...
    def file_failed(self, name: str, reason: str, detail: str | None = None) -> None: ...
    def file_warning(self, name: str, message: str) -> None: ...
    def tiles(self, count: int) -> None: ...
    def tiles_planned(self, tiles: int, images: int) -> None: ...
    def video_progress(self, name: str, frames_done: int, frames_total: int | None) -> None: ...
    def stop(self) -> None: ...


@dataclass
class PipelineOptions:
    out_scale: float | None = None  # requested output scale; the model's output is resized when it differs
    out_width: int | None = None  # requested output size (one alone keeps the aspect ratio); wins over out_scale
    out_height: int | None = None
    out_format: str | None = None
    quality: int | None = None
    overwrite: bool = False
    prefetch: int = 8
    decode_workers: int = 2
    encode_workers: int = 2
    video: Any = None  # irx.media.video.VideoOptions
    task: str = "restored"  # recorded in the output folder's ledger (irx.media.outputs)
    strict: bool = False  # an input the decoder reports as damaged fails instead of being restored with a warning
    claims: bool = True  # claim each output first, so concurrent runs on one folder share the work
    strength: float = 1.0  # irx.finish: 0 the input, 1 the model's output
    alpha: str = "model"  # upscaling: alpha restored by the model ("model") or only resized ("resize")
    faces: Any = None  # a callable giving the irx.faces.FaceRestorer to paste faces with (loaded on first use)
    compare: bool = False  # also write a before/after image beside each output (irx.media.compare)


class _Run:
    """State of one pipeline run, shared by its threads."""

    def __init__(self, engines: Sequence[Engine], options: PipelineOptions, reporter: Reporter) -> None:
        self.engines = engines
        self.options = options
        self.reporter = reporter
        self.summary = RunSummary()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.fatal: BaseException | None = None
        self.slots = threading.Semaphore(max(1, options.prefetch))
        self.decoded: queue.Queue[Any] = queue.Queue()
        self.decode_pool = ThreadPoolExecutor(options.decode_workers, thread_name_prefix="irx-decode")
        self.encode_pool = ThreadPoolExecutor(options.encode_workers, thread_name_prefix="irx-encode")
        self.claims: dict[Path, Claim] = {}
        self.started_ns = time.time_ns()

    # ------------------------------------------------------------------ bookkeeping
    def succeeded(self, job: Job) -> None:
        with self.lock:
            self.summary.processed.append(job.name)
            self.summary.outputs[job.name] = str(job.output)
        self.reporter.file_done(job.name)

    def failed(self, name: str, error: BaseException | str) -> None:
        reason = str(error) if isinstance(error, IrxError | str) else f"{type(error).__name__}: {error}"
        detail = None
        if isinstance(error, BaseException) and not isinstance(error, IrxError):
            detail = "".join(traceback.format_exception(error))
        with self.lock:
            self.summary.failed.append({"path": name, "reason": reason})
        self.reporter.file_failed(name, reason, detail)

    def warned(self, name: str, text: str) -> None:
        with self.lock:
            self.summary.warnings.append({"path": name, "reason": text})
        self.reporter.file_warning(name, text)

    def skipped(self, name: str, reason: str) -> None:
        with self.lock:
            self.summary.skipped.append(name)
        self.warned(name, f"skipped: {reason}")
        self.reporter.file_done(name)

    def claim(self, job: Job) -> bool:
        """Take ``job`` for this run, or skip it because another run has it or has just done it."""
        if self.options.claims:
            claim = try_claim(job.output)
            if not isinstance(claim, Claim):
                who = f"another irx run (pid {claim})" if claim else "another irx run"
                self.skipped(job.name, f"{who} is restoring it")
                return False
            with self.lock:
                self.claims[job.output] = claim
        try:
            written = os.stat(job.output).st_mtime_ns
        except OSError:
            return True
        if not self.options.overwrite or written >= self.started_ns:
            self.release(job.output)
            self.skipped(job.name, "another irx run restored it while this one ran")
            return False
        return True

    def release(self, output: Path) -> None:
        with self.lock:
            claim = self.claims.pop(output, None)
        if claim is not None:
            claim.release()

    # ------------------------------------------------------------------ stages
    def feed(self, jobs: list[Job]) -> None:
        """Submit decodes in order, never more than `prefetch` images in flight."""
        try:
            for job in jobs:
                _stages.acquire(self.slots, self.stop)
                if not self.claim(job):
                    self.slots.release()
                    continue
                self.decoded.put((job, self.decode_pool.submit(self._decode, job)))
        except Stopped:
            return
        finally:
            self.decoded.put(End())

    def work(self, engine: Engine) -> None:
        """Engine worker thread; an interrupt or crash inside it stops the run and reaches the main thread."""
        try:
            self._work(engine)
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            self.fatal = error
            self.stop.set()

    def _work(self, engine: Engine) -> None:
        """Take what is decoded (up to one batch's worth), submit it, hand the previous batch to the encoders.

        Engine.restore is the one place that groups images by shape and memory budget; this loop only
        decides how many ready images to hand it at once. On CUDA one batch stays in flight: the next one is
        submitted before the current one's results are collected, so the device computes while this thread
        prepares the next batch (on the CPU `submit` does the work itself, so there is nothing to overlap).
        Two batches in flight need two batches' worth of prefetch slots; with fewer, the loop finishes one
        batch before it waits for the decoders. The loop only waits for the decoders with nothing in flight: a batch
        is never held back from the encoders (and never keeps its prefetch slots) while the next one decodes.
        """
        in_flight: tuple[list[tuple[Job, DecodedImage]], PendingRestore] | None = None
        pending: Any = None
        try:
            while not self.stop.is_set():
                if pending is not None:
                    item, pending = pending, None
                else:
                    try:
                        item = self.decoded.get_nowait()
                    except queue.Empty:
                        item = None
                    if in_flight is not None and not _decoded_already(item):
                        # nothing ready to overlap with: hand the batch in flight to the encoders first
                        self._finish_batch(engine, *in_flight)
                        in_flight = None
                    if item is None:
                        item = self.decoded.get()
                if isinstance(item, End):
                    self.decoded.put(item)  # let the other engine workers see the end too
                    return
                first = self._take(item)
                if first is None:
                    continue
                batch = [first]
                limit = engine.images_per_batch(*first[1].pixels.shape[:2])
                while len(batch) < limit:
                    try:
                        nxt = self.decoded.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(nxt, End):
                        pending = nxt
                        break
                    taken = self._take(nxt)
                    if taken is not None:
                        batch.append(taken)
                submitted = self._submit_batch(engine, batch)
                if in_flight is not None:
                    self._finish_batch(engine, *in_flight)
                    in_flight = None
                if submitted is not None:
                    if engine.asynchronous:
                        in_flight = (batch, submitted)
                    else:  # the work is done already: holding it back would only delay the encoders
                        self._finish_batch(engine, batch, submitted)
        finally:
            if in_flight is not None:  # restored already (or nearly): write it, also when stopped
                self._finish_batch(engine, *in_flight)

    def _decode(self, job: Job) -> DecodedImage:
        """Decode in the file's own sample type, which crosses the bus at a quarter (uint8) or half (uint16)
        of float32's size and is converted on the device. Where the restored pixels are resized or written at
        a lower bit depth they stay float until then, as they always were, so that every output is the same
        bit for bit as restoring float pixels."""
        decoded = read_image(job.source, native=True)
        if not self._writes_native_depth(job, decoded):
            decoded = replace(decoded, pixels=to_float(decoded.pixels))
        return decoded

    def _finished_in_float(self, decoded: DecodedImage) -> bool:
        """Whether the model's output is worked on after it (resized, blended, faces pasted, compared,
        animation frames), which irx does in float."""
        o = self.options
        resized = o.out_scale not in (None, self.engines[0].scale) or bool(o.out_width or o.out_height)
        model_alpha = _alpha_by_model(self.engines[0], decoded, o)
        return (resized or model_alpha or o.strength != 1 or o.faces is not None or o.compare
                or decoded.animation is not None)

    def _writes_native_depth(self, job: Job, decoded: DecodedImage) -> bool:
        try:
            fmt = self.options.out_format or format_for_path(job.output)
            return written_bit_depth(decoded.bit_depth, fmt) == decoded.bit_depth
        except IrxError:  # an unknown output format: writing it fails later with the message for it
            return False

    def _take(self, item: Any) -> tuple[Job, DecodedImage] | None:
        job, future = item
        try:
            decoded = future.result()
            if decoded.warnings and self.options.strict:
                raise InputError(f"{job.name}: {decoded.warnings[0]} (strict)", param="strict")
        except BaseException as error:  # noqa: BLE001 - a bad file is reported, the run goes on
            self._fail(job, error)
            return None
        for warning in decoded.warnings:
            self.warned(job.name, warning)
        # Here, in the engine's thread, not in a decoder: it needs the model (loaded on first use), whose
        # load error must stop the run rather than fail one file.
        if decoded.pixels.dtype != np.float32 and self._finished_in_float(decoded):
            decoded = replace(decoded, pixels=to_float(decoded.pixels))
        return job, decoded

    def _fail(self, job: Job, error: BaseException) -> None:
        self.failed(job.name, error)
        self.release(job.output)
        self.slots.release()

    def _submit_batch(self, engine: Engine, batch: list[tuple[Job, DecodedImage]]) -> PendingRestore | None:
        try:
            return engine.submit(_model_inputs(engine, [decoded for _, decoded in batch], self.options))
        except Exception as error:  # noqa: BLE001 - the batch fails, the run goes on
            for job, _ in batch:
                self._fail(job, error)
            return None

    def _finish_batch(self, engine: Engine, batch: list[tuple[Job, DecodedImage]], submitted: PendingRestore) -> None:
        if self.options.faces is not None:
            self.options.faces()  # loaded once; a face model that cannot be had stops the run, not one file
        try:
            results = finish_decoded(engine, [decoded for _, decoded in batch], submitted.result(), self.options)
        except Exception as error:  # noqa: BLE001 - the model failed on the batch: each file fails
            results = [error] * len(batch)
        for (job, decoded), restored in zip(batch, results):
            if isinstance(restored, BaseException):
                self._fail(job, restored)
                continue
            before = decoded.pixels if self.options.compare else None
            future = self.encode_pool.submit(self._write, job, restored, before)
            future.add_done_callback(lambda f, job=job: self._written(job, f))

    def _write(self, job: Job, image: DecodedImage, before: np.ndarray | None = None) -> Path:
        written_as = (self.options.out_format or job.output.suffix).upper().lstrip(".")
        if image.animation is not None and not keeps_animation(written_as):
            self.warned(job.name, f"{job.output.suffix} holds one picture: only the first frame is written")
        path = write_image(  # atomic; creates the output's folders
            job.output,
            image,
            format=self.options.out_format,
            quality=self.options.quality,
            overwrite=self.options.overwrite,
        )
        if before is not None:  # --compare: a missing compare picture is a warning, the output is done
            try:
                write_compare(job.output, job.source, before, image.pixels)
            except OSError as error:
                self.warned(job.name, f"no compare picture: {error}")
        return path

    def _written(self, job: Job, future: Future[Path]) -> None:
        self.slots.release()
        if not future.cancelled() and future.exception() is None:
            record_output(job.output, task=self.options.task, source=job.source)
        self.release(job.output)
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            self.succeeded(job)
        else:
            self.failed(job.name, error)


def restore_decoded(
    engine: Engine, batch: list[DecodedImage], options: PipelineOptions
) -> list[DecodedImage | BaseException]:
    """Restore decoded images with ``engine`` and finish each as ``options`` say (output size, strength,
    alpha, faces, an animation's other frames): a finished image, or the error of that one image.

    Raises when the model fails on the batch. The Ray workers restore through here; the local pipeline
    does the same in two steps (submit, then finish_decoded) to keep a batch in flight.
    """
    return finish_decoded(engine, batch, engine.restore(_model_inputs(engine, batch, options)), options)


def _alpha_by_model(engine: Engine, decoded: DecodedImage, options: PipelineOptions) -> bool:
    """Upscaling: the alpha channel goes through the model too, as a grey image in the same call."""
    resized = (options.out_scale or engine.scale) != 1 or options.out_width or options.out_height
    return decoded.alpha is not None and options.alpha == "model" and bool(resized)


def _model_inputs(engine: Engine, batch: list[DecodedImage], options: PipelineOptions) -> list[np.ndarray]:
    """The pixels of each image, then the alpha channels the model restores (see _alpha_by_model)."""
    alphas = [alpha_as_grey(d.alpha) for d in batch if _alpha_by_model(engine, d, options)]
    return [d.pixels for d in batch] + alphas


def finish_decoded(
    engine: Engine, batch: list[DecodedImage], outputs: Sequence[np.ndarray], options: PipelineOptions
) -> list[DecodedImage | BaseException]:
    """The model's ``outputs`` for ``_model_inputs(batch)`` finished as ``options`` say (see restore_decoded)."""
    model_alpha = [i for i, decoded in enumerate(batch) if _alpha_by_model(engine, decoded, options)]
    alphas = dict(zip(model_alpha, outputs[len(batch):]))
    strength = pixel_strength(getattr(engine, "descriptor", None), options.strength)
    # A face model that cannot be had stops the run (one message, not one per file).
    faces = options.faces() if options.faces is not None else None
    size = (options.out_scale, options.out_width, options.out_height)
    results: list[DecodedImage | BaseException] = []
    for index, (decoded, pixels) in enumerate(zip(batch, outputs)):
        try:
            restored = finish_image(decoded, pixels, engine.scale, *size,
                                    model_alpha=alphas.get(index), strength=strength, faces=faces)
            if decoded.animation is not None:
                restored = _restore_frames(engine, decoded, restored, size, strength)
            results.append(restored)
        except Exception as error:  # noqa: BLE001 - e.g. a face model that fails on this image
            results.append(error)
    return results


def _restore_frames(
    engine: Engine, decoded: DecodedImage, restored: DecodedImage, out_size: tuple[Any, ...], strength: float
) -> DecodedImage:
    """The other frames of an animation (GIF, WebP, PNG, AVIF, JPEG XL), through the same engine, output
    size and strength as the first (faces are restored in the first frame only)."""
    size = decoded.pixels.shape[:2]

    def finish_frame(source: np.ndarray, out: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        out, alpha = fit_to_scale(out, alpha, size, engine.scale, *out_size)
        return blend(source, out, strength), alpha

    return restore_frames(restored, engine.restore, finish_frame)


def output_size(
    source_size: tuple[int, int],
    model_scale: int,
    out_scale: float | None = None,
    width: int | None = None,
    height: int | None = None,
) -> tuple[int, int]:
    """(height, width) asked for an output: both given, one given (the other keeps the aspect ratio),
    else the source x out_scale (fractional allowed), else x the model's own scale."""
    source_height, source_width = source_size
    if width and height:
        return height, width
    if width:
        return max(1, _round(source_height * width / source_width)), width
    if height:
        return height, max(1, _round(source_width * height / source_height))
    factor = out_scale or model_scale
    return max(1, _round(source_height * factor)), max(1, _round(source_width * factor))


def _round(value: float) -> int:
    return int(value + 0.5)  # half up, not Python's half-to-even: 1.5 x 321 is always 482


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a model output to (height, width): area averaging when shrinking (no aliasing), Lanczos when
    enlarging (sharper than the bicubic irx.finish.resize_pixels uses for inputs and alpha)."""
    height, width = size
    shrinking = width <= array.shape[1] and height <= array.shape[0]
    resized = cv2.resize(array, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4)
    resized = resized.reshape(height, width, *array.shape[2:])  # cv2 drops a trailing channel of 1
    # integer samples (video frames) saturate in cv2 itself; floats are clipped to [0, 1]
    return resized if resized.dtype.kind == "u" else np.clip(resized, 0, 1).astype(np.float32)


def _decoded_already(item: Any) -> bool:
    """Whether a queue item (a decode future, or End) can be taken without waiting for a decoder."""
    return item is not None and (isinstance(item, End) or item[1].done())


def fit_to_scale(
    pixels: np.ndarray,
    alpha: np.ndarray | None,
    source_size: tuple[int, int],
    model_scale: int,
    out_scale: float | None,
    width: int | None = None,
    height: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize a model output (and the source's alpha, as irx resizes inputs) to the asked size (see
    `output_size`)."""
    target = output_size(source_size, model_scale, out_scale, width, height)
    if pixels.shape[:2] != target:
        pixels = _resize(pixels, target)
    if alpha is not None and alpha.shape[:2] != target:
        alpha = resize_pixels(alpha, (target[1], target[0]))
    return pixels, alpha


def finish_image(
    decoded: DecodedImage,
    pixels: np.ndarray,
    model_scale: int,
    out_scale: float | None,
    width: int | None = None,
    height: int | None = None,
    *,
    model_alpha: np.ndarray | None = None,
    strength: float = 1.0,
    faces: Any = None,
) -> DecodedImage:
    """Fit the model output to the asked size, blend it with the input by ``strength`` (irx.finish),
    bring the alpha channel along (``model_alpha``: the model's output for it, else it is resized) and
    paste the faces ``faces`` (an irx.faces.FaceRestorer) restores."""
    pixels, alpha = fit_to_scale(pixels, decoded.alpha, decoded.pixels.shape[:2], model_scale, out_scale, width, height)
    if model_alpha is not None and alpha is not None:
        restored_alpha = resize_pixels(model_alpha[..., 0], (alpha.shape[1], alpha.shape[0]))
        alpha = blend(decoded.alpha, restored_alpha, strength)
    pixels = blend(decoded.pixels, pixels, strength)
    if faces is not None:
        pixels = faces.apply(decoded.pixels, pixels)
    return replace(decoded, pixels=pixels, alpha=alpha)


def run_pipeline(
    jobs: list[Job],
    engines: Sequence[Engine],
    options: PipelineOptions | None = None,
    reporter: Reporter | None = None,
    summary: RunSummary | None = None,
) -> RunSummary:
    """Restore every job; failures are collected, never fatal. Ctrl-C stops cleanly (no partial outputs)."""
    options = options or PipelineOptions()
    reporter = reporter or SilentReporter()
    run = _Run(engines, options, reporter)
    if summary is not None:
        run.summary = summary
    started = time.perf_counter()
    images = [job for job in jobs if job.kind == "image"]
    videos = [job for job in jobs if job.kind == "video"]
    reporter.start(len(jobs))
    try:
        if images:
            _run_images(run, images)
        for job in videos:
            if run.stop.is_set():
                break
            _run_video(run, job)
    finally:
        run.summary.seconds += time.perf_counter() - started
        reporter.stop()
    return run.summary


def _run_images(run: _Run, images: list[Job]) -> None:
    threads = [threading.Thread(target=run.feed, args=(images,), name="irx-feed", daemon=True)]
    threads += [
        threading.Thread(target=run.work, args=(engine,), name=f"irx-engine-{i}", daemon=True)
        for i, engine in enumerate(run.engines)
    ]
    for thread in threads:
        thread.start()
    try:
        _stages.join(threads)
        if run.fatal is not None:
            raise run.fatal
    except BaseException:  # Ctrl-C, SIGTERM, or a crash handed over by a worker
        run.stop.set()
        # Unblock the feeder and the workers. Images already restored are still written (atomically):
        # that work is done, and a rerun with --skip-existing resumes after it.
        run.decoded.put(End())
        raise
    finally:
        # Wait for the workers even when interrupted: an engine thread still inside torch when the
        # interpreter exits aborts the process ("terminate called without an active exception", 134).
        # A second Ctrl-C while they finish their current batch does not cut the wait short.
        _stages.join(threads, patient=True)
        run.encode_pool.shutdown(wait=True)
        run.decode_pool.shutdown(wait=False, cancel_futures=True)
        for output in list(run.claims):  # claims of images never started
            run.release(output)


def _run_video(run: _Run, job: Job) -> None:
    from irx.media import video  # noqa: PLC0415 - PyAV is only imported when a video is processed

    options = run.options.video or video.VideoOptions(overwrite=run.options.overwrite)
    if not run.claim(job):
        return
    try:
        # One engine per device: with several, the video is cut at keyframes and its parts shared out.
        result = video.restore_video_split(  # atomic; creates the output's folders
            job.source,
            job.output,
            [_ScaledEngine(engine, run.options.out_scale, run.options.out_width, run.options.out_height,
                           run.options.strength, run.options.faces) for engine in run.engines],
            options,
            on_progress=lambda done, total: run.reporter.video_progress(job.name, done, total),
        )
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001
        run.failed(job.name, error)
        return
    finally:
        run.release(job.output)
    finish_video(run, job, result)


def finish_video(run: _Run, job: Job, result: Any) -> None:
    """Account for a written video (a VideoResult): --strict, the ledger, warnings, success."""
    if run.options.strict and (result.decode_errors or result.damaged_frames):
        job.output.unlink(missing_ok=True)  # irx's own file, just written
        run.failed(job.name, f"{job.name}: the video is damaged ({result.warnings[-1]}) (--strict)")
        return
    record_output(job.output, task=run.options.task, source=job.source)
    for warning in result.warnings:
        run.warned(job.name, warning)
    run.succeeded(job)


class _ScaledEngine:
    """An engine whose output is resized to the asked size, blended by strength and given restored faces,
    as images are (video frames have no alpha)."""

    def __init__(
        self,
        engine: Engine,
        out_scale: float | None,
        width: int | None = None,
        height: int | None = None,
        strength: float = 1.0,
        faces: Any = None,
    ) -> None:
        self.engine = engine
        self.scale = engine.scale  # the model's; output_size says what the frames become
        self._size = (out_scale, width, height)
        self.strength = pixel_strength(getattr(engine, "descriptor", None), strength)
        self.faces = faces
        # Resumed segments must come from the same settings: size, strength and faces change every frame.
        extra = (f":s{strength:g}" if strength != 1 else "") + (":faces" if faces is not None else "")
        fingerprint = getattr(engine, "fingerprint", type(engine).__name__)
        self.fingerprint = f"{fingerprint}:out_x{out_scale or engine.scale}:{width or '-'}x{height or '-'}{extra}"

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return output_size((height, width), self.engine.scale, *self._size)

    def restore(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        outputs = self.engine.restore(images)
        outputs = [
            fit_to_scale(out, None, image.shape[:2], self.engine.scale, *self._size)[0]
            for image, out in zip(images, outputs)
        ]
        if self.strength == 1 and self.faces is None:
            return outputs
        faces = self.faces() if self.faces is not None else None
        finished = []
        for image, out in zip(images, outputs):  # video frames come as uint8/uint16: blended in float
            image, out = to_float(image), to_float(out)
            out = blend(image, out, self.strength)
            finished.append(faces.apply(image, out) if faces is not None else out)
        return finished

