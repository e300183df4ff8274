"""irx's own architectures (LAformer, RWKV-IR) and their registration with spandrel.

``build_model`` builds a named variant for training; ``spandrel_registry`` is the private
spandrel registry irx loads every model with (spandrel's architectures, the optional extra ones,
and these two), so irx checkpoints load with no config file, like any spandrel architecture.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from torch import nn

from irx.errors import ModelError

if TYPE_CHECKING:
    from spandrel import ArchRegistry, ArchSupport

ARCHS = ("laformer", "rwkvir")

_register_lock = threading.Lock()
_registry: ArchRegistry | None = None


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


def spandrel_registry() -> ArchRegistry:
    """irx's own spandrel registry, built once: spandrel's built-ins, the optional
    ``spandrel_extra_arches`` (Restormer, MPRNet, ...) when installed, then LAformer and RWKV-IR.

    Every irx loading path passes it to ``ModelLoader(registry=...)``; spandrel's global
    ``MAIN_REGISTRY`` is left as it is, so other spandrel users in the process see no change.
    irx's detectors are placed before every other one: they need several irx-specific key
    names, so they never claim another model, while a loose detector could claim theirs.
    """
    global _registry
    with _register_lock:
        if _registry is None:
            _registry = _build_registry()
        return _registry


def extra_arches_installed() -> bool:
    """True when ``spandrel_extra_arches`` can be imported (the ``irx[extra-arches]`` extra)."""
    return _extra_registry() is not None


def _extra_registry() -> ArchRegistry | None:
    try:
        from spandrel_extra_arches import EXTRA_REGISTRY
    except ImportError:
        return None
    return EXTRA_REGISTRY


def _build_registry() -> ArchRegistry:
    from spandrel import MAIN_REGISTRY

    registry = MAIN_REGISTRY.copy()
    extra = _extra_registry()
    if extra is not None:
        # Kept after the built-ins, as spandrel_extra_arches.install() places them.
        registry.add(*extra, ignore_duplicates=True)
    registry.add(*_our_support(registry), ignore_duplicates=True)
    return registry


def _our_support(registry: ArchRegistry) -> list[ArchSupport]:
    from spandrel import ArchSupport

    from irx.archs.laformer import LAformerArch
    from irx.archs.rwkvir import RWKVIRArch

    ours = [LAformerArch(), RWKVIRArch()]
    ids = {a.id for a in ours}
    others = tuple(s.architecture.id for s in registry.architectures() if s.architecture.id not in ids)
    return [ArchSupport.from_architecture(a, before=others) for a in ours]


def register_spandrel() -> None:
    """Also add LAformer and RWKV-IR to spandrel's global ``MAIN_REGISTRY`` (idempotent).

    irx itself never calls this (it uses :func:`spandrel_registry`); it is for code that wants
    ``spandrel.ModelLoader()`` with its default registry to know irx's architectures.
    """
    from spandrel import MAIN_REGISTRY

    with _register_lock:
        missing = [s for s in _our_support(MAIN_REGISTRY) if s.architecture.id not in MAIN_REGISTRY]
        if missing:
            MAIN_REGISTRY.add(*missing, ignore_duplicates=True)


__all__ = ["ARCHS", "build_model", "extra_arches_installed", "register_spandrel", "spandrel_registry"]
