"""Shared fixtures: tiny models that spandrel recognises, and images made on the spot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

# Tiny tensors: a second thread costs more in synchronisation than it saves.
torch.set_num_threads(1)


def _save(module: torch.nn.Module, path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_denoiser(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1x convolutional model (DnCNN layout, 8 channels) spandrel detects as DnCNN."""
    from spandrel.architectures.DnCNN.__arch.network_dncnn import DnCNN

    torch.manual_seed(0)
    model = DnCNN(in_nc=3, out_nc=3, nc=8, nb=8, act_mode="R")
    return _save(model, tmp_path_factory.mktemp("models") / "tiny_dncnn.safetensors")


@pytest.fixture(scope="session")
def tiny_upscaler(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A x2 convolutional model (Real-ESRGAN Compact layout, 8 features)."""
    from spandrel.architectures.Compact.__arch.SRVGG import SRVGGNetCompact

    torch.manual_seed(0)
    model = SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2)
    return _save(model, tmp_path_factory.mktemp("models") / "tiny_compact_x2.safetensors")


def make_image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth image with some texture, float32 HWC in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 0.5 + 0.3 * np.sin(xx / 7.0)[..., None] * np.cos(yy / 5.0)[..., None]
    noise = rng.random((height, width, channels), dtype=np.float32) * 0.2
    return np.clip(base + noise - 0.1, 0, 1).astype(np.float32)


def write_png(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    data = np.clip(np.rint(array * 255), 0, 255).astype(np.uint8)
    Image.fromarray(data[..., 0] if data.shape[2] == 1 else data).save(path)
    return path


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach the Hub: default models resolve offline (Hub tests point HF_ENDPOINT at 127.0.0.1)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _own_cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """irx's cache (file hashes, the ledger of written outputs) is per test, never the user's."""
    monkeypatch.setenv("IRX_CACHE_DIR", str(tmp_path_factory.mktemp("irx-cache")))
