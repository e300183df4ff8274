"""ReSyn-style curation of a photo collection for training.

Steps (each image gets a reason when it is dropped):

1. small: the shorter side is under `min_size` pixels (ReSyn: 800).
2. blurry: variance of the Laplacian of the luma is under `blur_threshold`.
3. flat: mean Sobel gradient magnitude of the luma is under `flat_threshold`.
4. balance (with `balance=True`): within each source group (the parent folder), keep equal
   numbers of images above and below 0 in standardised complexity; the surplus on the larger
   side is dropped at random (seeded).

Measurements are made on the BT.601 luma (OpenCV's BGR->GRAY, 0-255) of the image reduced with
INTER_AREA so its longer side is at most `analysis_size` (1024) pixels. Reducing first keeps the
blur and flatness statistics comparable between a 4K wallpaper and a 1024 px photo, and bounds
the time per image. Laplacian: OpenCV's 3x3 aperture ([0 1 0; 1 -4 1; 0 1 0]). Sobel: 3x3, the
magnitude sqrt(gx^2 + gy^2) averaged over the image.

Complexity (ReSyn): entropy - energy + dissimilarity of the grey-level co-occurrence matrix
(GLCM) of the luma, quantised to 32 levels, at distance 1, for the angles 0, 45, 90 and 135
degrees, each matrix made symmetric and normalised to sum 1; the three features are averaged
over the angles. Entropy is in bits (-sum P log2 P), energy is sqrt(sum P^2) (the ASM's root,
as scikit-image defines it), dissimilarity is sum P |i - j| in quantisation levels. The raw
score is then z-scored over the images that passed the filters, so 0 splits the set near its
middle (images that were filtered out are scored with the same mean and std, for reference).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..media.atomic import atomic_write_with

__all__ = [
    "BLUR_THRESHOLD",
    "FLAT_THRESHOLD",
    "GLCM_LEVELS",
    "IMAGE_EXTENSIONS",
    "ImageStats",
    "curate",
    "find_images",
    "glcm_features",
    "measure",
    "write_outputs",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
GLCM_LEVELS = 32
# Chosen on irx's training photos at analysis size 1024: photos with a sharp subject stay
# above these, shallow depth-of-field wallpapers and near-uniform images fall below.
BLUR_THRESHOLD = 25.0
FLAT_THRESHOLD = 6.0
ANALYSIS_SIZE = 1024

# (dy, dx) neighbour offsets for the angles 0, 45, 90, 135 degrees at distance 1.
_OFFSETS = ((0, 1), (-1, 1), (-1, 0), (-1, -1))

MANIFEST_COLUMNS = ("path", "width", "height", "laplacian_var", "sobel_mean", "glcm_entropy",
                    "glcm_energy", "glcm_dissimilarity", "complexity", "kept", "reason")


@dataclass
class ImageStats:
    """What curation measured and decided about one image."""

    path: str
    width: int = 0
    height: int = 0
    laplacian_var: float = math.nan
    sobel_mean: float = math.nan
    glcm_entropy: float = math.nan
    glcm_energy: float = math.nan
    glcm_dissimilarity: float = math.nan
    complexity: float = math.nan  # z-scored
    kept: bool = False
    reason: str = ""
    group: str = ""

    @property
    def raw_complexity(self) -> float:
        return self.glcm_entropy - self.glcm_energy + self.glcm_dissimilarity


def glcm_features(luma: np.ndarray, levels: int = GLCM_LEVELS) -> tuple[float, float, float]:
    """(entropy, energy, dissimilarity) of a uint8 luma image's GLCM, averaged over 4 angles."""
    q = (np.asarray(luma, np.int64) * levels) // 256
    h, w = q.shape
    i, j = np.indices((levels, levels))
    feats = []
    for dy, dx in _OFFSETS:
        # Pairs (pixel, neighbour at (dy, dx)) over the region where both exist.
        a = q[max(0, -dy): h - max(0, dy), max(0, -dx): w - max(0, dx)]
        b = q[max(0, -dy) + dy: h - max(0, dy) + dy, max(0, -dx) + dx: w - max(0, dx) + dx]
        counts = np.bincount((a * levels + b).ravel(), minlength=levels * levels)
        p = counts.reshape(levels, levels).astype(np.float64)
        p = p + p.T
        total = p.sum()
        if total == 0:
            continue
        p /= total
        nz = p[p > 0]
        feats.append((-float(np.sum(nz * np.log2(nz))), float(np.sqrt(np.sum(p * p))),
                      float(np.sum(p * np.abs(i - j)))))
    if not feats:
        return 0.0, 1.0, 0.0
    ent, en, dis = np.mean(feats, axis=0)
    return float(ent), float(en), float(dis)


def measure(image: np.ndarray, analysis_size: int = ANALYSIS_SIZE) -> dict[str, float]:
    """Blur, flatness and GLCM statistics of a uint8 BGR (or grey) image."""
    luma = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    h, w = luma.shape
    if analysis_size and max(h, w) > analysis_size:
        f = analysis_size / max(h, w)
        luma = cv2.resize(luma, (max(1, round(w * f)), max(1, round(h * f))),
                          interpolation=cv2.INTER_AREA)
    lf = luma.astype(np.float32)
    lap = cv2.Laplacian(lf, cv2.CV_32F)
    gx = cv2.Sobel(lf, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(lf, cv2.CV_32F, 0, 1)
    ent, en, dis = glcm_features(luma)
    return {"laplacian_var": float(lap.astype(np.float64).var()),
            "sobel_mean": float(np.sqrt(gx * gx + gy * gy).mean()),
            "glcm_entropy": ent, "glcm_energy": en, "glcm_dissimilarity": dis}


def find_images(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Image files in `folder` (and below it with recursive=True), sorted."""
    root = Path(folder)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; give the folder of photos to curate")
    pattern = root.rglob("*") if recursive else root.glob("*")
    return sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _read(path: Path) -> np.ndarray | None:
    try:
        data = np.fromfile(str(path), np.uint8)
    except OSError:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None


def curate(
    paths: Iterable[str | Path],
    *,
    min_size: int = 800,
    blur_threshold: float = BLUR_THRESHOLD,
    flat_threshold: float = FLAT_THRESHOLD,
    balance: bool = False,
    seed: int = 0,
    analysis_size: int = ANALYSIS_SIZE,
    on_image: Callable[[Path], None] | None = None,
) -> list[ImageStats]:
    """Measure, filter and (optionally) balance images; returns one ImageStats per path."""
    results: list[ImageStats] = []
    for path in map(Path, paths):
        if on_image:
            on_image(path)
        st = ImageStats(path=str(path), group=path.parent.name)
        img = _read(path)
        if img is None:
            st.reason = "unreadable"
            results.append(st)
            continue
        st.height, st.width = img.shape[:2]
        for key, value in measure(img, analysis_size).items():
            setattr(st, key, value)
        if min(st.width, st.height) < min_size:
            st.reason = "small"
        elif st.laplacian_var < blur_threshold:
            st.reason = "blurry"
        elif st.sobel_mean < flat_threshold:
            st.reason = "flat"
        else:
            st.kept = True
        results.append(st)

    passed = [s for s in results if s.kept]
    raw = np.array([s.raw_complexity for s in passed])
    mean = float(raw.mean()) if raw.size else 0.0
    std = float(raw.std()) if raw.size > 1 and raw.std() > 0 else 1.0
    for s in results:
        if s.reason != "unreadable":
            s.complexity = (s.raw_complexity - mean) / std

    if balance:
        rng = np.random.default_rng(seed)
        for group in sorted({s.group for s in passed}):
            members = [s for s in passed if s.group == group]
            above = [s for s in members if s.complexity >= 0]
            below = [s for s in members if s.complexity < 0]
            n = min(len(above), len(below))
            for side in (above, below):
                keep = set(rng.choice(len(side), size=n, replace=False).tolist()) if n else set()
                for k, s in enumerate(side):
                    if k not in keep:
                        s.kept, s.reason = False, "balance"
    return results


def write_outputs(stats: list[ImageStats], output: str | Path) -> tuple[Path, Path, Path]:
    """Write the kept paths (one per line) to `output`, the TSV manifest beside it
    (<stem>.manifest.tsv) and a complexity histogram (<stem>.hist.png)."""
    out = Path(output)
    manifest = out.with_suffix(".manifest.tsv")
    hist = out.with_suffix(".hist.png")

    def write_list(p: Path) -> None:
        p.write_text("".join(f"{s.path}\n" for s in stats if s.kept), encoding="utf-8")

    def write_tsv(p: Path) -> None:
        with open(p, "w", newline="", encoding="utf-8") as fh:
            wr = csv.writer(fh, delimiter="\t", lineterminator="\n")
            wr.writerow(MANIFEST_COLUMNS)
            for s in stats:
                row = []
                for col in MANIFEST_COLUMNS:
                    v = getattr(s, col)
                    row.append(f"{v:.6g}" if isinstance(v, float) else
                               int(v) if isinstance(v, bool) else v)
                wr.writerow(row)

    atomic_write_with(out, write_list, overwrite=True)
    atomic_write_with(manifest, write_tsv, overwrite=True)
    atomic_write_with(hist, lambda p: _plot_histogram(stats, p), overwrite=True)
    return out, manifest, hist


def _plot_histogram(stats: list[ImageStats], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept = [s.complexity for s in stats if s.kept]
    dropped = [s.complexity for s in stats if not s.kept and not math.isnan(s.complexity)]
    fig, ax = plt.subplots(figsize=(7, 4))
    values = kept + dropped
    bins = np.linspace(min(values), max(values), 31) if values else 10
    ax.hist([kept, dropped], bins=bins, stacked=True, label=[f"kept ({len(kept)})",
            f"dropped ({len(dropped)})"], color=["tab:blue", "tab:gray"])
    ax.axvline(0.0, color="k", lw=1, ls="--")
    ax.set_xlabel("GLCM complexity (z-score: entropy - energy + dissimilarity)")
    ax.set_ylabel("images")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
