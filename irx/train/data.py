"""Training data: photos decoded once into RAM, and batches that depend only on (seed, step).

Every sample draws its randomness from `np.random.default_rng([seed, step, index])`, where
`index` is the sample's position in the global batch. A batch is therefore a pure function of
the step, so a resumed run sees exactly the batches the uninterrupted run saw, whatever the
number of data-loader workers, and DDP ranks take disjoint slices of the same global batch.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from irx.errors import InputError, UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

Degradation = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def list_images(folder: Path) -> list[Path]:
    """Image files under `folder`, recursively, in a stable (sorted) order."""
    if not folder.is_dir():
        raise UsageError(
            f"training folder {folder} not found; run from the repository root or set IRX_DATA_ROOT / --data-root"
        )
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_image(path: Path, downscale: float = 1.0, max_side: int = 0) -> np.ndarray:
    """Decode to uint8 RGB HWC, shrink by `downscale`, then so the longer side is <= max_side."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot decode training image {path}: {exc}") from exc
    h, w = arr.shape[:2]
    factor = downscale
    if max_side and max(h, w) * factor > max_side:
        factor = max_side / max(h, w)
    if factor < 1.0:
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        # INTER_AREA averages pixels: it removes compression artefacts instead of aliasing them.
        arr = cv2.resize(arr, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(arr)


def split_train_val(paths: Sequence[Path], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Hold out a stable `fraction` of images: chosen by a hash of the file name, not by order."""
    if fraction <= 0 or len(paths) < 2:
        return list(range(len(paths))), []
    keyed = sorted(range(len(paths)), key=lambda i: zlib.crc32(f"{seed}:{paths[i].name}".encode()))
    n_val = min(len(paths) - 1, max(1, round(len(paths) * fraction)))
    val = sorted(keyed[:n_val])
    train = sorted(keyed[n_val:])
    return train, val


class ImageCache:
    """Decoded uint8 images kept in RAM (235 photos at <= 1024 px are about 0.5 GB)."""

    def __init__(self, images: list[np.ndarray], names: list[str]) -> None:
        self.images = images
        self.names = names
        # Larger images are drawn more often so every pixel has a similar chance to be seen.
        areas = np.array([im.shape[0] * im.shape[1] for im in images], dtype=np.float64)
        self.weights = areas / areas.sum() if len(images) else areas

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def from_paths(cls, items: Sequence[tuple[Path, float]], max_side: int, min_side: int = 0) -> ImageCache:
        images, names = [], []
        for path, downscale in items:
            arr = load_image(path, downscale, max_side)
            if min(arr.shape[:2]) < min_side:
                continue  # too small to give one patch
            images.append(arr)
            names.append(str(path))
        return cls(images, names)


def sample_rng(seed: int, step: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, step, index])


def random_patch(
    image: np.ndarray,
    size: int,
    rng: np.random.Generator,
    rescale: tuple[float, float] = (1.0, 1.0),
    flips: bool = True,
    rot90: bool = True,
) -> np.ndarray:
    """A size x size uint8 crop, optionally taken at a random scale, flipped and rotated."""
    h, w = image.shape[:2]
    factor = float(rng.uniform(rescale[0], rescale[1]))
    # A factor < 1 crops a larger region and shrinks it (a zoomed-out view); > 1 zooms in.
    src = round(size / factor)
    src = max(1, min(src, h, w))
    top = int(rng.integers(0, h - src + 1))
    left = int(rng.integers(0, w - src + 1))
    patch = image[top : top + src, left : left + src]
    if src != size:
        interp = cv2.INTER_AREA if src > size else cv2.INTER_CUBIC
        patch = cv2.resize(patch, (size, size), interpolation=interp)
    if flips and rng.random() < 0.5:
        patch = patch[:, ::-1]
    if rot90:
        patch = np.rot90(patch, int(rng.integers(0, 4)))
    return np.ascontiguousarray(patch)


def to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """HWC float32 [0,1] arrays -> BCHW tensor."""
    stacked = np.stack([np.asarray(im, dtype=np.float32) for im in images])
    if stacked.ndim == 3:
        stacked = stacked[..., None]
    return torch.from_numpy(np.ascontiguousarray(stacked.transpose(0, 3, 1, 2)))


class BatchMaker:
    """Makes (degraded, clean) batches as a pure function of the step; indexable for a DataLoader."""

    def __init__(
        self,
        cache: ImageCache,
        degrade: Degradation,
        patch_size: int,
        batch_size: int,
        seed: int,
        scale: int = 1,
        rescale: tuple[float, float] = (1.0, 1.0),
        flips: bool = True,
        rot90: bool = True,
        grey: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if len(cache) == 0:
            raise UsageError("no training images large enough for the patch size; check data.train_dirs")
        self.cache = cache
        self.degrade = degrade
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.seed = seed
        self.scale = scale
        self.rescale = rescale
        self.flips = flips
        self.rot90 = rot90
        self.grey = grey
        self.rank = rank
        self.world_size = world_size

    def sample(self, step: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample `index` of the global batch of `step`: (degraded, clean) float32 HWC."""
        rng = sample_rng(self.seed, step, index)
        which = int(rng.choice(len(self.cache), p=self.cache.weights))
        patch = random_patch(self.cache.images[which], self.patch_size, rng, self.rescale, self.flips, self.rot90)
        clean = patch.astype(np.float32) / 255.0
        if self.grey:
            clean = clean @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            clean = clean[..., None]
        degraded = np.asarray(self.degrade(clean, rng), dtype=np.float32)
        if degraded.ndim == 2:
            degraded = degraded[..., None]
        return np.clip(degraded, 0.0, 1.0), clean

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        first = self.rank * self.batch_size
        pairs = [self.sample(step, first + j) for j in range(self.batch_size)]
        return to_tensor([p[0] for p in pairs]), to_tensor([p[1] for p in pairs])

    def __len__(self) -> int:  # a DataLoader needs one; the sampler decides which steps are drawn
        return 2**62


def center_crop(image: np.ndarray, size: int, multiple: int = 1) -> np.ndarray:
    """Central crop of at most size x size, with sides a multiple of `multiple`."""
    h, w = image.shape[:2]
    ch = min(size, h) // multiple * multiple
    cw = min(size, w) // multiple * multiple
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(image[top : top + ch, left : left + cw])
