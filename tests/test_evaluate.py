"""evaluate(): seeded synthetic degradation, models vs baselines, pairs, outputs, CLI."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from irx.cli.evaluate import eval_command
from irx.degrade import make_degradation
from irx.degrade.resize import upsample
from irx.errors import UsageError
from irx.evaluate import evaluate, image_seed, read_image
from irx.metrics import psnr


def _image(seed: int, h: int = 40, w: int = 52) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 3.0)
    return np.round(255 * (x - x.min()) / (x.max() - x.min())).astype(np.uint8)


@pytest.fixture()
def clean_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "clean"
    folder.mkdir()
    for k, name in enumerate(("a", "b", "c")):
        cv2.imwrite(str(folder / f"{name}.png"), _image(k))
    return folder


def _by(report, method):
    return {r.image: r for r in report.rows if r.method == method}


def test_identity_model_equals_the_input_baseline(clean_dir):
    rep = evaluate(clean_dir, "denoise", model=lambda x: x, baselines=("input",),
                   params={"sigma": 25}, seed=0)
    assert rep.methods == ["model", "input"] and rep.images == ["a", "b", "c"]
    model, base = _by(rep, "model"), _by(rep, "input")
    for stem in "abc":
        for key in ("psnr", "ssim", "psnr_y", "ssim_y"):
            assert getattr(model[stem], key) == getattr(base[stem], key)
    # sigma-25 noise on a [0,1] image: about 20-21 dB (clipping lowers the error a little).
    assert 19.5 < rep.means()["input"]["psnr"] < 22.5
    assert rep.crop_border == 0


def test_degradation_is_reproducible_per_image_name(clean_dir, tmp_path):
    rep = evaluate(clean_dir, "denoise", baselines=("input",), seed=3)
    # The same image alone, in another folder, gets the same degradation.
    solo = tmp_path / "solo"
    solo.mkdir()
    (solo / "b.png").write_bytes((clean_dir / "b.png").read_bytes())
    rep_solo = evaluate(solo, "denoise", baselines=("input",), seed=3)
    assert _by(rep_solo, "input")["b"].psnr == _by(rep, "input")["b"].psnr
    # ...which is exactly make_degradation with the image's seed, quantised to uint8.
    clean = read_image(clean_dir / "b.png")
    noisy = make_degradation("denoise")(clean, np.random.default_rng(image_seed(3, "b.png")))
    assert psnr(noisy, clean) == _by(rep, "input")["b"].psnr
    other = evaluate(clean_dir, "denoise", baselines=("input",), seed=4)
    assert _by(other, "input")["b"].psnr != _by(rep, "input")["b"].psnr


def test_baselines_beat_the_input_and_run_in_the_same_report(clean_dir):
    rep = evaluate(clean_dir, "denoise", baselines=("input", "nlm"), params={"sigma": 30},
                   limit=2)
    means = rep.means()
    assert rep.images == ["a", "b"]
    assert means["nlm"]["psnr"] > means["input"]["psnr"] + 2
    assert all(r.seconds >= 0 for r in rep.rows)


def test_upscale_bicubic_model_equals_input_and_crops_the_border(clean_dir):
    rep = evaluate(clean_dir, "upscale", model=lambda x: upsample(x, 2),
                   baselines=("input", "bicubic"), params={"scale": 2})
    assert rep.crop_border == 2
    m, i, b = _by(rep, "model"), _by(rep, "input"), _by(rep, "bicubic")
    assert all(m[s].psnr == i[s].psnr == b[s].psnr for s in "abc")
    with pytest.raises(Exception, match="returned"):
        evaluate(clean_dir, "upscale", model=lambda x: x, baselines=())


def test_missing_bm3d_and_kernel_less_wiener_are_skipped(clean_dir, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "bm3d", None)  # makes `import bm3d` fail
    rep = evaluate(clean_dir, "denoise", baselines=("input", "bm3d"), limit=1)
    assert rep.methods == ["input"] and "pip install bm3d" in rep.skipped["bm3d"]
    blurred = evaluate(clean_dir, "deblur", baselines=("all",), limit=1)
    assert blurred.methods == ["input", "unsharp", "wiener"]  # synthetic: kernel is known
    with pytest.raises(UsageError):
        evaluate(clean_dir, "denoise", baselines=("dcp",))


def test_pairs_mode_matches_by_stem(clean_dir, tmp_path):
    noisy_dir = tmp_path / "noisy"
    noisy_dir.mkdir()
    rng = np.random.default_rng(0)
    expected = {}
    for stem in ("a", "c"):  # "b" has no pair
        clean = read_image(clean_dir / f"{stem}.png")
        noisy = np.clip(clean + 0.05 * rng.standard_normal(clean.shape), 0, 1)
        u8 = np.round(noisy * 255).astype(np.uint8)
        cv2.imwrite(str(noisy_dir / f"{stem}.png"), u8[:, :, ::-1])
        expected[stem] = psnr(u8, clean)
    rep = evaluate(clean_dir, "denoise", model=lambda x: x, baselines=("input", "nlm"),
                   pairs_dir=noisy_dir, params={"sigma": 12.75})
    assert rep.images == ["a", "c"] and "1 clean image" in rep.skipped["(images)"]
    for stem, value in expected.items():
        assert _by(rep, "model")[stem].psnr == pytest.approx(value, abs=1e-12)
    deblur = evaluate(clean_dir, "deblur", baselines=("input", "wiener"), pairs_dir=noisy_dir)
    assert deblur.methods == ["input"] and "kernel" in deblur.skipped["wiener"]


def test_json_csv_and_html_outputs(clean_dir, tmp_path):
    rep = evaluate(clean_dir, "dejpeg", model=lambda x: x, baselines=("input",),
                   params={"quality": 15})
    data = json.loads(rep.to_json())
    assert data["task"] == "dejpeg" and data["params"]["quality"] == 15
    assert data["n_images"] == 3 and len(data["rows"]) == 6
    assert data["means"]["input"]["psnr"] == pytest.approx(rep.means()["input"]["psnr"])
    rep.write_csv(tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 + 2 and rows[-1]["image"] == "(mean)"
    rep.write_html(tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    # Per image: degraded, each method, clean.
    assert page.count("data:image/png;base64,") == 3 * 4
    assert "<h2>a</h2>" in page


def test_cli_json_and_report(clean_dir, tmp_path):
    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("noop")(lambda: None)  # keep `eval` a sub-command
    report = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(app, ["eval", str(clean_dir), "--task", "denoise", "--sigma",
                                      "15", "-b", "input", "-b", "nlm", "--limit", "2",
                                      "--json", "--report", str(report)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["params"]["sigma"] == 15 and data["methods"] == ["input", "nlm"]
    assert data["n_images"] == 2 and report.exists()
    bad = CliRunner().invoke(app, ["eval", str(clean_dir), "--task", "denoise",
                                   "--quality", "20"])
    assert bad.exit_code != 0 and isinstance(bad.exception, UsageError)


def test_a_loaded_model_goes_through_irx_api_restore(clean_dir, tiny_denoiser):
    from spandrel import ModelLoader

    from irx import api

    desc = ModelLoader().load_from_file(str(tiny_denoiser)).eval()
    rep = evaluate(clean_dir, "denoise", model=desc, baselines=("input",), limit=1,
                   device="cpu")
    assert rep.methods == ["DnCNN", "input"]
    clean = read_image(clean_dir / "a.png")
    noisy = make_degradation("denoise")(clean, np.random.default_rng(image_seed(0, "a")))
    noisy = np.round(noisy * 255).astype(np.float32) / 255
    expected = api.restore(noisy, task="denoise", model=desc, device="cpu")
    row = _by(rep, "DnCNN")["a"]
    assert row.psnr == pytest.approx(psnr(expected, clean))
    assert row.psnr != _by(rep, "input")["a"].psnr


def test_variants_score_every_family_member_and_mark_the_held_out_ones(clean_dir):
    from irx.degrade import EVAL_VARIANTS
    from irx.evaluate import evaluate_variants

    def bicubic_model(lr):
        return upsample(lr, 2)

    robust = evaluate_variants(clean_dir, "upscale", model=bicubic_model, baselines=("bicubic",),
                               params={"scale": 2})
    rows = robust.rows()
    assert [r["variant"] for r in rows] == [v.name for v in EVAL_VARIANTS["upscale"]]
    assert [r["held_out"] for r in rows] == [v.held_out for v in EVAL_VARIANTS["upscale"]]
    # The "model" is the bicubic baseline itself: no gain on any variant.
    assert all(abs(r["gain"]["bicubic"]) < 1e-9 for r in rows)
    by_name = {r["variant"]: r for r in rows}
    assert by_name["lanczos"]["params"]["kernel"] == "lanczos"
    # Each variant really degrades differently: the bicubic baseline scores differ.
    scores = {round(r["psnr"]["bicubic"], 4) for r in rows}
    assert len(scores) == len(rows)


def test_cli_variants_json(clean_dir):
    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["eval", str(clean_dir), "--task", "dejpeg", "--variants",
                                      "--json", "--limit", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    names = [v["variant"] for v in data["variants"]]
    assert "q20 4:4:4" in names and data["variants"][-1]["held_out"] is True
    assert all("input" in v["psnr"] for v in data["variants"])
    bad = CliRunner().invoke(app, ["eval", str(clean_dir), "--task", "dejpeg", "--variants",
                                   "--pairs", str(clean_dir)])
    assert bad.exit_code != 0 and isinstance(bad.exception, UsageError)
