"""Read and write still images with full fidelity.

Pixels are float32 HWC in [0, 1] (C = 3 for RGB, 1 for grey; with
``native=True`` the file's own uint8/uint16 samples) with alpha kept (float32)
apart, EXIF orientation applied, and the bit depth, EXIF and ICC profile kept
so that :func:`write_image` can put them back.

Pillow does most of the work. Where it is not exact, irx does it itself:

* 16-bit colour or grey+alpha PNG/TIFF (Pillow reduces them to 8 bits): read
  with OpenCV, metadata still read with Pillow.
* 16-bit PNG is written with OpenCV (irx's own tiny encoder for grey+alpha,
  which OpenCV cannot encode); iCCP and eXIf chunks are added by
  :func:`png_set_metadata`.
* Every TIFF is written by irx's own baseline writer (Deflate + predictor),
  because Pillow cannot hold 16-bit colour and neither OpenCV nor Pillow's
  libtiff path writes EXIF sub-IFDs.
* Orientation: applied to the pixels with numpy and reset to 1 by patching
  the tag in place, so the rest of the EXIF stays byte-identical. In TIFF
  files the tag is neutralised before decoding, since some decoders apply it.

AVIF, HEIC, JPEG XL, GIF, animated WebP and PNG, EXR and float TIFF are
handled by :mod:`irx.media.formats` (optional libraries: ``irx[formats]``).

What is not kept: XMP, IPTC, PNG text chunks, DPI outside TIFF, 16-bit PNG
tRNS transparency. JPEG and BMP drop alpha;
WebP stores grey as RGB; 16-bit grey+alpha TIFF is written as RGBA.
"""

from __future__ import annotations

import io
import logging
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, TiffImagePlugin, UnidentifiedImageError

from irx.errors import InputError, UsageError
from irx.media import formats as _extra
from irx.media.atomic import OutputExistsError, atomic_write_bytes

__all__ = [
    "IMAGE_EXTENSIONS",
    "DecodedImage",
    "decode_image_bytes",
    "encode_image",
    "format_for_path",
    "is_image_path",
    "png_set_metadata",
    "read_image",
    "to_float",
    "to_uint",
    "written_bit_depth",
    "write_image",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", *_extra.EXTRA_EXTENSIONS}
)
_EXT_TO_FORMAT = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    **_extra.EXTRA_EXTENSIONS,  # AVIF, HEIC, JPEG XL, GIF, EXR: irx.media.formats
}
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF", "MPO": "JPEG", "HEIC": "HEIF"}
SUPPORTED_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", *_extra.EXTRA_FORMATS)
# MPO is how Pillow names camera JPEGs that carry extra pictures (e.g. previews).
_PIL_OPEN_FORMATS = ["PNG", "JPEG", "MPO", "WEBP", "TIFF", "BMP"]
_ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}
_METADATA_FORMATS = {"PNG", "JPEG", "WEBP", "TIFF"}
_SIXTEEN_BIT_FORMATS = {"PNG", "TIFF"}

DEFAULT_QUALITY = 95
DEFAULT_COMPRESS_LEVEL = (
    3  # zlib level for PNG and TIFF: much faster than 6-9 for slightly larger files
)

_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION = 0x0112
# IFD0 tags worth carrying from a TIFF file's own tags into EXIF; the others
# (strip offsets, compression, sample layout, ...) describe that file's pixels.
_TIFF_EXIF_TAGS = (
    270,
    271,
    272,
    274,
    282,
    283,
    296,
    305,
    306,
    315,
    33432,
    34665,
    34853,
)
_EXIF_IFD, _GPS_IFD, _INTEROP_IFD = 34665, 34853, 40965
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class DecodedImage:
    """A decoded still image; see the module docstring for the conventions."""

    pixels: (
        np.ndarray
    )  # float32 HWC in [0,1] (or native uint8/uint16), C == 3 (RGB) or 1 (grey), orientation applied
    alpha: np.ndarray | None  # float32 HW in [0,1] or None
    bit_depth: int  # 8 or 16, from the decoded sample type (16 or 32 for float samples)
    format: str  # "PNG", "JPEG", "WEBP", "TIFF" or "BMP"
    exif: bytes | None  # b"Exif\0\0" + TIFF-structured EXIF, orientation reset to 1
    icc_profile: bytes | None
    path: Path | None = None
    # Damage the decoder worked around (the pixels are partly made up): one line each.
    warnings: list[str] = field(default_factory=list)
    # Float samples (EXR, float TIFF): pixels may leave [0, 1] and are written as float again.
    is_float: bool = False
    animation: _extra.Animation | None = None  # every frame of an animated GIF/WebP/PNG (irx.media.formats)

    @property
    def is_grey(self) -> bool:
        return self.pixels.shape[2] == 1

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def is_image_path(path: Path | str) -> bool:
    """True if the file name has one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def format_for_path(path: Path | str) -> str:
    """The format name ("PNG", ...) for an output path's extension; UsageError if unknown."""
    path = Path(path)
    fmt = _EXT_TO_FORMAT.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise UsageError(
            f"{path}: cannot tell the image format from the extension; use one of {known}"
        )
    return fmt


def to_uint(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float [0,1] -> uint8 (bit_depth 8) or uint16 (16), clipped and rounded; NaN -> 0.

    Samples already in the wanted integer type pass through; the other integer type is rescaled.
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, not {bit_depth}")
    pixels = np.asarray(pixels)
    wanted = np.uint8 if bit_depth == 8 else np.uint16
    if pixels.dtype == wanted:
        return pixels
    if pixels.dtype in (np.uint8, np.uint16):
        pixels = _to_float(pixels)
    top = 255.0 if bit_depth == 8 else 65535.0
    scaled = np.nan_to_num(
        np.asarray(pixels, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0
    )
    scaled = np.clip(scaled, 0.0, 1.0) * np.float32(top)
    return np.rint(scaled).astype(np.uint8 if bit_depth == 8 else np.uint16)


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8/uint16 samples -> float32 in [0,1], as the decoder makes them; floats pass through as float32."""
    if pixels.dtype in (np.uint8, np.uint16):
        return _to_float(pixels)
    return np.asarray(pixels, dtype=np.float32)


def written_bit_depth(bit_depth: int, format: str) -> int:
    """The bit depth :func:`write_image` stores an image of ``bit_depth`` in as ``format``."""
    return 16 if bit_depth >= 16 and _normalise_format(format) in _SIXTEEN_BIT_FORMATS else 8


def _to_float(samples: np.ndarray) -> np.ndarray:
    top = 255.0 if samples.dtype == np.uint8 else 65535.0
    return samples.astype(np.float32) / np.float32(top)


# --------------------------------------------------------------------------- EXIF


def _normalise_exif(raw: bytes | None) -> bytes | None:
    """Return ``b"Exif\\0\\0" + TIFF data``, or None if ``raw`` is not EXIF."""
    if not raw:
        return None
    body = raw.removeprefix(_EXIF_HEADER)
    if body[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    return _EXIF_HEADER + body


def _orientation_slot(
    buf: bytes, base: int = len(_EXIF_HEADER)
) -> tuple[int, str] | None:
    """Offset in ``buf`` of IFD0's orientation value (a SHORT) and its byte order.

    ``base`` is where the TIFF structure starts: 6 in EXIF blocks, 0 in TIFF files.
    """
    tiff = memoryview(buf)[base:]
    if tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    order = "<" if tiff[:2] == b"II" else ">"
    try:
        (ifd0,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd0)
        for i in range(count):
            entry = ifd0 + 2 + 12 * i
            tag, typ, n = struct.unpack_from(order + "HHI", tiff, entry)
            if tag == _ORIENTATION:
                if (
                    typ == 3 and n == 1
                ):  # SHORT, stored left-justified in the value field
                    return base + entry + 8, order
                return None
    except struct.error:
        return None
    return None


def _split_orientation(exif: bytes | None) -> tuple[int, bytes | None]:
    """Return (orientation, EXIF with orientation reset to 1)."""
    if exif is None:
        return 1, None
    slot = _orientation_slot(exif)
    if slot is not None:
        offset, order = slot
        (orientation,) = struct.unpack_from(order + "H", exif, offset)
        patched = bytearray(exif)
        struct.pack_into(order + "H", patched, offset, 1)
        return (orientation if 1 <= orientation <= 8 else 1), bytes(patched)
    # No standard SHORT orientation entry: let Pillow look (odd types), else keep as is.
    try:
        parsed = Image.Exif()
        parsed.load(exif)
        orientation = parsed.get(_ORIENTATION)
        if orientation is None:
            return 1, exif
        parsed[_ORIENTATION] = 1
        orientation = int(orientation)
        return (orientation if 1 <= orientation <= 8 else 1), _normalise_exif(
            parsed.tobytes()
        )
    except Exception:  # malformed EXIF must never stop an image from loading
        return 1, exif


def _sub_ifd(exif: Image.Exif, tag: int) -> dict[int, object]:
    """The EXIF or GPS sub-IFD as a dict, with the nested Interop IFD resolved.

    Left as an integer, the Interop pointer would point into the old file.
    """
    sub = dict(exif.get_ifd(tag))
    if tag == _EXIF_IFD and _INTEROP_IFD in sub and not isinstance(sub[_INTEROP_IFD], dict):
        interop = dict(exif.get_ifd(_INTEROP_IFD))
        if interop:
            sub[_INTEROP_IFD] = interop
        else:
            del sub[_INTEROP_IFD]
    return sub


def _tiff_file_exif(im: Image.Image) -> bytes | None:
    """EXIF built from a TIFF file's own tags (whitelisted) and its EXIF/GPS sub-IFDs."""
    try:
        source = im.getexif()
        out = Image.Exif()
        for tag in _TIFF_EXIF_TAGS:
            if tag not in source:
                continue
            if tag in (_EXIF_IFD, _GPS_IFD):
                sub = _sub_ifd(source, tag)
                if sub:
                    out[tag] = sub
            else:
                out[tag] = source[tag]
        if not len(out):
            return None
        return _normalise_exif(out.tobytes())
    except Exception:
        return None


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Transform an HW or HWC array the way PIL.ImageOps.exif_transpose does."""
    if orientation == 2:
        out = array[:, ::-1]
    elif orientation == 3:
        out = array[::-1, ::-1]
    elif orientation == 4:
        out = array[::-1]
    elif orientation == 5:
        out = array.swapaxes(0, 1)
    elif orientation == 6:
        out = np.rot90(array, -1)
    elif orientation == 7:
        out = array.swapaxes(0, 1)[::-1, ::-1]
    elif orientation == 8:
        out = np.rot90(array, 1)
    else:
        return array
    return np.ascontiguousarray(out)


# --------------------------------------------------------------------------- PNG chunks


def _png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, payload start, payload end) for each chunk; ValueError if cut short."""
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG stream")
    chunks = []
    pos = len(_PNG_SIGNATURE)
    while True:
        if pos + 8 > len(data):
            raise ValueError("PNG data ends before its IEND chunk")
        length, kind = struct.unpack_from(">I4s", data, pos)
        start, end = pos + 8, pos + 8 + length
        if end + 4 > len(data):
            raise ValueError("PNG data ends inside a chunk")
        chunks.append((kind, start, end))
        pos = end + 4
        if kind == b"IEND":
            return chunks


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_set_metadata(
    png: bytes, icc_profile: bytes | None, exif: bytes | None
) -> bytes:
    """Return ``png`` with its iCCP/sRGB/eXIf chunks replaced by the given metadata.

    The new chunks go right after IHDR, before PLTE and IDAT as the PNG spec asks.
    sRGB is dropped when an ICC profile is written (the spec allows only one).
    """
    chunks = _png_chunks(png)
    drop = {b"eXIf"}
    extra = b""
    if icc_profile:
        drop |= {b"iCCP", b"sRGB"}
        extra += _png_chunk(
            b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)
        )
    if exif:
        extra += _png_chunk(b"eXIf", exif.removeprefix(_EXIF_HEADER))
    out = [_PNG_SIGNATURE]
    for kind, start, end in chunks:
        if kind in drop:
            continue
        out.append(png[start - 8 : end + 4])
        if kind == b"IHDR":
            out.append(extra)
    return b"".join(out)


def _png_exif(data: bytes) -> bytes | None:
    """The eXIf chunk of a PNG stream, wherever it sits."""
    for kind, start, end in _png_chunks(data):
        if kind == b"eXIf":
            return _normalise_exif(data[start:end])
    return None


def _encode_png_raw(samples: np.ndarray, level: int) -> bytes:
    """Minimal PNG encoder for uint16 grey+alpha (OpenCV encodes only 1, 3 or 4 channels)."""
    h, w, c = samples.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    depth = samples.dtype.itemsize * 8
    rows = (
        samples.astype(">u2" if depth == 16 else np.uint8).reshape(h, -1).view(np.uint8)
    )
    # "Up" filter (type 2): each row minus the row above, bytewise; cheap and vectorised.
    filtered = rows.copy()
    filtered[1:] -= rows[:-1]
    body = np.empty((h, filtered.shape[1] + 1), np.uint8)
    body[:, 0] = 2
    body[0, 0] = 0  # the first row has no row above; store it unfiltered
    body[0, 1:] = rows[0]
    body[1:, 1:] = filtered[1:]
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(body.tobytes(), level))
        + _png_chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------- TIFF writer


def _encode_tiff(
    samples: np.ndarray,
    icc_profile: bytes | None,
    exif: bytes | None,
    level: int = DEFAULT_COMPRESS_LEVEL,
) -> bytes:
    """Baseline little-endian TIFF, 8 or 16 bits, 1-4 channels, Deflate + predictor 2.

    Used for every TIFF irx writes, because Pillow cannot hold 16-bit colour and
    OpenCV cannot write ICC or EXIF into TIFF. Layout: header, IFD (with ICC and
    EXIF/GPS sub-IFDs, serialised by Pillow), then the strips.
    """
    h, w, c = samples.shape
    bits = samples.dtype.itemsize * 8
    # Horizontal differencing (TIFF predictor 2) makes photos compress far better.
    diff = samples.copy()
    diff[:, 1:] -= samples[:, :-1]
    raw = diff.astype("<u2" if bits == 16 else np.uint8, copy=False)
    rows_per_strip = max(1, min(h, (1 << 20) // max(1, w * c * samples.dtype.itemsize)))
    strips = [
        zlib.compress(raw[y : y + rows_per_strip].tobytes(), level)
        for y in range(0, h, rows_per_strip)
    ]
    relative, pos = [], 0
    for strip in strips:
        relative.append(pos)
        pos += len(strip)

    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    resolution: dict[int, object] = {282: 72, 283: 72, 296: 2}
    if exif:
        parsed = Image.Exif()
        parsed.load(exif)
        for tag in _TIFF_EXIF_TAGS:
            if tag not in parsed:
                continue
            if tag in (_EXIF_IFD, _GPS_IFD):
                sub = _sub_ifd(parsed, tag)
                if sub:
                    ifd[tag] = sub
            elif tag in resolution:
                resolution[tag] = parsed[tag]
            else:
                ifd[tag] = parsed[tag]
    for tag, value in resolution.items():
        ifd[tag] = value
    ifd[256] = w
    ifd[257] = h
    ifd[258] = (bits,) * c
    ifd[259] = 8  # Adobe Deflate
    ifd[262] = 2 if c >= 3 else 1  # RGB or BlackIsZero
    # Pillow adds the end of the IFD to StripOffsets, so these are relative to the data.
    ifd[273] = tuple(relative)
    ifd[277] = c
    ifd[278] = rows_per_strip
    ifd[279] = tuple(len(s) for s in strips)
    ifd[284] = 1  # chunky
    ifd[317] = 2  # horizontal predictor
    if c in (2, 4):
        ifd[338] = (2,)  # unassociated alpha
    ifd[339] = (1,) * c  # unsigned integers
    if 305 not in ifd:
        ifd[305] = "irx"
    if icc_profile:
        ifd[34675] = icc_profile
        ifd.tagtype[34675] = 7  # UNDEFINED
    for tag in (273, 279, 278):
        ifd.tagtype[tag] = 4  # LONG, whatever the values
    header = b"II*\x00" + struct.pack("<I", 8)
    return header + ifd.tobytes(8) + b"".join(strips)


# --------------------------------------------------------------------------- decoding


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _sniff_format(data: bytes) -> str | None:
    """The supported format whose signature starts ``data``, if any."""
    if data.startswith(_PNG_SIGNATURE[:4]):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None  # BMP's two-letter signature is too weak to tell a cut BMP from text


def _open_formats() -> list[str]:
    # Older Pillow registers MPO as its own opener, newer ones open it through JPEG.
    Image.init()
    return [f for f in _PIL_OPEN_FORMATS if f in Image.OPEN]


def _open_pil(data: bytes, name: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=_open_formats())
    except UnidentifiedImageError:
        pass
    except Image.DecompressionBombError as exc:
        raise InputError(
            f"{name}: image is too large to process safely ({_one_line(exc)})"
        ) from None
    except Exception as exc:
        raise InputError(f"{name}: corrupt image header ({_one_line(exc)})") from None
    # Name the format when Pillow knows it but irx does not handle it.
    other = None
    try:
        with Image.open(io.BytesIO(data)) as probe:
            other = probe.format
    except Exception:
        pass
    supported = ", ".join(SUPPORTED_FORMATS)
    looks_like = _sniff_format(data)
    if looks_like:
        raise InputError(
            f"{name}: looks like a {looks_like} file but cannot be read; it is truncated or corrupt"
        )
    if other:
        raise InputError(
            f"{name}: {other} images are not supported; convert it to one of {supported}"
        )
    raise InputError(f"{name}: not a recognised image file (supported: {supported})")


def _container_bits(im: Image.Image, data: bytes, fmt: str) -> tuple[int, int]:
    """(bits per sample, samples per pixel) as the file declares them, 0 if unknown."""
    if fmt == "PNG" and len(data) >= 26:
        depth, colour_type = data[24], data[25]
        return depth, {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour_type, 0)
    if fmt == "TIFF":
        tags = getattr(im, "tag_v2", {})
        bits = tags.get(258, (0,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        return int(max(bits)), int(tags.get(277, len(bits)))
    return 8, 0


def _decode_cv2(data: bytes, im: Image.Image, fmt: str, samples: int) -> np.ndarray:
    """16-bit colour or grey+alpha PNG/TIFF via OpenCV; returns uint16 HWC (RGB[A] or grey[+alpha])."""
    if fmt == "PNG":
        _png_chunks(data)  # libpng may accept a stream cut after IDAT; insist on IEND
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError("OpenCV could not decode the pixel data")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    elif arr.shape[2] == 4:
        arr = arr[:, :, [2, 1, 0, 3]]
        if samples == 2:  # grey+alpha that OpenCV expanded to BGRA
            arr = arr[:, :, [0, 3]]
    if fmt == "TIFF" and arr.shape[2] in (2, 4):
        extra = getattr(im, "tag_v2", {}).get(338, (2,))
        if (extra[0] if isinstance(extra, tuple) else extra) == 1:
            arr = _unpremultiply(arr)
    return np.ascontiguousarray(arr)


def _unpremultiply(arr: np.ndarray) -> np.ndarray:
    """Associated (premultiplied) alpha -> straight alpha, as Pillow does for 8 bits."""
    top = np.iinfo(arr.dtype).max
    colour = arr[:, :, :-1].astype(np.float64)
    alpha = arr[:, :, -1:].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        straight = np.where(alpha > 0, colour * top / alpha, 0.0)
    out = arr.copy()
    out[:, :, :-1] = np.clip(np.rint(straight), 0, top).astype(arr.dtype)
    return out


def _is_grey_rgb(rgb: np.ndarray) -> bool:
    return bool(
        np.array_equal(rgb[:, :, 0], rgb[:, :, 1])
        and np.array_equal(rgb[:, :, 1], rgb[:, :, 2])
    )


def _icc_colour_space(icc: bytes | None) -> bytes | None:
    return icc[16:20] if icc and len(icc) >= 128 else None


def _decode_pil(
    im: Image.Image, bits: int, name: str
) -> tuple[np.ndarray, bytes | None]:
    """Decode with Pillow; returns (uint8/uint16 HWC samples, ICC profile to keep)."""
    im.load()
    icc = im.info.get("icc_profile") or None
    mode = im.mode
    has_transparency = "transparency" in im.info
    if mode in ("P", "PA"):
        rgba = np.asarray(
            im.convert("RGBA" if (mode == "PA" or has_transparency) else "RGB")
        )
        if _is_grey_rgb(rgba):  # palette images of grey levels stay grey
            keep = [0, 3] if rgba.shape[2] == 4 else [0]
            return np.ascontiguousarray(rgba[:, :, keep]), icc
        return rgba, icc
    if mode == "1":
        return np.asarray(im.convert("L"))[:, :, None], icc
    if mode in ("L", "RGB") and has_transparency:
        return np.asarray(im.convert("LA" if mode == "L" else "RGBA")), icc
    if mode in ("L", "LA", "RGB", "RGBA"):
        arr = np.asarray(im)
        return (arr[:, :, None] if arr.ndim == 2 else arr), icc
    if mode in ("La", "RGBa"):
        return np.asarray(im.convert(mode.upper())), icc
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)[:, :, None], icc
    if mode == "I" and bits == 16:  # 16-bit grey that Pillow widened to 32 bits
        return np.clip(np.asarray(im), 0, 65535).astype(np.uint16)[:, :, None], icc
    if mode == "CMYK":
        return _cmyk_to_rgb(im, icc), None
    if mode in ("RGBX", "YCbCr"):
        if _icc_colour_space(icc) not in (None, b"RGB "):
            icc = None
        return np.asarray(im.convert("RGB")), icc
    raise InputError(
        f"{name}: {mode} images ({bits}-bit) are not supported; convert it to 8- or 16-bit RGB or grey"
    )


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> np.ndarray:
    """CMYK -> sRGB, through the embedded profile when there is one (the result is sRGB)."""
    if icc:
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            target = ImageCms.createProfile("sRGB")
            converted = ImageCms.profileToProfile(im, source, target, outputMode="RGB")
            if converted is not None:
                return np.asarray(converted)
        except Exception:
            pass  # unusable profile: fall back to Pillow's plain conversion
    return np.asarray(im.convert("RGB"))


def decode_image_bytes(data: bytes, name: str = "<bytes>", *, native: bool = False) -> DecodedImage:
    """Decode an encoded image; raises InputError (one line) for anything unusable.

    ``native``: pixels in the file's own sample type (uint8 or uint16) instead of float32, e.g. for the
    engine, which takes them across the bus at a quarter or half of float32's size.
    """
    if not data:
        raise InputError(f"{name}: empty file (0 bytes); it is not an image")
    extra = _extra.decode_extra(data, name)  # AVIF, HEIC, JPEG XL, GIF, animated WebP/PNG, EXR, float TIFF
    if extra is not None:
        return extra
    # A TIFF's orientation is a tag of the file itself, which some decoders apply
    # (Pillow and OpenCV, depending on version and compression). Reset it to 1
    # in a copy so that no decoder rotates, and apply it below like for EXIF.
    file_orientation = None
    slot = _orientation_slot(data, 0)
    if slot is not None:
        (value,) = struct.unpack_from(slot[1] + "H", data, slot[0])
        if value != 1:
            patched = bytearray(data)
            struct.pack_into(slot[1] + "H", patched, slot[0], 1)
            data = bytes(patched)
            file_orientation = value if 1 <= value <= 8 else 1
    im = _open_pil(data, name)
    try:
        fmt = _FORMAT_ALIASES.get(im.format or "", im.format or "")
        bits, samples = _container_bits(im, data, fmt)
        try:
            if fmt in _SIXTEEN_BIT_FORMATS and bits == 16 and samples >= 2:
                arr = _decode_cv2(data, im, fmt, samples)
                icc = im.info.get("icc_profile") or None
            else:
                arr, icc = _decode_pil(im, bits, name)
        except InputError:
            raise
        except Image.DecompressionBombError as exc:
            raise InputError(
                f"{name}: image is too large to process safely ({_one_line(exc)})"
            ) from None
        except Exception as exc:
            raise InputError(
                f"{name}: cannot decode this {fmt} file, it is truncated or corrupt ({_one_line(exc)})"
            ) from None
        if fmt == "TIFF":
            raw_exif = _tiff_file_exif(im)
        else:
            raw_exif = _normalise_exif(im.info.get("exif"))
            if raw_exif is None and fmt == "PNG":
                try:
                    raw_exif = _png_exif(data)
                except ValueError:
                    raw_exif = None
    finally:
        im.close()

    damage = _jpeg_damage(data) if fmt == "JPEG" else None
    warnings = [damage] if damage else []
    orientation, exif = _split_orientation(raw_exif)
    if file_orientation is not None:
        orientation = file_orientation
    arr = _apply_orientation(arr, orientation)
    colour = 3 if arr.shape[2] >= 3 else 1
    # native: a writable copy (Pillow's arrays are read-only, which torch warns about when it wraps them)
    pixels = np.array(arr[:, :, :colour], order="C") if native else _to_float(arr[:, :, :colour])
    alpha = _to_float(arr[:, :, colour]) if arr.shape[2] in (2, 4) else None
    return DecodedImage(
        pixels=pixels,
        alpha=alpha,
        bit_depth=16 if arr.dtype == np.uint16 else 8,
        format=fmt,
        exif=exif,
        icc_profile=icc,
        warnings=warnings,
    )


def _jpeg_damage(data: bytes) -> str | None:
    """A one-line warning if the JPEG's compressed data is damaged, else None.

    libjpeg conceals damage in the middle of a JPEG (grey or smeared blocks) and Pillow reports nothing,
    so the file is decoded a second time by FFmpeg's decoder, told to fail on any error it would hide.
    Features that decoder lacks (e.g. arithmetic coding) are not damage and give no warning.
    """
    try:
        import av  # noqa: PLC0415 - PyAV is only needed for JPEG inputs here

        context = av.CodecContext.create("mjpeg", "r")
        context.options = {"err_detect": "explode"}
        context.decode(av.Packet(data))
        context.decode(None)
    except ImportError:
        return None
    except av.error.InvalidDataError:
        return "the JPEG data is damaged; part of the image was made up by the decoder"
    except (av.error.FFmpegError, ValueError):
        return None
    return None


def read_image(path: Path | str, *, native: bool = False) -> DecodedImage:
    """Read and decode an image file; InputError (one line) for anything unusable (``native``: see
    :func:`decode_image_bytes`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not an image file") from None
    except PermissionError:
        raise InputError(
            f"{path}: permission denied; check the file's permissions"
        ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({_one_line(exc)})") from None
    image = decode_image_bytes(data, name=str(path), native=native)
    image.path = path
    return image


# --------------------------------------------------------------------------- encoding


def _normalise_format(fmt: str) -> str:
    upper = fmt.upper().lstrip(".")
    upper = _FORMAT_ALIASES.get(upper, upper)
    if upper not in SUPPORTED_FORMATS:
        raise UsageError(
            f"unsupported output format {fmt!r}; use one of {', '.join(SUPPORTED_FORMATS)}"
        )
    return upper


def _as_hwc(pixels: np.ndarray) -> np.ndarray:
    arr = np.asarray(pixels)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3):
        raise ValueError(
            f"pixels must be HWC with 1 or 3 channels, got shape {arr.shape}"
        )
    return arr


def _fit_alpha(alpha: np.ndarray, height: int, width: int) -> np.ndarray:
    """Alpha at the pixel size; resized (bilinear) when the colour was e.g. upscaled."""
    alpha = np.asarray(alpha, dtype=np.float32)
    if alpha.ndim == 3:
        alpha = alpha[:, :, 0]
    if alpha.shape != (height, width):
        alpha = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR)
    return alpha


def encode_image(
    image: DecodedImage,
    format: str,
    *,
    quality: int | None = None,
    compress_level: int = DEFAULT_COMPRESS_LEVEL,
) -> bytes:
    """Encode ``image`` to bytes in ``format``; see :func:`write_image` for what is kept."""
    fmt = _normalise_format(format)
    extra = _extra.encode_extra(image, fmt, quality)
    if extra is not None:
        return extra
    pixels = _as_hwc(image.pixels)
    h, w = pixels.shape[:2]
    depth = written_bit_depth(image.bit_depth, fmt)
    if fmt == "WEBP" and pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)  # WebP has no grey mode
    grey = pixels.shape[2] == 1
    channels = [to_uint(pixels, depth)]
    if image.alpha is not None and fmt in _ALPHA_FORMATS:
        channels.append(to_uint(_fit_alpha(image.alpha, h, w), depth)[:, :, None])
    samples = np.concatenate(channels, axis=2) if len(channels) > 1 else channels[0]

    icc, exif = None, None
    if fmt in _METADATA_FORMATS:
        icc = image.icc_profile or None
        # A profile for the other colour model would be wrong (libpng rejects it too).
        if icc is not None and _icc_colour_space(icc) != (b"GRAY" if grey else b"RGB "):
            icc = None
        _, exif = _split_orientation(_normalise_exif(image.exif))

    if fmt == "TIFF":
        if depth == 16 and samples.shape[2] == 2:
            # Neither Pillow nor OpenCV reads 16-bit grey+alpha TIFF: store it as RGBA.
            samples = samples[:, :, [0, 0, 0, 1]]
            if icc is not None:
                icc = None  # a grey profile no longer fits
        return _encode_tiff(samples, icc, exif, level=compress_level)
    if fmt == "PNG" and depth == 16:
        if samples.shape[2] == 2:
            png = _encode_png_raw(samples, compress_level)
        else:
            bgr = samples[:, :, ::-1] if samples.shape[2] == 3 else samples
            if samples.shape[2] == 4:
                bgr = samples[:, :, [2, 1, 0, 3]]
            ok, buf = cv2.imencode(
                ".png",
                np.ascontiguousarray(bgr),
                [cv2.IMWRITE_PNG_COMPRESSION, compress_level],
            )
            if not ok:
                raise RuntimeError("OpenCV failed to encode a 16-bit PNG")
            png = buf.tobytes()
        return png_set_metadata(png, icc, exif) if (icc or exif) else png

    pil = Image.fromarray(samples[:, :, 0] if samples.shape[2] == 1 else samples)
    params: dict[str, object] = {}
    if icc:
        params["icc_profile"] = icc
    if fmt == "JPEG":
        q = DEFAULT_QUALITY if quality is None else int(quality)
        # 4:4:4 chroma at high quality: restored detail should not be halved again.
        params.update(quality=q, subsampling=0 if q >= 90 else 2)
        if exif:
            if len(exif) + 2 > 0xFFFF:
                log.warning(
                    "EXIF block of %d bytes is too large for JPEG; dropped", len(exif)
                )
            else:
                params["exif"] = exif
    elif fmt == "WEBP":
        params.update(
            quality=DEFAULT_QUALITY if quality is None else int(quality), method=4
        )
        if exif:
            params["exif"] = exif[len(_EXIF_HEADER) :]
    elif fmt == "PNG":
        params["compress_level"] = compress_level
        if exif:
            params["exif"] = exif[len(_EXIF_HEADER) :]
    buf = io.BytesIO()
    pil.save(buf, format=fmt, **params)
    return buf.getvalue()


def write_image(
    path: Path | str,
    image: DecodedImage,
    *,
    format: str | None = None,
    quality: int | None = None,
    overwrite: bool = False,
    compress_level: int = DEFAULT_COMPRESS_LEVEL,
) -> Path:
    """Encode ``image`` and write it atomically to ``path``; returns the path.

    The format comes from the extension unless ``format`` is given. Kept:
    16 bits in PNG and TIFF (8 bits elsewhere); grey as grey (except WebP,
    which has no grey mode); alpha in PNG, WebP and TIFF (dropped in JPEG and
    BMP); EXIF (orientation 1) and ICC in JPEG, PNG, WebP and TIFF. ``quality``
    (default 95) applies to JPEG and WebP, ``compress_level`` (zlib, default 3)
    to PNG and TIFF. Raises OutputExistsError if ``path``
    exists and ``overwrite`` is False.
    """
    path = Path(path)
    fmt = _normalise_format(format) if format else format_for_path(path)
    if not overwrite and path.exists():
        # Fail before spending time encoding; atomic_write_bytes checks again at the rename.
        raise OutputExistsError(
            f"{path}: already exists; use --overwrite to replace it or choose another output"
        )
    data = encode_image(image, fmt, quality=quality, compress_level=compress_level)
    return atomic_write_bytes(path, data, overwrite=overwrite)
