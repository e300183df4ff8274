"""The small stage runtime shared by the image pipeline (irx.pipeline) and the video flow (irx.media.video).

Both run stages in threads joined by queues. The pieces here let every blocking step notice a stop
signal (another stage failed, or the user pressed Ctrl-C), mark the end of a stream with one message
type, and join the threads so that Ctrl-C still reaches the main thread while they finish.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# How often a blocked put/get/acquire/join wakes up to look at its stop signal.
POLL_SECONDS = 0.1


class Stopped(Exception):
    """A stage was told to stop because another one failed or the run was interrupted."""


@dataclass(slots=True, frozen=True)
class End:
    """The last message of a stream: nothing follows it."""


class TrackedQueue(queue.Queue):  # type: ignore[type-arg]
    """A queue that records its highest occupancy (reported as a stage statistic)."""

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self.high_water = 0

    def _put(self, item: Any) -> None:
        super()._put(item)
        self.high_water = max(self.high_water, self._qsize())


def put(q: queue.Queue, item: Any, stop: threading.Event) -> None:  # type: ignore[type-arg]
    """Put ``item`` on a bounded queue, waiting for room; Stopped once ``stop`` is set."""
    while True:
        if stop.is_set():
            raise Stopped
        try:
            q.put(item, timeout=POLL_SECONDS)
            return
        except queue.Full:
            continue


def get(q: queue.Queue, stop: threading.Event) -> Any:  # type: ignore[type-arg]
    """Take the next item, waiting for one; Stopped once ``stop`` is set and the queue is empty."""
    while True:
        try:
            return q.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if stop.is_set():
                raise Stopped from None


def acquire(slots: threading.Semaphore, stop: threading.Event) -> None:
    """Take one slot, waiting for one; Stopped once ``stop`` is set (no slot is then held)."""
    while not slots.acquire(timeout=POLL_SECONDS):
        if stop.is_set():
            raise Stopped
    if stop.is_set():
        slots.release()
        raise Stopped


def join(threads: Iterable[threading.Thread], *, patient: bool = False) -> None:
    """Wait for ``threads`` in short steps, so a Ctrl-C or SIGTERM reaches the caller meanwhile.

    With ``patient=True`` an interrupt does not cut the wait short: used on the way out, because a
    worker still inside torch when the interpreter exits aborts the process.
    """
    for thread in threads:
        while thread.is_alive():
            try:
                thread.join(timeout=POLL_SECONDS)
            except KeyboardInterrupt:
                if not patient:
                    raise
