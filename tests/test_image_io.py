"""Tests for irx.media.image_io: fidelity of image reading and writing."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from irx.errors import InputError, IrxError, UsageError
from irx.media import (
    IMAGE_EXTENSIONS,
    DecodedImage,
    OutputExistsError,
    decode_image_bytes,
    encode_image,
    format_for_path,
    is_image_path,
    read_image,
    to_uint,
    write_image,
)
from irx.media.image_io import png_set_metadata

MAKE = "IrxCam"
DATE = "2021:06:01 12:34:56"


def _samples(h: int, w: int, c: int, bit_depth: int, seed: int = 0) -> np.ndarray:
    top = 255 if bit_depth == 8 else 65535
    rng = np.random.default_rng(seed)
    return rng.integers(0, top + 1, (h, w, c), dtype=np.int64).astype(
        np.uint8 if bit_depth == 8 else np.uint16
    )


def _float(samples: np.ndarray) -> np.ndarray:
    top = 255.0 if samples.dtype == np.uint8 else 65535.0
    return samples.astype(np.float32) / np.float32(top)


def _image(
    c: int, bit_depth: int, alpha: bool, *, exif=None, icc=None, h=6, w=9
) -> DecodedImage:
    s = _samples(h, w, c + int(alpha), bit_depth, seed=c * 10 + bit_depth)
    return DecodedImage(
        pixels=_float(s[:, :, :c]),
        alpha=_float(s[:, :, c]) if alpha else None,
        bit_depth=bit_depth,
        format="PNG",
        exif=exif,
        icc_profile=icc,
    )


def _exif_bytes(orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[271] = MAKE
    exif[274] = orientation
    exif[0x8769] = {0x9003: DATE, 0xA005: {1: "R98"}}  # EXIF IFD with a nested Interop IFD
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPS latitude
    return exif.tobytes()


def _exif_fields(raw: bytes | None) -> tuple:
    assert raw is not None and raw.startswith(b"Exif\x00\x00")
    exif = Image.Exif()
    exif.load(raw)
    assert exif.get_ifd(0xA005).get(1) == "R98"
    assert exif.get_ifd(0x8825).get(2) == (51.0, 30.0, 0.0)
    return exif.get(271), exif.get(274), exif.get_ifd(0x8769).get(0x9003)


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _pil_bytes(im: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("alpha", [False, True])
def test_lossless_round_trip_is_exact(tmp_path, ext, bit_depth, channels, alpha):
    image = _image(channels, bit_depth, alpha)
    out = write_image(tmp_path / f"out{ext}", image)
    back = read_image(out)

    assert back.bit_depth == bit_depth
    assert back.format == ("PNG" if ext == ".png" else "TIFF")
    assert back.path == out
    assert back.pixels.dtype == np.float32 and back.pixels.ndim == 3
    expected = to_uint(image.pixels, bit_depth)
    if ext == ".tif" and bit_depth == 16 and channels == 1 and alpha:
        # documented gap: 16-bit grey+alpha TIFF is stored as RGBA
        expected = np.repeat(expected, 3, axis=2)
    else:
        assert back.is_grey == (channels == 1)
    assert np.array_equal(to_uint(back.pixels, bit_depth), expected)
    if alpha:
        assert back.alpha is not None and back.alpha.shape == image.alpha.shape
        assert np.array_equal(
            to_uint(back.alpha, bit_depth), to_uint(image.alpha, bit_depth)
        )
    else:
        assert back.alpha is None

    # An independent decoder (OpenCV/libpng/libtiff) sees the same depth and values.
    other = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert other.dtype == (np.uint8 if bit_depth == 8 else np.uint16)
    if not alpha and channels == 3:
        assert np.array_equal(other[:, :, ::-1], expected)
    if not alpha and channels == 1:
        assert np.array_equal(other, expected[:, :, 0])


def test_16bit_values_above_255_read_exactly_from_opencv_png(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint16)
    rgb[..., 0] = 60000  # red channel distinct, to catch BGR/RGB mix-ups
    rgb[..., 1] = 300
    rgb[..., 2] = np.arange(5, dtype=np.uint16) * 1000 + 7
    path = tmp_path / "cv.png"
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    back = read_image(path)
    assert back.bit_depth == 16 and back.pixels.shape == (4, 5, 3)
    assert np.array_equal(to_uint(back.pixels, 16), rgb)


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 3])
def test_16bit_image_with_small_values_stays_16bit(tmp_path, ext, channels):
    small = (np.arange(4 * 5 * channels, dtype=np.uint16) % 200).reshape(4, 5, channels)
    path = tmp_path / f"small{ext}"
    cv2.imwrite(str(path), small[:, :, ::-1] if channels == 3 else small[:, :, 0])
    back = read_image(path)
    assert back.bit_depth == 16
    assert back.pixels.max() < 200 / 65535 + 1e-9  # scaled by 65535, not 255
    assert np.array_equal(to_uint(back.pixels, 16), small)
    # ... and is written back as 16-bit
    out = write_image(tmp_path / f"again{ext}", back)
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).dtype == np.uint16


@pytest.mark.parametrize("mode", ["L", "I;16"])
def test_grey_png_from_pillow_stays_grey(mode):
    values = np.array([[0, 1, 2], [200, 254, 255]], np.uint8)
    if mode == "I;16":
        values = values.astype(np.uint16) * 257
    data = _pil_bytes(Image.fromarray(values), "PNG")
    back = decode_image_bytes(data)
    assert back.is_grey and back.pixels.shape == (2, 3, 1)
    assert back.bit_depth == (8 if mode == "L" else 16)
    assert np.array_equal(to_uint(back.pixels, back.bit_depth)[:, :, 0], values)


def test_1bit_png_reads_as_8bit_grey():
    bits = Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("1")
    back = decode_image_bytes(_pil_bytes(bits, "PNG"))
    assert back.is_grey and back.bit_depth == 8
    assert np.array_equal(back.pixels[:, :, 0], [[0, 1], [1, 0]])


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_of_pillow_png_is_kept(mode):
    s = _samples(3, 4, len(mode), 8, seed=3)
    back = decode_image_bytes(_pil_bytes(Image.fromarray(s), "PNG"))
    assert back.is_grey == (mode == "LA")
    assert np.array_equal(to_uint(back.alpha, 8), s[:, :, -1])
    assert np.array_equal(to_uint(back.pixels, 8), s[:, :, :-1])


def test_palette_png_with_transparency_becomes_rgba():
    pal = Image.new("P", (3, 2))
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    pal.putdata([0, 1, 2, 2, 1, 0])
    back = decode_image_bytes(_pil_bytes(pal, "PNG", transparency=1))
    assert back.pixels.shape == (2, 3, 3) and back.bit_depth == 8
    assert np.array_equal(back.alpha, [[1, 0, 1], [1, 0, 1]])
    assert np.array_equal(back.pixels[0, 0], [1, 0, 0]) and np.array_equal(
        back.pixels[0, 2], [0, 0, 1]
    )


def test_palette_png_of_grey_levels_stays_grey():
    pal = Image.new("P", (2, 1))
    pal.putpalette([10, 10, 10, 200, 200, 200] + [0] * 762)
    pal.putdata([0, 1])
    back = decode_image_bytes(_pil_bytes(pal, "PNG"))
    assert back.is_grey and back.alpha is None
    assert np.array_equal(to_uint(back.pixels, 8)[0, :, 0], [10, 200])


# --------------------------------------------------------------------------- orientation


def _asymmetric(bit_depth: int) -> np.ndarray:
    return _samples(
        3, 5, 3, bit_depth, seed=42
    )  # 3x5: every orientation gives a distinct layout


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_exif_transpose(orientation):
    s = _asymmetric(8)
    data = _pil_bytes(Image.fromarray(s), "PNG", exif=_exif_bytes(orientation))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    back = decode_image_bytes(data)
    assert np.array_equal(to_uint(back.pixels, 8), expected)
    assert _exif_fields(back.exif) == (MAKE, 1, DATE)


def test_orientation_applied_to_16bit_png_and_its_alpha():
    s = _samples(3, 5, 4, 16, seed=5)
    _ok, buf = cv2.imencode(".png", s[:, :, [2, 1, 0, 3]])
    data = png_set_metadata(buf.tobytes(), None, _exif_bytes(6))
    back = decode_image_bytes(data)
    assert back.bit_depth == 16 and back.pixels.shape == (5, 3, 3)
    assert np.array_equal(
        to_uint(back.pixels, 16), np.rot90(s[:, :, :3], -1)
    )  # 90 degrees clockwise
    assert np.array_equal(to_uint(back.alpha, 16), np.rot90(s[:, :, 3], -1))
    assert _exif_fields(back.exif)[1] == 1


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_tiff_orientation_tag_is_applied(bit_depth):
    from irx.media.image_io import _encode_tiff

    s = _asymmetric(bit_depth)
    back = decode_image_bytes(_encode_tiff(s, None, _exif_bytes(8)))
    assert np.array_equal(
        to_uint(back.pixels, bit_depth), np.rot90(s, 1)
    )  # 90 degrees counter-clockwise
    assert _exif_fields(back.exif) == (MAKE, 1, DATE)


@pytest.mark.parametrize("compression", [None, "tiff_deflate"])
def test_orientation_of_pillow_tiff_is_applied_once(compression):
    # Pillow itself rotates some TIFFs on load; irx must not rotate them twice.
    s = _asymmetric(8)
    exif = Image.Exif()
    exif[274] = 6  # no EXIF sub-IFD: Pillow's libtiff writer cannot store one
    data = _pil_bytes(Image.fromarray(s), "TIFF", exif=exif, compression=compression)
    back = decode_image_bytes(data)
    assert np.array_equal(to_uint(back.pixels, 8), np.rot90(s, -1))


def test_jpeg_orientation_6_rotates_and_resets_only_the_tag():
    block = np.zeros((16, 32, 3), np.uint8)
    block[:, 16:] = 255  # left half black, right half white
    exif = _exif_bytes(6)
    data = _pil_bytes(Image.fromarray(block), "JPEG", exif=exif, quality=95)
    back = decode_image_bytes(data)
    assert back.format == "JPEG" and back.pixels.shape == (32, 16, 3)
    # rotated 90 degrees clockwise: the left (black) half is now on top
    assert back.pixels[:14].mean() < 0.05 and back.pixels[18:].mean() > 0.95
    assert _exif_fields(back.exif) == (MAKE, 1, DATE)
    # everything but the two bytes of the orientation value is untouched
    diff = [i for i, (a, b) in enumerate(zip(exif, back.exif)) if a != b]
    assert len(back.exif) == len(exif) and len(diff) == 1


# --------------------------------------------------------------------------- metadata


@pytest.mark.parametrize(
    ("ext", "bit_depth", "raw_exif_kept"),
    [
        (".jpg", 8, True),
        (".png", 8, True),
        (".png", 16, True),
        (".webp", 8, True),
        (".tif", 8, False),
        (".tif", 16, False),
    ],
)
def test_exif_and_icc_survive_writing(tmp_path, ext, bit_depth, raw_exif_kept):
    icc, exif = _srgb_icc(), _exif_bytes(1)
    out = write_image(
        tmp_path / f"meta{ext}", _image(3, bit_depth, False, exif=exif, icc=icc)
    )
    back = read_image(out)
    assert back.icc_profile == icc
    assert _exif_fields(back.exif) == (MAKE, 1, DATE)
    if raw_exif_kept:
        assert back.exif == exif  # passed through byte for byte
    # Pillow, reading the file on its own, finds the same metadata.
    with Image.open(out) as im:
        assert im.info.get("icc_profile") == icc
        assert im.getexif().get(271) == MAKE


def test_written_exif_orientation_is_forced_to_1(tmp_path):
    # Pixels in irx are always upright, so stale orientation must not be written.
    image = _image(3, 8, False, exif=_exif_bytes(8))
    back = read_image(write_image(tmp_path / "o.jpg", image))
    assert back.pixels.shape == image.pixels.shape
    assert _exif_fields(back.exif)[1] == 1


def test_rgb_icc_profile_is_not_attached_to_grey_output():
    data = encode_image(_image(1, 8, False, icc=_srgb_icc()), "PNG")
    assert b"iCCP" not in data and decode_image_bytes(data).icc_profile is None


def test_png_chunk_inserter_writes_valid_chunks_before_idat():
    s = _samples(4, 4, 3, 16, seed=1)
    _ok, buf = cv2.imencode(".png", s)
    icc, exif = _srgb_icc(), _exif_bytes(1)
    once = png_set_metadata(buf.tobytes(), b"old profile" * 20, None)
    data = png_set_metadata(once, icc, exif)  # replaces, never duplicates
    pos, kinds = 8, []
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        payload = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        assert crc == zlib.crc32(kind + payload) & 0xFFFFFFFF
        kinds.append(kind)
        pos += 12 + length
    assert kinds.count(b"iCCP") == 1 and kinds.count(b"eXIf") == 1
    assert kinds.index(b"iCCP") < kinds.index(b"IDAT") and kinds.index(
        b"eXIf"
    ) < kinds.index(b"IDAT")
    assert np.array_equal(
        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), s
    )
    with Image.open(io.BytesIO(data)) as im:
        assert im.info["icc_profile"] == icc and im.getexif()[271] == MAKE


# --------------------------------------------------------------------------- lossy formats


@pytest.mark.parametrize("ext", [".jpg", ".webp"])
def test_quality_is_honoured(tmp_path, ext):
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32) / 63
    rng = np.random.default_rng(0)
    pixels = np.clip(
        np.stack([yy, xx, (yy + xx) / 2], 2) + rng.normal(0, 0.05, (64, 64, 3)), 0, 1
    )
    image = DecodedImage(pixels.astype(np.float32), None, 8, "PNG", None, None)
    results = {}
    for q in (40, 95):
        out = write_image(tmp_path / f"q{q}{ext}", image, quality=q)
        error = np.abs(read_image(out).pixels - to_uint(pixels, 8) / 255.0).mean()
        results[q] = (out.stat().st_size, error)
    assert results[95][0] > results[40][0]
    assert results[95][1] < results[40][1]
    assert results[95][1] < 0.05  # WebP smooths this noise more than JPEG


def test_formats_without_16bit_or_alpha_write_8bit_and_drop_alpha(tmp_path):
    image = _image(3, 16, True, h=16, w=16)
    for ext in (".jpg", ".bmp"):
        back = read_image(write_image(tmp_path / f"x{ext}", image))
        assert (
            back.bit_depth == 8
            and back.alpha is None
            and back.pixels.shape == (16, 16, 3)
        )
    back = read_image(write_image(tmp_path / "x.webp", image))
    assert back.bit_depth == 8 and back.alpha is not None


def test_grey_to_webp_becomes_rgb_and_to_jpeg_stays_grey(tmp_path):
    image = _image(1, 8, False, h=16, w=16)
    assert not read_image(write_image(tmp_path / "g.webp", image)).is_grey
    assert read_image(write_image(tmp_path / "g.jpg", image)).is_grey


@pytest.mark.parametrize("channels", [1, 3])
def test_bmp_round_trip_is_exact(tmp_path, channels):
    image = _image(channels, 8, False)
    back = read_image(write_image(tmp_path / "b.bmp", image))
    assert (
        back.format == "BMP" and back.bit_depth == 8 and back.is_grey == (channels == 1)
    )
    assert np.array_equal(to_uint(back.pixels, 8), to_uint(image.pixels, 8))


def test_cmyk_jpeg_reads_as_rgb():
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    back = decode_image_bytes(_pil_bytes(cmyk, "JPEG", quality=95))
    assert back.pixels.shape == (8, 8, 3) and back.format == "JPEG"
    assert np.allclose(back.pixels.mean(axis=(0, 1)), [1, 0, 0], atol=0.03)


def test_alpha_is_resized_when_the_picture_was_upscaled():
    image = _image(3, 8, True, h=4, w=4)
    big = DecodedImage(
        np.repeat(np.repeat(image.pixels, 2, 0), 2, 1),
        image.alpha,
        8,
        "PNG",
        None,
        None,
    )
    back = decode_image_bytes(encode_image(big, "PNG"))
    assert back.alpha.shape == (8, 8)
    assert abs(back.alpha.mean() - image.alpha.mean()) < 0.05


# --------------------------------------------------------------------------- errors


def _truncated_png() -> bytes:
    data = _pil_bytes(Image.fromarray(_samples(32, 32, 3, 8)), "PNG")
    return data[: len(data) // 2]


def _truncated_png16() -> bytes:
    _ok, buf = cv2.imencode(".png", _samples(32, 32, 3, 16))
    return buf.tobytes()[: buf.size // 2]


def _truncated_jpeg() -> bytes:
    data = _pil_bytes(Image.fromarray(_samples(64, 64, 3, 8)), "JPEG", quality=90)
    return data[: len(data) // 2]


def _truncated_gif() -> bytes:
    data = _pil_bytes(Image.fromarray(_samples(64, 64, 3, 8)).convert("P"), "GIF")
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("empty.png", lambda: b""),
        ("cut.png", _truncated_png),
        ("cut16.png", _truncated_png16),
        ("cut.jpg", _truncated_jpeg),
        ("noise.png", lambda: np.random.default_rng(0).bytes(500)),
        ("notes.jpg", lambda: b"this is a text file\nwith two lines\n"),
        ("cut.gif", _truncated_gif),
    ],
)
def test_bad_inputs_raise_a_one_line_input_error(tmp_path, name, make):
    path = tmp_path / name
    path.write_bytes(make())
    with pytest.raises(InputError) as info:
        read_image(path)
    message = str(info.value)
    assert "\n" not in message and name in message and len(message) < 300


def test_missing_file_and_folder_raise_input_error(tmp_path):
    for path in (tmp_path / "nope.png", tmp_path):
        with pytest.raises(InputError) as info:
            read_image(path)
        assert "\n" not in str(info.value)


def test_existing_output_is_not_overwritten_unless_asked(tmp_path):
    path = tmp_path / "o.png"
    path.write_bytes(b"precious")
    with pytest.raises(OutputExistsError) as info:
        write_image(path, _image(3, 8, False))
    assert isinstance(info.value, IrxError) and isinstance(info.value, FileExistsError)
    assert path.read_bytes() == b"precious"
    write_image(path, _image(3, 8, False), overwrite=True)
    assert read_image(path).pixels.shape == (6, 9, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]  # no temp left


def test_format_choice(tmp_path):
    assert IMAGE_EXTENSIONS == {
        ".png",
        ".jpg",
        ".jpeg",
        ".webp",
        ".tif",
        ".tiff",
        ".bmp",
        ".avif",
        ".heic",
        ".heif",
        ".jxl",
        ".gif",
        ".exr",
    }
    assert is_image_path(Path("a/B.JPEG")) and not is_image_path("clip.mp4")
    assert format_for_path("x.TIFF") == "TIFF" and format_for_path("x.jpeg") == "JPEG"
    with pytest.raises(UsageError):
        format_for_path("x.gifv")
    out = write_image(tmp_path / "named.bin", _image(3, 8, False), format="png")
    assert read_image(out).format == "PNG"


def test_to_uint_rounds_clips_and_removes_nan():
    x = np.array([-0.5, 0.0, 0.5 / 255, 0.6 / 255, 0.5, 1.0, 7.0, np.nan], np.float32)
    assert to_uint(x, 8).tolist() == [0, 0, 0, 1, 128, 255, 255, 0]
    assert to_uint(x, 16).tolist() == [0, 0, 128, 154, 32768, 65535, 65535, 0]
    assert to_uint(x, 16).dtype == np.uint16
    levels = np.arange(65536, dtype=np.uint16)
    assert np.array_equal(
        to_uint(_float(levels), 16), levels
    )  # every level survives float32
