"""--compare: the before/after picture holds both halves, the HTML page references every output."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from typer.testing import CliRunner

from irx.cli.main import app
from irx.media.compare import DIVIDER, side_by_side
from tests.conftest import make_image, write_png


def _invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_side_by_side_is_input_resized_divider_output():
    before = make_image(8, 10, seed=1)
    after = make_image(16, 20, seed=2)
    picture = side_by_side(before, after)
    assert picture.shape == (16, 2 * 20 + DIVIDER, 3) and picture.dtype == np.uint8
    resized = cv2.resize(before, (20, 16), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(picture[:, :20], np.rint(np.clip(resized, 0, 1) * 255).astype(np.uint8))
    assert (picture[:, 20 : 20 + DIVIDER] == 255).all()
    assert np.array_equal(picture[:, 20 + DIVIDER :], np.rint(after * 255).astype(np.uint8))


def test_compare_picture_beside_upscaled_output(tmp_path: Path, tiny_upscaler):
    source = write_png(tmp_path / "a.png", make_image(12, 14, seed=3))
    result = _invoke("upscale", source, "--model", tiny_upscaler, "--compare", "-q")
    assert result.exit_code == 0, result.output
    output = np.asarray(Image.open(tmp_path / "a_upscale.png"))
    picture = np.asarray(Image.open(tmp_path / "a_upscale.compare.png"))
    h, w = output.shape[:2]
    assert (h, w) == (24, 28) and picture.shape == (h, 2 * w + DIVIDER, 3)
    assert np.array_equal(picture[:, w + DIVIDER :], output)  # right: the output as written
    src = np.asarray(Image.open(source)).astype(np.float32) / 255
    left = np.rint(np.clip(cv2.resize(src, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1) * 255)
    assert np.abs(picture[:, :w].astype(int) - left.astype(int)).max() <= 1  # left: the input resized
    assert not (tmp_path / "compare.html").exists()  # one file: no page


def test_folder_gets_a_page_with_every_output_and_user_files_are_kept(tmp_path: Path, tiny_denoiser):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for i, name in enumerate(["a.png", "b.png", "sub/c.png"]):
        write_png(photos / name, make_image(10, 12, seed=i))
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.compare.png").write_bytes(b"the user's own file")
    result = _invoke("denoise", photos, "-o", out, "--recursive", "--model", tiny_denoiser, "--compare", "-q")
    assert result.exit_code == 0, result.output
    assert (out / "b.compare.png").read_bytes() == b"the user's own file"
    assert "no compare picture" in result.output
    page = (out / "compare.html").read_text()
    links = set(re.findall(r'href="([^"]+)"', page))
    assert links == {"a.png", "b.png", "sub/c.png"}  # every output; b's picture is the user's: no slider
    assert page.count('type="range"') == 2
    assert "http" not in page and 'src="a.compare.png"' in page and 'type="range"' in page
    # A rerun with --overwrite replaces irx's own compare files and page, still not the user's.
    again = _invoke("denoise", photos, "-o", out, "--recursive", "--model", tiny_denoiser, "--compare",
                    "--overwrite", "-q")
    assert again.exit_code == 0, again.output
    assert (out / "b.compare.png").read_bytes() == b"the user's own file"
    assert (out / "a.compare.png").exists() and (out / "compare.html").exists()
