"""`irx train`: train a recipe (TOML file or bundled recipe name), resume it, or export it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


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
    export_only: Annotated[
        bool, typer.Option("--export-only", help="Only export the EMA weights of latest.pt (safetensors + JSON).")
    ] = False,
    export_weights: Annotated[
        str, typer.Option("--export-weights", help="With --export-only: 'ema' (default) or 'model' (raw weights).")
    ] = "ema",
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
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

    cfg = load_config(config, data_root=data_root, iterations=iterations)
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
    if result.val_psnr is not None:
        typer.echo(f"done: {result.step} steps, validation PSNR {result.val_psnr:.3f} dB, {result.seconds / 60:.1f} min")
    else:
        typer.echo(f"done: {result.step} steps, {result.seconds / 60:.1f} min")
