"""`restore_files`: the one Python entry that restores files, folders, globs and videos.

    summary = irx.restore_files(["photos/", "clip.mp4"], task="denoise", output="restored/")
    print(summary.to_json())

It plans every job before any work (irx.media.sources: outputs checked against every input, each input in
exactly one of processed / skipped / failed), resolves and loads the model, builds one engine per device,
shards the files across torchrun ranks and streams images and videos through irx.pipeline. The CLI's
restore commands, the benchmarks and any other runner call it; they only word and print the result.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from irx.errors import InputError, UsageError
from irx.settings import RestoreSettings
from irx.summary import RunSummary
from irx.tasks import get_task

__all__ = ["restore_files"]


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
    from irx.api import load_model  # noqa: PLC0415 - torch is imported only when work starts
    from irx.engine import Engine, rank_devices, resolve_devices  # noqa: PLC0415
    from irx.media.sources import distributed_shard, plan_jobs  # noqa: PLC0415
    from irx.pipeline import SilentReporter, run_pipeline  # noqa: PLC0415

    spec = get_task(task) if task is not None else None
    if spec is None and not model:
        raise UsageError("restoring with no task needs a model (a file, hf://owner/repo/file or a zoo name)")
    if settings is None:
        settings = RestoreSettings.resolve()  # validates
    else:
        settings.validate()  # built directly, it has not been checked yet
    if spec is not None and spec.has_scale and settings.scale is None and model is None:
        settings = settings.with_(scale=4)  # the default upscaler is x4; a given model keeps its own scale
    if settings.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    reporter = reporter or SilentReporter()
    summary = summary if summary is not None else RunSummary()
    devices = resolve_devices(settings.device)

    suffix = spec.name if spec is not None else "restored"
    # Under torchrun each process takes its own shard of the files and one GPU (its LOCAL_RANK).
    rank, world = distributed_shard()
    names = [str(item) for item in inputs]
    plan = plan_jobs(names, suffix=suffix, output=Path(output) if output is not None else None,
                     recursive=settings.recursive, out_format=settings.out_format,
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

    engines = [
        Engine(
            load_model(model, task=suffix if spec is not None else None, scale=settings.scale, device=dev,
                       offline=settings.offline or None, trust_remote_code=settings.trust_remote_code),
            device=dev,
            on_tiles=reporter.tiles,
            on_tiles_planned=getattr(reporter, "tiles_planned", None),  # reporters written before it existed
            **settings.engine_kwargs(),
        )
        for dev in devices
    ]
    return run_pipeline(plan.jobs, engines, settings.pipeline_options(suffix, video), reporter, summary)


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
