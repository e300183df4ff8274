"""Export a run's EMA weights as safetensors plus the zoo's JSON record."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_save

from irx.errors import UsageError
from irx.media.atomic import atomic_write_bytes
from irx.train.config import RunConfig
from irx.train.trainer import CHECKPOINT_NAME, load_checkpoint
from irx.zoo.records import sha256_file, write_bundled_record

BUNDLED_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "zoo" / "weights"


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent,
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def export_name(cfg: RunConfig) -> str:
    return cfg.output.export_name or Path(cfg.output.dir).name


def export_dir(cfg: RunConfig) -> Path:
    return Path(cfg.output.export_dir) if cfg.output.export_dir else BUNDLED_WEIGHTS_DIR


def build_record(cfg: RunConfig, name: str, sha256: str, metrics: dict[str, Any], training: dict[str, Any]) -> dict[str, Any]:
    """The zoo record of a bundled model (the fields irx.zoo expects, in its order)."""
    task = cfg.task
    description = cfg.output.description or (
        f"LAformer-{cfg.model.variant} trained by irx for {task}"
        + (f" x{cfg.model.scale}" if cfg.model.scale > 1 else "")
    )
    return {
        "name": name,
        "tasks": [task],
        "arch": cfg.model.arch,
        "scale": cfg.model.scale,
        "source": "bundled",
        "filename": f"{name}.safetensors",
        "repo_id": None,
        "revision": None,
        "sha256": sha256,
        "license": cfg.output.license,
        "description": description,
        "metrics": metrics,
        "third_party": False,
        "supported": True,
        "default_for": list(cfg.output.default_for),
        "requires": None,
        "training": training,
    }


def export_state_dict(
    cfg: RunConfig, state_dict: dict[str, torch.Tensor], metrics: dict[str, Any], training: dict[str, Any]
) -> tuple[Path, Path]:
    """Write <export_dir>/<name>.safetensors and <name>.json atomically; return both paths."""
    name = export_name(cfg)
    folder = export_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    # clone(): safetensors refuses tensors that share storage; contiguous CPU copies never do.
    dtype = torch.float16 if cfg.output.export_dtype == "float16" else torch.float32
    tensors = {
        k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().to("cpu")).contiguous().clone()
        for k, v in state_dict.items()
    }
    metadata = {
        "format": "pt",
        "irx_arch": cfg.model.arch,
        "irx_variant": cfg.model.variant,
        "irx_scale": str(cfg.model.scale),
        "irx_task": cfg.task,
    }
    weights = folder / f"{name}.safetensors"
    atomic_write_bytes(weights, safetensors_save(tensors, metadata=metadata), overwrite=True)
    record = build_record(cfg, name, sha256_file(weights), metrics, training)
    # The zoo's writer validates every field and re-checks the hash.
    record_path = Path(write_bundled_record(record, folder))
    return weights, record_path


def export_checkpoint(cfg: RunConfig, checkpoint: Path | None = None, weights: str = "ema") -> tuple[Path, Path]:
    """Export the EMA (or, with weights="model", the raw) weights of a run's checkpoint (default latest.pt).

    The raw weights at the end of a cosine cycle are the better choice when the EMA's horizon is long
    compared with the run (a short CPU run whose average still remembers early weights).
    """
    if weights not in ("ema", "model"):
        raise UsageError(f"weights must be 'ema' or 'model', not {weights!r}")
    path = checkpoint or Path(cfg.output.dir) / CHECKPOINT_NAME
    if not path.is_file():
        raise UsageError(f"no checkpoint at {path}; train first (irx train CONFIG) or check output.dir")
    ckpt = load_checkpoint(path)
    metrics: dict[str, Any] = {}
    if ckpt.get("last_val_psnr") is not None:
        metrics["psnr_val"] = round(float(ckpt["last_val_psnr"]), 3)
    if ckpt.get("input_val_psnr") is not None:
        metrics["psnr_val_input"] = round(float(ckpt["input_val_psnr"]), 3)
    source = cfg.source
    training = {
        "config": _config_label(source),
        "steps": int(ckpt["step"]),
        "seconds": round(float(ckpt["elapsed"]), 1),
        "git_commit": git_commit(),
        "weights": weights,
    }
    if weights == "model":
        metrics.pop("psnr_val", None)  # validation scored the EMA, not these weights
    state = {k.removeprefix("module."): v for k, v in ckpt[weights].items()}
    return export_state_dict(cfg, state, metrics, training)


def _config_label(source: Path | None) -> str | None:
    if source is None:
        return None
    source = Path(source).resolve()
    try:
        # Bundled recipes are named by their path inside the package (stable across machines).
        return str(source.relative_to(Path(__file__).resolve().parent.parent.parent))
    except ValueError:
        return str(source)
