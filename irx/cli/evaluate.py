"""`irx eval`: score a model and classical baselines on clean images (or degraded/clean pairs)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from ..errors import UsageError
from ..tasks import TASKS, get_task


def eval_command(
    clean_dir: Path = typer.Argument(..., help="Folder of clean reference images."),
    task: str = typer.Option(..., "--task", "-t", help=f"One of: {', '.join(TASKS)}."),
    sigma: float | None = typer.Option(None, "--sigma",
                                          help="Noise sigma in 0-255 units (denoise: default "
                                               "25; deblur/lowlight: added noise)."),
    quality: int | None = typer.Option(None, "--quality",
                                          help="JPEG quality for dejpeg (default 20)."),
    scale: int | None = typer.Option(None, "--scale",
                                        help="Upscale factor, 2/3/4 (default 2)."),
    model: str | None = typer.Option(None, "--model", "-m",
                                        help="Model to evaluate (zoo name, file or hub id)."),
    baseline: list[str] | None = typer.Option(
        None, "--baseline", "-b",
        help="Classical baseline to compare (repeatable), or 'all'. Default: input."),
    pairs: Path | None = typer.Option(None, "--pairs",
                                         help="Folder of real degraded images, paired with "
                                              "CLEAN_DIR by file name (without extension)."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Write per-image scores here."),
    report: Path | None = typer.Option(None, "--report",
                                          help="Write an HTML report with image crops here."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda (the first visible GPU), cuda:N or mps."),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N images."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic degradations."),
    variants: bool = typer.Option(False, "--variants",
                                  help="Robustness: score every degradation variant of the task "
                                       "(the training family and held-out ones, e.g. Lanczos "
                                       "downscaling for upscale), one row each."),
) -> None:
    """Degrade clean images with fixed, seeded settings, restore them, and report PSNR/SSIM
    (RGB and Y, BasicSR conventions) for the model and the chosen baselines.

    Examples: irx eval photos/ --task denoise --sigma 25 --model laformer-denoise -b all;
    irx eval --pairs noisy/ clean/ --task denoise -m my.safetensors --json
    """
    from ..evaluate import evaluate, evaluate_variants

    spec = get_task(task)
    params = {}
    for name, value, opt in (("sigma", sigma, "--sigma"), ("quality", quality, "--quality"),
                             ("scale", scale, "--scale")):
        if value is None:
            continue
        if name not in spec.param_types and not (pairs and name == "sigma"):
            raise UsageError(f"{opt} does not apply to --task {task}")
        params[name] = value
    if variants and (pairs or report or csv_path):
        raise UsageError("--variants degrades the clean images itself: it takes no --pairs, "
                         "--report or --csv")
    err = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as progress:
        bar = progress.add_task("evaluating", total=None)

        def tick(stem: str) -> None:
            progress.update(bar, description=f"evaluating {escape(stem)}")
            progress.advance(bar)

        if variants:
            robust = evaluate_variants(clean_dir, task, model=model,
                                       baselines=baseline or ("input",), params=params,
                                       seed=seed, limit=limit, device=device, keep_crops=False,
                                       on_image=tick)
        else:
            result = evaluate(clean_dir, task, model=model, baselines=baseline or ("input",),
                              params=params, seed=seed, pairs_dir=pairs, limit=limit,
                              device=device, keep_crops=report is not None, on_image=tick)
    if variants:
        if json_out:
            typer.echo(robust.to_json())
        else:
            Console().print(robust.rich_table())
        return
    if csv_path:
        result.write_csv(csv_path)
        err.print(f"wrote {csv_path}", markup=False)
    if report:
        result.write_html(report)
        err.print(f"wrote {report}", markup=False)
    for method, why in result.skipped.items():
        err.print(f"[yellow]skipped {escape(f'{method}: {why}')}[/yellow]")
    if json_out:
        typer.echo(result.to_json())
    else:
        Console().print(result.rich_table())
