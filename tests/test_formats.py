"""AVIF, HEIC, JPEG XL, GIF, animated WebP, EXR and float TIFF: pixels, alpha, depth and frame timing round-trip."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irx.errors import UsageError
from irx.media import formats
from irx.media.image_io import DecodedImage, decode_image_bytes, encode_image, read_image
from tests.conftest import make_image


def _image(pixels: np.ndarray, alpha: np.ndarray | None = None, bit_depth: int = 8, **kw) -> DecodedImage:
    return DecodedImage(pixels=pixels, alpha=alpha, bit_depth=bit_depth, format="PNG", exif=None,
                        icc_profile=None, **kw)


def _quantised(pixels: np.ndarray, depth: int = 8) -> np.ndarray:
    top = 255.0 if depth == 8 else 65535.0
    return (np.rint(pixels * top) / top).astype(np.float32)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(1.0 / mse)


def _needs(module: str) -> None:
    pytest.importorskip(module, reason=f"{module} is in irx[formats]")


@pytest.fixture()
def rgb() -> np.ndarray:
    return _quantised(make_image(24, 32, seed=4))


@pytest.fixture()
def alpha() -> np.ndarray:
    return _quantised(np.linspace(0, 1, 24 * 32, dtype=np.float32).reshape(24, 32))


def test_jxl_lossless_keeps_pixels_and_alpha(rgb, alpha):
    _needs("pillow_jxl")
    data = encode_image(_image(rgb, alpha), "JXL", quality=100)
    back = decode_image_bytes(data)
    assert back.format == "JXL" and back.bit_depth == 8
    assert np.array_equal(back.pixels, rgb) and np.array_equal(back.alpha, alpha)


def test_jxl_keeps_16_bit_grey():
    _needs("pillow_jxl")
    grey = _quantised(make_image(16, 20, channels=1, seed=5), 16)
    back = decode_image_bytes(encode_image(_image(grey, bit_depth=16), "JXL", quality=100))
    assert back.bit_depth == 16 and back.is_grey
    assert np.array_equal(back.pixels, grey)


def test_heic_lossless_and_12_bit(rgb, alpha):
    _needs("pillow_heif")
    back = decode_image_bytes(encode_image(_image(rgb, alpha), "HEIC", quality=100))
    assert back.format == "HEIF" and back.bit_depth == 8
    assert np.array_equal(back.pixels, rgb) and np.array_equal(back.alpha, alpha)
    deep = _quantised(make_image(16, 20, seed=6), 16)
    back = decode_image_bytes(encode_image(_image(deep, bit_depth=16), "HEIF", quality=100))
    assert back.bit_depth == 16
    assert np.abs(back.pixels - deep).max() <= 1.5 / 4096  # 16 bits are stored as 12
    assert len(np.unique(back.pixels)) > 256  # finer than 8 bits


def test_heic_lossy_psnr(rgb):
    _needs("pillow_heif")
    back = decode_image_bytes(encode_image(_image(rgb), "HEIF"))
    assert _psnr(back.pixels, rgb) > 30


def test_avif_psnr_and_alpha(rgb, alpha):
    if not _has_avif():
        pytest.skip("no AVIF in this Pillow and no plugin")
    back = decode_image_bytes(encode_image(_image(rgb, alpha), "AVIF", quality=100))
    assert back.format == "AVIF" and back.alpha is not None
    assert _psnr(back.pixels, rgb) > 40 and _psnr(back.alpha, alpha) > 40


def _has_avif() -> bool:
    try:
        formats._register_plugin("AVIF")
        return True
    except UsageError:
        return False


def test_exr_keeps_float_half_and_values_beyond_one():
    _needs("OpenEXR")
    hdr = (make_image(12, 10, seed=7) * 4 - 1).astype(np.float32)  # [-1, 3]: linear light, not clipped
    back = decode_image_bytes(encode_image(_image(hdr, bit_depth=32, is_float=True), "EXR"))
    assert back.format == "EXR" and back.is_float and back.bit_depth == 32
    assert np.array_equal(back.pixels, hdr)
    half = hdr.astype(np.float16).astype(np.float32)
    alpha = np.full((12, 10), 0.5, np.float32)
    back = decode_image_bytes(encode_image(_image(half, alpha, bit_depth=16, is_float=True), "EXR"))
    assert back.bit_depth == 16 and np.array_equal(back.pixels, half) and np.array_equal(back.alpha, alpha)


def test_float_tiff_keeps_float_and_16_bit_tiff_stays_integer(tmp_path):
    _needs("tifffile")
    values = (make_image(10, 14, seed=8) * 2).astype(np.float32)
    data = encode_image(_image(values, bit_depth=32, is_float=True), "TIFF")
    back = decode_image_bytes(data)
    assert back.format == "TIFF" and back.is_float and back.bit_depth == 32
    assert np.array_equal(back.pixels, values)
    alpha = np.linspace(0, 1, 140, dtype=np.float32).reshape(10, 14)
    back = decode_image_bytes(encode_image(_image(values, alpha, bit_depth=32, is_float=True), "TIFF"))
    assert np.array_equal(back.pixels, values) and np.array_equal(back.alpha, alpha)
    # An integer 16-bit image still goes through irx's own 16-bit TIFF writer.
    deep = _quantised(make_image(10, 14, seed=9), 16)
    back = decode_image_bytes(encode_image(_image(deep, bit_depth=16), "TIFF"))
    assert not back.is_float and back.bit_depth == 16 and np.array_equal(back.pixels, deep)


def test_float_image_to_png_is_16_bit():
    values = _quantised(make_image(8, 8, seed=10), 16)
    back = decode_image_bytes(encode_image(_image(values, bit_depth=32, is_float=True), "PNG"))
    assert back.bit_depth == 16 and np.array_equal(back.pixels, values)


def _palette_frames(count: int) -> list[np.ndarray]:
    """Frames of a few flat colours each, so a GIF palette holds them exactly."""
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]], np.uint8)
    frames = []
    for i in range(count):
        index = (np.add.outer(np.arange(12), np.arange(16)) // 4 + i) % len(colours)
        frames.append(colours[index])
    return frames


def _gif_bytes(frames: list[np.ndarray], durations: list[int], loop: int | None, disposal: list[int]) -> bytes:
    pictures = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    extra = {} if loop is None else {"loop": loop}
    pictures[0].save(buf, format="GIF", save_all=True, append_images=pictures[1:], duration=durations,
                     disposal=disposal, optimize=False, **extra)
    return buf.getvalue()


def test_animated_gif_keeps_every_frame_durations_loop_and_disposal():
    frames = _palette_frames(4)
    durations = [50, 120, 70, 200]
    data = _gif_bytes(frames, durations, loop=3, disposal=[1, 2, 1, 2])
    decoded = decode_image_bytes(data)
    assert decoded.format == "GIF" and decoded.animation is not None
    assert [f.duration_ms for f in decoded.animation.frames] == durations
    assert decoded.animation.loop == 3
    again = decode_image_bytes(encode_image(decoded, "GIF"))
    assert again.animation is not None and len(again.animation.frames) == 4
    assert [f.duration_ms for f in again.animation.frames] == durations
    assert again.animation.loop == 3
    assert [f.disposal for f in again.animation.frames] == [1, 2, 1, 2]
    for frame, expected in zip(again.animation.frames, frames):
        assert np.array_equal(np.rint(frame.pixels * 255).astype(np.uint8), expected)


def test_still_gif_with_transparency_keeps_alpha():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :4] = [255, 0, 0, 255]  # left half opaque red, right half transparent
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="GIF")
    decoded = decode_image_bytes(buf.getvalue())
    assert decoded.animation is None and decoded.alpha is not None
    back = decode_image_bytes(encode_image(decoded, "GIF"))
    assert np.array_equal(back.alpha, decoded.alpha)
    assert np.array_equal(back.alpha[:, :4], np.ones((8, 4))) and not back.alpha[:, 4:].any()


def test_animated_webp_lossless_keeps_frames_durations_loop_and_alpha():
    rgba = [np.dstack([f, np.full(f.shape[:2], 128 + 40 * i, np.uint8)]) for i, f in enumerate(_palette_frames(3))]
    buf = io.BytesIO()
    pictures = [Image.fromarray(f, "RGBA") for f in rgba]
    pictures[0].save(buf, format="WEBP", save_all=True, append_images=pictures[1:], duration=[40, 80, 160],
                     loop=0, lossless=True)
    decoded = decode_image_bytes(buf.getvalue())
    assert decoded.format == "WEBP" and decoded.animation is not None
    again = decode_image_bytes(encode_image(decoded, "WEBP", quality=100))
    assert [f.duration_ms for f in again.animation.frames] == [40, 80, 160]
    assert again.animation.loop == 0
    for frame, expected in zip(again.animation.frames, rgba):
        assert np.array_equal(np.rint(frame.pixels * 255).astype(np.uint8), expected[:, :, :3])
        assert np.array_equal(np.rint(frame.alpha * 255).astype(np.uint8), expected[:, :, 3])


def test_missing_library_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_openexr(name, *args, **kwargs):
        if name == "OpenEXR":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openexr)
    monkeypatch.setattr("importlib.import_module", lambda name: no_openexr(name))
    with pytest.raises(UsageError, match=r"irx\[formats\]"):
        encode_image(_image(np.zeros((4, 4, 3), np.float32)), "EXR")


def test_sniff_extension():
    assert formats.sniff_extension(b"GIF89a....") == ".gif"
    assert formats.sniff_extension(b"\x89PNG\r\n\x1a\n") == ".png"
    assert formats.sniff_extension(b"\x00\x00\x00\x1cftypheic") == ".heic"
    assert formats.sniff_extension(b"hello") is None


def test_cli_restores_every_gif_frame_and_keeps_timing(tmp_path: Path, tiny_denoiser):
    from typer.testing import CliRunner

    from irx.cli.main import app

    source = tmp_path / "anim.gif"
    source.write_bytes(_gif_bytes(_palette_frames(3), [60, 90, 150], loop=0, disposal=[2, 2, 2]))
    result = CliRunner().invoke(app, ["denoise", str(source), "--model", str(tiny_denoiser), "-q"])
    assert result.exit_code == 0, result.output
    out = read_image(tmp_path / "anim_denoise.gif")
    assert out.animation is not None and len(out.animation.frames) == 3
    assert [f.duration_ms for f in out.animation.frames] == [60, 90, 150]
    # Each frame is that frame restored: the frames differ as the inputs do.
    assert not np.array_equal(out.animation.frames[0].pixels, out.animation.frames[1].pixels)


def test_cli_writes_new_formats_with_format_flag(tmp_path: Path, tiny_denoiser):
    _needs("OpenEXR")
    from typer.testing import CliRunner

    from irx.cli.main import app
    from tests.conftest import write_png

    write_png(tmp_path / "a.png", make_image(16, 16, seed=11))
    result = CliRunner().invoke(app, ["denoise", str(tmp_path / "a.png"), "--model", str(tiny_denoiser),
                                      "--format", "exr", "-q"])
    assert result.exit_code == 0, result.output
    out = read_image(tmp_path / "a_denoise.exr")
    assert out.format == "EXR" and out.is_float and out.bit_depth == 16  # 8-bit input: half floats


def _encoded(fmt: str) -> bytes:
    return encode_image(_image(_quantised(make_image(32, 40, seed=12))), fmt, quality=90)


@pytest.mark.parametrize(("fmt", "module"), [("JXL", "pillow_jxl"), ("HEIF", "pillow_heif"), ("GIF", "PIL"),
                                             ("EXR", "OpenEXR")])
def test_truncated_files_raise_a_one_line_input_error(tmp_path, fmt, module):
    from irx.errors import InputError

    _needs(module)
    data = _encoded(fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as info:
        read_image(path)
    message = str(info.value)
    assert "\n" not in message and "cut." in message and len(message) < 400


def test_apng_keeps_every_frame_durations_loop_and_disposal():
    rgba = [np.dstack([f, np.full(f.shape[:2], 255 if i else 0, np.uint8)]) for i, f in enumerate(_palette_frames(3))]
    pictures = [Image.fromarray(f, "RGBA") for f in rgba]
    buf = io.BytesIO()
    pictures[0].save(buf, format="PNG", save_all=True, append_images=pictures[1:], duration=[30, 60, 90], loop=2,
                     disposal=[1, 0, 1], blend=0)
    decoded = decode_image_bytes(buf.getvalue())
    assert decoded.format == "PNG" and decoded.animation is not None
    again = decode_image_bytes(encode_image(decoded, "PNG"))
    assert [f.duration_ms for f in again.animation.frames] == [30, 60, 90]
    assert again.animation.loop == 2 and [f.disposal for f in again.animation.frames] == [1, 0, 1]
    for frame, expected in zip(again.animation.frames, rgba):
        assert np.array_equal(np.rint(frame.pixels * 255).astype(np.uint8), expected[:, :, :3])
        assert np.array_equal(np.rint(frame.alpha * 255).astype(np.uint8), expected[:, :, 3])
    # A still PNG is not an animation and still goes through image_io's own PNG path.
    still = decode_image_bytes(encode_image(_image(_quantised(make_image(8, 8))), "PNG"))
    assert still.animation is None


def test_animation_to_a_still_format_warns_and_keeps_the_first_frame(tmp_path: Path, tiny_denoiser):
    from typer.testing import CliRunner

    from irx.cli.main import app

    source = tmp_path / "anim.gif"
    source.write_bytes(_gif_bytes(_palette_frames(2), [60, 90], loop=0, disposal=[2, 2]))
    result = CliRunner().invoke(app, ["denoise", str(source), "--model", str(tiny_denoiser), "--format", "jpg"])
    assert result.exit_code == 0, result.output
    assert "only the first frame" in result.output
    assert read_image(tmp_path / "anim_denoise.jpg").animation is None


def test_format_needing_a_missing_library_stops_before_any_work(monkeypatch):
    from irx.settings import RestoreSettings

    monkeypatch.setattr("importlib.import_module", lambda name: (_ for _ in ()).throw(ImportError(name)))
    with pytest.raises(UsageError, match=r"EXR needs the openexr package: pip install 'irx\[formats\]'"):
        RestoreSettings.resolve(out_format="exr")
