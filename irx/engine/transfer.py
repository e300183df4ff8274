"""Pixels between host and device: integers on the bus, pinned memory and side streams on CUDA.

Images cross the bus in their stored dtype (uint8 or uint16: a quarter or a half of float32's bytes) and are
converted to float on the device; results are clamped and quantised on the device and come back in the same
dtype. On CUDA the host side of every copy is pinned (page-locked) memory from PyTorch's caching host
allocator, which hands the same blocks out again once the copies that used them have finished, so pinning is
paid once per buffer size. The copies run on two side streams: the upload of the next batch overlaps the
compute of the current one, and a result is copied back while the caller enqueues more work. On the CPU and
MPS every step is the plain synchronous one and the numbers are the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from irx.errors import UsageError

UINT8 = np.dtype(np.uint8)
UINT16 = np.dtype(np.uint16)
FLOAT32 = np.dtype(np.float32)


def pixel_kind(image: np.ndarray) -> np.dtype:
    """The dtype an image is restored in and returned as: uint8, uint16 or float32 (any float)."""
    if image.ndim != 3:
        raise UsageError(f"the engine takes HxWxC images, got shape {image.shape}")
    if image.dtype in (UINT8, UINT16):
        return image.dtype
    if np.issubdtype(image.dtype, np.floating):
        return FLOAT32
    raise UsageError(f"the engine takes uint8, uint16 or float images in [0, 1], not {image.dtype}")


def host_tensor(image: np.ndarray, kind: np.dtype) -> torch.Tensor:
    """A (1, H, W, C) tensor sharing the image's memory where it can.

    uint16 travels as int16 with the same bits: CUDA's uint16 kernels are incomplete, int16 copies always work.
    """
    if kind == UINT16:
        array = image.view(np.int16)
    elif kind == UINT8:
        array = image
    else:
        array = np.asarray(image, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(array)).unsqueeze(0)


def to_unit_float(pixels: torch.Tensor, kind: np.dtype) -> torch.Tensor:
    """Stored pixels -> float32 in [0, 1], on the tensor's own device."""
    if kind == UINT8:
        return pixels.float() / 255
    if kind == UINT16:
        return (pixels.to(torch.int32) & 0xFFFF).float() / 65535
    return pixels.float()


def quantize(pixels: torch.Tensor, kind: np.dtype) -> torch.Tensor:
    """Float pixels already in [0, 1] -> the stored dtype, rounded to nearest (uint16 as int16 bits)."""
    if kind == UINT8:
        return (pixels * 255).round().to(torch.uint8)
    if kind == UINT16:
        return (pixels * 65535).round().to(torch.int32).to(torch.int16)
    return pixels


def to_numpy(pixels: torch.Tensor, kind: np.dtype) -> np.ndarray:
    array = pixels.numpy()
    return array.view(np.uint16) if kind == UINT16 else array


@dataclass
class Download:
    """A result on its way to the host; `wait()` returns it once the copy has finished."""

    tensor: torch.Tensor
    done: torch.cuda.Event | None = None

    def wait(self) -> torch.Tensor:
        if self.done is not None:
            self.done.synchronize()
        return self.tensor


class Transfer:
    """Uploads and downloads for one device (side streams and pinned memory only on CUDA)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        if self.cuda:
            self._upload_stream = torch.cuda.Stream(device)
            self._download_stream = torch.cuda.Stream(device)

    def to_device(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """Concatenate host (or device) tensors along dim 0 onto the device."""
        if not parts[0].is_cpu or not self.cuda:  # already there (device tiles, or the CPU itself), or MPS
            return (parts[0] if len(parts) == 1 else torch.cat(parts)).to(self.device)
        first = parts[0]
        staged = torch.empty(
            (sum(p.shape[0] for p in parts), *first.shape[1:]), dtype=first.dtype, pin_memory=True
        )
        torch.cat(parts, out=staged)  # the one host copy, straight into pinned memory
        compute = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self._upload_stream):
            uploaded = staged.to(self.device, non_blocking=True)
        compute.wait_stream(self._upload_stream)
        uploaded.record_stream(compute)  # its memory was taken on the upload stream, it is used on compute
        return uploaded

    def download(self, pixels: torch.Tensor) -> Download:
        """Start copying a device tensor to the host."""
        if not self.cuda:
            return Download(pixels.cpu())
        self._download_stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._download_stream):
            host = torch.empty(pixels.shape, dtype=pixels.dtype, pin_memory=True)
            host.copy_(pixels, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
        pixels.record_stream(self._download_stream)  # keep its memory until the copy has read it
        return Download(host, done)
