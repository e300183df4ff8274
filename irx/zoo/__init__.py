"""irx's model zoo: which weights file to use for a task or a ``--model`` value.

``resolve(spec, task)`` turns what the user typed into a verified local file:

1. an existing local file;
2. ``hf://owner/repo/path/file[@revision]`` (downloaded through the Hugging Face cache);
3. a zoo name (``irx models list``; Hub and url records are downloaded and verified), or the
   ``owner/repo`` of a Hub record;
4. nothing: the user's config default for the task, else the task's default record.

Weights are loaded with :func:`load_weights` (no code from the file ever runs).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

from irx.errors import ModelError, UsageError
from irx.tasks import TASKS, has_scale
from irx.zoo.config import UserConfig, load_user_config
from irx.zoo.hub import HubFile, check_file, fetch, is_offline, parse_hf_uri
from irx.zoo.records import (
    DEFAULT_WEIGHTS_DIR,
    Catalogue,
    ModelRecord,
    load_bundled_records,
    requirement_met,
    write_bundled_record,
)
from irx.zoo.safe_load import WEIGHT_EXTENSIONS, load_weights
from irx.zoo.url import fetch_url

__all__ = [
    "DEFAULT_WEIGHTS_DIR",
    "Catalogue",
    "ModelRecord",
    "ResolvedModel",
    "UserConfig",
    "default_catalogue",
    "ensure_local",
    "load_bundled_records",
    "load_user_config",
    "load_weights",
    "model_scale_for",
    "resolve",
    "write_bundled_record",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedModel:
    """A weights file ready to load, the record it came from (if any) and a warning to show."""

    path: Path
    record: ModelRecord | None = None
    warning: str | None = None
    origin: str = "path"  # path | hf | zoo | config | default | fallback
    # Why the bundled fallback runs instead of the default (origin "fallback"), for run summaries.
    fallback_reason: str | None = None


def default_catalogue() -> Catalogue:
    """Bundled records (``IRX_WEIGHTS_DIR`` or the package's folder) plus the Hub table."""
    folder = os.environ.get("IRX_WEIGHTS_DIR")
    return Catalogue.default(Path(folder).expanduser() if folder else None)


def ensure_local(
    record: ModelRecord,
    *,
    catalogue: Catalogue | None = None,
    offline: bool | None = None,
    quiet: bool = False,
    force: bool = False,
) -> Path:
    """The verified local file of a record (downloading a Hub record if needed)."""
    cat = catalogue or default_catalogue()
    if not record.supported:
        raise ModelError(f"{record.name} is listed but irx cannot load it yet: {record.description}")
    if not requirement_met(record):
        assert record.requires is not None
        raise ModelError(
            f"{record.name} needs the optional package {record.requires} "
            f"(licence: {record.license}); install it with `pip install {record.requires.replace('_', '-')}`"
        )
    if record.source == "bundled":
        path = cat.bundled_path(record)
        if not path.is_file():
            raise ModelError(f"the bundled weights of {record.name} are missing ({path}); reinstall irx")
        problem = check_file(path, pinned=record.sha256)
        if problem:
            raise ModelError(f"the bundled weights of {record.name} are damaged ({problem}); reinstall irx")
        return path
    if record.source == "url":
        return fetch_url(record, force=force, offline=offline, quiet=quiet)
    assert record.repo_id is not None and record.filename is not None
    ref = HubFile(record.repo_id, record.filename, record.revision or "main")
    return fetch(ref, pinned_sha256=record.sha256, force=force, offline=offline, quiet=quiet)


def resolve(
    spec: str | os.PathLike[str] | None,
    task: str | None = None,
    *,
    scale: int | None = None,
    offline: bool | None = None,
    user_config: UserConfig | None = None,
    quiet: bool = False,
    catalogue: Catalogue | None = None,
) -> ResolvedModel:
    """Find (and if needed download and verify) the weights for ``spec`` or for ``task``.

    ``offline`` (or HF_HUB_OFFLINE=1) forbids network access. When the task's default is a Hub
    model that cannot be had, the bundled default is used and ``.warning`` says so.
    """
    if task is not None and task not in TASKS:
        raise UsageError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    cat = catalogue or default_catalogue()
    text = os.fspath(spec).strip() if spec is not None else ""
    if text:
        resolved = _resolve_spec(text, cat, offline=offline, quiet=quiet)
        # A model the user names may have another scale: its output is resized (irx.pipeline.fit_to_scale).
        _check_fits(resolved.record, task, None, where="--model")
        return resolved
    if task is None:
        raise UsageError("no model and no task given; pass a model (a name, file or hf:// id) or a task", param="model")

    config = user_config if user_config is not None else load_user_config()
    configured = config.default_model(task, scale)
    if configured:
        resolved = _resolve_spec(configured, cat, offline=offline, quiet=quiet)
        _check_fits(resolved.record, task, scale, where=f"the default in {config.path or 'the config file'}")
        return ResolvedModel(resolved.path, resolved.record, resolved.warning, "config")

    hub, bundled = cat.defaults(task, scale)
    wanted = f"{task}" + (f" x{scale}" if scale is not None and has_scale(task) else "")
    if hub is not None:
        try:
            return ResolvedModel(ensure_local(hub, catalogue=cat, offline=offline, quiet=quiet), hub, None, "default")
        except ModelError as exc:
            if bundled is None:
                raise
            reason = "irx is offline" if is_offline(offline) else str(exc).split(";")[0]
            warning = f"default model {hub.name} is unavailable ({reason}); using bundled {bundled.name}"
            log.debug(warning)  # shown by the caller (irx.api.load_model warns once)
            path = ensure_local(bundled, catalogue=cat, offline=offline, quiet=quiet)
            return ResolvedModel(path, bundled, warning, "fallback", f"the default {hub.name} is unavailable: {reason}")
    if bundled is not None:
        return ResolvedModel(ensure_local(bundled, catalogue=cat), bundled, None, "default")
    raise ModelError(
        f"irx has no default model for {wanted}; pass --model NAME (see `irx models list --task {task}`) "
        f"or set one in the config file under [defaults]"
    )


def model_scale_for(
    task: str, scale: float | None, *, catalogue: Catalogue | None = None, user_config: UserConfig | None = None
) -> int | None:
    """Which model scale to run for an asked output scale (its output is then resized to the asked one).

    The asked scale when it is whole and has a default (or a configured ``<task>_x<scale>`` model); else
    the smallest default scale above it, since reducing a larger output keeps more detail than enlarging
    a smaller one; else the largest there is. None for tasks without a scale, or when none is asked.
    """
    if scale is None or not has_scale(task):
        return None
    cat = catalogue or default_catalogue()
    config = user_config if user_config is not None else load_user_config()
    whole = int(scale) if float(scale).is_integer() else None
    if whole is not None and (config.default_models.get(f"{task}_x{whole}") or any(cat.defaults(task, whole))):
        return whole
    scales = sorted({r.scale for r in cat.records(task) if r.supported and any(cat.defaults(task, r.scale))})
    larger = [s for s in scales if s >= scale]
    if larger:
        return larger[0]
    return scales[-1] if scales else math.ceil(scale)


def _resolve_spec(spec: str, cat: Catalogue, *, offline: bool | None, quiet: bool) -> ResolvedModel:
    path = Path(spec).expanduser()
    if path.is_file():
        return ResolvedModel(path.resolve(), None, None, "path")
    if path.is_dir() and not spec.startswith("hf://"):
        raise ModelError(f"{spec} is a folder; model needs a weights file ({', '.join(WEIGHT_EXTENSIONS)})", param="model")
    if spec.startswith("hf://"):
        ref = parse_hf_uri(spec)
        record = _hub_record_for(cat, ref)
        pinned = record.sha256 if record is not None and (record.revision or "main") == ref.revision else None
        local = fetch(ref, pinned_sha256=pinned, offline=offline, quiet=quiet)
        return ResolvedModel(local, record, None, "hf")
    if spec in cat or spec.lower() in (n.lower() for n in cat.names()):
        record = cat.get(spec)
        return ResolvedModel(ensure_local(record, catalogue=cat, offline=offline, quiet=quiet), record, None, "zoo")
    by_repo = [r for r in cat if r.source == "hub" and r.repo_id and r.repo_id.lower() == spec.lower() and r.supported]
    if len(by_repo) == 1:
        record = by_repo[0]
        return ResolvedModel(ensure_local(record, catalogue=cat, offline=offline, quiet=quiet), record, None, "zoo")
    if os.sep in spec or "/" in spec or spec.startswith(("~", ".")) or spec.lower().endswith(WEIGHT_EXTENSIONS):
        raise ModelError(f"weights file {spec} does not exist (and it is not a zoo name); check the path")
    cat.get(spec)  # raises "unknown model" with close matches
    raise AssertionError("unreachable")


def _hub_record_for(cat: Catalogue, ref: HubFile) -> ModelRecord | None:
    for record in cat:
        if record.source == "hub" and record.repo_id == ref.repo_id and record.filename == ref.filename:
            return record
    return None


def _check_fits(record: ModelRecord | None, task: str | None, scale: int | None, *, where: str) -> None:
    if record is None or task is None:
        return
    if task not in record.tasks:
        raise ModelError(
            f"{record.name} ({where}) is a model for {', '.join(record.tasks)}, not {task}; "
            f"see `irx models list --task {task}`"
        )
    if has_scale(task) and scale is not None and record.scale != scale:
        raise ModelError(f"{record.name} ({where}) upscales x{record.scale}, but x{scale} was asked; pick a x{scale} model")

