"""irx's own architectures (LAformer, RWKV-IR) and their registration with spandrel.

``build_model`` builds a named variant for training; ``register_spandrel`` teaches spandrel's
``MAIN_REGISTRY`` to detect and load their bare state dicts, so irx checkpoints load with no
config file, like any spandrel architecture.
"""

from __future__ import annotations

import threading
from typing import Any

from torch import nn

from irx.errors import ModelError

ARCHS = ("laformer", "rwkvir")

_register_lock = threading.Lock()


def build_model(arch: str, variant: str = "tiny", scale: int = 1, in_chans: int = 3, **overrides: Any) -> nn.Module:
    """Build ``variant`` of ``arch`` ("laformer" or "rwkvir") for ``scale`` and ``in_chans``.

    ``overrides`` replace any constructor argument (e.g. ``rank_enhance=False``).
    """
    name = arch.lower().replace("-", "").replace("_", "")
    if name == "laformer":
        from irx.archs.laformer import build_laformer

        return build_laformer(variant, scale=scale, in_chans=in_chans, **overrides)
    if name == "rwkvir":
        from irx.archs.rwkvir import build_rwkvir

        # The official x2/x4 variants carry their own scale; the default scale=1 must not contradict it.
        own_scale = None if variant in ("x2", "x4") and scale == 1 else scale
        return build_rwkvir(variant, scale=own_scale, in_chans=in_chans, **overrides)
    raise ModelError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")


def register_spandrel() -> None:
    """Add LAformer and RWKV-IR to ``spandrel.MAIN_REGISTRY`` (idempotent, thread-safe).

    Both are detected before every built-in architecture: their detectors need several
    irx-specific key names, so they never claim a built-in model, while a loose built-in
    detector could otherwise claim theirs.
    """
    from spandrel import MAIN_REGISTRY, ArchSupport

    from irx.archs.laformer import LAformerArch
    from irx.archs.rwkvir import RWKVIRArch

    with _register_lock:
        ours = [LAformerArch(), RWKVIRArch()]
        missing = [a for a in ours if a.id not in MAIN_REGISTRY]
        if not missing:
            return
        ids = {a.id for a in ours}
        builtins = tuple(s.architecture.id for s in MAIN_REGISTRY.architectures() if s.architecture.id not in ids)
        MAIN_REGISTRY.add(*(ArchSupport.from_architecture(a, before=builtins) for a in missing), ignore_duplicates=True)


__all__ = ["ARCHS", "build_model", "register_spandrel"]
