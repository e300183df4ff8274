"""The restoration tasks irx knows, shared by the CLI, the zoo, training and evaluation."""

from __future__ import annotations

from typing import Literal

Task = Literal["denoise", "deblur", "derain", "dehaze", "upscale", "dejpeg", "lowlight"]

TASKS: tuple[str, ...] = ("denoise", "deblur", "derain", "dehaze", "upscale", "dejpeg", "lowlight")

TASK_HELP: dict[str, str] = {
    "denoise": "Remove sensor and Gaussian noise.",
    "deblur": "Remove motion and defocus blur.",
    "derain": "Remove rain streaks.",
    "dehaze": "Remove haze and fog.",
    "upscale": "Super-resolve by --scale (2 or 4).",
    "dejpeg": "Remove JPEG compression artefacts.",
    "lowlight": "Brighten under-exposed photos.",
}


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    return task
