"""irx.restore_files and RestoreSettings: the Python entry the CLI is a thin layer over."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import irx
from irx.cli.main import app
from irx.errors import UsageError
from irx.settings import RestoreSettings
from irx.zoo.config import UserConfig
from tests.conftest import make_image, write_png


def test_restore_files_writes_every_output_and_matches_irx_restore(tmp_path, tiny_denoiser):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        write_png(folder / f"p{k}.png", make_image(40, 48, seed=k))
    out = tmp_path / "out"
    summary = irx.restore_files([folder], model=str(tiny_denoiser), task="denoise", output=out,
                                settings=RestoreSettings.resolve(user_config=UserConfig()))
    assert sorted(Path(p).name for p in summary.processed) == ["p0.png", "p1.png", "p2.png"]
    assert not summary.failed and not summary.skipped
    written = np.asarray(Image.open(out / "p1.png"))
    direct = np.asarray(irx.restore(np.asarray(Image.open(folder / "p1.png")), model=str(tiny_denoiser)))
    assert np.array_equal(written, direct)
    # A rerun skips what is done: the same entry, the same resume rule as the CLI.
    again = irx.restore_files([folder], model=str(tiny_denoiser), task="denoise", output=out,
                              settings=RestoreSettings.resolve(user_config=UserConfig()))
    assert len(again.skipped) == 3 and not again.processed


def test_no_task_needs_a_model_and_an_unknown_task_is_refused(tmp_path):
    write_png(tmp_path / "a.png", make_image(16, 16))
    with pytest.raises(UsageError, match="needs a model"):
        irx.restore_files([tmp_path / "a.png"])
    with pytest.raises(UsageError, match="unknown task"):
        irx.restore_files([tmp_path / "a.png"], task="sharpen", model="x.pth")


def test_settings_resolve_flag_over_config_over_default():
    config = UserConfig(device="cpu", precision="bf16")
    assert RestoreSettings.resolve(user_config=config).device == "cpu"
    assert RestoreSettings.resolve(user_config=config, device="cuda:1").device == "cuda:1"
    assert RestoreSettings.resolve(user_config=config, precision="fp32").precision == "fp32"
    assert RestoreSettings.resolve(user_config=UserConfig()).precision == "auto"
    with pytest.raises(UsageError):
        RestoreSettings.resolve(user_config=UserConfig(), tile="7")
    with pytest.raises(UsageError, match="unknown restore setting"):
        RestoreSettings.resolve(user_config=UserConfig(), tiles=512)


def test_batch_size_reaches_video_and_each_layer_gets_its_part():
    s = RestoreSettings(batch_size=3, tile=256, skip_existing=False, codec="ffv1", compile=True)
    assert s.video_options().batch_size == 3 and s.video_options().overwrite is True
    assert s.engine_kwargs()["tile"] == 256 and s.engine_kwargs()["compile"] is True
    assert s.pipeline_options("denoise").overwrite is True
    assert RestoreSettings().video_options().batch_size == 4  # "auto": the video default


def test_cli_is_parse_settings_restore_files(monkeypatch, tmp_path):
    seen = {}

    def fake(inputs, **kwargs):
        seen.update(kwargs, inputs=inputs)
        return kwargs["summary"]

    monkeypatch.setattr("irx.run.restore_files", fake)
    monkeypatch.setenv("IRX_CONFIG", str(tmp_path / "config.toml"))
    (tmp_path / "config.toml").write_text('device = "cpu"\n')
    result = CliRunner().invoke(app, ["upscale", "a.png", "b/", "--scale", "2", "--tile", "256",
                                      "--batch-size", "2", "--no-audio", "--compile", "-o", "out"])
    assert result.exit_code == 0, result.output
    settings = seen["settings"]
    assert seen["inputs"] == ["a.png", "b/"] and seen["task"] == "upscale" and seen["output"] == Path("out")
    assert (settings.scale, settings.tile, settings.batch_size) == (2, "256", "2")
    assert settings.device == "cpu" and settings.keep_audio is False and settings.compile is True


def test_library_errors_speak_python_and_the_cli_speaks_flags(tmp_path, tiny_denoiser):
    from irx.errors import cli_wording

    with pytest.raises(UsageError) as caught:
        irx.restore(np.zeros((8, 8, 3), np.float32), model=str(tiny_denoiser), tile=8)
    assert "--tile" not in str(caught.value) and str(caught.value).startswith("tile must be")
    assert cli_wording(caught.value).startswith("--tile must be")
    with pytest.raises(UsageError) as caught:
        RestoreSettings.resolve(user_config=UserConfig(), batch_size="zero")
    assert cli_wording(caught.value) == "invalid --batch-size 'zero': use auto or a positive number"
    write_png(tmp_path / "a.png", make_image(16, 16))
    result = CliRunner().invoke(app, ["denoise", str(tmp_path / "a.png"), "--tile", "8"])
    assert result.exit_code == 2 and "--tile must be 0 or at least" in result.output


def test_a_folder_of_mixed_sizes_is_restored_exactly_whatever_the_grouping(tmp_path, tiny_denoiser, monkeypatch):
    from irx.engine import Engine

    calls = []
    original = Engine.submit  # what the pipeline calls

    def spy(self, images, *args, **kwargs):
        calls.append([im.shape[:2] for im in images])
        return original(self, images, *args, **kwargs)

    monkeypatch.setattr(Engine, "submit", spy)
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(4):
        write_png(folder / f"p{k}.png", make_image(32 if k % 2 else 40, 48, seed=k))
    out = tmp_path / "out"
    summary = irx.restore_files([folder], model=str(tiny_denoiser), task="denoise", output=out,
                                settings=RestoreSettings.resolve(user_config=UserConfig(), batch_size=4))
    assert len(summary.processed) == 4
    assert sum(len(c) for c in calls) == 4  # every image reached Engine.submit once (grouped there by shape)
    for k in range(4):
        direct = np.asarray(irx.restore(np.asarray(Image.open(folder / f"p{k}.png")), model=str(tiny_denoiser)))
        assert np.array_equal(np.asarray(Image.open(out / f"p{k}.png")), direct)


def test_engine_restore_groups_mixed_shapes_and_keeps_the_order(tiny_denoiser):
    from irx.engine import Engine

    engine = Engine(irx.load_model(str(tiny_denoiser), device="cpu"), device="cpu", tile=0, batch_size=4)
    images = [make_image(h, 24, seed=k).astype(np.float32) / 255 for k, h in enumerate((16, 24, 16, 24, 16))]
    together = engine.restore(images)
    alone = [engine.restore([im])[0] for im in images]
    assert [o.shape for o in together] == [a.shape for a in alone] == [im.shape for im in images]
    assert all(np.allclose(t, a, atol=1e-5) for t, a in zip(together, alone, strict=True))


def test_device_means_the_same_for_restore_and_train():
    import torch

    from irx.engine import rank_devices
    from irx.train.trainer import resolve_device

    gpus = [torch.device("cuda", i) for i in range(4)]
    assert rank_devices(gpus, 1, 0) == gpus  # one process: every visible GPU (restore shares a work queue)
    assert rank_devices(gpus, 8, 5) == [torch.device("cuda", 1)]  # torchrun: the LOCAL_RANK's GPU
    assert rank_devices([torch.device("cpu")], 8, 5) == [torch.device("cpu")]
    assert resolve_device("cpu", 4, 3) == torch.device("cpu")
    with pytest.raises(UsageError) as caught:
        resolve_device("bogus")
    assert caught.value.param == "device"


@pytest.mark.parametrize("name", ["faces", "compare"])
def test_engine_ray_refuses_what_its_workers_do_not_do(name: str) -> None:
    # Said up front rather than silently dropped by the Ray workers.
    with pytest.raises(UsageError, match=f"{name} is not available with engine ray"):
        RestoreSettings.resolve(engine="ray", **{name: True})
    RestoreSettings.resolve(engine="local", **{name: True})  # the local engine does it
