"""The inference engine: batches, tiles, device placement, precision and out-of-memory recovery.

Images live in host memory as float32 CHW tensors; only batches of whole images or of tiles travel to the
device. An image is restored whole when it fits the pixel budget, else in overlapping tiles blended with a
smooth ramp (see `tiling`). When the device runs out of memory the engine frees its caches, halves the
batch and then the tile, and redoes the same image from scratch, so a failed attempt never leaves stale
data in the result and no work is skipped.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from irx.archs.common import pad_bottom_right
from irx.engine.device import (
    PRECISIONS,
    free_device_memory,
    is_out_of_memory,
    release_cached_memory,
    resolve_devices,
    resolve_precision,
)
from irx.engine.tiling import Box, blend_weight, tile_boxes
from irx.errors import ModelError, UsageError

log = logging.getLogger(__name__)

MIN_TILE = 32
# Host-side budgets where the free memory cannot be queried (CPU, MPS): pixels per forward pass.
CPU_PIXEL_BUDGET = 2048 * 1024
MAX_AUTO_BATCH = 16

TileSpec = int | str | None  # "auto", 0/None (never tile) or a tile size in input pixels
BatchSpec = int | str


class Engine:
    """Runs one loaded model on one device over numpy images (float32 HWC in [0, 1])."""

    def __init__(
        self,
        model: Any,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        tile: TileSpec = "auto",
        tile_overlap: int = 16,
        batch_size: BatchSpec = "auto",
        on_tiles: Callable[[int], None] | None = None,
    ) -> None:
        self.descriptor = model
        self.device = device if isinstance(device, torch.device) else resolve_devices(device)[0]
        self.dtype = resolve_precision(
            precision,
            self.device,
            supports_half=bool(getattr(model, "supports_half", False)),
            supports_bfloat16=bool(getattr(model, "supports_bfloat16", False)),
        )
        self.scale = int(getattr(model, "scale", 1))
        self.input_channels = int(getattr(model, "input_channels", 3))
        self.tile_overlap = max(0, int(tile_overlap))
        self.on_tiles = on_tiles
        requirements = getattr(model, "size_requirements", None)
        self.multiple_of = int(getattr(requirements, "multiple_of", 1) or 1)
        self.minimum = int(getattr(requirements, "minimum", 0) or 0)
        self.square = bool(getattr(requirements, "square", False))
        self._tile_spec = _parse_tile(tile)
        self._batch_spec = _parse_batch(batch_size)
        self._lock = threading.Lock()
        self._bytes_per_pixel: float | None = None
        self._batch_broken = False
        self._fingerprint: str | None = None
        self.descriptor.to(self.device)
        if self.dtype != torch.float32:
            self.descriptor.to(self.dtype)
        self.descriptor.eval()

    # ------------------------------------------------------------------ public API
    @property
    def fingerprint(self) -> str:
        """Identifies model weights and numeric settings, so resumed work never mixes two models."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            module = getattr(self.descriptor, "model", None)
            if isinstance(module, torch.nn.Module):
                for name, tensor in sorted(module.state_dict().items()):
                    digest.update(name.encode())
                    digest.update(tensor.detach().float().cpu().numpy().tobytes())
            arch = getattr(getattr(self.descriptor, "architecture", None), "name", type(self.descriptor).__name__)
            self._fingerprint = f"{arch}:x{self.scale}:{self.dtype}:{digest.hexdigest()[:16]}"
        return self._fingerprint

    def restore(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Restore a list of images; same-size neighbours that fit the budget share a batch."""
        results: list[np.ndarray | None] = [None] * len(images)
        index = 0
        while index < len(images):
            shape = images[index].shape
            group = [index]
            limit = self.images_per_batch(shape[0], shape[1])
            while (
                len(group) < limit
                and index + len(group) < len(images)
                and images[index + len(group)].shape == shape
            ):
                group.append(index + len(group))
            outputs = self._restore_group([images[i] for i in group])
            for i, out in zip(group, outputs):
                results[i] = out
            index += len(group)
        return [r for r in results if r is not None]

    def restore_one(self, image: np.ndarray) -> np.ndarray:
        return self.restore([image])[0]

    # ------------------------------------------------------------------ planning
    def tile_size_for(self, height: int, width: int) -> int:
        """The tile edge for an image, or 0 to process it whole."""
        if self._tile_spec == 0:
            return 0
        if isinstance(self._tile_spec, int):
            tile = self._align(self._tile_spec)
            return 0 if tile >= max(height, width) else tile
        budget = self._pixel_budget()
        if height * width <= budget:
            return 0
        tile = self._align(int(math.sqrt(budget)))
        return max(MIN_TILE, tile)

    def images_per_batch(self, height: int, width: int) -> int:
        if self.tile_size_for(height, width):
            return 1
        if isinstance(self._batch_spec, int):
            return self._batch_spec
        return max(1, min(MAX_AUTO_BATCH, self._pixel_budget() // max(1, height * width)))

    def _tiles_per_batch(self, tile_pixels: int) -> int:
        if isinstance(self._batch_spec, int):
            return self._batch_spec
        return max(1, min(MAX_AUTO_BATCH, self._pixel_budget() // max(1, tile_pixels)))

    def _pixel_budget(self) -> int:
        """How many input pixels one forward pass may hold, from the free device memory where known."""
        free = free_device_memory(self.device)
        if free is None:
            return CPU_PIXEL_BUDGET
        if self._bytes_per_pixel is None:
            self._bytes_per_pixel = self._measure_bytes_per_pixel()
        return max(MIN_TILE * MIN_TILE, int(0.6 * free / self._bytes_per_pixel))

    def _measure_bytes_per_pixel(self) -> float:
        """Peak device memory of one 128x128 forward pass, per pixel (CUDA only)."""
        side = self._align(128)
        probe = torch.rand(1, self.input_channels, side, side)
        torch.cuda.reset_peak_memory_stats(self.device)
        start = torch.cuda.memory_allocated(self.device)
        self._forward(probe)
        peak = torch.cuda.max_memory_allocated(self.device) - start
        return max(1.0, peak / (side * side)) * 1.25

    def _align(self, size: int) -> int:
        return max(self.multiple_of, (size // self.multiple_of) * self.multiple_of)

    # ------------------------------------------------------------------ execution
    def _restore_group(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Restore same-shape images, shrinking the batch and then the tile on out-of-memory."""
        height, width = images[0].shape[:2]
        tile = self.tile_size_for(height, width)
        batch_limit = self._batch_spec if isinstance(self._batch_spec, int) else None
        while True:
            try:
                if tile == 0:
                    tensors = [self._to_model_channels(img) for img in images]
                    outputs = self._run_whole(tensors, batch_limit)
                else:
                    outputs = [self._run_tiled(self._to_model_channels(img), tile, batch_limit) for img in images]
                return [self._from_model_channels(out, img) for out, img in zip(outputs, images)]
            except Exception as error:  # noqa: BLE001 - only out-of-memory is retried
                if not is_out_of_memory(error):
                    raise
                release_cached_memory(self.device)
                if batch_limit is None:
                    batch_limit = len(images) if tile == 0 else self._tiles_per_batch(tile * tile)
                if batch_limit > 1:
                    batch_limit //= 2
                    log.warning("out of memory: retrying with batches of %d", batch_limit)
                    continue
                if tile == MIN_TILE:
                    raise ModelError(
                        f"out of memory even with {MIN_TILE}px tiles on {self.device}: "
                        "use --device cpu or a smaller model"
                    ) from error
                tile = max(MIN_TILE, self._align((tile or max(height, width)) // 2))
                log.warning("out of memory: retrying with %dpx tiles", tile)

    def _run_whole(self, tensors: list[torch.Tensor], batch_limit: int | None) -> list[torch.Tensor]:
        step = batch_limit or len(tensors)
        outputs: list[torch.Tensor] = []
        for start in range(0, len(tensors), step):
            chunk = tensors[start : start + step]
            # Grey images on an RGB model are folded into the batch dimension; keep whole images together.
            result = self._forward(torch.cat(chunk, dim=0))
            offset = 0
            for item in chunk:
                outputs.append(result[offset : offset + item.shape[0]])
                offset += item.shape[0]
            self._report_tiles(len(chunk))
        return outputs

    def _run_tiled(self, image: torch.Tensor, tile: int, batch_limit: int | None) -> torch.Tensor:
        """Restore one image (N, C, H, W) tile by tile into a fresh host buffer."""
        n, c, height, width = image.shape
        s = self.scale
        out_channels = int(getattr(self.descriptor, "output_channels", c))
        accumulated = torch.zeros(n, out_channels, height * s, width * s)
        weight_sum = torch.zeros(1, height * s, width * s)
        boxes = tile_boxes(height, width, tile, self.tile_overlap)
        per_batch = batch_limit or self._tiles_per_batch(tile * tile * n)
        by_shape: dict[tuple[int, int], list[Box]] = {}
        for box in boxes:
            by_shape.setdefault(box.shape, []).append(box)
        for same_shape in by_shape.values():
            for start in range(0, len(same_shape), max(1, per_batch)):
                chunk = same_shape[start : start + per_batch]
                batch = torch.cat([image[:, :, b.y0 : b.y1, b.x0 : b.x1] for b in chunk], dim=0)
                result = self._forward(batch)
                for i, box in enumerate(chunk):
                    weight = blend_weight(box, height, width, self.tile_overlap, s)
                    rows = slice(box.y0 * s, box.y1 * s)
                    cols = slice(box.x0 * s, box.x1 * s)
                    accumulated[:, :, rows, cols] += result[i * n : (i + 1) * n] * weight
                    weight_sum[:, rows, cols] += weight
                self._report_tiles(len(chunk))
        return accumulated / weight_sum

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """One device round trip: pad to the model's size rules, run, crop, return float32 on the host."""
        _, _, height, width = batch.shape
        padded = self._pad(batch)
        with self._lock, torch.inference_mode():
            x = padded.to(self.device, dtype=self.dtype, non_blocking=True)
            y = self._call_model(x)
            y = y[:, :, : height * self.scale, : width * self.scale].float().cpu()
        # Leave inference mode with an ordinary tensor so callers may update it in place.
        return y.clone() if y.is_inference() else y

    def _call_model(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 1 or not self._batch_broken:
            try:
                return self.descriptor(x)
            except RuntimeError as error:
                # Some wrapped models (e.g. with a batch-1 noise map) cannot take batches: go one by one.
                if x.shape[0] == 1 or is_out_of_memory(error):
                    raise
                log.debug("model rejected a batch of %d (%s); running items one by one", x.shape[0], error)
                self._batch_broken = True
        return torch.cat([self.descriptor(x[i : i + 1]) for i in range(x.shape[0])], dim=0)

    def _pad(self, batch: torch.Tensor) -> torch.Tensor:
        _, _, height, width = batch.shape
        target_h = max(self.minimum, -(-height // self.multiple_of) * self.multiple_of)
        target_w = max(self.minimum, -(-width // self.multiple_of) * self.multiple_of)
        if self.square:
            target_h = target_w = max(target_h, target_w)
        return pad_bottom_right(batch, target_h, target_w)

    def _report_tiles(self, count: int) -> None:
        if self.on_tiles is not None:
            self.on_tiles(count)

    # ------------------------------------------------------------------ channels
    def _to_model_channels(self, image: np.ndarray) -> torch.Tensor:
        """HWC numpy -> (N, model channels, H, W); grey on an RGB model is repeated, RGB on a grey model folded."""
        tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
        channels = tensor.shape[0]
        if channels == self.input_channels:
            return tensor.unsqueeze(0)
        if channels == 1:
            return tensor.expand(self.input_channels, -1, -1).unsqueeze(0).contiguous()
        if self.input_channels == 1:
            return tensor.unsqueeze(1)
        raise UsageError(f"the model expects {self.input_channels} channels, the image has {channels}")

    def _from_model_channels(self, output: torch.Tensor, original: np.ndarray) -> np.ndarray:
        channels = original.shape[2]
        if output.shape[0] > 1:  # folded RGB on a grey model
            output = output.permute(1, 0, 2, 3)
        output = output[0]
        if channels == 1 and output.shape[0] != 1:
            output = output.mean(dim=0, keepdim=True)
        return output.clamp(0, 1).permute(1, 2, 0).contiguous().numpy()


def validate_engine_options(*, tile: TileSpec, batch_size: BatchSpec, precision: str) -> None:
    """Raise UsageError for invalid --tile, --batch-size or --precision values."""
    _parse_tile(tile)
    _parse_batch(batch_size)
    if (precision or "auto").lower() not in PRECISIONS:
        raise UsageError(f"invalid --precision {precision!r}: use {', '.join(PRECISIONS)}")


def _parse_tile(tile: TileSpec) -> int | str:
    if tile is None:
        return 0
    if isinstance(tile, str):
        value = tile.strip().lower()
        if value == "auto":
            return "auto"
        if not value.isdigit():
            raise UsageError(f"invalid --tile {tile!r}: use auto, 0 (no tiling) or a size in pixels")
        tile = int(value)
    if tile < 0 or (0 < tile < MIN_TILE):
        raise UsageError(f"--tile must be 0 or at least {MIN_TILE} pixels, got {tile}")
    return int(tile)


def _parse_batch(batch: BatchSpec) -> int | str:
    if isinstance(batch, str):
        value = batch.strip().lower()
        if value == "auto":
            return "auto"
        if not value.isdigit():
            raise UsageError(f"invalid --batch-size {batch!r}: use auto or a positive number")
        batch = int(value)
    if batch < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch}")
    return int(batch)
