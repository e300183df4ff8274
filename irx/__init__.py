"""irx: image and video restoration from the command line and from Python."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["RestoreSettings", "__version__", "load_model", "restore", "restore_files"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import irx` and `irx --help` stay fast (torch is imported on first use).
    if name in ("load_model", "restore"):
        from irx import api

        return getattr(api, name)
    if name == "restore_files":
        from irx.run import restore_files

        return restore_files
    if name == "RestoreSettings":
        from irx.settings import RestoreSettings

        return RestoreSettings
    raise AttributeError(f"module 'irx' has no attribute {name!r}")
