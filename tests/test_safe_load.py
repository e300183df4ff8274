"""Safe weight loading: data formats load, code payloads never run."""

from __future__ import annotations

import pickle
import warnings
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from irx.errors import ModelError, UnsafeModelError
from irx.zoo.safe_load import load_weights, pickle_globals, sniff_format


class MakesMarker:
    """Unpickling this object opens (creates) a file: a stand-in for any code payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def tiny_state() -> OrderedDict[str, torch.Tensor]:
    torch.manual_seed(0)
    return OrderedDict(conv=torch.randn(4, 3, 3, 3), bias=torch.arange(4, dtype=torch.float32))


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_safetensors_round_trip(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file(dict(tiny_state()), str(path))
    assert sniff_format(path) == "safetensors"
    assert same(load_weights(path), tiny_state())


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"params_ema": sd, "params": {k: v * 0 for k, v in sd.items()}},  # EMA wins
        lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 7},
        lambda sd: {"generator": sd, "discriminator": {"d": torch.zeros(1)}},
        lambda sd: {"model": sd, "optimizer_steps": 10},
        lambda sd: {**sd, "iteration": 3},  # a non-tensor entry beside the weights is dropped
    ],
)
def test_containers_are_unwrapped(tmp_path, wrap):
    path = tmp_path / "m.pth"
    torch.save(wrap(tiny_state()), path)
    assert same(load_weights(path), tiny_state())


def test_legacy_torch_format_and_content_sniffing(tmp_path):
    legacy = tmp_path / "old.ckpt"
    torch.save(tiny_state(), legacy, _use_new_zipfile_serialization=False)
    assert sniff_format(legacy) == "pickle"
    assert same(load_weights(legacy), tiny_state())
    # A safetensors file with a misleading name is read by its content.
    misnamed = tmp_path / "model.bin"
    save_file(dict(tiny_state()), str(misnamed))
    assert same(load_weights(misnamed), tiny_state())


def test_the_payload_is_live_when_unpickled_unsafely(tmp_path):
    # Control: proves the test payload really runs under a plain unpickler, so the tests below
    # that assert the marker is NOT created are meaningful.
    marker = tmp_path / "control-marker"
    pickle.loads(pickle.dumps({"x": MakesMarker(marker)}))
    assert marker.exists()


@pytest.mark.parametrize("how", ["torch-zip", "torch-legacy", "raw-pickle"])
def test_code_payload_is_refused_and_never_runs(tmp_path, how):
    marker = tmp_path / "pwned"
    payload = {"weight": torch.ones(2), "evil": MakesMarker(marker)}
    path = tmp_path / ("evil.bin" if how == "raw-pickle" else "evil.pth")
    if how == "torch-zip":
        torch.save(payload, path)
    elif how == "torch-legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=4))
    assert any(g.endswith("open") for g in pickle_globals(path))
    with pytest.raises(UnsafeModelError, match="code payload") as err:
        load_weights(path)
    assert "open" in str(err.value)
    assert not marker.exists()


def test_a_pickled_module_is_refused(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(UnsafeModelError, match=r"torch\.nn|Linear"):
        load_weights(path)


def _script_module(path: Path) -> torch.nn.Module:
    torch.manual_seed(1)
    lin = torch.nn.Linear(3, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(lin).save(str(path))
    return lin


def test_torchscript_needs_trust(tmp_path):
    path = tmp_path / "scripted.pt"
    lin = _script_module(path)
    assert sniff_format(path) == "torchscript"
    with pytest.raises(UnsafeModelError, match="TorchScript"):
        load_weights(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = load_weights(path, trust_remote_code=True)
    x = torch.randn(1, 3)
    assert isinstance(module, torch.jit.ScriptModule)
    assert torch.allclose(module(x), lin(x))


def test_truncated_and_junk_files_give_model_errors(tmp_path):
    good = tmp_path / "good.pth"
    torch.save(tiny_state(), good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ModelError):
        load_weights(cut)
    cut_st = tmp_path / "cut.safetensors"
    save_file(dict(tiny_state()), str(cut_st))
    cut_st.write_bytes(cut_st.read_bytes()[:-20])
    with pytest.raises(ModelError, match="safetensors"):
        load_weights(cut_st)
    junk = tmp_path / "notes.pth"
    junk.write_text("hello")
    with pytest.raises(ModelError, match="not a weights file"):
        load_weights(junk)
    empty = tmp_path / "empty.pth"
    torch.save({"epoch": 3}, empty)
    with pytest.raises(ModelError, match="no tensors"):
        load_weights(empty)
    with pytest.raises(ModelError, match="does not exist"):
        load_weights(tmp_path / "missing.safetensors")
