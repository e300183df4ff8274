"""What the user sees while a run goes on: a rich progress display on stderr, one line per failure."""

from __future__ import annotations

import json
import threading
from typing import IO

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _RateColumn(ProgressColumn):
    """Files, tiles or frames (the task's `unit` field) per second since the task started."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:5.2f} {task.fields.get('unit', 'files')}/s", style="progress.data.speed")


class RichReporter:
    """Progress for files, tiles and video frames; failures and warnings printed as they happen.

    The tiles bar counts the tiles of the images in the engine now (planned by the engine before it starts
    them), so a single big image shows its own rate and ETA. It appears once an image is tiled (a whole
    image is one unit: the files bar says all there is) and starts over when the next image is planned
    after the last one finished.
    """

    def __init__(self, console: Console, *, show_progress: bool = True, debug: bool = False) -> None:
        self.console = console
        self.debug = debug
        self.show_progress = show_progress
        self._lock = threading.Lock()
        self._tiles_done = 0
        self._tiles_total = 0
        self._images_planned = 0  # whole images and tiled ones, in the tiles bar's count
        self._progress: Progress | None = None
        self._files_task: int | None = None
        self._tiles_task: int | None = None
        self._video_tasks: dict[str, int] = {}

    def start(self, total_files: int) -> None:
        if not self.show_progress:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[extra]}"),
            _RateColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._files_task = self._progress.add_task("files", total=total_files, extra="", unit="files")
        self._tiles_task = self._progress.add_task("tiles", total=None, extra="", unit="tiles", visible=False)

    def file_done(self, name: str) -> None:
        if self._progress is not None and self._files_task is not None:
            self._progress.advance(self._files_task)

    def file_failed(self, name: str, reason: str, detail: str | None = None) -> None:
        self._say("[red]failed[/]", name, reason)
        if detail and self.debug:
            self.console.print(escape(detail), highlight=False)
        if self._progress is not None and self._files_task is not None:
            self._progress.advance(self._files_task)

    def file_warning(self, name: str, message: str) -> None:
        self._say("[yellow]warning[/]", name, message)

    def _say(self, label: str, name: str, text: str) -> None:
        # Readers often name the file in their message already; say it once.
        text = text.removeprefix(f"{name}: ")
        self.console.print(f"{label} {escape(name)}: {escape(text)}", highlight=False, soft_wrap=True)

    def tiles_planned(self, tiles: int, images: int) -> None:
        with self._lock:
            restart = self._tiles_done >= self._tiles_total and tiles > 0  # nothing outstanding: a new image
            if restart:
                self._tiles_done = self._tiles_total = self._images_planned = 0
            self._tiles_total += tiles
            self._images_planned += images
            total, done, tiled = self._tiles_total, self._tiles_done, self._tiles_total > self._images_planned
            if self._progress is None or self._tiles_task is None:
                return
            # under the lock: two engine threads' updates reach the display in the order they were counted
            if restart:
                self._progress.reset(self._tiles_task, total=total, completed=0, visible=tiled)
                if tiled:
                    self._progress.refresh()  # show the new image's total at once, before its first tile
            else:
                self._progress.update(self._tiles_task, total=total, completed=done, visible=tiled)

    def tiles(self, count: int) -> None:
        with self._lock:
            self._tiles_done += count
            if self._progress is not None and self._tiles_task is not None:
                self._progress.update(self._tiles_task, completed=self._tiles_done)

    def video_progress(self, name: str, frames_done: int, frames_total: int | None) -> None:
        if self._progress is None:
            return
        task = self._video_tasks.get(name)
        if task is None:
            task = self._progress.add_task(f"frames {escape(name)}", total=frames_total, extra="", unit="frames")
            self._video_tasks[name] = task
        self._progress.update(task, completed=frames_done, total=frames_total)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class JsonLinesReporter:
    """`--json` progress: one JSON object per line and event, on stderr (stdout keeps the one summary object).

    Events: {"event": "start", "files": N}, {"event": "file_done", "path"}, {"event": "file_failed", "path",
    "reason"}, {"event": "warning", "path", "reason"}, {"event": "tiles", "done"} (tiles restored so far),
    {"event": "frames", "path", "done", "total"} and {"event": "stop"}; under --watch each batch of arrivals
    has its own start and stop.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._lock = threading.Lock()
        self._tiles = 0

    def _emit(self, event: str, **fields: object) -> None:
        line = json.dumps({"event": event, **fields})
        with self._lock:  # one whole line per event, whichever thread reports it
            self.stream.write(line + "\n")
            self.stream.flush()

    def start(self, total_files: int) -> None:
        self._emit("start", files=total_files)

    def file_done(self, name: str) -> None:
        self._emit("file_done", path=name)

    def file_failed(self, name: str, reason: str, detail: str | None = None) -> None:
        self._emit("file_failed", path=name, reason=reason)

    def file_warning(self, name: str, message: str) -> None:
        self._emit("warning", path=name, reason=message)

    def tiles(self, count: int) -> None:
        with self._lock:
            self._tiles += count
            done = self._tiles
        self._emit("tiles", done=done)

    def video_progress(self, name: str, frames_done: int, frames_total: int | None) -> None:
        self._emit("frames", path=name, done=frames_done, total=frames_total)

    def stop(self) -> None:
        self._emit("stop")
