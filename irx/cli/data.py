"""`irx data ...`: preparing training data (curation)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from ..data.curate import (
    ANALYSIS_SIZE,
    BLUR_THRESHOLD,
    FLAT_THRESHOLD,
    curate,
    find_images,
    write_outputs,
)
from ..errors import InputError

data_app = typer.Typer(help="Prepare training data: curate photo collections (ReSyn-style).",
                       no_args_is_help=True)


@data_app.callback()
def _data() -> None:
    """Prepare training data: curate photo collections (ReSyn-style)."""
    # A callback keeps `data` a command group even while it has a single command.


@data_app.command("curate")
def curate_command(
    folder: Path = typer.Argument(..., help="Folder of photos to curate."),
    output: Path = typer.Option(..., "--output", "-o",
                                help="List of kept image paths to write (one per line). The "
                                     "manifest (.manifest.tsv) and histogram (.hist.png) are "
                                     "written beside it."),
    min_size: int = typer.Option(800, "--min-size",
                                 help="Drop images whose shorter side is under this (pixels)."),
    blur_threshold: float = typer.Option(BLUR_THRESHOLD, "--blur-threshold",
                                         help="Drop images whose variance of the Laplacian is "
                                              "under this (luma 0-255, at analysis size)."),
    flat_threshold: float = typer.Option(FLAT_THRESHOLD, "--flat-threshold",
                                         help="Drop images whose mean Sobel gradient magnitude "
                                              "is under this."),
    balance: bool = typer.Option(False, "--balance",
                                 help="Keep equal numbers above and below 0 GLCM complexity, "
                                      "per source folder."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Look in sub-folders too."),
    seed: int = typer.Option(0, "--seed", help="Seed for the random choice when balancing."),
    analysis_size: int = typer.Option(ANALYSIS_SIZE, "--analysis-size",
                                      help="Measure on a copy reduced to this longer side."),
) -> None:
    """Filter out small, blurry and flat photos and balance the rest by GLCM complexity.

    Example: irx data curate photos/ -o curated.txt --balance --recursive
    """
    err = Console(stderr=True)
    paths = find_images(folder, recursive=recursive)
    if not paths:
        raise InputError(f"no images in {folder}" + ("" if recursive else
                         "; add --recursive to look in sub-folders"))
    with err.status("measuring") as status:
        stats = curate(paths, min_size=min_size, blur_threshold=blur_threshold,
                       flat_threshold=flat_threshold, balance=balance, seed=seed,
                       analysis_size=analysis_size,
                       on_image=lambda p: status.update(f"measuring {escape(p.name)}"))
    out, manifest, hist = write_outputs(stats, output)
    kept = sum(s.kept for s in stats)
    reasons = Counter(s.reason for s in stats if not s.kept)
    why = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
    err.print(f"kept {kept} of {len(stats)} images" + (f" (dropped: {why})" if why else ""), markup=False)
    err.print(f"wrote {out}, {manifest}, {hist}", markup=False)  # paths are not rich markup


