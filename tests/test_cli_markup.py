"""Text with [brackets] reaches the terminal intact: rich markup never eats it (issue #16, "Also mend")."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from rich.text import Text
from typer.testing import CliRunner

from irx.cli.main import _guarded, app
from irx.cli.progress import RichReporter
from irx.errors import ModelError
from irx.zoo import Catalogue, ModelRecord, resolve
from irx.zoo.config import UserConfig

runner = CliRunner()


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():  # typer may carry its own click: no isinstance
        found += _commands(sub, (*path, name))
    return found


def test_every_bracket_in_help_text_is_shown() -> None:
    """`hf://owner/repo/file[@rev]` in --help used to print as `hf://owner/repo/file`."""
    checked = 0
    for path, command in _commands(typer.main.get_command(app)):
        helps = [getattr(param, "help", None) or "" for param in command.params]
        wanted = [b.replace("\\[", "[") for text in helps for b in re.findall(r"\\?\[[^\]\s]+\]", text)]
        if not wanted:
            continue
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400"}, terminal_width=400).output
        for bracket in wanted:
            assert bracket in shown, f"irx {' '.join(path)} --help: {bracket} is missing"
            checked += 1
    assert checked >= 3  # --model of the restore commands, models download, models path


def test_the_no_default_model_message_ends_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The zoo's real message for a scale with no model, as the CLI prints it: "...under [defaults]"."""
    cat = Catalogue([ModelRecord(name="up2", tasks=("upscale",), arch="Tiny", scale=2, source="bundled",
                                 filename="up2.safetensors", license="MIT")], tmp_path)
    with pytest.raises(ModelError) as caught:
        resolve(None, "upscale", scale=3, catalogue=cat, user_config=UserConfig())
    console = Console(file=io.StringIO(), width=400)
    monkeypatch.setattr("irx.cli.main.stderr", console)

    def fail() -> None:
        raise caught.value

    with pytest.raises(typer.Exit):
        _guarded(fail, debug=False)
    assert console.file.getvalue().strip().endswith("set one in the config file under [defaults]")


def test_video_progress_names_are_not_markup() -> None:
    reporter = RichReporter(Console(file=io.StringIO(), force_terminal=True), show_progress=True)
    reporter.start(1)
    reporter.video_progress("clip[final].mp4", 1, 10)
    assert reporter._progress is not None
    description = reporter._progress.tasks[-1].description
    reporter.stop()
    assert Text.from_markup(description).plain == "frames clip[final].mp4"  # TextColumn renders it as markup
