"""ReSyn-style curation: GLCM complexity, filters, balancing, outputs and the CLI."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from irx.cli.data import data_app
from irx.data.curate import curate, find_images, glcm_features, write_outputs


def _flat(n: int = 64) -> np.ndarray:
    return np.full((n, n), 120, np.uint8)


def _gradient(n: int = 64) -> np.ndarray:
    return np.tile(np.linspace(0, 255, n), (n, 1)).round().astype(np.uint8)


def _noise(n: int = 64, seed: int = 0, amp: float = 255.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(128 + amp * (rng.random((n, n)) - 0.5), 0, 255).astype(np.uint8)


def _raw(img: np.ndarray) -> float:
    ent, energy, dis = glcm_features(img)
    return ent - energy + dis


def test_glcm_of_a_constant_image():
    assert glcm_features(_flat()) == pytest.approx((0.0, 1.0, 0.0))


def test_glcm_of_vertical_stripes_matches_a_hand_count():
    # Columns alternate between grey levels 0 and 31 (of 32). At 0, 45 and 135 degrees every
    # pair joins the two levels, at 90 degrees none does; symmetric P is 0.5/0.5 either way.
    img = np.tile(np.array([0, 255], np.uint8), (20, 10))
    ent, energy, dis = glcm_features(img)
    assert ent == pytest.approx(1.0)
    assert energy == pytest.approx(np.sqrt(0.5))
    assert dis == pytest.approx((31 * 3 + 0) / 4)


def test_complexity_orders_flat_gradient_texture():
    assert _raw(_flat()) < _raw(_gradient()) < _raw(_noise())


def _write(folder: Path, name: str, img: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    assert cv2.imwrite(str(path), img)
    return path


def _dots(n: int = 128) -> np.ndarray:
    """Flat grey with a few isolated bright dots: sharp (high Laplacian), but flat (low Sobel)."""
    img = _flat(n)
    rng = np.random.default_rng(5)
    ys, xs = rng.integers(0, n, 30), rng.integers(0, n, 30)
    img[ys, xs] = 255
    return img


def _soft(n: int = 128) -> np.ndarray:
    """A smooth, high-contrast wave: strong gradients (not flat), tiny Laplacian (blurry)."""
    x = np.arange(n)
    row = 128 + 100 * np.sin(x / 8.0)
    return np.tile(row, (n, 1)).round().astype(np.uint8)


def test_filters_drop_small_blurry_and_flat_images_with_reasons(tmp_path):
    paths = [
        _write(tmp_path / "a", "tiny.png", _noise(24)),
        _write(tmp_path / "a", "blurry.png", _soft()),
        _write(tmp_path / "a", "flat.png", _dots()),
        _write(tmp_path / "a", "sharp.png", _noise(128)),
    ]
    (tmp_path / "a" / "broken.png").write_bytes(b"not an image")
    paths.append(tmp_path / "a" / "broken.png")
    stats = {Path(s.path).stem: s for s in curate(paths, min_size=64)}
    assert stats["tiny"].reason == "small"
    assert stats["blurry"].reason == "blurry"
    assert stats["flat"].reason == "flat"
    assert stats["broken"].reason == "unreadable"
    assert stats["sharp"].kept and stats["sharp"].reason == ""
    assert (stats["sharp"].width, stats["sharp"].height) == (128, 128)
    assert sum(s.kept for s in stats.values()) == 1


def test_complexity_is_standardised_and_balance_is_per_group(tmp_path):
    paths = []
    for group, count in (("g1", 7), ("g2", 5)):
        for k in range(count):
            # Texture amplitude rises with k, and so does complexity.
            paths.append(_write(tmp_path / group, f"{k}.png",
                                _noise(96, seed=k, amp=40 + 30 * k)))
    plain = curate(paths, min_size=64)
    z = np.array([s.complexity for s in plain])
    assert all(s.kept for s in plain)
    assert abs(z.mean()) < 1e-9 and abs(z.std() - 1) < 1e-9
    g1 = [s.complexity for s in plain if s.group == "g1"]
    assert g1 == sorted(g1)  # complexity follows texture strength

    balanced = curate(paths, min_size=64, balance=True, seed=1)
    for group in ("g1", "g2"):
        kept = [s for s in balanced if s.group == group and s.kept]
        above = sum(s.complexity >= 0 for s in kept)
        assert above == len(kept) - above and above > 0
    assert {s.reason for s in balanced if not s.kept} == {"balance"}
    assert [s.kept for s in balanced] == [s.kept for s in curate(paths, min_size=64,
                                                                  balance=True, seed=1)]


def test_outputs_list_manifest_and_histogram(tmp_path):
    paths = [_write(tmp_path / "in", f"{k}.png", _noise(96, seed=k)) for k in range(3)]
    paths.append(_write(tmp_path / "in", "small.png", _noise(16)))
    stats = curate(paths, min_size=64)
    out, manifest, hist = write_outputs(stats, tmp_path / "out" / "curated.txt")
    assert out.read_text().splitlines() == [str(p) for p in paths[:3]]
    rows = [line.split("\t") for line in manifest.read_text().splitlines()]
    assert rows[0] == ["path", "width", "height", "laplacian_var", "sobel_mean", "glcm_entropy",
                       "glcm_energy", "glcm_dissimilarity", "complexity", "kept", "reason"]
    assert len(rows) == 5 and rows[4][-2:] == ["0", "small"] and rows[1][-2:] == ["1", ""]
    assert hist.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_curate_recursive(tmp_path):
    for k in range(4):
        _write(tmp_path / "photos" / ("x" if k % 2 else "y"), f"{k}.png", _noise(80, seed=k))
    assert find_images(tmp_path / "photos") == []
    out = tmp_path / "curated.txt"
    result = CliRunner().invoke(data_app, ["curate", str(tmp_path / "photos"), "-o", str(out),
                                           "--min-size", "64", "--recursive"])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 4
    assert out.with_suffix(".manifest.tsv").exists() and out.with_suffix(".hist.png").exists()
