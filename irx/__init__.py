"""irx: image and video restoration from the command line and from Python."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_model", "restore"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import irx` and `irx --help` stay fast (torch is imported on first use).
    if name in ("load_model", "restore"):
        from irx import api

        return getattr(api, name)
    raise AttributeError(f"module 'irx' has no attribute {name!r}")
