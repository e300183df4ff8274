"""What a new user ran into (issue 16, "Also mend"): the model that ran said once (and in --json), a
file name for several outputs refused, dejpeg writing a lossless format, and no model load for a
rerun whose only remaining files are broken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from irx.cli.main import app
from tests.conftest import make_image, write_png

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


@pytest.fixture()
def photo(tmp_path: Path) -> Path:
    return write_png(tmp_path / "photo.png", make_image(16, 20, seed=7))


# ---------------------------------------------------------------------- which model ran


def test_offline_fallback_is_silent_under_quiet_and_said_once_otherwise(photo, tmp_path):
    # Tests run offline (HF_HUB_OFFLINE=1): dejpeg's default (FBCNN, a download) falls back to the bundled model.
    quiet = invoke("dejpeg", photo, "-o", tmp_path / "q.png", "--offline", "-q")
    assert quiet.exit_code == 0 and quiet.output.strip() == ""
    said = invoke("dejpeg", photo, "-o", tmp_path / "s.png", "--offline")
    assert said.exit_code == 0, said.output
    assert len(lines(said.output)) == 1 and "warning" not in said.output
    assert "with laformer_tiny_dejpeg (bundled; the default fbcnn-color is unavailable: irx is offline)" in said.output
    summary = json.loads(invoke("dejpeg", photo, "-o", tmp_path / "j.png", "--offline", "--json").stdout)
    assert summary["model"] == "laformer_tiny_dejpeg" and "offline" in summary["model_note"]
    assert summary["outputs"] == {str(photo): str(tmp_path / "j.png")}


def test_a_run_that_needs_no_model_names_none(photo, tiny_denoiser):
    assert invoke("denoise", photo, "--model", tiny_denoiser, "-q").exit_code == 0
    summary = json.loads(invoke("denoise", photo, "--model", tiny_denoiser, "--json").stdout)
    assert summary["skipped"] == [str(photo)] and summary["model"] is None and summary["outputs"] == {}


# ---------------------------------------------------------------------- -o FILE with several inputs


def test_an_output_file_name_for_several_inputs_is_refused(photo, tiny_denoiser, tmp_path):
    other = write_png(tmp_path / "other.png", make_image(16, 16, seed=8))
    target = tmp_path / "single.png"
    result = invoke("denoise", photo, other, "-o", target, "--model", tiny_denoiser)
    assert result.exit_code == 2
    assert lines(result.output) == [
        f"error: --output {target} is one file name, but there are 2 inputs; give a folder instead (e.g. {tmp_path / 'single'}/)"
    ]
    assert not target.exists()
    folder = tmp_path / "folder"
    folder.mkdir()
    write_png(folder / "a.png", make_image(16, 16))
    as_json = invoke("denoise", folder, "-o", target, "--model", tiny_denoiser, "--json")
    assert as_json.exit_code == 2 and "is one file name" in json.loads(as_json.stdout)["error"]
    assert not target.exists()


# ---------------------------------------------------------------------- dejpeg writes PNG


def test_dejpeg_writes_png_unless_a_format_is_asked_for(tmp_path, tiny_denoiser):
    jpeg = tmp_path / "photo.jpg"
    Image.fromarray((make_image(16, 16, seed=9) * 255).astype("uint8")).save(jpeg, quality=30)
    first = json.loads(invoke("dejpeg", jpeg, "--model", tiny_denoiser, "--json").stdout)
    png = tmp_path / "photo_dejpeg.png"
    assert png.exists() and not (tmp_path / "photo_dejpeg.jpg").exists()
    assert first["outputs"] == {str(jpeg): str(png)}
    with Image.open(png) as im:
        assert im.format == "PNG"
    again = json.loads(invoke("dejpeg", jpeg, "--model", tiny_denoiser, "--json").stdout)
    assert again["skipped"] == [str(jpeg)] and again["processed"] == []  # the plan and skip-existing agree
    assert invoke("dejpeg", jpeg, "--model", tiny_denoiser, "--format", "jpg", "-q").exit_code == 0
    with Image.open(tmp_path / "photo_dejpeg.jpg") as im:
        assert im.format == "JPEG"
    named = tmp_path / "named.jpg"  # a file name the user chose keeps its format
    assert invoke("dejpeg", jpeg, "--model", tiny_denoiser, "-o", named, "-q").exit_code == 0
    with Image.open(named) as im:
        assert im.format == "JPEG"
    # Other tasks still keep the input's format.
    assert invoke("denoise", jpeg, "--model", tiny_denoiser, "-q").exit_code == 0
    assert (tmp_path / "photo_denoise.jpg").exists()


# ---------------------------------------------------------------------- broken files only


def test_a_rerun_with_only_broken_files_left_loads_no_model(tmp_path, tiny_denoiser, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    write_png(folder / "good.png", make_image(16, 16))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    out = tmp_path / "out"
    first = invoke("denoise", folder, "-o", out, "--model", tiny_denoiser, "--json")
    assert first.exit_code == 1 and json.loads(first.stdout)["processed"] == [str(folder / "good.png")]

    import irx.api
    import irx.zoo

    calls: list[str] = []

    def must_not_run(name: str):
        def fail(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} was called")
        return fail

    monkeypatch.setattr(irx.zoo, "resolve", must_not_run("resolve"))
    monkeypatch.setattr(irx.api, "load_model", must_not_run("load_model"))
    for model in (["--model", tiny_denoiser], []):  # a file, and the default (which would try the network)
        rerun = invoke("denoise", folder, "-o", out, *model, "--json")
        summary = json.loads(rerun.stdout)
        assert rerun.exit_code == 1, rerun.output
        assert [f["path"] for f in summary["failed"]] == [str(folder / "broken.png")]
        assert summary["skipped"] == [str(folder / "good.png")] and summary["model"] is None
    assert calls == []


def test_one_missing_input_with_an_output_file_is_still_a_plain_failure(tmp_path, tiny_denoiser):
    result = invoke("denoise", tmp_path / "nope.png", "-o", tmp_path / "out.png", "--model", tiny_denoiser, "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["failed"][0]["reason"] == "no such file or folder"
    pattern = invoke("denoise", tmp_path / "*.png", "-o", tmp_path / "out.png", "--model", tiny_denoiser)
    assert pattern.exit_code == 2 and "may be several files" in pattern.output
