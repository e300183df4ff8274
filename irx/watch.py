"""`watch_files`: restore what arrives in folders until stopped (the CLI's `--watch`).

Each poll plans the inputs again (irx.media.sources, so outputs go where a plain run puts them and existing
outputs are skipped), keeps only files whose size and modification time have not changed for `settle_s`
seconds (a file still being copied in is left for a later poll) and that were not tried before in that
state, and restores them with engines loaded once, on the first file. A file that failed is tried again
only once it changes. Ctrl-C or SIGTERM (which the CLI turns into an interrupt) ends the watch: the file
being written is finished or left absent, never half-written, and the summary is returned as for a
completed run; stopping is how a watch ends, so it is not an error.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from irx.errors import UsageError
from irx.settings import RestoreSettings
from irx.summary import RunSummary

__all__ = ["watch_files"]


def watch_files(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    task: str | None = None,
    model: str | None = None,
    output: str | os.PathLike[str] | None = None,
    settings: RestoreSettings | None = None,
    reporter: Any = None,
    summary: RunSummary | None = None,
    poll_s: float = 1.0,
    settle_s: float = 1.0,
    stop: threading.Event | None = None,
) -> RunSummary:
    """Restore what is in `inputs` and what arrives later, until `stop` is set or the process is interrupted.

    The arguments are those of irx.restore_files; `poll_s` is the time between looks at the folders and
    `settle_s` how long a file's size and time must stay the same before it is taken as complete.
    """
    from irx.engine import resolve_devices  # noqa: PLC0415 - torch only when work starts
    from irx.media.sources import plan_jobs  # noqa: PLC0415
    from irx.pipeline import SilentReporter, run_pipeline  # noqa: PLC0415
    from irx.run import (  # noqa: PLC0415
        _check_video_outputs,
        _checked_settings,
        _fast_model,
        _remove_stale_files,
        build_engines,
        compare_page,
        output_format,
        pipeline_options,
    )

    spec, settings = _checked_settings(task, model, settings)
    model = _fast_model(spec, settings, model)
    if settings.engine != "local":
        raise UsageError("watching a folder runs on the local engine; use engine local", param="engine")
    devices = resolve_devices(settings.device)
    reporter = reporter or SilentReporter()
    summary = summary if summary is not None else RunSummary()
    stop = stop or threading.Event()
    suffix = spec.name if spec is not None else "restored"
    names = [str(item) for item in inputs]
    out = Path(output) if output is not None else None
    engines: list[Any] | None = None
    done_jobs: list[Any] = []  # every job this watch ran (for the --compare page)
    seen: dict[Path, tuple[tuple[int, int], float]] = {}  # file -> (size, mtime), when first seen so
    tried: set[tuple[str, tuple[int, int]]] = set()
    reported: set[tuple[str, ...]] = set()  # plan verdicts already in the summary (said once, not every poll)
    try:
        while not stop.is_set():
            plan = plan_jobs(names, suffix=suffix, output=out, recursive=settings.recursive,
                             out_format=output_format(spec, settings), skip_existing=settings.skip_existing)
            _report_once(plan, summary, reporter, reported)
            now = time.monotonic()
            ready = []
            for job in plan.jobs:
                state = _state(job.source)
                if state is None:
                    continue
                if seen.get(job.source, (None,))[0] != state:
                    seen[job.source] = (state, now)
                if now - seen[job.source][1] >= settle_s and (job.name, state) not in tried:
                    tried.add((job.name, state))
                    ready.append(job)
            if ready:
                video = settings.video_options() if any(job.kind == "video" for job in ready) else None
                _check_video_outputs(ready, video)
                _remove_stale_files(plan.output_folders)
                if engines is None:
                    engines = build_engines(model, spec, settings, devices, reporter, summary)
                run_pipeline(ready, engines, pipeline_options(settings, suffix, video, devices), reporter, summary)
                done_jobs.extend(ready)
                if settings.compare:
                    compare_page(done_jobs, summary, several=True)
            stop.wait(poll_s)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the way a watch ends
        pass
    return summary


def _state(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def _report_once(plan: Any, summary: RunSummary, reporter: Any, reported: set[tuple[str, ...]]) -> None:
    """Failures and skips of the plan, each said the first time it is seen (this watch's own outputs are
    not skips)."""
    for name, reason in plan.failures:
        if ("failed", name, reason) not in reported:
            reported.add(("failed", name, reason))
            summary.failed.append({"path": name, "reason": reason})
            reporter.file_failed(name, reason)
    for name in plan.skipped:
        if ("skipped", name) not in reported and name not in summary.processed:
            reported.add(("skipped", name))
            summary.skipped.append(name)
    for name, reason in plan.skip_reasons:
        if ("skip", name, reason) not in reported:
            reported.add(("skip", name, reason))
            summary.warnings.append({"path": name, "reason": f"skipped: {reason}"})
            reporter.file_warning(name, f"skipped: {reason}")
