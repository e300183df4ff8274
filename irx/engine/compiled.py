"""Opt-in torch.compile of a model call, with bucketed shapes and an automatic fallback to eager.

Compiling is specialised to input shapes (`dynamic=False`: the fastest kernels, and what CUDA graphs need),
so inputs are padded up to a few shapes: height and width to multiples of `SPATIAL_BUCKET`, the batch to a
power of two. A folder of same-size photos, or the tiles of one image, then compiles once. Any failure of
the compiler, at wrapping time or at a first call, warns once and the engine runs the model eagerly from then
on; out-of-memory errors are left to the engine's own recovery.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable

import torch

from irx.engine.device import is_out_of_memory

log = logging.getLogger(__name__)

SPATIAL_BUCKET = 64


def bucket_multiple(multiple_of: int) -> int:
    """Pad height and width to multiples of this (it also honours the model's own multiple)."""
    return math.lcm(max(1, multiple_of), SPATIAL_BUCKET)


def pad_batch(x: torch.Tensor) -> torch.Tensor:
    """Pad the batch with zeros to the next power of two (their outputs are dropped)."""
    n = x.shape[0]
    target = 1 << (n - 1).bit_length()
    if target == n:
        return x
    return torch.cat([x, x.new_zeros((target - n, *x.shape[1:]))])


class CompiledModel:
    """`model(x)` through torch.compile while that works; `None` from a call means: run it eagerly."""

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.model = model
        self.active = True
        try:
            self._compiled = torch.compile(self._call, dynamic=False)
        except Exception as error:  # noqa: BLE001 - e.g. no compiler backend on this platform
            self._fall_back(error)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor | None:
        if not self.active:
            return None
        try:
            return self._compiled(x)
        except Exception as error:  # noqa: BLE001 - any compiler failure means eager
            if is_out_of_memory(error):
                raise
            self._fall_back(error)
            return None

    def _fall_back(self, error: BaseException) -> None:
        self.active = False
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        warnings.warn(
            f"torch.compile failed ({type(error).__name__}: {reason}); running the model without compiling",
            RuntimeWarning,
            stacklevel=4,
        )
        log.debug("torch.compile failure", exc_info=error)
