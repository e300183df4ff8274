"""--strength and the alpha channel restored by the model when upscaling (irx.finish), through
irx.restore_files and the CLI, with tiny models and images made here."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import irx
from irx.api import load_model
from irx.cli.main import app
from irx.engine import Engine
from irx.errors import UsageError
from irx.finish import (
    SPANDREL_NOISE_LEVEL,
    blend,
    model_strength_kind,
    pixel_strength,
    with_model_strength,
)
from irx.settings import RestoreSettings
from irx.zoo.config import UserConfig
from tests.conftest import _save, make_image, write_png


def settings(**values) -> RestoreSettings:
    return RestoreSettings.resolve(user_config=UserConfig(), device="cpu", **values)


def restore(source: Path, model: Path, task: str, out: Path, **values) -> np.ndarray:
    summary = irx.restore_files([source], model=str(model), task=task, output=out, settings=settings(**values))
    assert summary.processed == [str(source)], summary.failed
    return np.asarray(Image.open(out))


def quantize(pixels: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8)


@pytest.fixture()
def photo(tmp_path: Path) -> Path:
    return write_png(tmp_path / "photo.png", make_image(24, 32, seed=4))


# ---------------------------------------------------------------------- strength


def test_strength_zero_gives_the_input_bit_for_bit_and_one_the_model_output(photo, tiny_denoiser, tmp_path):
    source = np.asarray(Image.open(photo))
    assert np.array_equal(restore(photo, tiny_denoiser, "denoise", tmp_path / "s0.png", strength=0.0), source)
    full = restore(photo, tiny_denoiser, "denoise", tmp_path / "s1.png", strength=1.0)
    direct = irx.restore(source, model=str(tiny_denoiser), device="cpu")
    assert np.array_equal(full, direct) and not np.array_equal(full, source)


def test_strength_between_is_the_blend_of_input_and_output(photo, tiny_denoiser, tmp_path):
    source = np.asarray(Image.open(photo)).astype(np.float32) / 255
    engine = Engine(load_model(tiny_denoiser, device="cpu"), device="cpu")
    restored = engine.restore_one(source)
    half = restore(photo, tiny_denoiser, "denoise", tmp_path / "half.png", strength=0.3)
    assert np.array_equal(half, quantize(source + 0.3 * (restored - source)))


def test_upscaling_blends_with_the_input_resized_as_irx_resizes(photo, tiny_upscaler, tmp_path):
    source = np.asarray(Image.open(photo)).astype(np.float32) / 255
    resized = np.clip(cv2.resize(source, (64, 48), interpolation=cv2.INTER_CUBIC), 0, 1)
    assert np.array_equal(restore(photo, tiny_upscaler, "upscale", tmp_path / "s0.png", strength=0.0), quantize(resized))
    restored = Engine(load_model(tiny_upscaler, device="cpu"), device="cpu").restore_one(source)
    blended = restore(photo, tiny_upscaler, "upscale", tmp_path / "s6.png", strength=0.6)
    assert blended.shape == (48, 64, 3)
    assert np.array_equal(blended, quantize(resized + 0.6 * (restored - resized)))


def test_blend_keeps_its_ends_exact():
    source = make_image(8, 8, seed=1)
    restored = make_image(8, 8, seed=2)
    assert blend(source, restored, 1.0) is restored
    zero = blend(source, restored, 0.0)
    assert np.array_equal(zero, source) and zero is not source


@pytest.mark.parametrize("value", ["-0.1", "1.5", "nan"])
def test_strength_out_of_range_is_a_clear_usage_error(photo, tiny_denoiser, value):
    with pytest.raises(UsageError, match="strength must be between 0 and 1") as caught:
        RestoreSettings.resolve(user_config=UserConfig(), strength=float(value))
    assert caught.value.param == "strength"
    result = CliRunner().invoke(app, ["denoise", str(photo), "--model", str(tiny_denoiser), "--strength", value])
    assert result.exit_code == 2 and "--strength must be between 0 and 1" in result.output
    assert not photo.with_name("photo_denoise.png").exists()


# ---------------------------------------------------------------------- the models' own strength inputs


@pytest.fixture(scope="module")
def tiny_drunet() -> object:
    from spandrel import ModelLoader
    from spandrel.architectures.DRUNet import DRUNet

    torch.manual_seed(0)
    return ModelLoader().load_from_state_dict(DRUNet(in_nc=4, out_nc=3, nc=[4, 8, 8, 8], nb=2).state_dict())


@pytest.fixture(scope="module")
def tiny_fbcnn() -> object:
    from spandrel import ModelLoader
    from spandrel.architectures.FBCNN import FBCNN

    torch.manual_seed(0)
    # FBCNN's quality-factor head is fixed at 512 features, so the deepest level must have 512 channels.
    return ModelLoader().load_from_state_dict(FBCNN(in_nc=3, out_nc=3, nc=[4, 8, 8, 512], nb=2).state_dict())


def test_drunet_gets_strength_as_its_noise_level(tiny_drunet):
    x = torch.rand(1, 3, 16, 16)
    wrapped, left = with_model_strength(tiny_drunet, 0.4)
    assert model_strength_kind(tiny_drunet) == "DRUNet" and left == 1.0 and pixel_strength(tiny_drunet, 0.4) == 1.0
    with torch.inference_mode():
        expected = tiny_drunet.model(torch.cat([x, torch.full((1, 1, 16, 16), 0.4 * SPANDREL_NOISE_LEVEL)], 1))
        assert torch.allclose(wrapped(x), expected.clamp(0, 1), atol=1e-6)
        assert not torch.allclose(wrapped(x), tiny_drunet(x))
        # The shared descriptor keeps spandrel's own level: strength 1 is the model's output.
        default = tiny_drunet.model(torch.cat([x, torch.full((1, 1, 16, 16), SPANDREL_NOISE_LEVEL)], 1))
        assert torch.allclose(tiny_drunet(x), default.clamp(0, 1), atol=1e-6)
    assert with_model_strength(tiny_drunet, 1.0) == (tiny_drunet, 1.0)
    assert with_model_strength(tiny_drunet, 0.0) == (tiny_drunet, 0.0)  # 0: the input, by the blend


def test_fbcnn_gets_strength_as_a_fraction_of_its_predicted_quality_factor(tiny_fbcnn):
    x = torch.rand(1, 3, 16, 16)
    wrapped, left = with_model_strength(tiny_fbcnn, 0.5)
    assert left == 1.0
    with torch.inference_mode():
        _, predicted = tiny_fbcnn.model(x)
        expected, _ = tiny_fbcnn.model(x, qf_input=predicted * 0.5)
        assert torch.allclose(wrapped(x), expected.clamp(0, 1), atol=1e-6)
        assert not torch.allclose(wrapped(x), tiny_fbcnn(x), atol=1e-6)
        assert not tiny_fbcnn.model.qf_pred._forward_hooks  # the hook lives only for the call
        assert torch.allclose(tiny_fbcnn(x), tiny_fbcnn.model(x)[0].clamp(0, 1))


def test_restore_files_maps_strength_onto_drunet(tiny_drunet, photo, tmp_path):
    model = _save(tiny_drunet.model, tmp_path / "drunet.safetensors")
    source = np.asarray(Image.open(photo)).astype(np.float32) / 255
    wrapped, _ = with_model_strength(load_model(model, device="cpu"), 0.4)
    expected = quantize(Engine(wrapped, device="cpu").restore_one(source))
    assert np.array_equal(restore(photo, model, "denoise", tmp_path / "out.png", strength=0.4), expected)
    assert np.array_equal(restore(photo, model, "denoise", tmp_path / "zero.png", strength=0.0), quantize(source))


def test_models_without_a_strength_input_are_blended(tiny_denoiser):
    descriptor = load_model(tiny_denoiser, device="cpu")
    assert model_strength_kind(descriptor) is None
    assert with_model_strength(descriptor, 0.5) == (descriptor, 0.5) and pixel_strength(descriptor, 0.5) == 0.5


# ---------------------------------------------------------------------- alpha


@pytest.fixture()
def rgba(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """An RGBA image whose alpha is a hard-edged disc on a ramp."""
    yy, xx = np.mgrid[0:20, 0:24]
    alpha = np.where((yy - 10) ** 2 + (xx - 12) ** 2 < 36, 255, xx * 8).astype(np.uint8)
    image = np.dstack([(make_image(20, 24, seed=5) * 255).astype(np.uint8), alpha])
    path = tmp_path / "rgba.png"
    Image.fromarray(image, "RGBA").save(path)
    return path, alpha


def test_upscaling_restores_alpha_with_the_model_as_a_grey_image(rgba, tiny_upscaler, tmp_path):
    path, alpha = rgba
    out = restore(path, tiny_upscaler, "upscale", tmp_path / "up.png")
    assert out.shape == (40, 48, 4)
    # Independently: alpha repeated to RGB through the network, the mean of its three channels kept.
    descriptor = load_model(tiny_upscaler, device="cpu")
    grey = torch.from_numpy(alpha.astype(np.float32) / 255)[None, None].expand(1, 3, -1, -1)
    with torch.inference_mode():
        expected = descriptor(grey).mean(dim=1)[0].numpy()
    assert np.array_equal(out[..., 3], quantize(expected))
    resized = quantize(np.clip(cv2.resize(alpha.astype(np.float32) / 255, (48, 40), interpolation=cv2.INTER_CUBIC), 0, 1))
    assert (out[..., 3] != resized).mean() > 0.5  # the model's alpha, not the resized one
    # The colour is what it is without alpha: the alpha rode along in the same call, separately.
    colour = irx.restore(np.asarray(Image.open(path).convert("RGB")), model=str(tiny_upscaler), device="cpu")
    assert np.array_equal(out[..., :3], colour)


def test_alpha_resize_keeps_todays_output_and_1x_tasks_keep_alpha(rgba, tiny_upscaler, tiny_denoiser, tmp_path):
    path, alpha = rgba
    out = restore(path, tiny_upscaler, "upscale", tmp_path / "up.png", alpha="resize")
    resized = np.clip(cv2.resize(alpha.astype(np.float32) / 255, (48, 40), interpolation=cv2.INTER_CUBIC), 0, 1)
    assert np.array_equal(out[..., 3], quantize(resized))
    same = restore(path, tiny_denoiser, "denoise", tmp_path / "one.png")  # 1x: alpha carried over as it is
    assert np.array_equal(same[..., 3], alpha)
    with pytest.raises(UsageError, match="alpha must be one of model, resize"):
        settings(alpha="blur")


def test_a_face_model_without_faces_is_refused(photo, tiny_denoiser):
    result = CliRunner().invoke(app, ["denoise", str(photo), "--model", str(tiny_denoiser), "--face-model", "codeformer"])
    assert result.exit_code == 2 and "--face-model needs --faces" in result.output


def test_model_alpha_follows_strength(rgba, tiny_upscaler, tmp_path):
    path, alpha = rgba
    out = restore(path, tiny_upscaler, "upscale", tmp_path / "s0.png", strength=0.0)
    resized = np.clip(cv2.resize(alpha.astype(np.float32) / 255, (48, 40), interpolation=cv2.INTER_CUBIC), 0, 1)
    assert np.array_equal(out[..., 3], quantize(resized))


def test_video_frames_get_strength_too(tmp_path, tiny_denoiser):
    pytest.importorskip("av")
    from tests.test_video import make_video, read_video

    # FFV1 in RGB is lossless, so strength 0 must give every frame back exactly, and 0.5 the blend.
    src = make_video(tmp_path / "clip.mkv", codec="ffv1", pix_fmt="bgr0", size=(24, 16), n=4, audio=None)
    frames = {}
    for strength in (0.0, 0.5, 1.0):
        out = tmp_path / f"s{strength}.mkv"
        summary = irx.restore_files([src], model=str(tiny_denoiser), task="denoise", output=out,
                                    settings=settings(strength=strength, codec="ffv1"))
        assert summary.processed == [str(src)], summary.failed
        frames[strength] = read_video(out)["frames"]
    source = read_video(src)["frames"]
    for x, zero, half, full in zip(source, frames[0.0], frames[0.5], frames[1.0]):
        assert np.array_equal(zero, x) and not np.array_equal(full, x)
        expected = (x.astype(np.float32) + full.astype(np.float32)) / 2
        assert np.abs(half.astype(np.float32) - expected).max() <= 1.0
