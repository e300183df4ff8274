"""Device and precision selection: what `--device` and `--precision` mean."""

from __future__ import annotations

import gc
import re
import warnings

import torch

from irx.errors import IrxWarning, UsageError

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def resolve_devices(spec: str = "auto") -> list[torch.device]:
    """Turn a `--device` value into the devices to run on.

    `auto` picks one CUDA GPU, else Apple's MPS, else the CPU. `cuda` means every visible GPU (files are
    sharded across them); `cuda:N` one GPU.
    """
    spec = (spec or "auto").strip().lower()
    if not _DEVICE_PATTERN.match(spec):
        raise UsageError(f"invalid device {spec!r}: use auto, cpu, cuda, cuda:N or mps", param="device")
    if spec == "auto":
        if torch.cuda.is_available():
            return [torch.device("cuda", 0)]
        if _mps_available():
            return [torch.device("mps")]
        return [torch.device("cpu")]
    if spec == "cpu":
        return [torch.device("cpu")]
    if spec == "mps":
        if not _mps_available():
            raise UsageError("device mps: Apple's Metal backend is not available on this machine", param="device")
        return [torch.device("mps")]
    if not torch.cuda.is_available():
        raise UsageError(f"device {spec}: no CUDA GPU is visible (use the cpu device)", param="device")
    count = torch.cuda.device_count()
    if spec == "cuda":
        return [torch.device("cuda", i) for i in range(count)]
    index = int(spec.split(":")[1])
    if index >= count:
        raise UsageError(f"device {spec}: only {count} CUDA GPU(s) are visible", param="device")
    return [torch.device("cuda", index)]


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_precision(
    spec: str, device: torch.device, *, supports_half: bool, supports_bfloat16: bool
) -> torch.dtype:
    """Pick the compute dtype, honouring what the model supports.

    `auto` uses fp16 on CUDA/MPS when the model supports it (bf16 as second choice) and fp32 on the CPU,
    where half precision convolutions are slow or missing. An explicit request the model cannot honour
    falls back to fp32 with a warning instead of producing garbage.
    """
    spec = (spec or "auto").lower()
    if spec not in PRECISIONS:
        raise UsageError(f"invalid precision {spec!r}: use {', '.join(PRECISIONS)}", param="precision")
    if spec == "auto":
        if device.type in ("cuda", "mps") and supports_half:
            return torch.float16
        if device.type == "cuda" and supports_bfloat16 and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if spec == "fp16" and not supports_half:
        warnings.warn("this model does not support fp16; running in fp32", IrxWarning, stacklevel=2)
        return torch.float32
    if spec == "fp16" and device.type == "cpu":
        warnings.warn("fp16 is not supported on the CPU; running in fp32 (try bf16)", IrxWarning, stacklevel=2)
        return torch.float32
    if spec == "bf16" and not supports_bfloat16:
        warnings.warn("this model does not support bf16; running in fp32", IrxWarning, stacklevel=2)
        return torch.float32
    return _DTYPES[spec]


def free_device_memory(device: torch.device) -> int | None:
    """Bytes free on the device, or None where it cannot be known (CPU, MPS)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return None


def release_cached_memory(device: torch.device) -> None:
    """Give cached blocks back after an out-of-memory error so a smaller retry can succeed."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def rank_devices(devices: list[torch.device], world_size: int, local_rank: int) -> list[torch.device]:
    """The devices one process uses: all of them alone; under torchrun (world_size > 1) the GPU of its
    LOCAL_RANK, so each rank of a node takes its own. One rule for `irx <task>`, `irx train` and `irx eval`."""
    if world_size > 1 and devices[0].type == "cuda" and len(devices) > 1:
        return [devices[local_rank % len(devices)]]
    return devices
