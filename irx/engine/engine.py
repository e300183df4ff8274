"""The inference engine: batches, tiles, device placement, precision and out-of-memory recovery.

Images live in host memory as numpy arrays (uint8, uint16 or float32 HWC) and come back in the same dtype.
Only batches of whole images or of tiles travel to the device, in their stored dtype (see `transfer`), and
are converted, run, clamped and quantised there. An image is restored whole when it fits the pixel budget,
else in overlapping tiles blended with a smooth ramp (see `tiling`): on the device when the whole output
fits there, else on the host. On CUDA `submit` returns before the results are back, so a caller can hand
over the next batch while the device still works on this one. When the device runs out of memory the engine
frees its caches, halves the batch and then the tile, and redoes the same image from scratch, so a failed
attempt never leaves stale data in the result and no work is skipped.
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
from irx.engine.compiled import CompiledModel, bucket_multiple, model_call, pad_batch
from irx.engine.device import (
    PRECISIONS,
    free_device_memory,
    is_out_of_memory,
    release_cached_memory,
    resolve_devices,
    resolve_precision,
)
from irx.engine.tiling import BlendCanvas, BlendWeights, Box, tile_boxes
from irx.engine.transfer import (
    Download,
    Transfer,
    host_tensor,
    pixel_kind,
    quantize,
    to_numpy,
    to_unit_float,
)
from irx.errors import ModelError, UsageError

log = logging.getLogger(__name__)

MIN_TILE = 32
# Host-side budgets where the free memory cannot be queried (CPU, MPS): pixels per forward pass.
CPU_PIXEL_BUDGET = 2048 * 1024
MAX_AUTO_BATCH = 16
# Tiles are blended on the device when the input, the float32 sums and the output take at most this share of
# the free memory (the tile's own forward pass gets its budget from the rest).
DEVICE_CANVAS_SHARE = 0.3

TileSpec = int | str | None  # "auto", 0/None (never tile) or a tile size in input pixels
BatchSpec = int | str


class PendingRestore:
    """Images being restored; `result()` waits for the copies back and returns them in order."""

    def __init__(self, parts: list[tuple[list[Download], np.dtype]]) -> None:
        self._parts = parts

    def result(self) -> list[np.ndarray]:
        images: list[np.ndarray] = []
        for downloads, kind in self._parts:
            for download in downloads:
                batch = download.wait()
                images.extend(to_numpy(batch[i], kind) for i in range(batch.shape[0]))
        return images


class Engine:
    """Runs one loaded model on one device over numpy images (uint8, uint16 or float32 HWC in [0, 1]).

    Progress: before a group of same-size images runs, `on_tiles_planned(tiles, images)` says how many forward
    units (tiles of a tiled image, or one per whole image) it takes; `on_tiles(count)` reports them done as they
    are enqueued. When a group is redone after out-of-memory, or fails, both are corrected by negative counts,
    so once `submit` has returned or raised the planned sum equals the done sum.

    `channels_last` stores the model and its inputs channels-last (faster convolutions on tensor cores for
    many architectures: measure it per architecture with benchmarks/gpu_pipeline.py). `compile` runs the
    model through torch.compile with bucketed shapes, and falls back to eager with one warning if that fails.
    """

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
        on_tiles_planned: Callable[[int, int], None] | None = None,
        channels_last: bool = False,
        compile: bool = False,
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
        self.on_tiles_planned = on_tiles_planned
        self._attempt_done = 0  # tiles reported done by the current attempt at a group (undone if it is redone)
        requirements = getattr(model, "size_requirements", None)
        self.multiple_of = int(getattr(requirements, "multiple_of", 1) or 1)
        self.minimum = int(getattr(requirements, "minimum", 0) or 0)
        self.square = bool(getattr(requirements, "square", False))
        self.channels_last = bool(channels_last)
        self._tile_spec = _parse_tile(tile)
        self._batch_spec = _parse_batch(batch_size)
        self._lock = threading.RLock()
        self._bytes_per_pixel: float | None = None
        self._batch_broken = False
        self._fingerprint: str | None = None
        self._transfer = Transfer(self.device)
        self._weights = BlendWeights(self.tile_overlap, self.scale)
        self.descriptor.to(self.device)
        if self.dtype != torch.float32:
            self.descriptor.to(self.dtype)
        self.descriptor.eval()
        module = getattr(self.descriptor, "model", None)
        if self.channels_last and isinstance(module, torch.nn.Module):
            module.to(memory_format=torch.channels_last)
        self._compiled = CompiledModel(model_call(self.descriptor)) if compile else None

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

    @property
    def compiling(self) -> bool:
        """Whether the model currently runs through torch.compile (False after a fallback)."""
        return self._compiled is not None and self._compiled.active

    @property
    def asynchronous(self) -> bool:
        """Whether `submit` returns before the work is done (CUDA), so a caller gains by submitting ahead."""
        return self._transfer.cuda

    def restore(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Restore a list of images; each comes back in its own dtype (uint8, uint16, or float32 for floats)."""
        return self.submit(images).result()

    def restore_one(self, image: np.ndarray) -> np.ndarray:
        return self.restore([image])[0]

    def submit(self, images: Sequence[np.ndarray]) -> PendingRestore:
        """Start restoring; same-size, same-dtype neighbours that fit the budget share a batch.

        On CUDA this returns once the work is enqueued: submit the next batch before calling `result()` on
        this one and the device never waits for the host. Elsewhere the work is done before it returns.
        """
        kinds = [pixel_kind(image) for image in images]
        for image in images:
            self._check_channels(image.shape[2])
        parts: list[tuple[list[Download], np.dtype]] = []
        with self._lock, self._no_grad():
            index = 0
            while index < len(images):
                shape, kind = images[index].shape, kinds[index]
                group = [index]
                limit = self.images_per_batch(shape[0], shape[1])
                while (
                    len(group) < limit
                    and index + len(group) < len(images)
                    and images[index + len(group)].shape == shape
                    and kinds[index + len(group)] == kind
                ):
                    group.append(index + len(group))
                parts.append((self._submit_group([images[i] for i in group], kind), kind))
                index += len(group)
        return PendingRestore(parts)

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
        """Peak device memory of one 128x128 eager forward pass, per pixel (CUDA only)."""
        side = self._align(128)
        with self._lock, self._no_grad():
            probe = torch.rand(1, self.input_channels, side, side, device=self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            start = torch.cuda.memory_allocated(self.device)
            self._forward(probe, compiled=False)
            peak = torch.cuda.max_memory_allocated(self.device) - start
        return max(1.0, peak / (side * side)) * 1.25

    def _tiles_on_device(self, height: int, width: int, channels: int, itemsize: int) -> bool:
        """Whether one image's tiles can be blended on the device (always, where device memory is host memory)."""
        free = free_device_memory(self.device)
        if free is None:
            return True
        out_channels = int(getattr(self.descriptor, "output_channels", channels) or channels)
        out_pixels = height * width * self.scale**2
        # input + float32 sums and weight sum + the quotient and its HWC copy + the quantised output
        need = height * width * channels * itemsize + out_pixels * (4 + 3 * 4 * out_channels + itemsize * channels)
        return need <= DEVICE_CANVAS_SHARE * free

    def _no_grad(self) -> Any:
        # inference_mode is the cheaper one, but inductor cannot compile every model under it (see compiled.py)
        return torch.no_grad() if self._compiled is not None else torch.inference_mode()

    def _align(self, size: int) -> int:
        multiple = bucket_multiple(self.multiple_of) if self.compiling else self.multiple_of
        return max(multiple, (size // multiple) * multiple)

    # ------------------------------------------------------------------ execution
    def _submit_group(self, images: list[np.ndarray], kind: np.dtype) -> list[Download]:
        """Restore same-shape images, shrinking the batch and then the tile on out-of-memory."""
        height, width = images[0].shape[:2]
        tile = self.tile_size_for(height, width)
        batch_limit = self._batch_spec if isinstance(self._batch_spec, int) else None
        planned = self._tiles_for(len(images), height, width, tile)
        self._report_planned(planned, len(images))
        while True:
            self._attempt_done = 0
            try:
                if tile == 0:
                    return self._run_whole(images, kind, batch_limit)
                return [self._run_tiled(image, kind, tile, batch_limit) for image in images]
            except Exception as error:
                # The attempt's tiles are undone either way: it is redone from scratch, or the group fails.
                self._report_tiles(-self._attempt_done)
                if not is_out_of_memory(error):
                    self._report_planned(-planned, -len(images))
                    raise
                self._weights.clear()
                release_cached_memory(self.device)
                if batch_limit is None:
                    batch_limit = len(images) if tile == 0 else self._tiles_per_batch(tile * tile)
                if batch_limit > 1:
                    batch_limit //= 2
                    log.warning("out of memory: retrying with batches of %d", batch_limit)
                    continue
                if tile == MIN_TILE:
                    self._report_planned(-planned, -len(images))
                    raise ModelError(
                        f"out of memory even with {MIN_TILE}px tiles on {self.device}: "
                        "use --device cpu or a smaller model"
                    ) from error
                tile = max(MIN_TILE, self._align((tile or max(height, width)) // 2))
                log.warning("out of memory: retrying with %dpx tiles", tile)
                replanned = self._tiles_for(len(images), height, width, tile)
                self._report_planned(replanned - planned, 0)
                planned = replanned

    def _tiles_for(self, images: int, height: int, width: int, tile: int) -> int:
        """Forward units for `images` same-size images: one each when whole, else each image's tiles."""
        return images if tile == 0 else images * len(tile_boxes(height, width, tile, self.tile_overlap))

    def _run_whole(self, images: list[np.ndarray], kind: np.dtype, batch_limit: int | None) -> list[Download]:
        step = batch_limit or len(images)
        planned = batch_limit or self.images_per_batch(*images[0].shape[:2])
        channels = images[0].shape[2]
        downloads: list[Download] = []
        for start in range(0, len(images), step):
            chunk = images[start : start + step]
            pixels = self._transfer.to_device([host_tensor(image, kind) for image in chunk])
            x = self._to_model(pixels, kind)
            restored = self._forward(x, full_batch=planned * (x.shape[0] // len(chunk)))
            downloads.append(self._transfer.download(self._from_model(restored, len(chunk), channels, kind)))
            self._report_tiles(len(chunk))
        return downloads

    def _run_tiled(self, image: np.ndarray, kind: np.dtype, tile: int, batch_limit: int | None) -> Download:
        """Restore one image tile by tile into a fresh canvas, on the device when its output fits there."""
        height, width, channels = image.shape
        on_device = self._tiles_on_device(height, width, channels, kind.itemsize)
        source = host_tensor(image, kind)
        if on_device:
            source = self._transfer.to_device([source])
        canvas = BlendCanvas(height, width, self._weights, source.device)
        boxes = tile_boxes(height, width, tile, self.tile_overlap)
        per_batch = max(1, batch_limit or self._tiles_per_batch(tile * tile))
        by_shape: dict[tuple[int, int], list[Box]] = {}
        for box in boxes:
            by_shape.setdefault(box.shape, []).append(box)
        chunks = [same[i : i + per_batch] for same in by_shape.values() for i in range(0, len(same), per_batch)]
        waiting: tuple[list[Box], Download] | None = None  # host blending: one tile batch in flight
        for chunk in chunks:
            pixels = self._transfer.to_device([source[:, b.y0 : b.y1, b.x0 : b.x1] for b in chunk])
            x = self._to_model(pixels, kind)
            restored = self._forward(x, full_batch=per_batch * (x.shape[0] // len(chunk)))
            if on_device:
                canvas.add(chunk, restored)
            else:
                # The device runs this batch while the host blends the previous one.
                download = self._transfer.download(restored)
                if waiting is not None:
                    canvas.add(waiting[0], waiting[1].wait())
                waiting = (chunk, download)
            self._report_tiles(len(chunk))
        if waiting is not None:
            canvas.add(waiting[0], waiting[1].wait())
        result = self._from_model(canvas.result(), 1, channels, kind)
        return self._transfer.download(result) if on_device else Download(result)

    def _forward(self, batch: torch.Tensor, *, compiled: bool = True, full_batch: int | None = None) -> torch.Tensor:
        """float32 NCHW in [0, 1] on the device -> the model's float32 output, padded and cropped back.

        `full_batch` is the batch planned for this input: a compiled model always gets that many items.
        """
        n, _, height, width = batch.shape
        y = None
        if compiled and self._compiled is not None and self._compiled.active:
            y = self._compiled(self._model_input(pad_batch(self._pad(batch, bucketed=True), full_batch)))
        if y is None:  # eager, also for the call whose compilation just failed: results never depend on it
            y = self._call_model(self._model_input(self._pad(batch)))
        return y[:n, :, : height * self.scale, : width * self.scale].float()

    def _model_input(self, x: torch.Tensor) -> torch.Tensor:
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.to(self.dtype).contiguous(memory_format=layout)

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

    def _pad(self, batch: torch.Tensor, *, bucketed: bool = False) -> torch.Tensor:
        _, _, height, width = batch.shape
        multiple = bucket_multiple(self.multiple_of) if bucketed else self.multiple_of
        target_h = max(self.minimum, -(-height // multiple) * multiple)
        target_w = max(self.minimum, -(-width // multiple) * multiple)
        if self.square:
            target_h = target_w = max(target_h, target_w)
        return pad_bottom_right(batch, target_h, target_w)

    def _report_tiles(self, count: int) -> None:
        self._attempt_done += count
        if self.on_tiles is not None and count:
            self.on_tiles(count)

    def _report_planned(self, tiles: int, images: int) -> None:
        if self.on_tiles_planned is not None and (tiles or images):
            self.on_tiles_planned(tiles, images)

    # ------------------------------------------------------------------ channels
    def _check_channels(self, channels: int) -> None:
        if channels not in (self.input_channels, 1) and self.input_channels != 1:
            raise UsageError(f"the model expects {self.input_channels} channels, the image has {channels}")

    def _to_model(self, pixels: torch.Tensor, kind: np.dtype) -> torch.Tensor:
        """(B, H, W, C) stored pixels -> (N, model channels, H, W) float32; grey on an RGB model is repeated,
        RGB on a grey model folded into the batch."""
        x = to_unit_float(pixels, kind).permute(0, 3, 1, 2)
        b, channels, height, width = x.shape
        if channels == self.input_channels:
            return x
        if channels == 1:
            return x.expand(-1, self.input_channels, -1, -1)
        return x.reshape(b * channels, 1, height, width)

    def _from_model(self, output: torch.Tensor, images: int, channels: int, kind: np.dtype) -> torch.Tensor:
        """(N, C', H, W) float model output -> (images, H, W, channels) clamped and in the stored dtype."""
        if output.shape[0] != images:  # folded RGB on a grey model
            output = output.reshape(images, -1, *output.shape[2:])
        if channels == 1 and output.shape[1] != 1:
            output = output.mean(dim=1, keepdim=True)
        return quantize(output.clamp(0, 1), kind).permute(0, 2, 3, 1).contiguous()

def validate_engine_options(*, tile: TileSpec, batch_size: BatchSpec, precision: str) -> None:
    """Raise UsageError for invalid tile, batch_size or precision values."""
    _parse_tile(tile)
    _parse_batch(batch_size)
    if (precision or "auto").lower() not in PRECISIONS:
        raise UsageError(f"invalid precision {precision!r}: use {', '.join(PRECISIONS)}", param="precision")


def _parse_tile(tile: TileSpec) -> int | str:
    if tile is None:
        return 0
    if isinstance(tile, str):
        value = tile.strip().lower()
        if value == "auto":
            return "auto"
        if not value.isdigit():
            raise UsageError(f"invalid tile {tile!r}: use auto, 0 (no tiling) or a size in pixels", param="tile")
        tile = int(value)
    if tile < 0 or (0 < tile < MIN_TILE):
        raise UsageError(f"tile must be 0 or at least {MIN_TILE} pixels, got {tile}", param="tile")
    return int(tile)


def _parse_batch(batch: BatchSpec) -> int | str:
    if isinstance(batch, str):
        value = batch.strip().lower()
        if value == "auto":
            return "auto"
        if not value.isdigit():
            raise UsageError(f"invalid batch_size {batch!r}: use auto or a positive number", param="batch_size")
        batch = int(value)
    if batch < 1:
        raise UsageError(f"batch_size must be at least 1, got {batch}", param="batch_size")
    return int(batch)
