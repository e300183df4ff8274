"""Output size for images: fractional --scale, --width/--height, and models of another scale (issue #16)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from irx.cli.main import app
from irx.errors import UsageError
from irx.pipeline import fit_to_scale
from irx.settings import RestoreSettings
from irx.zoo import Catalogue, ModelRecord, model_scale_for
from irx.zoo.config import UserConfig
from tests.conftest import make_image, write_png

runner = CliRunner()


def _run(*args: object) -> object:
    return runner.invoke(app, [str(a) for a in args])


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    return write_png(tmp_path / "a.png", make_image(30, 40))


def test_fractional_scale_resizes_the_models_output(photo: Path, tiny_upscaler: Path, tmp_path: Path) -> None:
    """x1.5 from a x2 model: the x2 output reduced with area averaging."""
    x2, x15 = tmp_path / "x2.png", tmp_path / "x15.png"
    assert _run("upscale", photo, "--model", tiny_upscaler, "-o", x2, "-q").exit_code == 0
    result = _run("upscale", photo, "--model", tiny_upscaler, "--scale", "1.5", "-o", x15)
    assert result.exit_code == 0, result.output
    assert Image.open(x15).size == (60, 45)
    assert "upscales x2; its output is resized to x1.5" in result.output  # said once
    assert result.output.count("resized to") == 1
    expected = cv2.resize(_read(x2), (60, 45), interpolation=cv2.INTER_AREA)
    assert np.abs(_read(x15) - expected).max() <= 2 / 255  # 8-bit rounding of both files


def test_width_alone_keeps_the_aspect_ratio_and_both_are_exact(photo: Path, tiny_denoiser: Path, tmp_path: Path) -> None:
    assert _run("denoise", photo, "--model", tiny_denoiser, "--width", "100", "-o", tmp_path / "w.png", "-q").exit_code == 0
    assert Image.open(tmp_path / "w.png").size == (100, 75)
    assert _run("denoise", photo, "--model", tiny_denoiser, "--height", "15", "-o", tmp_path / "h.png", "-q").exit_code == 0
    assert Image.open(tmp_path / "h.png").size == (20, 15)
    both = _run("denoise", photo, "--model", tiny_denoiser, "--width", "50", "--height", "10", "-o", tmp_path / "b.png", "-q")
    assert both.exit_code == 0 and Image.open(tmp_path / "b.png").size == (50, 10)


def test_a_zoo_model_of_another_scale_is_resized_not_refused(photo: Path, tmp_path: Path) -> None:
    """README: "a model of another scale is resized to it" (it used to be refused)."""
    out = tmp_path / "x2.png"
    result = _run("upscale", photo, "--scale", "2", "--model", "laformer_tiny_upscale_x4", "-o", out, "--offline")
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (80, 60)
    assert "laformer_tiny_upscale_x4 upscales x4; its output is resized to x2" in result.output


def test_upscale_x3_runs_the_x4_default_and_reduces_it(photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "x3.png"
    result = _run("upscale", photo, "--scale", "3", "-o", out, "--offline")
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (120, 90)
    assert "upscales x4; its output is resized to x3" in result.output


def _catalogue(*scales: int) -> Catalogue:
    records = [ModelRecord(name=f"up{s}", tasks=("upscale",), arch="Tiny", scale=s, source="bundled",
                           filename=f"up{s}.safetensors", license="MIT") for s in scales]
    return Catalogue(records, Path("/nonexistent"))


def test_which_model_scale_runs_for_an_asked_scale() -> None:
    cat, config = _catalogue(2, 4), UserConfig()
    assert [model_scale_for("upscale", s, catalogue=cat, user_config=config) for s in (1.5, 2, 3, 4, 6)] == [2, 2, 4, 4, 4]
    assert model_scale_for("upscale", None, catalogue=cat, user_config=config) is None
    assert model_scale_for("denoise", 2, catalogue=cat, user_config=config) is None
    configured = UserConfig(default_models={"upscale_x3": "some-x3-model"})
    assert model_scale_for("upscale", 3, catalogue=cat, user_config=configured) == 3


def test_alpha_follows_the_asked_size() -> None:
    pixels = np.zeros((20, 20, 3), np.float32)
    alpha = np.ones((10, 10), np.float32)
    out, out_alpha = fit_to_scale(pixels, alpha, (10, 10), 2, 1.5)
    assert out.shape == (15, 15, 3) and out_alpha is not None and out_alpha.shape == (15, 15)
    assert np.allclose(out_alpha, 1)
    # Enlarging uses Lanczos (sharper than bicubic) and stays in [0, 1].
    ramp = np.linspace(0, 1, 8, dtype=np.float32)[None, :, None].repeat(8, 0).repeat(3, 2)
    big, _ = fit_to_scale(ramp, None, (8, 8), 1, 3)
    assert big.shape == (24, 24, 3) and big.min() >= 0 and big.max() <= 1
    assert np.allclose(big, cv2.resize(ramp, (24, 24), interpolation=cv2.INTER_LANCZOS4).clip(0, 1))


@pytest.mark.parametrize(
    ("given", "message"),
    [({"scale": 0}, "scale must be a positive number"), ({"scale": float("nan")}, "positive number"),
     ({"width": 0}, "width must be at least 1"), ({"height": -3}, "height must be at least 1")],
)
def test_bad_sizes_are_usage_errors(given: dict[str, float], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        RestoreSettings.resolve(user_config=UserConfig(), **given)


def test_a_whole_scale_stays_whole() -> None:
    assert RestoreSettings.resolve(user_config=UserConfig(), scale=2.0).scale == 2
    assert isinstance(RestoreSettings.resolve(user_config=UserConfig(), scale=2.0).scale, int)
    assert RestoreSettings.resolve(user_config=UserConfig(), scale=1.5).scale == 1.5


def test_python_restore_takes_a_fractional_scale() -> None:
    import irx

    out = irx.restore(make_image(30, 40), task="upscale", scale=1.5)  # bundled x2 model, reduced
    assert out.shape == (45, 60, 3)
