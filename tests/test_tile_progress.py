"""Progress inside an image (issue #16, item 2): the engine plans every tile before it runs them, reports each one
done, and the CLI shows a tiles bar with rate and ETA."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

import irx
from irx.cli.progress import RichReporter
from irx.engine import Engine
from irx.errors import ModelError
from irx.settings import RestoreSettings
from irx.zoo.config import UserConfig
from tests import test_engine
from tests.conftest import make_image, write_png

denoiser, upscaler = test_engine.denoiser, test_engine.upscaler  # the same module-scoped fixtures


def last_frame_lines(terminal_output: str, label: str) -> list[str]:
    """The lines of a live display's frames that start with `label`, as the terminal shows them, in order."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal_output)
    shown = [part for line in text.split("\n") for part in line.split("\r")]
    return [line for line in shown if line.startswith(label)]


class Events:
    """What an engine's progress callbacks said, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, int, int]] = []

    def planned(self, tiles: int, images: int) -> None:
        self.log.append(("planned", tiles, images))

    def done(self, count: int) -> None:
        self.log.append(("done", count, 0))

    def total(self, kind: str) -> int:
        return sum(count for what, count, _ in self.log if what == kind)


@pytest.mark.parametrize(
    ("height", "width", "tile", "overlap", "tiles"),
    [
        # rows: starts 0, 24, 48, 68 (stride 32 - 8); columns: 0, 24, 38
        (100, 70, 32, 8, 4 * 3),
        (64, 64, 32, 0, 2 * 2),
        (33, 200, 64, 16, 1 * 4),  # starts 0, 48, 96, 136 along the width; one row of tiles
    ],
)
def test_every_tile_is_planned_before_it_runs_and_reported_done(denoiser, height, width, tile, overlap, tiles):
    events = Events()
    engine = Engine(denoiser, device="cpu", tile=tile, tile_overlap=overlap, batch_size=3,
                    on_tiles=events.done, on_tiles_planned=events.planned)
    engine.restore_one(make_image(height, width))
    assert events.log[0] == ("planned", tiles, 1)
    assert events.total("planned") == events.total("done") == tiles
    assert all(count > 0 for what, count, _ in events.log if what == "done")


def test_whole_images_are_one_unit_each(denoiser):
    events = Events()
    engine = Engine(denoiser, device="cpu", tile=0, batch_size=8, on_tiles=events.done, on_tiles_planned=events.planned)
    engine.restore([make_image(24, 24, seed=i) for i in range(3)] + [make_image(20, 24)])
    assert events.log == [("planned", 3, 3), ("done", 3, 0), ("planned", 1, 1), ("done", 1, 0)]


def test_a_redo_after_out_of_memory_corrects_the_counts(denoiser):
    events = Events()
    flaky = test_engine._OomOnLargeInputs(denoiser, limit=40 * 40)
    engine = Engine(flaky, device="cpu", tile=0, tile_overlap=8, on_tiles=events.done, on_tiles_planned=events.planned)
    engine.restore_one(make_image(96, 96))
    assert events.log[0] == ("planned", 1, 1)  # planned whole, then backed off to tiles
    final_tile = min(c[2] for c in flaky.calls)
    from irx.engine.tiling import tile_boxes

    real = len(tile_boxes(96, 96, final_tile, 8))
    assert real > 1 and events.total("planned") == events.total("done") == real
    assert sum(images for what, _, images in events.log if what == "planned") == 1


def test_a_failed_image_withdraws_its_plan(denoiser):
    events = Events()
    flaky = test_engine._OomOnLargeInputs(denoiser, limit=0)
    engine = Engine(flaky, device="cpu", tile=64, on_tiles=events.done, on_tiles_planned=events.planned)
    with pytest.raises(ModelError):
        engine.restore_one(make_image(64, 64))
    assert events.total("planned") == events.total("done") == 0


def test_the_cli_reporter_shows_a_tiles_bar_with_rate_and_eta(tiny_denoiser, tmp_path):
    source = write_png(tmp_path / "big.png", make_image(100, 70))
    stream = io.StringIO()
    reporter = RichReporter(Console(file=stream, force_terminal=True, width=160, color_system=None))
    settings = RestoreSettings.resolve(user_config=UserConfig(), tile="32", tile_overlap=8)
    summary = irx.restore_files([source], model=str(tiny_denoiser), task="denoise", output=tmp_path / "out.png",
                                settings=settings, reporter=reporter)
    assert summary.processed == [str(source)]
    tiles_lines = last_frame_lines(stream.getvalue(), "tiles")
    assert "0/12" in tiles_lines[0]  # the total is known before the first tile runs
    assert "12/12" in tiles_lines[-1] and "tiles/s" in tiles_lines[-1] and "eta 0:00:00" in tiles_lines[-1]
    assert "1/1" in last_frame_lines(stream.getvalue(), "files")[-1]


def test_the_tiles_bar_stays_hidden_for_whole_images_and_restarts_per_image():
    stream = io.StringIO()
    reporter = RichReporter(Console(file=stream, force_terminal=True, width=160, color_system=None))
    reporter.start(3)
    reporter.tiles_planned(2, 2)
    reporter.tiles(2)
    tiles_task = reporter._progress.tasks[reporter._tiles_task]
    assert not tiles_task.visible  # whole images: the files bar says it all
    reporter.tiles_planned(12, 1)
    assert tiles_task.visible and (tiles_task.completed, tiles_task.total) == (0, 12)  # a new image's own count
    reporter.tiles(5)
    assert (tiles_task.completed, tiles_task.total) == (5, 12)
    reporter.stop()
