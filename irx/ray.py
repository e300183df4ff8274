"""irx on a Ray cluster: the `--engine ray` runner, and a restorer for your own Ray Data pipeline.

    irx denoise photos/ -o out/ --engine ray --workers 4          # a local cluster for this command
    irx denoise photos/ -o out/ --engine ray --ray-address auto   # an existing one (`ray start --head`)

The run is the local engine's (irx.run.restore_files plans it: the same outputs, skips, refusals and
summary); only where the work happens differs. Images: a CPU task decodes each file, a pool of restore
workers (Ray actors, one model each, one GPU each where the cluster has GPUs) restores batches of them, a
CPU task encodes and writes each output atomically. Files stream through a bounded window, so memory does
not grow with the folder. Videos: cut at keyframes into parts (irx.media.video.split), the parts restored
by all workers, joined here with the source's audio and subtitles. A worker that dies is restarted and its
work retried by Ray; the claims and the output ledger stay with this (the driver) process. Inputs and
outputs must be on a filesystem every node sees (as with torchrun).

For a Ray Data pipeline of your own, `IrxRestorer` restores the images of a batch:

    ds = ray.data.read_images("s3://bucket/photos")
    ds = ds.map_batches(IrxRestorer, fn_constructor_kwargs={"task": "denoise"}, concurrency=4, num_gpus=1)

Ray is imported only here, and only when used: `pip install 'irx[ray]'`.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from irx.errors import InputError, IrxError, IrxWarning, UsageError

if TYPE_CHECKING:
    from irx.media.image_io import DecodedImage
    from irx.media.sources import Job
    from irx.pipeline import PipelineOptions, Reporter, _Run
    from irx.settings import RestoreSettings
    from irx.summary import RunSummary

__all__ = ["IrxRestorer", "require_ray", "run_on_ray"]

# A restore worker that dies (a killed process, a lost node) is restarted and its call retried this often.
WORKER_RETRIES = 3


def require_ray() -> ModuleType:
    """The ray module, or a one-line UsageError saying how to install it."""
    try:
        import ray  # noqa: PLC0415 - an optional extra
    except ImportError:
        raise UsageError("the ray engine needs Ray: pip install 'irx[ray]'", param="engine") from None
    return ray


@contextmanager
def ray_cluster(address: str | None = None, **init_kwargs: Any) -> Iterator[ModuleType]:
    """Connect to ``address``, or start a local cluster (stopped on the way out); reuse one already connected."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False, **init_kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()


# ---------------------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class _Failure:
    """Why a file failed in a task or worker; passed along instead of raised, so one file never stops the run."""

    reason: str


def _reason(error: BaseException) -> str:
    # The local pipeline's wording (irx.pipeline._Run.failed), so both engines report a file alike.
    return str(error) if isinstance(error, IrxError) else f"{type(error).__name__}: {error}"


@dataclass(frozen=True)
class _Decoded:
    """What the driver needs to know of a decoded image (the pixels stay in the object store)."""

    warnings: list[str] = field(default_factory=list)
    failure: _Failure | None = None


# ---------------------------------------------------------------------------------------- tasks


def _decode(source: str) -> tuple[_Decoded, DecodedImage | None]:
    from irx.media.image_io import read_image  # noqa: PLC0415

    try:
        image = read_image(source)
    except Exception as error:  # noqa: BLE001 - a bad file is reported, the run goes on
        return _Decoded(failure=_Failure(_reason(error))), None
    return _Decoded(warnings=list(image.warnings)), image


def _encode(output: str, image: DecodedImage | _Failure, out_format: str | None, quality: int | None,
            overwrite: bool) -> str | None:
    """Write one restored image atomically; the failure's reason, or None when written."""
    from irx.media.image_io import write_image  # noqa: PLC0415

    if isinstance(image, _Failure):
        return image.reason
    try:
        write_image(Path(output), image, format=out_format, quality=quality, overwrite=overwrite)
    except Exception as error:  # noqa: BLE001
        return _reason(error)
    return None


class RestoreWorker:
    """A Ray actor holding one model (irx.engine.Engine) on its device: restores image batches and video parts."""

    def __init__(self, model: str | None, task: str | None, settings: RestoreSettings) -> None:
        from irx.api import load_model  # noqa: PLC0415
        from irx.engine import Engine, resolve_devices  # noqa: PLC0415
        from irx.finish import with_model_strength  # noqa: PLC0415
        from irx.pipeline import _ScaledEngine  # noqa: PLC0415
        from irx.zoo import model_scale_for  # noqa: PLC0415

        if settings.offline:
            os.environ["HF_HUB_OFFLINE"] = "1"
        # A model that cannot load is the run's error, as with the local engine: kept for the driver to raise.
        self.load_error: tuple[str, str, Any] | None = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                device = resolve_devices(settings.device)[0]  # Ray makes only this worker's GPU visible to it
                model_scale = model_scale_for(task, settings.scale) if task is not None else None
                descriptor = load_model(model, task=task, scale=model_scale, device=device,
                                        offline=settings.offline or None, trust_remote_code=settings.trust_remote_code)
                descriptor, _ = with_model_strength(descriptor, settings.strength)
                self.engine = Engine(descriptor, device=device, **settings.engine_kwargs())
                self.frames = _ScaledEngine(self.engine, settings.scale, settings.width, settings.height,
                                            settings.strength)
            except IrxError as error:
                self.load_error = (type(error).__name__, str(error), error.param)
        self.notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        self.settings = settings

    def describe(self) -> dict[str, Any]:
        """What the driver checks first: the model's load error or warnings, the video engine's scale and fingerprint."""
        if self.load_error is not None:
            return {"error": self.load_error}
        return {"scale": self.frames.scale, "fingerprint": self.frames.fingerprint, "warnings": self.notes}

    def pid(self) -> int:
        return os.getpid()

    def restore(self, *images: DecodedImage) -> Any:
        """Restore a batch; one result per image (a restored DecodedImage, or a _Failure)."""
        from irx.pipeline import restore_decoded  # noqa: PLC0415

        try:
            results: list[Any] = [
                _Failure(_reason(r)) if isinstance(r, BaseException) else r
                for r in restore_decoded(self.engine, list(images), self.settings.pipeline_options("restored"))
            ]
        except Exception as error:  # noqa: BLE001 - the batch fails, the worker lives on
            results = [_Failure(_reason(error))] * len(images)
        return results[0] if len(results) == 1 else tuple(results)

    def restore_video(self, source: str, output: str, options: Any) -> Any:
        """A whole video, as the local engine restores it; a VideoResult or a _Failure."""
        from irx.media.video import restore_video  # noqa: PLC0415

        try:
            return restore_video(source, output, self.frames, options)
        except Exception as error:  # noqa: BLE001
            return _Failure(_reason(error))

    def restore_part(self, split: Any, number: int) -> Any:
        """Part ``number`` of a cut video into its segment file; a PartResult or a _Failure."""
        from irx.media.video.split import restore_part  # noqa: PLC0415

        try:
            return restore_part(split, number, self.frames)
        except Exception as error:  # noqa: BLE001
            return _Failure(_reason(error))


# ---------------------------------------------------------------------------------------- the runner


def _cluster_workers(ray: ModuleType, wanted: int | None) -> tuple[int, bool]:
    """How many restore workers to start and whether they take a GPU each."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = int(resources.get("CPU", 0))
    if gpus:
        if wanted is not None and wanted > gpus:
            raise UsageError(f"{wanted} workers need {wanted} GPUs; the Ray cluster has {gpus}", param="workers")
        return (wanted or gpus), True
    # CPU workers take one CPU each, and decoding and encoding need at least one more.
    workers = wanted or max(1, (cpus - 1) // 2)
    if workers >= cpus:
        raise UsageError(
            f"{workers} CPU workers need {workers + 1} CPUs in the Ray cluster, which has {cpus}", param="workers"
        )
    return workers, False


def run_on_ray(
    jobs: list[Job],
    model: str | None,
    task: str | None,
    settings: RestoreSettings,
    options: PipelineOptions,
    reporter: Reporter,
    summary: RunSummary,
) -> RunSummary:
    """Restore the planned ``jobs`` on a Ray cluster; the summary is filled as irx.pipeline.run_pipeline fills it."""
    from irx.pipeline import _Run  # noqa: PLC0415

    started = time.perf_counter()
    with ray_cluster(settings.ray_address) as ray:
        count, use_gpu = _cluster_workers(ray, settings.workers)
        actor = ray.remote(num_gpus=1 if use_gpu else 0, num_cpus=0 if use_gpu else 1,
                           max_restarts=WORKER_RETRIES, max_task_retries=WORKER_RETRIES)(RestoreWorker)
        workers = [actor.remote(model, task, settings) for _ in range(count)]
        run = _Run([], options, reporter)
        run.summary = summary
        try:
            first = _first_words(ray, workers)
            reporter.start(len(jobs))
            images = [job for job in jobs if job.kind == "image"]
            if images:
                _RayImages(ray, run, workers, settings).run(images)
            for job in (job for job in jobs if job.kind == "video"):
                _run_video(ray, run, workers, job, first)
        finally:
            for output in list(run.claims):  # claims of files never started
                run.release(output)
            for worker in workers:
                ray.kill(worker)
            summary.seconds += time.perf_counter() - started
            reporter.stop()
    return summary


class _RayImages:
    """The image stream: decode tasks -> worker batches -> encode tasks, at most `window` files in flight."""

    def __init__(self, ray: ModuleType, run: _Run, workers: list[Any], settings: RestoreSettings) -> None:
        self.ray, self.state, self.workers = ray, run, workers
        self.batch = int(settings.batch_size) if str(settings.batch_size).isdigit() else 4
        self.window = max(8, 3 * self.batch * len(workers))
        self.decode = ray.remote(num_cpus=1, max_retries=WORKER_RETRIES)(_decode).options(num_returns=2)
        self.encode = ray.remote(num_cpus=1, max_retries=WORKER_RETRIES)(_encode)
        self.decoding: dict[Any, tuple[Job, Any]] = {}  # metadata ref -> (job, pixels ref)
        self.ready: list[tuple[Job, Any]] = []  # decoded, waiting for a worker
        self.writing: dict[Any, tuple[Job, int, int]] = {}  # encode ref -> (job, worker number, batch id)
        self.load = [0] * len(workers)  # batches each worker has been given and not finished
        self.unwritten: dict[int, int] = {}  # batch id -> its images not yet written
        self.batches = 0

    def in_flight(self) -> int:
        return len(self.decoding) + len(self.ready) + len(self.writing)

    def run(self, jobs: list[Job]) -> None:
        try:
            self._stream(jobs)
        except BaseException:
            # Interrupted: nothing more is written behind the driver's back (its claims are released next).
            for ref in [*self.decoding, *self.writing]:
                self.ray.cancel(ref)
            raise

    def _stream(self, jobs: list[Job]) -> None:
        pending = iter(jobs)
        more = True
        while more or self.in_flight():
            while more and self.in_flight() < self.window:
                job = next(pending, None)
                if job is None:
                    more = False
                elif self.state.claim(job):  # else skipped, as the local engine skips it
                    meta, pixels = self.decode.remote(str(job.source))
                    self.decoding[meta] = (job, pixels)
            self._dispatch()
            waiting = [*self.decoding, *self.writing]
            if not waiting:
                continue
            done, _ = self.ray.wait(waiting, num_returns=1, timeout=1.0)
            for ref in done:
                if ref in self.decoding:
                    self._decoded(ref)
                else:
                    self._written(ref)

    def _decoded(self, ref: Any) -> None:
        job, pixels = self.decoding.pop(ref)
        meta: _Decoded = self.ray.get(ref)
        if meta.failure is None and meta.warnings and self.state.options.strict:
            meta = _Decoded(failure=_Failure(f"{job.name}: {meta.warnings[0]} (strict)"))
        if meta.failure is not None:
            self.state.failed(job.name, meta.failure.reason)
            self.state.release(job.output)
            return
        for warning in meta.warnings:
            self.state.warned(job.name, warning)
        self.ready.append((job, pixels))

    def _dispatch(self) -> None:
        """Hand ready images to the least busy worker, a batch at a time: up to three batches queued per
        worker, and past two only full ones (so a busy pool gets full batches, an idle one gets work at once)."""
        while self.ready:
            number = min(range(len(self.workers)), key=self.load.__getitem__)
            if self.load[number] >= 2 and len(self.ready) < self.batch:
                return  # every worker is busy: wait for a full batch
            if self.load[number] >= 3:
                return
            batch, self.ready = self.ready[: self.batch], self.ready[self.batch :]
            worker = self.workers[number]
            restored = worker.restore.options(num_returns=len(batch)).remote(*(pixels for _, pixels in batch))
            restored = [restored] if len(batch) == 1 else restored
            options = self.state.options
            self.batches += 1
            for (job, _), image in zip(batch, restored):
                ref = self.encode.remote(str(job.output), image, options.out_format, options.quality, options.overwrite)
                self.writing[ref] = (job, number, self.batches)
            self.load[number] += 1
            self.unwritten[self.batches] = len(batch)

    def _written(self, ref: Any) -> None:
        from irx.media.outputs import record_output  # noqa: PLC0415

        job, number, batch = self.writing.pop(ref)
        self.unwritten[batch] -= 1
        if self.unwritten[batch] == 0:
            del self.unwritten[batch]
            self.load[number] -= 1
        try:
            failure = self.ray.get(ref)
        except self.ray.exceptions.RayError as error:
            failure = f"the Ray worker restoring it failed {WORKER_RETRIES + 1} times ({type(error).__name__})"
        if failure is None:
            record_output(job.output, task=self.state.options.task, source=job.source)
        self.state.release(job.output)
        if failure is None:
            self.state.succeeded(job)
        else:
            self.state.failed(job.name, failure)


def _first_words(ray: ModuleType, workers: list[Any]) -> dict[str, Any]:
    """Wait for the workers to load the model; raise its load error, show its warnings once."""
    import irx.errors  # noqa: PLC0415

    answers = ray.get([worker.describe.remote() for worker in workers])
    for answer in answers:
        if "error" in answer:
            kind, message, param = answer["error"]
            error_class = getattr(irx.errors, kind, IrxError)
            raise error_class(message, param=param)
    for note in answers[0]["warnings"]:
        warnings.warn(note, IrxWarning, stacklevel=2)
    return answers[0]


class _FrameSize:
    """The size of the workers' video frames (their model's scale, then the asked output size)."""

    def __init__(self, scale: int, options: Any) -> None:
        self.scale = scale
        self._asked = (options.out_scale, options.out_width, options.out_height)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        from irx.pipeline import output_size  # noqa: PLC0415

        return output_size((height, width), self.scale, *self._asked)


def _run_video(ray: ModuleType, run: _Run, workers: list[Any], job: Job, engine: dict[str, Any]) -> None:
    """One video: cut into parts shared by all workers (or whole on one worker), joined here."""
    from irx.media import video  # noqa: PLC0415
    from irx.media.video.split import join_parts, plan_split, start_split  # noqa: PLC0415
    from irx.pipeline import finish_video  # noqa: PLC0415

    options = run.options.video or video.VideoOptions(overwrite=run.options.overwrite)
    if not run.claim(job):
        return
    try:
        frames = _FrameSize(engine["scale"], run.options)  # the workers' output size, known here
        split = plan_split(job.source, job.output, frames, options, 2 * len(workers), engine["fingerprint"]) if len(workers) > 1 else None
        if split is None:
            result = _get(ray, workers[0].restore_video.remote(str(job.source), str(job.output), options))
        else:
            todo = start_split(split)
            refs = [workers[i % len(workers)].restore_part.remote(split, number) for i, number in enumerate(todo)]
            parts = []
            for ref in refs:  # in order, so progress counts the frames from the start
                parts.append(_get(ray, ref))
                run.reporter.video_progress(job.name, sum(p.frames for p in parts), None)
            result = join_parts(split, parts)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001
        run.failed(job.name, error)
        return
    finally:
        run.release(job.output)
    finish_video(run, job, result)


def _get(ray: ModuleType, ref: Any) -> Any:
    """A worker's result; its _Failure, or a worker lost past its retries, raised as an IrxError."""
    try:
        result = ray.get(ref)
    except ray.exceptions.RayError as error:
        raise IrxError(f"the Ray worker failed {WORKER_RETRIES + 1} times ({type(error).__name__})") from None
    if isinstance(result, _Failure):
        raise InputError(result.reason)
    return result


# ---------------------------------------------------------------------------------------- Ray Data


class IrxRestorer:
    """Restore the images of a batch with an irx model: a callable class for Ray Data's ``map_batches``.

        ds.map_batches(IrxRestorer, fn_constructor_kwargs={"task": "denoise"}, concurrency=4, num_gpus=1)

    The batch is a dict of columns (Ray Data's "numpy" batch format); ``column`` holds HxWxC images
    (uint8, uint16 or float in [0, 1]; RGB or grey) as one array or a list of arrays of any sizes. The
    restored images go to ``output_column`` (default: replace ``column``) with the same dtype. The model
    loads once per actor, on the GPU Ray gives it (else the CPU). Other keyword arguments are
    irx.settings.RestoreSettings fields (tile, precision, batch_size, ...).
    """

    def __init__(self, model: str | None = None, *, task: str | None = None, column: str = "image",
                 output_column: str | None = None, **settings: Any) -> None:
        from irx.api import load_model  # noqa: PLC0415
        from irx.engine import Engine, resolve_devices  # noqa: PLC0415
        from irx.settings import RestoreSettings  # noqa: PLC0415

        if model is None and task is None:
            raise UsageError("IrxRestorer needs a model or a task", param="model")
        resolved = RestoreSettings.resolve(**settings)
        device = resolve_devices(resolved.device)[0]
        descriptor = load_model(model, task=task, scale=resolved.scale, device=device,
                                offline=resolved.offline or None, trust_remote_code=resolved.trust_remote_code)
        self.engine = Engine(descriptor, device=device, **resolved.engine_kwargs())
        self.out_scale = resolved.scale
        self.column = column
        self.output_column = output_column or column

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from irx.pipeline import fit_to_scale  # noqa: PLC0415

        images = list(batch[self.column])
        floats = [_to_float(np.asarray(image)) for image in images]
        outputs = self.engine.restore(floats)
        restored = []
        for image, pixels in zip(images, outputs):
            pixels, _ = fit_to_scale(pixels, None, np.shape(image)[:2], self.engine.scale, self.out_scale)
            restored.append(_like(pixels, np.asarray(image)))
        same_shape = len({r.shape for r in restored}) <= 1
        batch[self.output_column] = np.stack(restored) if restored and same_shape else _object_array(restored)
        return batch


def _to_float(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = image[..., None]
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535
    return np.clip(image.astype(np.float32), 0, 1)


def _like(pixels: np.ndarray, original: np.ndarray) -> np.ndarray:
    """``pixels`` (float HWC in [0, 1]) in the dtype and layout of ``original``."""
    if original.ndim == 2:
        pixels = pixels[..., 0]
    if original.dtype == np.uint8:
        return np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8)
    if original.dtype == np.uint16:
        return np.clip(np.rint(pixels * 65535), 0, 65535).astype(np.uint16)
    return pixels.astype(original.dtype)


def _object_array(items: Sequence[np.ndarray]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        array[i] = item
    return array
