"""The `irx` command line: one command per task, all sharing one set of options.

The restore commands parse options, build an irx.settings.RestoreSettings and call irx.restore_files;
everything they do is available from Python too.
"""


import json
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from typer.core import TyperCommand

try:  # recent typer carries its own copy of click, whose errors are not click's
    from typer._click.exceptions import UsageError as _OptionError
except ImportError:  # pragma: no cover - older typer on top of click
    from click.exceptions import UsageError as _OptionError

from irx import __version__
from irx.cli.options import DeviceOpt, RecursiveOpt, SkipExistingOpt
from irx.errors import IrxError, IrxWarning, UsageError, cli_wording
from irx.summary import RunSummary
from irx.tasks import TASK_HELP, TASKS, has_scale

app = typer.Typer(
    name="irx",
    help="Restore photos, folders of photos and videos: denoise, deblur, derain, dehaze, upscale, dejpeg, lowlight.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

stderr = Console(stderr=True, highlight=False)


class OutputFormat(str, Enum):
    png = "png"
    jpg = "jpg"
    webp = "webp"
    tiff = "tiff"
    bmp = "bmp"
    avif = "avif"
    heic = "heic"
    jxl = "jxl"
    gif = "gif"
    exr = "exr"


@dataclass
class _RunState:
    """What an error path needs to print the one JSON object of a `--json` run."""

    json_summary: bool = False
    summary: RunSummary = field(default_factory=RunSummary)
    printed: bool = False
    to_stderr: bool = False  # stdout carries an image (`-o -`): the summary goes to stderr

    def print_json(self, error: str | None = None) -> None:
        if not self.json_summary or self.printed:
            return
        self.printed = True
        if error is not None:
            self.summary.error = error
        stream = sys.stderr if self.to_stderr else sys.stdout
        stream.write(json.dumps(self.summary.to_json(), indent=2) + "\n")
        stream.flush()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it stops as cleanly as Ctrl-C does (exit 143)."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


@contextmanager
def _sigterm_stops_cleanly() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread (e.g. a test runner's worker)
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _say(label: str, style: str, message: str) -> None:
    """One line on stderr; user text (paths, model names) is never read as rich markup."""
    stderr.print(Text.assemble((label, style), " ", message), soft_wrap=True, highlight=False)


class _RestoreCommand(TyperCommand):
    """A restore command whose option errors (exit 2) still print the JSON object under `--json`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        wants_json = "--json" in args
        try:
            return super().parse_args(ctx, args)
        except _OptionError as error:
            if wants_json:
                _RunState(json_summary=True).print_json(f"usage: {error.format_message()}")
            raise


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"irx {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """irx: image and video restoration."""


def _make_restore_command(task: str) -> None:
    takes_scale = task == "run" or has_scale(task)
    help_text = (
        "Restore with any model file spandrel can load (--model is required)."
        if task == "run"
        else f"{TASK_HELP[task]} Inputs: image files, folders, globs and videos."
    )

    def command(
        inputs: Annotated[list[str], typer.Argument(help="Image or video files, folders, or glob patterns.", show_default=False)],
        output: Annotated[
            Optional[Path], typer.Option("-o", "--output", help="Output file (one input) or folder (several inputs).")
        ] = None,
        model: Annotated[
            Optional[str],
            typer.Option(
                "--model", "-m", help=escape("Local file, hf://owner/repo/file[@rev], or a zoo name (irx models list).")
            ),
        ] = None,
        scale: Annotated[
            Optional[float],
            typer.Option("--scale", "-s", hidden=not takes_scale,
                         help="Output scale: 2, 4, or any factor such as 1.5 or 3 (the model's output is resized)."),
        ] = None,
        width: Annotated[
            Optional[int], typer.Option(help="Output width in pixels (alone: the height keeps the aspect ratio).", min=1)
        ] = None,
        height: Annotated[
            Optional[int], typer.Option(help="Output height in pixels (alone: the width keeps the aspect ratio).", min=1)
        ] = None,
        device: DeviceOpt = "auto",
        precision: Annotated[str, typer.Option(help="auto, fp32, fp16 or bf16 (honours what the model supports).")] = "auto",
        tile: Annotated[str, typer.Option(help="Tile size in pixels: auto (from free memory), 0 (never tile) or N.")] = "auto",
        tile_overlap: Annotated[int, typer.Option(help="Overlap between tiles, blended smoothly.")] = 16,
        batch_size: Annotated[str, typer.Option(help="Images or tiles per forward pass: auto or N.")] = "auto",
        recursive: RecursiveOpt = False,
        skip_existing: SkipExistingOpt = True,
        out_format: Annotated[
            Optional[OutputFormat], typer.Option("--format", "-f", help="Output image format (default: the input's).")
        ] = None,
        quality: Annotated[Optional[int], typer.Option(help="JPEG/WebP quality 1-100 (default 95).", min=1, max=100)] = None,
        offline: Annotated[bool, typer.Option("--offline", help="Never touch the network; use cached or bundled models.")] = False,
        fast: Annotated[
            bool, typer.Option("--fast", help="Run the task's smallest bundled model (CPU-sized, offline) instead of its default.")
        ] = False,
        trust_remote_code: Annotated[
            bool, typer.Option("--trust-remote-code", help="Allow TorchScript model files (they carry code).")
        ] = False,
        codec: Annotated[
            Optional[str],
            typer.Option(help="Video codec: libx264, libx265, libsvtav1, libvpx-vp9, ffv1, or a hardware one such as "
                         "h264_nvenc (irx video-encoders).", rich_help_panel="Video"),
        ] = None,
        crf: Annotated[Optional[int], typer.Option(help="Video constant rate factor.", rich_help_panel="Video")] = None,
        preset: Annotated[Optional[str], typer.Option(help="Video encoder preset.", rich_help_panel="Video")] = None,
        pix_fmt: Annotated[Optional[str], typer.Option(help="Video pixel format (default keeps the input's bit depth).", rich_help_panel="Video")] = None,
        no_audio: Annotated[bool, typer.Option("--no-audio", help="Drop audio streams.", rich_help_panel="Video")] = False,
        resume: Annotated[bool, typer.Option("--resume", help="Resume long videos from their last finished segment.", rich_help_panel="Video")] = False,
        strict: Annotated[
            bool, typer.Option("--strict", help="Fail inputs the decoder reports as damaged instead of warning.")
        ] = False,
        strength: Annotated[
            float, typer.Option(help="0 keeps the input, 1 the model's output; between, a blend (or the model's own level).")
        ] = 1.0,
        alpha: Annotated[
            str, typer.Option(help="Upscaling: restore the alpha channel with the model (model) or only resize it (resize).",
                              hidden=not takes_scale)
        ] = "model",
        faces: Annotated[
            bool, typer.Option("--faces", help="Also restore faces (detect, align, GFPGAN/CodeFormer, paste back).")
        ] = False,
        face_model: Annotated[
            Optional[str], typer.Option(help="Face model for --faces: gfpgan-v1.4 (default), codeformer, or a file.")
        ] = None,
        compile: Annotated[
            bool, typer.Option("--compile", help="Compile the model with torch.compile (GPU; falls back to eager if it fails).")
        ] = False,
        channels_last: Annotated[
            bool, typer.Option("--channels-last", help="Run the model in channels-last memory layout (faster for some conv nets).")
        ] = False,
        watch: Annotated[
            bool, typer.Option("--watch", help="Keep restoring what arrives in the input folders until Ctrl-C/SIGTERM (exit 0).")
        ] = False,
        compare: Annotated[
            bool, typer.Option("--compare", help="Also write a before/after image beside each output (an HTML page for folders).")
        ] = False,
        engine: Annotated[
            str, typer.Option(help=escape("local (this process) or ray (a Ray cluster; pip install 'irx[ray]')."), rich_help_panel="Scale")
        ] = "local",
        ray_address: Annotated[
            Optional[str], typer.Option(help="Ray cluster to use (e.g. auto); default: a local one for this command.", rich_help_panel="Scale")
        ] = None,
        workers: Annotated[
            Optional[int], typer.Option(help="Ray restore workers, one model each (default: one per GPU).", rich_help_panel="Scale")
        ] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display; errors only.")] = False,
        json_summary: Annotated[
            bool, typer.Option("--json", help="Print a machine-readable summary on stdout; JSON progress lines on stderr.")
        ] = False,
        debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    ) -> None:
        def settings() -> Any:  # resolved inside _guarded, so a bad value is a one-line error (and JSON)
            from irx.settings import RestoreSettings  # noqa: PLC0415

            return RestoreSettings.resolve(
                device=device, precision=precision, tile=tile, tile_overlap=tile_overlap, batch_size=batch_size,
                channels_last=channels_last, compile=compile, scale=scale, width=width, height=height, offline=offline, fast=fast,
                trust_remote_code=trust_remote_code, recursive=recursive, skip_existing=skip_existing,
                out_format=out_format.value if out_format else None, quality=quality, strict=strict, codec=codec,
                crf=crf, preset=preset, pix_fmt=pix_fmt, keep_audio=not no_audio, resume=resume,
                strength=strength, alpha=alpha, faces=faces, face_model=face_model, compare=compare,
                engine=engine, ray_address=ray_address, workers=workers,
            )

        state = _RunState(json_summary=json_summary)
        _guarded(
            lambda: _restore(task, inputs, output, model, settings, quiet=quiet, debug=debug, state=state, watch=watch),
            debug=debug,
            state=state,
            quiet=quiet,
        )

    command.__doc__ = help_text
    app.command(name=task, help=help_text, cls=_RestoreCommand)(command)


def _guarded(action: Callable[[], None], *, debug: bool, state: _RunState | None = None, quiet: bool = False) -> None:
    """Run a command body: one-line errors with an exit code, tracebacks only with --debug.

    Under --json exactly one JSON object reaches stdout on every path (with "error" when the run stopped).
    `quiet` (-q, errors only) silences irx's warnings.
    """
    debug = debug or bool(os.environ.get("IRX_DEBUG"))
    state = state or _RunState()
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with warnings.catch_warnings(), _sigterm_stops_cleanly():
            warnings.simplefilter("always")
            if quiet:
                warnings.simplefilter("ignore", IrxWarning)
            warnings.showwarning = _show_warning  # type: ignore[assignment]
            action()
    except IrxError as error:
        if debug:
            stderr.print_exception()
        _say("error:", "red", cli_wording(error))
        state.print_json(cli_wording(error))
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt as error:
        terminated = isinstance(error, Terminated)
        what = "terminated" if terminated else "interrupted"
        _say(f"{what}:", "yellow", "finished outputs are kept; rerun with --skip-existing to resume")
        state.print_json(what)
        raise typer.Exit(143 if terminated else 130) from None
    except typer.Exit:
        raise
    except Exception as error:  # noqa: BLE001 - the last line of defence for a clean message
        if debug:
            stderr.print_exception()
        message = f"{type(error).__name__}: {error}"
        _say("error:", "red", f"{message} (run with --debug for details)")
        state.print_json(message)
        raise typer.Exit(1) from None


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    if issubclass(category, UserWarning):  # IrxWarning and library warnings meant for users
        _say("warning:", "yellow", str(message))
    else:
        logging.getLogger("irx").debug("%s: %s", category.__name__, message)


def _restore(
    task: str,
    inputs: list[str],
    output: Path | None,
    model: str | None,
    settings: Callable[[], Any],
    *,
    quiet: bool,
    debug: bool,
    state: _RunState,
    watch: bool = False,
) -> None:
    """Parse -> settings -> irx.restore_files (or irx.watch.watch_files, or a stdin/stdout pipe) -> print."""
    from irx.cli.pipes import wants_pipe  # noqa: PLC0415
    from irx.cli.progress import JsonLinesReporter, RichReporter  # noqa: PLC0415 - torch only when work starts
    from irx.run import restore_files  # noqa: PLC0415

    if task == "run" and not model:
        raise UsageError("irx run needs --model (a file, hf://owner/repo/file or a zoo name)")
    resolved = settings()
    show_progress = not (quiet or state.json_summary) and stderr.is_terminal
    reporter: Any = RichReporter(stderr, show_progress=show_progress, debug=debug)
    if state.json_summary:
        reporter = JsonLinesReporter(sys.stderr)
    name = None if task == "run" else task
    if wants_pipe(inputs, output):
        if watch or resolved.compare:
            raise UsageError(f"{'--watch' if watch else '--compare'} does not go with stdin/stdout (`-`)")
        summary = _restore_piped(name, inputs, output, model, resolved, reporter, state)
    elif watch:
        from irx.watch import watch_files  # noqa: PLC0415

        summary = watch_files(inputs, task=name, model=model, output=output, settings=resolved, reporter=reporter,
                              summary=state.summary)
    else:
        summary = restore_files(inputs, task=name, model=model, output=output,
                                settings=resolved, reporter=reporter, summary=state.summary)
    if state.json_summary:
        state.print_json()
    elif not quiet:
        counts = summary.to_json()["counts"]
        model_ran = ""
        if summary.model is not None:  # said once, here: which model ran, and why when it is a fallback
            model_ran = f" with {summary.model}" + (f" ({summary.model_note})" if summary.model_note else "")
        stderr.print(
            f"{counts['processed']} restored, {counts['skipped']} skipped, "
            f"{counts['failed']} failed in {summary.seconds:.1f}s{model_ran}",
            highlight=False,
            soft_wrap=True,
        )
    if summary.failed:
        raise typer.Exit(1)


def _restore_piped(task: str | None, inputs: list[str], output: Path | None, model: str | None, settings: Any,
                   reporter: Any, state: _RunState) -> RunSummary:
    """`-` as the input reads stdin, `-o -` writes stdout; see irx.cli.pipes."""
    from irx.cli.pipes import RenamedReporter, piped, rename_in_summary, stdout_for_data_only  # noqa: PLC0415
    from irx.run import restore_files  # noqa: PLC0415

    with piped(inputs, output, settings.out_format) as pipe:
        state.to_stderr = state.to_stderr or pipe.to_stdout
        with stdout_for_data_only() as write_stdout:
            try:
                summary = restore_files(pipe.inputs, task=task, model=model, output=pipe.output,
                                        settings=settings, reporter=RenamedReporter(reporter, pipe.names),
                                        summary=state.summary)
            finally:
                rename_in_summary(state.summary, pipe.names)
            if pipe.to_stdout and summary.processed and pipe.output is not None:
                write_stdout(pipe.output.read_bytes())
    return summary


for _task in (*TASKS, "run"):
    _make_restore_command(_task)


def _add_subcommands() -> None:
    """Model zoo, training, evaluation and data commands live in their own modules."""
    from irx.cli.data import data_app  # noqa: PLC0415
    from irx.cli.evaluate import eval_command  # noqa: PLC0415
    from irx.cli.models import models_app  # noqa: PLC0415
    from irx.cli.train import train_command  # noqa: PLC0415

    app.add_typer(models_app, name="models", help="List, inspect, download and verify models.")
    app.add_typer(data_app, name="data", help="Prepare training data (ReSyn-style curation).")
    app.command(name="train", help="Train a model from a TOML recipe (resumable; DDP with torchrun).")(train_command)
    app.command(name="eval", help="Measure PSNR/SSIM against baselines on clean images or real pairs.")(eval_command)
    from irx.cli.video import video_encoders_command  # noqa: PLC0415

    app.command(name="video-encoders", help="List the video encoders --codec takes and whether each opens here.")(
        video_encoders_command
    )
    from irx.cli.faces import faces_command  # noqa: PLC0415

    app.command(name="faces", help="Restore the faces in photos: detect, align, restore with a face model, paste back.")(
        faces_command
    )


_add_subcommands()


def main() -> None:
    """Console entry point; sub-commands' IrxErrors become one line and an exit code here too."""
    try:
        app()
    except IrxError as error:
        if os.environ.get("IRX_DEBUG"):
            raise
        _say("error:", "red", cli_wording(error))
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
