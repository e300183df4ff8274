"""`irx train`: train a recipe (TOML file or bundled recipe name), resume it, or export it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from irx.errors import UsageError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in '90', '90s', '8m' or '1.5h'."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:], None)
    number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise UsageError(f"bad duration {text!r}; use e.g. 90s, 8m or 1.5h") from None
    if not seconds > 0 or seconds == float("inf"):
        raise UsageError(f"the duration must be positive, got {text!r}")
    return seconds


def train_command(
    config: Annotated[
        Path,
        typer.Argument(help="Recipe: a TOML file, or the name of a bundled recipe (denoise, upscale_x2, ...)."),
    ],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from latest.pt in the output folder (starts fresh if none).")
    ] = False,
    iterations: Annotated[
        int | None, typer.Option("--iterations", "-n", min=1, help="Override train.iterations.")
    ] = None,
    time_limit: Annotated[
        str | None,
        typer.Option("--time-limit", help="Wall-clock budget, e.g. 90s, 8m, 1.5h (plain numbers are seconds): "
                     "the run measures its speed and plans its iterations (at most train.iterations) to end in time."),
    ] = None,
    init_weights: Annotated[
        Path | None,
        typer.Option("--init", help="Start from these weights (.safetensors, e.g. a bundled model): fine-tuning."),
    ] = None,
    export_only: Annotated[
        bool, typer.Option("--export-only", help="Only export the EMA weights of latest.pt (safetensors + JSON).")
    ] = False,
    export_weights: Annotated[
        str, typer.Option("--export-weights", help="With --export-only: 'ema' (default) or 'model' (raw weights).")
    ] = "ema",
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda (the visible GPUs: one per torchrun rank, else the first), cuda:N or mps.")] = "auto",
    data_root: Annotated[
        Path | None,
        typer.Option("--data-root", help="Folder the recipe's train_dirs are relative to (else $IRX_DATA_ROOT, "
                     "else the recipe's data_root, ../shared/data/photos/train)."),
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="Override output.dir (checkpoints, log.csv, plot).")
    ] = None,
) -> None:
    """Train a restoration model from a recipe, with resumable checkpoints, then export it.

    Under torchrun (WORLD_SIZE > 1) each process trains a shard of every batch (DDP).
    """
    from irx.train import export_checkpoint, load_config, train

    seconds = parse_duration(time_limit) if time_limit is not None else None
    cfg = load_config(config, data_root=data_root, iterations=iterations, time_limit=seconds, init_weights=init_weights)
    if output_dir is not None:
        cfg.output.dir = output_dir
    if export_only:
        weights, record = export_checkpoint(cfg, weights=export_weights)
        typer.echo(f"exported {weights} and {record}")
        return
    result = train(cfg, resume=resume, device=device)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun only rank 0 reports
    if result.exported is not None:
        typer.echo(f"exported {result.exported[0]} and {result.exported[1]}")
    if result.stopped_by_time:
        typer.echo(f"stopped by the time limit at step {result.step} of {cfg.train.iterations}; "
                   f"continue with --resume --iterations {cfg.train.iterations}")
    if result.val_psnr is not None:
        typer.echo(f"done: {result.step} steps, validation PSNR {result.val_psnr:.3f} dB, {result.seconds / 60:.1f} min")
    else:
        typer.echo(f"done: {result.step} steps, {result.seconds / 60:.1f} min")
