"""Inference engine: devices, precision, tiles with blending, batches and out-of-memory recovery."""

from irx.engine.device import rank_devices, resolve_devices, resolve_precision
from irx.engine.engine import Engine, PendingRestore, validate_engine_options

__all__ = ["Engine", "PendingRestore", "rank_devices", "resolve_devices", "resolve_precision", "validate_engine_options"]
