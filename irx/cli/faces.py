"""`irx faces`: restore the faces of photos (detect, align, restore with a face model, paste back)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from irx.cli.options import DeviceOpt, RecursiveOpt, SkipExistingOpt
from irx.errors import IrxError, UsageError

_err = Console(stderr=True, highlight=False)


def faces_command(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.", show_default=False)],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Output file (one input) or folder (several inputs).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Face model: gfpgan-v1.4 (default), codeformer, or a GFPGAN/RestoreFormer/CodeFormer file."),
    ] = None,
    detector: Annotated[
        str | None, typer.Option("--detector", help="Face detector: yunet-2023mar (default) or a YuNet .onnx file.")
    ] = None,
    strength: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="0 keeps the faces, 1 uses the model's faces; between, a blend.")
    ] = 1.0,
    fidelity: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="CodeFormer only: 0 restores most, 1 stays closest to the input.")
    ] = 0.5,
    upscale: Annotated[int, typer.Option(min=1, max=8, help="Enlarge the image (bicubic) and restore the faces at that size.")] = 1,
    min_score: Annotated[float, typer.Option(min=0.0, max=1.0, help="Detector confidence a face needs.")] = 0.7,
    device: DeviceOpt = "auto",
    recursive: RecursiveOpt = False,
    skip_existing: SkipExistingOpt = True,
    out_format: Annotated[
        str | None, typer.Option("--format", "-f", help="Output image format: png, jpg, webp, tiff, bmp (default: the input's).")
    ] = None,
    quality: Annotated[int | None, typer.Option(help="JPEG/WebP quality 1-100 (default 95).", min=1, max=100)] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Never touch the network; use downloaded models only.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Errors only.")] = False,
    json_summary: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Restore faces: find them (YuNet), align each to the FFHQ template, restore it with a face model
    (GFPGAN, RestoreFormer, CodeFormer) and blend it back with a soft mask; the rest of the image is
    left exactly as it was (or enlarged with --upscale).

    Example: irx faces family.jpg -o family_faces.png --model codeformer --fidelity 0.7
    """
    from irx.cli.main import _guarded  # noqa: PLC0415 - main imports this module

    settings = {"model": model, "detector": detector, "strength": strength, "fidelity": fidelity,
                "upscale": upscale, "min_score": min_score, "device": device, "offline": offline}
    _guarded(
        lambda: _run(inputs, output, recursive, skip_existing, out_format, quality, quiet, json_summary, settings),
        debug=debug,
    )


def _run(
    inputs: list[str],
    output: Path | None,
    recursive: bool,
    skip_existing: bool,
    out_format: str | None,
    quality: int | None,
    quiet: bool,
    json_summary: bool,
    settings: dict[str, Any],
) -> None:
    from irx.media.image_io import read_image, write_image  # noqa: PLC0415
    from irx.media.sources import FORMAT_SUFFIX, plan_jobs  # noqa: PLC0415

    if out_format is not None and out_format.lower() not in FORMAT_SUFFIX:
        raise UsageError(f"unsupported output format {out_format!r}; use one of {', '.join(FORMAT_SUFFIX)}")
    plan = plan_jobs(inputs, suffix="faces", output=output, recursive=recursive, out_format=out_format,
                     skip_existing=skip_existing)
    if not plan.jobs and not plan.skipped and not plan.failures:
        raise UsageError(f"no images found in {' '.join(inputs)} (use --recursive for sub-folders)")
    failed = [{"path": name, "reason": reason} for name, reason in plan.failures]
    images = [job for job in plan.jobs if job.kind == "image"]
    failed += [{"path": job.name, "reason": "irx faces restores images, not videos"} for job in plan.jobs if job.kind != "image"]
    for failure in failed:
        _err.print(f"[red]failed:[/] {escape(failure['path'])}: {escape(failure['reason'])}", soft_wrap=True)

    processed: list[dict[str, Any]] = []
    if images:
        restorer = _load(settings)
        for job in images:
            try:
                decoded = read_image(job.source)
                count, result = _restore_one(restorer, decoded, settings["upscale"])
                write_image(job.output, result, format=out_format, quality=quality, overwrite=not skip_existing)
            except IrxError as error:
                failed.append({"path": job.name, "reason": str(error)})
                _err.print(f"[red]failed:[/] {escape(str(error))}", soft_wrap=True)
                continue
            processed.append({"path": job.name, "output": str(job.output), "faces": count})
            if not quiet and not json_summary:
                faces = f"{count} face{'s' if count != 1 else ''}"
                _err.print(escape(f"{job.name}: {faces} restored -> {job.output}"), soft_wrap=True)

    if json_summary:
        summary = {"processed": processed, "skipped": list(plan.skipped), "failed": failed}
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    elif not quiet and plan.skipped:
        _err.print(f"{len(plan.skipped)} skipped (output exists; --overwrite replaces it)")
    if failed:
        raise typer.Exit(1)


def _load(settings: dict[str, Any]) -> Any:
    from irx.faces import FaceRestorer  # noqa: PLC0415 - torch is imported only when work starts

    return FaceRestorer.from_names(
        settings["model"],
        settings["detector"],
        device=settings["device"],
        offline=settings["offline"] or None,
        strength=settings["strength"],
        fidelity=settings["fidelity"],
        score_threshold=settings["min_score"],
    )


def _restore_one(restorer: Any, decoded: Any, upscale: int) -> tuple[int, Any]:
    """(number of faces, the decoded image with its faces restored)."""
    from irx.pipeline import fit_to_scale  # noqa: PLC0415

    pixels, alpha = decoded.pixels, decoded.alpha
    background = pixels
    if upscale > 1:
        background, alpha = fit_to_scale(pixels, alpha, pixels.shape[:2], 1, upscale)
    faces = restorer.detect(pixels)
    return len(faces), replace(decoded, pixels=restorer.apply(pixels, background, faces), alpha=alpha)
