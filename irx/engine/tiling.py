"""Tile layout and seam-free blending weights.

Tiles overlap by `overlap` input pixels. Every tile's output is multiplied by a weight that rises from
almost 0 at an inner tile edge to 1 over the overlap (a raised-cosine ramp, like chaiNNer's half-sine), the
weighted outputs are summed and divided by the summed weights. Edges that touch the image border get no
ramp. Pixels near a tile edge, where a convolution saw padding instead of the neighbour's content, thus
contribute little, and the hand-over between tiles is smooth: no seams.
"""

from __future__ import annotations

import math
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
