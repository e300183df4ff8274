"""`irx video-encoders`: the video encoders `--codec` takes, and whether each opens on this machine."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

_out = Console(highlight=False)


def video_encoders_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one object per encoder) for scripts.")] = False,
) -> None:
    """List irx's software encoders and this FFmpeg build's H.264/HEVC/AV1 hardware encoders
    (NVENC, Quick Sync, VA-API, VideoToolbox, AMF...); each hardware one is opened to see if it works here."""
    from irx.media.video import video_encoders  # noqa: PLC0415 - PyAV only when asked

    encoders = video_encoders()
    if as_json:
        typer.echo(json.dumps([{**asdict(e), "usable": e.usable} for e in encoders], indent=2))
        return
    table = Table(title="video encoders (use with --codec)", box=box.SIMPLE_HEAD,
                  caption="hardware encoders are built into this FFmpeg but open only with their device and driver")
    for column in ("name", "format", "kind", "here"):
        table.add_column(column, no_wrap=column != "here")
    for encoder in encoders:
        here = "[green]ok[/green]" if encoder.usable else f"[red]does not open[/red]: {escape(encoder.problem or '')}"
        table.add_row(escape(encoder.name), escape(encoder.format), escape(encoder.api), here)
    _out.print(table)
