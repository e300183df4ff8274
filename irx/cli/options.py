"""Typed option aliases that several commands share, declared once (as huggingface_hub's CLI does)."""

from __future__ import annotations

from typing import Annotated

import typer

RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")]
SkipExistingOpt = Annotated[
    bool, typer.Option("--skip-existing/--overwrite", help="Skip inputs whose output exists (default), or replace it.")
]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda (all GPUs), cuda:N or mps.")]
