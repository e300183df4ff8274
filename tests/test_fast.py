"""--fast (issue 16, item 1): the task's smallest bundled model instead of its default, for big photos on a CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from irx.cli.main import app
from irx.zoo import default_catalogue
from irx.zoo.records import _parameter_count
from tests.conftest import make_image, write_png

runner = CliRunner()


@pytest.fixture()
def photo(tmp_path: Path) -> Path:
    return write_png(tmp_path / "photo.png", make_image(16, 20, seed=3))


def test_fastest_bundled_is_the_smallest_of_the_tasks_bundled_models() -> None:
    cat = default_catalogue()
    # denoise bundles LAformer-small (its offline default) and LAformer-tiny: fast is the tiny one.
    fast = cat.fastest_bundled("denoise")
    assert fast is not None and fast.name == "laformer_tiny_denoise"
    others = [r for r in cat if r.source == "bundled" and "denoise" in r.tasks and r.name != fast.name]
    assert others and all(_parameter_count(cat.bundled_path(r)) > _parameter_count(cat.bundled_path(fast)) for r in others)
    assert cat.fastest_bundled("upscale", 4).name == "laformer_tiny_upscale_x4"
    assert cat.fastest_bundled("upscale", 3) is None


def test_parameter_count_reads_the_header(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(3, 4), "b": torch.zeros(5, dtype=torch.float16)}, str(tmp_path / "m.safetensors"))
    assert _parameter_count(tmp_path / "m.safetensors") == 17


def test_fast_runs_the_small_model_and_says_so_in_the_summary(photo: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["deblur", str(photo), "-o", str(tmp_path / "out.png"), "--fast", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["model"] == "laformer_tiny_deblur"  # the offline default is laformer_small_deblur
    assert (tmp_path / "out.png").is_file()


def test_fast_with_a_model_is_refused(photo: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["denoise", str(photo), "-o", str(tmp_path / "o.png"), "--fast",
                                 "--model", "laformer_small_denoise"])
    assert result.exit_code == 2
    assert "--fast" in result.output and "--model" in result.output and not (tmp_path / "o.png").exists()
