"""Tile layout and seam-free blending weights.

Tiles overlap by `overlap` input pixels. Every tile's output is multiplied by a weight that rises from
almost 0 at an inner tile edge to 1 over the overlap (a raised-cosine ramp, like chaiNNer's half-sine), the
weighted outputs are summed and divided by the summed weights. Edges that touch the image border get no
ramp. Pixels near a tile edge, where a convolution saw padding instead of the neighbour's content, thus
contribute little, and the hand-over between tiles is smooth: no seams.

`BlendCanvas` does the summing on whichever device holds it: the model's device when the whole output fits
there (no tile travels back to the host), else the host. The weights depend only on a tile's geometry, so
`BlendWeights` computes each once per device.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Box:
    """A tile in input pixels: rows [y0, y1), columns [x0, x1)."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering [0, length) with at least `overlap` shared pixels."""
    if tile >= length:
        return [0]
    overlap = min(overlap, tile // 2)
    stride = tile - overlap
    count = math.ceil((length - tile) / stride) + 1
    starts = [min(i * stride, length - tile) for i in range(count)]
    return sorted(set(starts))


def tile_boxes(height: int, width: int, tile: int, overlap: int) -> list[Box]:
    """Row-major tiles of at most `tile` x `tile` pixels covering the image."""
    th, tw = min(tile, height), min(tile, width)
    return [
        Box(y, y + th, x, x + tw)
        for y in tile_starts(height, tile, overlap)
        for x in tile_starts(width, tile, overlap)
    ]


def _ramp(length: int, ramp: int, rise_at_start: bool, fall_at_end: bool) -> torch.Tensor:
    weights = torch.ones(length, dtype=torch.float32)
    ramp = min(ramp, length // 2)
    if ramp <= 0:
        return weights
    # sin^2 from just above 0 to just below 1: a smooth partition of unity for two tiles that overlap by `ramp`.
    positions = (torch.arange(ramp, dtype=torch.float32) + 0.5) / ramp
    rise = torch.sin(positions * math.pi / 2) ** 2
    if rise_at_start:
        weights[:ramp] = rise
    if fall_at_end:
        weights[length - ramp :] = rise.flip(0)
    return weights


def blend_weight(box: Box, height: int, width: int, overlap: int, scale: int) -> torch.Tensor:
    """The (1, h*scale, w*scale) weight of one tile's output; ramps only on edges shared with neighbours."""
    h, w = box.shape
    ramp = overlap * scale
    rows = _ramp(h * scale, ramp, box.y0 > 0, box.y1 < height)
    cols = _ramp(w * scale, ramp, box.x0 > 0, box.x1 < width)
    return (rows[:, None] * cols[None, :]).unsqueeze(0)


class BlendWeights:
    """`blend_weight` computed once per tile geometry and device: an image's tiles share a handful of them."""

    def __init__(self, overlap: int, scale: int, max_entries: int = 32) -> None:
        self.overlap = overlap
        self.scale = scale
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._cache: OrderedDict[tuple[object, ...], torch.Tensor] = OrderedDict()

    def get(self, box: Box, height: int, width: int, device: torch.device) -> torch.Tensor:
        # Everything blend_weight reads: the tile's size and which of its edges have a neighbour.
        key = (box.shape, box.y0 > 0, box.y1 < height, box.x0 > 0, box.x1 < width, str(device))
        weight = self._cache.get(key)
        if weight is not None:
            self.hits += 1
            self._cache.move_to_end(key)
            return weight
        self.misses += 1
        weight = blend_weight(box, height, width, self.overlap, self.scale).to(device)
        self._cache[key] = weight
        if len(self._cache) > self.max_entries:  # large tiles at x4 are 16 MiB each: keep the cache bounded
            self._cache.popitem(last=False)
        return weight

    def clear(self) -> None:
        self._cache.clear()


class BlendCanvas:
    """Sums weighted tile outputs in float32 on one device; `result()` divides by the summed weights."""

    def __init__(self, height: int, width: int, weights: BlendWeights, device: torch.device) -> None:
        self.height = height
        self.width = width
        self.weights = weights
        self.device = device
        self._sum: torch.Tensor | None = None
        self._weight_sum = torch.zeros(1, height * weights.scale, width * weights.scale, device=device)

    def add(self, boxes: Sequence[Box], outputs: torch.Tensor) -> None:
        """Blend the outputs (len(boxes) * n, C, h*s, w*s) of same-shape tiles, n items per tile."""
        outputs = outputs.to(self.device)
        n = outputs.shape[0] // len(boxes)
        s = self.weights.scale
        if self._sum is None:  # the output's channels are known from the first tile
            self._sum = torch.zeros(n, outputs.shape[1], self.height * s, self.width * s, device=self.device)
        for i, box in enumerate(boxes):
            weight = self.weights.get(box, self.height, self.width, self.device)
            rows, cols = slice(box.y0 * s, box.y1 * s), slice(box.x0 * s, box.x1 * s)
            self._sum[:, :, rows, cols] += outputs[i * n : (i + 1) * n] * weight
            self._weight_sum[:, rows, cols] += weight

    def result(self) -> torch.Tensor:
        if self._sum is None:
            raise ValueError("no tile was blended")
        return self._sum.div_(self._weight_sum)
