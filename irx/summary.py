"""The summary of a restore run (what `--json` prints); light to import, so every error path can print it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunSummary:
    processed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    # Damaged inputs, video notices and the reasons of unusual skips: {"path", "reason"}.
    warnings: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None  # set when the run as a whole stopped (bad usage, model error, interrupt)
    outputs: dict[str, str] = field(default_factory=dict)  # input -> the file written for it
    model: str | None = None  # the model that ran (None when no file needed one)
    model_note: str | None = None  # e.g. why a bundled fallback ran instead of the default

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "processed": self.processed,
            "skipped": self.skipped,
            "failed": self.failed,
            "warnings": self.warnings,
            "counts": {"processed": len(self.processed), "skipped": len(self.skipped), "failed": len(self.failed)},
            "seconds": round(self.seconds, 3),
            "outputs": self.outputs,
            "model": self.model,
        }
        if self.model_note is not None:
            data["model_note"] = self.model_note
        if self.error is not None:
            data["error"] = self.error
        return data
