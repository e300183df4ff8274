"""`restore_files`: the one Python entry that restores files, folders, globs and videos.

    summary = irx.restore_files(["photos/", "clip.mp4"], task="denoise", output="restored/")
    print(summary.to_json())

It plans every job before any work (irx.media.sources: outputs checked against every input, each input in
exactly one of processed / skipped / failed), shards the files across torchrun ranks, streams images and
videos through irx.pipeline, and resolves and loads the model (one engine per device) only once a file
needs it. The CLI's restore commands, the benchmarks and any other runner call it; they only word and
print the result.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from irx.errors import InputError, IrxWarning, UsageError
from irx.settings import RestoreSettings
from irx.summary import RunSummary
from irx.tasks import get_task

__all__ = ["restore_files"]

T = TypeVar("T")


def restore_files(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    task: str | None = None,
    model: str | None = None,
    output: str | os.PathLike[str] | None = None,
    settings: RestoreSettings | None = None,
    reporter: Any = None,
    summary: RunSummary | None = None,
) -> RunSummary:
    """Restore `inputs` for `task` (None: any model, which `model` must then name) and return the summary.

    output: a file for one input, a folder otherwise; None writes `<stem>_<task>` beside each input.
    settings: a RestoreSettings (default: irx's defaults and the user's config file). reporter: an
    irx.pipeline.Reporter for progress (default: silent). summary: a RunSummary to fill in place, so a
    caller that must report on an error (the CLI's --json) sees what was decided before it.
    Raises UsageError/ModelError for run-level problems; a bad file is a failure in the summary, never fatal.
    """
    from irx.engine import rank_devices, resolve_devices  # noqa: PLC0415 - torch only when work starts
    from irx.media.sources import distributed_shard, plan_jobs  # noqa: PLC0415
    from irx.pipeline import SilentReporter, run_pipeline  # noqa: PLC0415

    spec, settings = _checked_settings(task, model, settings)
    model = _fast_model(spec, settings, model)
    reporter = reporter or SilentReporter()
    summary = summary if summary is not None else RunSummary()
    devices = resolve_devices(settings.device)

    suffix = spec.name if spec is not None else "restored"
    # Under torchrun each process takes its own shard of the files and one GPU (its LOCAL_RANK).
    rank, world = distributed_shard()
    names = [str(item) for item in inputs]
    _check_output_file(names, Path(output) if output is not None else None)
    plan = plan_jobs(names, suffix=suffix, output=Path(output) if output is not None else None,
                     recursive=settings.recursive, out_format=output_format(spec, settings),
                     skip_existing=settings.skip_existing, shard=(rank, world))
    if not plan.jobs and not plan.skipped and not plan.failures:
        raise UsageError(f"no images or videos found in {' '.join(names)} (use recursive for sub-folders)", param="recursive")
    devices = rank_devices(devices, world, int(os.environ.get("LOCAL_RANK", "0")))

    # The plan's verdicts go into the summary first, so that a run-level error below still reports them.
    summary.skipped.extend(plan.skipped)
    for name, reason in plan.failures:
        summary.failed.append({"path": name, "reason": reason})
        reporter.file_failed(name, reason)
    for name, reason in plan.skip_reasons:
        summary.warnings.append({"path": name, "reason": f"skipped: {reason}"})
        reporter.file_warning(name, f"skipped: {reason}")

    video = settings.video_options() if any(job.kind == "video" for job in plan.jobs) else None
    _check_video_outputs(plan.jobs, video)  # a bad codec / pixel format / preset stops here, before the model
    _remove_stale_files(plan.output_folders)
    if not plan.jobs:
        return summary

    options = pipeline_options(settings, suffix, video, devices)
    if settings.engine == "ray":  # the same jobs, restored by workers on a Ray cluster
        from irx.ray import run_on_ray  # noqa: PLC0415 - Ray is an optional extra

        summary = run_on_ray(plan.jobs, model, suffix if spec is not None else None, settings, options, reporter, summary)
    else:
        engines = build_engines(model, spec, settings, devices, reporter, summary)
        summary = run_pipeline(plan.jobs, engines, options, reporter, summary)
    if settings.compare:
        compare_page(plan.jobs, summary, several=len(names) > 1 or any(Path(n).is_dir() for n in names))
    return summary


def build_engines(
    model: str | None, spec: Any, settings: RestoreSettings, devices: Sequence[Any], reporter: Any,
    summary: RunSummary,
) -> list[Any]:
    """One engine per device. Nothing is loaded (nor downloaded) until a decoded image or a video needs it:
    a rerun whose only remaining files are broken reports them without loading the model or the network."""
    from irx.zoo import model_scale_for  # noqa: PLC0415

    model_scale = model_scale_for(spec.name, settings.scale) if spec is not None else None
    resolved = _Once(lambda: _resolve_model(model, spec, settings, summary, model_scale))
    return [
        _LazyEngine(_Once(lambda dev=dev, first=(i == 0): _build_engine(resolved(), spec, settings, dev, reporter, first)))
        for i, dev in enumerate(devices)
    ]


def pipeline_options(settings: RestoreSettings, suffix: str, video: Any, devices: Sequence[Any]) -> Any:
    """The image pipeline's options, with the face restorer (loaded on first use) when faces are asked."""
    options = settings.pipeline_options(suffix, video)
    if settings.faces:
        options.faces = _Once(lambda: _load_faces(settings, devices[0]))
    return options


def output_format(spec: Any, settings: RestoreSettings) -> str | None:
    """The format of derived output names (an -o file name keeps its own): the user's, else the task's."""
    return settings.out_format or (spec.output_format if spec is not None else None)


def compare_page(jobs: Sequence[Any], summary: RunSummary, *, several: bool) -> None:
    """--compare over a folder or several inputs: one HTML page where all the outputs are (irx.media.compare)."""
    from irx.media.compare import write_compare_page  # noqa: PLC0415

    done = set(summary.processed)
    entries = [(job.source, job.output) for job in jobs if job.kind == "image" and job.name in done]
    if not several or not entries:
        return
    folder = Path(os.path.commonpath([str(output.parent.absolute()) for _, output in entries]))
    try:
        write_compare_page(entries, folder)
    except OSError as error:
        summary.warnings.append({"path": str(folder), "reason": f"no compare page: {error}"})



def _fast_model(spec: Any, settings: RestoreSettings, model: str | None) -> str | None:
    """The model to run: the given one, or with `fast` the task's smallest bundled model (for every engine)."""
    if not settings.fast:
        return model
    if model:
        raise UsageError("fast chooses the model itself; give either a model or fast", param=("model", "fast"))
    if spec is None:
        raise UsageError("fast needs a task (it picks that task's smallest bundled model)", param="fast")
    from irx.zoo import default_catalogue, model_scale_for  # noqa: PLC0415

    record = default_catalogue().fastest_bundled(spec.name, model_scale_for(spec.name, settings.scale))
    if record is None:
        raise UsageError(f"irx bundles no {spec.name} model to run fast", param="fast")
    return record.name


def _checked_settings(task: str | None, model: str | None, settings: RestoreSettings | None) -> tuple[Any, RestoreSettings]:
    """The task's spec (None for `run`) and the validated settings, with the defaults the task implies."""
    spec = get_task(task) if task is not None else None
    if spec is None and not model:
        raise UsageError("restoring with no task needs a model (a file, hf://owner/repo/file or a zoo name)")
    if settings is None:
        settings = RestoreSettings.resolve()  # validates
    else:
        settings.validate()  # built directly, it has not been checked yet
    if settings.engine == "ray":
        from irx.ray import require_ray  # noqa: PLC0415

        require_ray()  # before any planning: a one-line error when the extra is not installed
    if spec is not None and spec.has_scale and settings.scale is None and model is None:
        settings = settings.with_(scale=4)  # the default upscaler is x4; a given model keeps its own scale
    if settings.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    return spec, settings



class _Once(Generic[T]):
    """A value made on the first call and shared by every later one (and every thread)."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._made = False
        self._value: Any = None

    def __call__(self) -> T:
        with self._lock:
            if not self._made:
                self._value = self._make()
                self._made = True
            return self._value


class _LazyEngine:
    """An irx.engine.Engine built on first use; every attribute is the built engine's."""

    def __init__(self, build: _Once[Any]) -> None:
        self._build = build

    def __getattr__(self, name: str) -> Any:
        return getattr(self._build(), name)


def _resolve_model(
    model: str | None, spec: Any, settings: RestoreSettings, summary: RunSummary, model_scale: int | None
) -> Any:
    """Find (and download if needed) the weights once for all devices; the summary names what runs."""
    from irx.zoo import resolve  # noqa: PLC0415

    resolved = resolve(model, spec.name if spec is not None else None, scale=model_scale,
                       offline=settings.offline or None)
    summary.model = resolved.record.name if resolved.record is not None else Path(resolved.path).name
    if resolved.origin == "fallback":
        summary.model_note = f"bundled; {resolved.fallback_reason}"
    return resolved


def _build_engine(
    resolved: Any, spec: Any, settings: RestoreSettings, device: Any, reporter: Any, first: bool
) -> Any:
    from irx.api import load_model  # noqa: PLC0415
    from irx.engine import Engine  # noqa: PLC0415
    from irx.finish import with_model_strength  # noqa: PLC0415

    descriptor = load_model(resolved.path, task=spec.name if spec is not None else None, device=device,
                            offline=settings.offline or None, trust_remote_code=settings.trust_remote_code)
    descriptor, _ = with_model_strength(descriptor, settings.strength)
    engine = Engine(descriptor, device=device, on_tiles=reporter.tiles,
                    on_tiles_planned=getattr(reporter, "tiles_planned", None),  # reporters written before it existed
                    **settings.engine_kwargs())
    if first:
        name = resolved.record.name if resolved.record is not None else Path(resolved.path).name
        _say_when_resized(engine.scale, settings, name)
    return engine


def _load_faces(settings: RestoreSettings, device: Any) -> Any:
    from irx.errors import ModelError  # noqa: PLC0415
    from irx.faces import FaceRestorer  # noqa: PLC0415

    try:
        return FaceRestorer.from_names(settings.face_model, device=str(device), offline=settings.offline or None)
    except ModelError as error:
        # irx.faces speaks of `irx faces`' --model; here the face model is the face_model setting.
        message = str(error).replace("--model FILE", "face_model FILE")
        raise ModelError(message, param="face_model" if message != str(error) else None) from None


def _check_output_file(inputs: list[str], output: Path | None) -> None:
    """An output that names an image or video file takes exactly one input file (else a folder of that
    name would be made for several outputs)."""
    from irx.media.sources import kind_of  # noqa: PLC0415

    if output is None or kind_of(output) is None or output.is_dir():
        return
    if len(inputs) == 1 and not os.path.isdir(inputs[0]) and (os.path.lexists(inputs[0]) or not _is_pattern(inputs[0])):
        return  # one file (a missing one is the plan's to report)
    what = f"there are {len(inputs)} inputs" if len(inputs) > 1 else f"{inputs[0]} may be several files"
    raise UsageError(
        f"output {output} is one file name, but {what}; give a folder instead (e.g. {output.with_suffix('')}/)",
        param="output",
    )


def _is_pattern(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _say_when_resized(model_scale: int, settings: RestoreSettings, model: str) -> None:
    """Once per run: the model's own scale is not the asked one, so every output is resized."""
    asked = settings.scale
    if asked is not None and asked != model_scale != 1 and not (settings.width or settings.height):
        warnings.warn(f"{model} upscales x{model_scale}; its output is resized to x{asked:g}", IrxWarning,
                      stacklevel=3)


def _check_video_outputs(jobs: list[Any], options: Any) -> None:
    """Plan every video's output (codec, pixel format, preset) before the model loads; UsageError if impossible."""
    if options is None:
        return
    from irx.media.video import check_video_output  # noqa: PLC0415

    for job in jobs:
        if job.kind == "video":
            try:
                check_video_output(job.source, job.output, options)
            except InputError:
                pass  # an unreadable video fails on its own when its turn comes; the others go on


def _remove_stale_files(folders: set[Path]) -> None:
    """Temp and claim files that killed runs left where this run writes (live runs' files are kept)."""
    from irx.media.atomic import cleanup_stale_temps  # noqa: PLC0415
    from irx.media.outputs import cleanup_stale_claims  # noqa: PLC0415

    for folder in sorted(folders):
        removed = cleanup_stale_temps(folder) + cleanup_stale_claims(folder)
        if removed:
            logging.getLogger("irx").debug("removed %d stale temporary files in %s", len(removed), folder)
