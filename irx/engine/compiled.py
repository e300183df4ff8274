"""Opt-in torch.compile of a model call, with bucketed shapes and an automatic fallback to eager.

Compiling is specialised to input shapes (`dynamic=False`: the fastest kernels, and what CUDA graphs need),
so inputs are padded up to a few shapes: height and width to multiples of `SPATIAL_BUCKET`, the batch to the
engine's planned batch. A folder of same-size photos, or the tiles of one image, then compiles once. Any failure of
the compiler, at wrapping time or at a first call, warns once and the engine runs the model eagerly from then
on; out-of-memory errors are left to the engine's own recovery.

What is compiled is the descriptor's module and per-architecture call, not spandrel's `__call__`: that one is
decorated with `torch.inference_mode`, under which inductor fails on models with a custom autograd Function
(NAFNet's LayerNorm). The engine therefore runs compiled models under `torch.no_grad` instead.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch

from irx.engine.device import is_out_of_memory
from irx.errors import IrxWarning

log = logging.getLogger(__name__)

SPATIAL_BUCKET = 64


def bucket_multiple(multiple_of: int) -> int:
    """Pad height and width to multiples of this (it also honours the model's own multiple)."""
    return math.lcm(max(1, multiple_of), SPATIAL_BUCKET)


def pad_batch(x: torch.Tensor, full: int | None = None) -> torch.Tensor:
    """Pad the batch with zeros (their outputs are dropped) to `full`, the batch the engine plans for this
    input, else to the next power of two.

    The pipeline batches whatever has been decoded, so partial batches come and go; padding them to the full
    batch keeps one compiled shape per image size instead of one per batch size.
    """
    n = x.shape[0]
    target = full if full is not None and full >= n else 1 << (n - 1).bit_length()
    if target == n:
        return x
    return torch.cat([x, x.new_zeros((target - n, *x.shape[1:]))])


def model_call(descriptor: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """The descriptor's forward as spandrel runs it (its call_fn, output clamped), minus its inference_mode.

    The engine has already padded the input to the model's size requirements. Non-spandrel models are called
    as they are.
    """
    module = getattr(descriptor, "model", None)
    call_fn = getattr(descriptor, "_call_fn", None)  # spandrel's per-architecture wrapper (e.g. FBCNN's [0])
    if isinstance(module, torch.nn.Module) and callable(call_fn):
        return lambda x: call_fn(module, x).clamp(0, 1)
    return descriptor


def _dispatch_state() -> dict[Any, bool]:
    keys = [getattr(torch._C.DispatchKey, name, None) for name in _TLS_KEYS]
    return {key: torch._C._dispatch_tls_is_dispatch_key_included(key) for key in keys if key is not None}


def _restore_dispatch_state(state: dict[Any, bool]) -> None:
    for key, included in state.items():
        torch._C._dispatch_tls_set_dispatch_key_included(key, included)


# A failed compile can leave these thread-local dispatch keys switched on (torch 2.14), and every eager call
# after it then fails with "PythonDispatcherTLS was not set": they are put back as they were.
_TLS_KEYS = ("PythonDispatcher", "PythonTLSSnapshot", "Python")


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
        state = _dispatch_state()
        try:
            return self._compiled(x)
        except Exception as error:
            _restore_dispatch_state(state)
            if is_out_of_memory(error):
                raise
            self._fall_back(error)
            return None

    def _fall_back(self, error: BaseException) -> None:
        self.active = False
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        warnings.warn(
            f"torch.compile failed ({type(error).__name__}: {reason}); running the model without compiling",
            IrxWarning,
            stacklevel=4,
        )
        log.debug("torch.compile failure", exc_info=error)
