"""The Python API: irx.restore keeps the kind, dtype and layout of what it is given."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import irx
from irx.errors import UsageError
from tests.conftest import make_image


@pytest.fixture(scope="module")
def model(tiny_denoiser):
    return irx.load_model(str(tiny_denoiser), device="cpu")


def test_load_model_is_cached_per_file_and_device(tiny_denoiser, model):
    assert irx.load_model(str(tiny_denoiser), device="cpu") is model
    assert model.scale == 1 and model.architecture.name == "DnCNN"


def test_numpy_float_uint8_uint16_and_2d(model):
    image = make_image(20, 24)
    as_float = irx.restore(image, model=model, device="cpu")
    assert as_float.dtype == np.float32 and as_float.shape == image.shape
    as_u8 = irx.restore((image * 255).round().astype(np.uint8), model=model, device="cpu")
    assert as_u8.dtype == np.uint8 and np.abs(as_u8 / 255.0 - as_float).max() < 3 / 255
    as_u16 = irx.restore((image * 65535).round().astype(np.uint16), model=model, device="cpu")
    assert as_u16.dtype == np.uint16 and np.abs(as_u16 / 65535.0 - as_float).max() < 1e-3
    grey = irx.restore(image[..., 0], model=model, device="cpu")
    assert grey.shape == (20, 24) and grey.dtype == np.float32


def test_numpy_alpha_is_carried_over(model):
    rgba = np.dstack([make_image(16, 16), np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)])
    out = irx.restore(rgba, model=model, device="cpu")
    assert out.shape == (16, 16, 4) and np.array_equal(out[..., 3], rgba[..., 3])


def test_pil_modes_round_trip(model):
    rgb = Image.fromarray((make_image(16, 20) * 255).astype(np.uint8))
    out = irx.restore(rgb, model=model, device="cpu")
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (20, 16)
    assert irx.restore(rgb.convert("L"), model=model, device="cpu").mode == "L"
    assert irx.restore(rgb.convert("RGBA"), model=model, device="cpu").mode == "RGBA"
    assert irx.restore(rgb.convert("P"), model=model, device="cpu").mode == "RGB"


def test_tensors_chw_and_bchw(model):
    chw = torch.from_numpy(make_image(12, 14)).permute(2, 0, 1).contiguous()
    out = irx.restore(chw, model=model, device="cpu")
    assert isinstance(out, torch.Tensor) and out.shape == chw.shape and out.dtype == chw.dtype
    batch = torch.stack([chw, chw.flip(-1)])
    outs = irx.restore(batch, model=model, device="cpu")
    assert outs.shape == batch.shape
    assert torch.allclose(outs[0], out, atol=1e-6)


def test_api_and_engine_agree_with_a_direct_forward(model):
    image = make_image(16, 16)
    direct = model(torch.from_numpy(image).permute(2, 0, 1)[None]).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert np.abs(irx.restore(image, model=model, device="cpu") - direct).max() < 1e-6


def test_rejects_unknown_types(model):
    with pytest.raises(UsageError):
        irx.restore([1, 2, 3], model=model, device="cpu")
    with pytest.raises(UsageError):
        irx.restore(np.zeros((4, 4, 3), np.int64), model=model, device="cpu")
