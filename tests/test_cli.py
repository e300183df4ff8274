"""The `irx` command line end to end, with tiny models and images made here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from irx.cli.main import app
from tests.conftest import make_image, write_png

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    write_png(folder / "a.png", make_image(24, 32, seed=1))
    write_png(folder / "b.png", make_image(24, 32, seed=2))
    write_png(folder / "sub" / "c.png", make_image(20, 20, seed=3))
    return folder


def test_single_file_goes_beside_input(photos, tiny_denoiser):
    result = invoke("denoise", photos / "a.png", "--model", tiny_denoiser, "-q")
    assert result.exit_code == 0, result.output
    out = photos / "a_denoise.png"
    assert out.exists()
    with Image.open(out) as im:
        assert im.size == (32, 24) and im.mode == "RGB"


def test_output_file_and_result_matches_api(photos, tiny_denoiser, tmp_path):
    import irx

    target = tmp_path / "clean.png"
    assert invoke("denoise", photos / "a.png", "--model", tiny_denoiser, "-o", target, "-q").exit_code == 0
    with Image.open(photos / "a.png") as src:
        expected = np.asarray(irx.restore(src.convert("RGB"), model=str(tiny_denoiser), device="cpu"))
    assert np.array_equal(np.asarray(Image.open(target)), expected)


def test_folder_recursive_mirrors_tree(photos, tiny_denoiser, tmp_path):
    out = tmp_path / "out"
    result = invoke("dejpeg", photos, "-o", out, "--recursive", "--model", tiny_denoiser, "--json")
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a.png", "b.png", "sub/c.png"]
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"processed": 3, "skipped": 0, "failed": 0}


def test_folder_without_recursive_skips_subfolders_and_default_output_is_sibling(photos, tiny_denoiser):
    result = invoke("denoise", photos, "--model", tiny_denoiser, "-q")
    assert result.exit_code == 0, result.output
    sibling = photos.parent / "photos_denoise"
    assert sorted(p.name for p in sibling.rglob("*")) == ["a.png", "b.png"]


def test_glob_input(photos, tiny_denoiser):
    result = invoke("denoise", str(photos / "*.png"), "--model", tiny_denoiser, "--json")
    assert result.exit_code == 0
    assert (photos / "a_denoise.png").exists() and (photos / "b_denoise.png").exists()
    # A second run does not take the outputs for inputs: they are skipped, and say why.
    again = json.loads(invoke("denoise", str(photos / "*.png"), "--model", tiny_denoiser, "--json").stdout)
    assert again["counts"]["processed"] == 0 and len(again["skipped"]) == 4
    reasons = {Path(w["path"]).name: w["reason"] for w in again["warnings"]}
    assert set(reasons) == {"a_denoise.png", "b_denoise.png"}
    assert all("an output irx denoise wrote earlier" in r for r in reasons.values())


def test_corrupt_inputs_are_reported_and_the_rest_processed(photos, tiny_denoiser, tmp_path):
    (photos / "empty.png").write_bytes(b"")
    (photos / "noise.png").write_bytes(np.random.default_rng(0).bytes(500))
    data = (photos / "a.png").read_bytes()
    (photos / "truncated.png").write_bytes(data[: len(data) // 2])
    (photos / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    result = invoke("denoise", photos, "-o", out, "--model", tiny_denoiser, "--json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    failed = {Path(f["path"]).name for f in summary["failed"]}
    assert failed == {"empty.png", "noise.png", "truncated.png"}
    assert all(f["reason"] and "\n" not in f["reason"] for f in summary["failed"])
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert "Traceback" not in result.output


def test_skip_existing_and_overwrite(photos, tiny_denoiser):
    out = photos / "a_denoise.png"
    out.write_bytes(b"user data")
    result = invoke("denoise", photos / "a.png", "--model", tiny_denoiser, "--json")
    assert json.loads(result.stdout)["skipped"] == [str(photos / "a.png")]
    assert out.read_bytes() == b"user data"
    # --overwrite replaces irx's own outputs only: a file irx did not write is refused, not lost.
    result = invoke("denoise", photos / "a.png", "--model", tiny_denoiser, "--overwrite", "--json")
    assert result.exit_code == 1 and "not written by irx" in json.loads(result.stdout)["failed"][0]["reason"]
    assert out.read_bytes() == b"user data"
    out.unlink()
    assert invoke("denoise", photos / "a.png", "--model", tiny_denoiser, "-q").exit_code == 0
    out.write_bytes(b"edited by the user")  # irx wrote it, the user changed it: the user's file now
    assert invoke("denoise", photos / "a.png", "--model", tiny_denoiser, "--overwrite", "-q").exit_code == 1
    out.unlink()
    assert invoke("denoise", photos / "a.png", "--model", tiny_denoiser, "-q").exit_code == 0
    result = invoke("denoise", photos / "a.png", "--model", tiny_denoiser, "--overwrite", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["counts"]["processed"] == 1


def test_input_is_never_overwritten(photos, tiny_denoiser):
    before = (photos / "a.png").read_bytes()
    result = invoke("denoise", photos / "a.png", "-o", photos / "a.png", "--model", tiny_denoiser, "--overwrite", "--json")
    assert result.exit_code == 1
    assert "overwrite the input" in json.loads(result.stdout)["failed"][0]["reason"]
    assert (photos / "a.png").read_bytes() == before


@pytest.mark.parametrize(
    "args",
    [
        ["denoise", "x.png", "--tile", "huge"],
        ["run", "x.png"],
        ["denoise", "x.png", "--device", "tpu"],
        ["denoise", "x.png", "--no-such-option"],
        ["upscale", "x.png", "--scale", "0"],
    ],
)
def test_usage_errors_exit_2_with_one_line(photos, tiny_denoiser, args):
    result = runner.invoke(app, [str(photos / "a.png") if a == "x.png" else a for a in args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_missing_input_is_a_failure_not_a_crash(tmp_path, tiny_denoiser):
    result = invoke("denoise", tmp_path / "nope.png", "--model", tiny_denoiser, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["failed"][0]["reason"] == "no such file or folder"


def test_unknown_model_file_is_a_clear_error(photos, tmp_path):
    from safetensors.torch import save_file
    import torch

    bogus = tmp_path / "bogus.safetensors"
    save_file({"whatever.weight": torch.zeros(3)}, str(bogus))
    result = invoke("denoise", photos / "a.png", "--model", bogus)
    assert result.exit_code == 1
    assert "not an architecture" in result.output and "Traceback" not in result.output


def test_upscale_with_model_scale_and_requested_scale(photos, tiny_upscaler, tmp_path):
    assert invoke("upscale", photos / "a.png", "--model", tiny_upscaler, "-o", tmp_path / "x2.png", "-q").exit_code == 0
    assert Image.open(tmp_path / "x2.png").size == (64, 48)
    assert invoke("upscale", photos / "a.png", "--model", tiny_upscaler, "--scale", "4", "-o", tmp_path / "x4.png", "-q").exit_code == 0
    assert Image.open(tmp_path / "x4.png").size == (128, 96)


def test_format_and_quality(photos, tiny_denoiser, tmp_path):
    out = tmp_path / "o"
    result = invoke("denoise", photos, "-o", out, "--format", "jpg", "--quality", "80", "--model", tiny_denoiser, "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.jpg"]
    with Image.open(out / "a.jpg") as im:
        assert im.format == "JPEG"


def test_16bit_grey_and_alpha_fidelity(tmp_path, tiny_denoiser, tiny_upscaler):
    deep = (make_image(16, 16) * 65535).astype(np.uint16)
    import cv2

    cv2.imwrite(str(tmp_path / "deep.png"), deep[..., ::-1])
    Image.fromarray((make_image(16, 16, 1)[..., 0] * 255).astype(np.uint8), "L").save(tmp_path / "grey.png")
    rgba = np.dstack([(make_image(16, 16) * 255).astype(np.uint8), np.full((16, 16), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    out = tmp_path / "out"
    assert invoke("denoise", tmp_path, "-o", out, "--model", tiny_denoiser, "-q").exit_code == 0
    restored = cv2.imread(str(out / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert restored.dtype == np.uint16 and restored.shape == (16, 16, 3)
    assert Image.open(out / "grey.png").mode == "L"
    with Image.open(out / "alpha.png") as im:
        assert im.mode == "RGBA" and np.all(np.asarray(im)[..., 3] == 7)  # 1x: alpha carried over
    up = tmp_path / "up"
    args = ("upscale", tmp_path / "alpha.png", "-o", up / "alpha.png", "--model", tiny_upscaler, "--alpha", "resize", "-q")
    assert invoke(*args).exit_code == 0
    with Image.open(up / "alpha.png") as im:  # --alpha resize: the alpha channel is only resized
        assert im.size == (32, 32) and im.mode == "RGBA" and np.all(np.asarray(im)[..., 3] == 7)


def test_exif_and_icc_survive(tmp_path, tiny_denoiser):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "irx-test-camera"  # Make
    src = tmp_path / "in.jpg"
    Image.fromarray((make_image(16, 16) * 255).astype(np.uint8)).save(src, exif=exif.tobytes(), icc_profile=icc)
    assert invoke("denoise", src, "--model", tiny_denoiser, "-q").exit_code == 0
    with Image.open(tmp_path / "in_denoise.jpg") as im:
        assert im.info.get("icc_profile") == icc
        assert im.getexif()[0x010F] == "irx-test-camera"


def test_interrupted_run_leaves_no_partial_files_and_resumes(photos, tiny_denoiser, tmp_path, monkeypatch):
    from irx.engine import Engine

    out = tmp_path / "out"
    for i in range(6):
        write_png(photos / f"n{i}.png", make_image(24, 32, seed=10 + i))
    original = Engine.submit  # what the pipeline calls
    calls = {"n": 0}

    def interrupt_after_three(self, images):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return original(self, images)

    monkeypatch.setattr(Engine, "submit", interrupt_after_three)
    first = runner.invoke(app, ["denoise", str(photos), "-o", str(out), "--model", str(tiny_denoiser), "--batch-size", "1", "-q"])
    assert first.exit_code == 130
    done = sorted(p.name for p in out.iterdir())
    assert len(done) == 3 and not any(".irx-tmp" in name for name in done)
    monkeypatch.setattr(Engine, "submit", original)
    second = invoke("denoise", photos, "-o", out, "--model", tiny_denoiser, "--json")
    summary = json.loads(second.stdout)
    assert summary["counts"] == {"processed": 5, "skipped": 3, "failed": 0}
    assert len(list(out.iterdir())) == 8


def test_json_schema(photos, tiny_denoiser, tmp_path):
    result = invoke("denoise", photos / "a.png", tmp_path / "missing.png", "--model", tiny_denoiser, "--json")
    summary = json.loads(result.stdout)
    assert set(summary) == {"processed", "skipped", "failed", "warnings", "counts", "seconds", "outputs", "model"}
    assert summary["outputs"] == {str(photos / "a.png"): str(photos / "a_denoise.png")}
    assert summary["model"] == Path(tiny_denoiser).name
    assert summary["processed"] == [str(photos / "a.png")]
    assert summary["failed"] == [{"path": str(tmp_path / "missing.png"), "reason": "no such file or folder"}]
    assert isinstance(summary["seconds"], float) and summary["seconds"] >= 0


def test_python_m_irx_version():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "irx", "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("irx ")


def test_torchrun_ranks_share_the_files(photos, tiny_denoiser, tmp_path, monkeypatch):
    for i in range(5):
        write_png(photos / f"s{i}.png", make_image(16, 16, seed=20 + i))
    out = tmp_path / "out"
    seen = []
    for rank in range(2):
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", str(rank))
        summary = json.loads(invoke("denoise", photos, "-o", out, "--model", tiny_denoiser, "--json").stdout)
        seen.append(set(summary["processed"]))
    assert seen[0] and seen[1] and not (seen[0] & seen[1])
    assert len(seen[0] | seen[1]) == 7 and len(list(out.iterdir())) == 7


def test_folder_mixing_images_and_a_video(photos, tiny_denoiser, tmp_path):
    """`irx denoise folder/` restores the video frame by frame beside the images, audio kept."""
    import av

    from tests.test_video import make_video

    make_video(photos / "clip.mp4", n=12, size=(32, 24))
    out = tmp_path / "out"
    result = invoke("denoise", photos, "-o", out, "--model", tiny_denoiser, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["processed"] == 3
    with av.open(str(out / "clip.mp4")) as restored, av.open(str(photos / "clip.mp4")) as original:
        frames = sum(1 for _ in restored.decode(video=0))
        assert frames == sum(1 for _ in original.decode(video=0)) == 12
        assert [s.type for s in restored.streams] == [s.type for s in original.streams]
