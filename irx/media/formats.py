"""Image formats beyond image_io's core five: AVIF, HEIC/HEIF, JPEG XL, GIF, animated WebP and PNG, EXR, float TIFF.

:mod:`irx.media.image_io` hands these to :func:`decode_extra` and :func:`encode_extra`. The libraries are
optional (``pip install 'irx[formats]'``) and imported only when such a file is met:

* AVIF: Pillow's own plugin (Pillow >= 11.2 built with libavif), else ``pillow-avif-plugin``; 8 bits.
* HEIC/HEIF: ``pillow-heif``; 10/12-bit files are read as 16 bits, 16-bit images written as 12 bits.
* JPEG XL: ``pillow-jxl-plugin``; 16 bits for grey, 8 bits for colour (Pillow has no 16-bit RGB mode).
* GIF (Pillow): every frame, each frame's duration, the loop count and each frame's disposal.
* Animated WebP (Pillow): every frame, durations and loop count (WebP has no per-frame disposal to keep).
* Animated PNG (APNG, Pillow): every frame (8 bits), durations, loop count and disposal; AVIF and JPEG XL
  animations keep their frames and durations the same way.
* EXR (``openexr``) and float TIFF (``tifffile``): float samples stay float (half stays half), values are
  passed as stored (EXR is usually linear light; nothing is converted).

``quality=100`` asks for the lossless mode where the format has one (HEIF, JPEG XL, WebP; AVIF gets its
best lossy setting, 4:4:4). Orientation in these formats is applied by their decoders, so the EXIF kept
has its orientation reset to 1 and is not applied again.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageSequence

from irx.errors import InputError, UsageError

if TYPE_CHECKING:
    from irx.media.image_io import DecodedImage

__all__ = [
    "EXTRA_EXTENSIONS",
    "EXTRA_FORMATS",
    "Animation",
    "Frame",
    "decode_extra",
    "encode_extra",
    "keeps_animation",
    "require",
    "restore_frames",
    "sniff_extension",
]

INSTALL_HINT = "pip install 'irx[formats]'"
EXTRA_EXTENSIONS = {
    ".avif": "AVIF",
    ".heic": "HEIF",
    ".heif": "HEIF",
    ".jxl": "JXL",
    ".gif": "GIF",
    ".exr": "EXR",
}
EXTRA_FORMATS = ("AVIF", "HEIF", "JXL", "GIF", "EXR")
_ALPHA = {"AVIF", "HEIF", "JXL", "GIF", "EXR", "WEBP", "TIFF"}
_DEFAULT_QUALITY = 95
_EXR_MAGIC = b"\x76\x2f\x31\x01"
_JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_SAMPLE_FORMAT, _IEEE_FLOAT = 339, 3


@dataclass
class Frame:
    """One frame of an animation, as DecodedImage holds a still: float32 HWC pixels, HW alpha or None."""

    pixels: np.ndarray
    alpha: np.ndarray | None
    duration_ms: int
    disposal: int | None = None  # GIF's disposal method (0-3); None where the format has none


@dataclass
class Animation:
    """Every frame of an animated file (the first one included) and how it plays."""

    frames: list[Frame]
    loop: int | None  # 0 = forever, N = N more times, None = played once (no loop entry)


# --------------------------------------------------------------------------- sniffing


def _bmff_brand(data: bytes) -> bytes | None:
    return data[8:12] if data[4:8] == b"ftyp" else None


def _is_float_tiff(data: bytes) -> bool:
    """True if the first IFD of a TIFF says its samples are IEEE floats (SampleFormat 3)."""
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return False
    order = "<" if data[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack_from(order + "I", data, 4)
        (count,) = struct.unpack_from(order + "H", data, ifd)
        for i in range(count):
            tag, typ, n = struct.unpack_from(order + "HHI", data, ifd + 2 + 12 * i)
            if tag == _SAMPLE_FORMAT and typ == 3:  # SHORTs; the first is inline in every layout
                (value,) = struct.unpack_from(order + "H", data, ifd + 2 + 12 * i + 8)
                if n > 2:  # more than two SHORTs live elsewhere
                    (offset,) = struct.unpack_from(order + "I", data, ifd + 2 + 12 * i + 8)
                    (value,) = struct.unpack_from(order + "H", data, offset)
                return value == _IEEE_FLOAT
    except struct.error:
        return False
    return False


def _is_animated_webp(data: bytes) -> bool:
    # VP8X (extended) header with its animation flag set.
    return data[:4] == b"RIFF" and data[8:16] == b"WEBPVP8X" and len(data) > 20 and bool(data[20] & 0x02)


def _is_apng(data: bytes) -> bool:
    """A PNG with an animation control chunk (acTL) before its image data."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"acTL":
            return True
        if kind in (b"IDAT", b"IEND"):
            return False
        pos += 12 + length
    return False


def _extra_format(data: bytes) -> str | None:
    """Which format this module decodes ``data`` as, or None (image_io's own formats)."""
    if data.startswith(_EXR_MAGIC):
        return "EXR"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data.startswith(b"\xff\x0a") or data.startswith(_JXL_CONTAINER):
        return "JXL"
    brand = _bmff_brand(data)
    if brand in _AVIF_BRANDS:
        return "AVIF"
    if brand in _HEIF_BRANDS:
        return "HEIF"
    if _is_float_tiff(data):
        return "TIFF"
    if _is_animated_webp(data):
        return "WEBP"
    if _is_apng(data):
        return "PNG"
    return None


def sniff_extension(data: bytes) -> str | None:
    """The usual file extension for encoded image bytes (".png", ".heic", ...), or None if unknown."""
    extra = _extra_format(data)
    if extra is not None:
        return {"AVIF": ".avif", "HEIF": ".heic", "JXL": ".jxl", "GIF": ".gif", "EXR": ".exr",
                "TIFF": ".tif", "WEBP": ".webp", "PNG": ".png"}[extra]
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return ".tif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    if data[:2] == b"BM":
        return ".bmp"
    return None


# --------------------------------------------------------------------------- optional libraries


def _missing(what: str, package: str) -> UsageError:
    return UsageError(f"{what} needs the {package} package: {INSTALL_HINT}")


def _register_plugin(fmt: str) -> None:
    """Make Pillow open and save ``fmt``; UsageError naming the extra when its plugin is absent."""
    from PIL import features  # noqa: PLC0415

    if fmt == "AVIF":
        if features.check("avif"):
            return
        try:
            import pillow_avif  # noqa: F401, PLC0415 - registers itself
        except ImportError:
            raise _missing("AVIF", "pillow-avif-plugin (or a Pillow built with libavif)") from None
    elif fmt == "HEIF":
        try:
            from pillow_heif import register_heif_opener  # noqa: PLC0415
        except ImportError:
            raise _missing("HEIC/HEIF", "pillow-heif") from None
        register_heif_opener()
    elif fmt == "JXL":
        try:
            import pillow_jxl  # noqa: F401, PLC0415 - registers itself
        except ImportError:
            raise _missing("JPEG XL", "pillow-jxl-plugin") from None


def require(fmt: str) -> None:
    """UsageError naming the extra if writing ``fmt`` ("HEIF", "EXR", ...) needs a library that is absent.

    Float TIFF needs tifffile only for float images, so TIFF is not checked here.
    """
    if fmt in ("AVIF", "HEIF", "JXL"):
        _register_plugin(fmt)
    elif fmt == "EXR":
        _import("OpenEXR", "EXR", "openexr")


def keeps_animation(fmt: str) -> bool:
    """Whether irx writes every frame of an animation in ``fmt``."""
    return fmt in ("GIF", "WEBP", "PNG", "AVIF", "JXL")


def _import(module: str, what: str, package: str):  # noqa: ANN202 - a module
    import importlib  # noqa: PLC0415

    try:
        return importlib.import_module(module)
    except ImportError:
        raise _missing(what, package) from None


# --------------------------------------------------------------------------- decoding


def _one_line(exc: BaseException) -> str:
    from irx.media.image_io import _one_line as one_line  # noqa: PLC0415 - one wording for decoder errors

    return one_line(exc)


def _to_float(samples: np.ndarray) -> np.ndarray:
    if samples.dtype.kind == "f":
        return samples.astype(np.float32)
    top = 255.0 if samples.dtype == np.uint8 else 65535.0
    return samples.astype(np.float32) / np.float32(top)


def _split(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """HWC samples (1-4 channels) -> (float32 colour, float32 alpha or None)."""
    if samples.ndim == 2:
        samples = samples[:, :, None]
    colour = 3 if samples.shape[2] >= 3 else 1
    alpha = _to_float(samples[:, :, colour]) if samples.shape[2] in (2, 4) else None
    return np.ascontiguousarray(_to_float(samples[:, :, :colour])), alpha


def _pil_samples(frame: Image.Image) -> np.ndarray:
    """A Pillow frame as uint8/uint16 HWC samples: grey, grey+alpha, RGB or RGBA."""
    mode = frame.mode
    if mode in ("P", "PA"):
        transparent = mode == "PA" or "transparency" in frame.info
        frame = frame.convert("RGBA" if transparent else "RGB")
    elif mode in ("1", "CMYK", "YCbCr", "RGBX", "La", "RGBa"):
        frame = frame.convert({"1": "L", "La": "LA"}.get(mode, "RGBA" if mode == "RGBa" else "RGB"))
    elif mode in ("L", "RGB") and "transparency" in frame.info:
        frame = frame.convert("LA" if mode == "L" else "RGBA")
    if frame.mode.startswith("I;16") or frame.mode == "I":
        arr = np.clip(np.asarray(frame), 0, 65535).astype(np.uint16)
    else:
        arr = np.asarray(frame)
    return arr[:, :, None] if arr.ndim == 2 else arr


def _decoded(fmt: str, pixels: np.ndarray, alpha: np.ndarray | None, bit_depth: int, *,
             exif: bytes | None = None, icc: bytes | None = None, is_float: bool = False,
             animation: Animation | None = None) -> DecodedImage:
    from irx.media.image_io import DecodedImage, _normalise_exif, _split_orientation  # noqa: PLC0415

    _, exif = _split_orientation(_normalise_exif(exif))  # the decoder has applied it already
    return DecodedImage(pixels=pixels, alpha=alpha, bit_depth=bit_depth, format=fmt, exif=exif,
                        icc_profile=icc or None, is_float=is_float, animation=animation)


def _decode_pillow(data: bytes, fmt: str, name: str) -> DecodedImage:
    _register_plugin(fmt)
    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise InputError(f"{name}: image is too large to process safely") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's
        raise InputError(f"{name}: cannot read this {fmt} file, it is truncated or corrupt ({_one_line(exc)})") from None
    try:
        info = dict(im.info)
        frames: list[Frame] = []
        depth = 8
        for frame in ImageSequence.Iterator(im):
            samples = _pil_samples(frame)
            depth = max(depth, 16 if samples.dtype == np.uint16 else 8)
            pixels, alpha = _split(samples)
            disposal = getattr(im, "disposal_method", None) if fmt == "GIF" else frame.info.get("disposal")
            frames.append(Frame(pixels, alpha, int(frame.info.get("duration", 0) or 0), disposal))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{name}: cannot decode this {fmt} file, it is truncated or corrupt ({_one_line(exc)})") from None
    finally:
        im.close()
    if len(frames) > 1:
        # One animation, one layout: alpha on every frame if any frame is transparent, colour if any is.
        if any(f.alpha is not None for f in frames):
            for f in frames:
                if f.alpha is None:
                    f.alpha = np.ones(f.pixels.shape[:2], np.float32)
        grey = all(f.pixels.shape[2] == 1 for f in frames)
        for f in frames:
            if not grey and f.pixels.shape[2] == 1:
                f.pixels = np.repeat(f.pixels, 3, axis=2)
    first = frames[0]
    animation = Animation(frames, info.get("loop")) if len(frames) > 1 else None
    return _decoded(fmt, first.pixels, first.alpha, depth, exif=info.get("exif"), icc=info.get("icc_profile"),
                    animation=animation)


def _decode_heif(data: bytes, name: str) -> DecodedImage:
    pillow_heif = _import("pillow_heif", "HEIC/HEIF", "pillow-heif")
    try:
        heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
        samples = np.asarray(heif)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{name}: cannot decode this HEIF file, it is truncated or corrupt ({_one_line(exc)})") from None
    pixels, alpha = _split(samples)
    depth = 16 if samples.dtype == np.uint16 else 8
    return _decoded("HEIF", pixels, alpha, depth, exif=heif.info.get("exif"), icc=heif.info.get("icc_profile"))


def _decode_exr(data: bytes, name: str) -> DecodedImage:
    openexr = _import("OpenEXR", "EXR", "openexr")
    try:
        channels = openexr.File(io.BytesIO(data)).channels()
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{name}: cannot decode this EXR file, it is truncated or corrupt ({_one_line(exc)})") from None
    samples = _exr_samples(channels, name)
    pixels, alpha = _split(samples)
    return _decoded("EXR", pixels, alpha, 16 if samples.dtype == np.float16 else 32, is_float=True)


def _exr_samples(channels: dict, name: str) -> np.ndarray:
    """RGB(A) or Y(A) from the channels OpenEXR grouped; other layers are not images irx restores."""
    for key in ("RGBA", "RGB"):
        if key in channels:
            return np.asarray(channels[key].pixels)
    plain = {k: np.asarray(v.pixels) for k, v in channels.items()}
    for names in (("R", "G", "B", "A"), ("R", "G", "B"), ("Y", "A"), ("Y",)):
        if all(n in plain for n in names):
            return np.stack([plain[n] for n in names], axis=2)
    raise InputError(f"{name}: this EXR has no RGB or Y channels (it has {', '.join(sorted(plain))})")


def _decode_float_tiff(data: bytes, name: str) -> DecodedImage:
    tifffile = _import("tifffile", "float TIFF", "tifffile")
    try:
        samples = np.asarray(tifffile.imread(io.BytesIO(data)))
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{name}: cannot decode this float TIFF, it is truncated or corrupt ({_one_line(exc)})") from None
    if samples.ndim == 3 and samples.shape[0] in (1, 2, 3, 4) and samples.shape[2] > 4:
        samples = np.moveaxis(samples, 0, 2)  # planar (separate) samples
    if samples.ndim not in (2, 3) or (samples.ndim == 3 and samples.shape[2] > 4):
        raise InputError(f"{name}: float TIFF of shape {samples.shape} is not a single grey or colour image")
    pixels, alpha = _split(samples)
    return _decoded("TIFF", pixels, alpha, 16 if samples.dtype == np.float16 else 32, is_float=True)


def decode_extra(data: bytes, name: str) -> DecodedImage | None:
    """Decode ``data`` if it is one of this module's formats, else None (image_io decodes it)."""
    fmt = _extra_format(data)
    if fmt is None:
        return None
    if fmt == "EXR":
        return _decode_exr(data, name)
    if fmt == "TIFF":
        return _decode_float_tiff(data, name)
    if fmt == "HEIF":
        return _decode_heif(data, name)
    return _decode_pillow(data, fmt, name)


# --------------------------------------------------------------------------- encoding


def _frames_of(image: DecodedImage) -> list[Frame]:
    animation = image.animation
    if animation is not None and len(animation.frames) > 1:
        return animation.frames
    return [Frame(image.pixels, image.alpha, 0)]


def _samples(pixels: np.ndarray, alpha: np.ndarray | None, depth: int, *, rgb: bool = False) -> np.ndarray:
    from irx.media.image_io import _as_hwc, _fit_alpha, to_uint  # noqa: PLC0415

    pixels = _as_hwc(pixels)
    if rgb and pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    channels = [to_uint(pixels, depth)]
    if alpha is not None:
        channels.append(to_uint(_fit_alpha(alpha, *pixels.shape[:2]), depth)[:, :, None])
    return np.concatenate(channels, axis=2) if len(channels) > 1 else channels[0]


def _pil(samples: np.ndarray) -> Image.Image:
    return Image.fromarray(samples[:, :, 0] if samples.shape[2] == 1 else samples)


def _encode_pillow(image: DecodedImage, fmt: str, quality: int | None) -> bytes:
    _register_plugin(fmt)
    frames = _frames_of(image)
    # 16 bits only where Pillow's plugin takes it (grey JPEG XL); 8 elsewhere.
    grey = image.pixels.shape[2] == 1 if image.pixels.ndim == 3 else True
    depth = 16 if fmt == "JXL" and grey and image.bit_depth >= 16 and image.alpha is None else 8
    pictures = [_pil(_samples(f.pixels, f.alpha, depth, rgb=fmt in ("AVIF", "WEBP"))) for f in frames]
    q = _DEFAULT_QUALITY if quality is None else int(quality)
    params: dict[str, object] = {}
    if fmt == "AVIF":
        params.update(quality=q, subsampling="4:4:4" if q >= 90 else "4:2:0")
    elif fmt == "JXL":
        params.update(lossless=True) if q >= 100 else params.update(quality=q)
    elif fmt == "WEBP":
        params.update(lossless=True) if q >= 100 else params.update(quality=q)
    if fmt in ("AVIF", "JXL", "WEBP") and image.exif:
        params["exif"] = image.exif.removeprefix(b"Exif\x00\x00")
    if fmt in ("AVIF", "JXL", "WEBP") and image.icc_profile:
        params["icc_profile"] = image.icc_profile
    if len(pictures) > 1:
        animation = image.animation
        params.update(save_all=True, append_images=pictures[1:], duration=[f.duration_ms for f in frames])
        if animation is not None and animation.loop is not None:
            params["loop"] = animation.loop
        elif fmt == "WEBP":
            params["loop"] = 1  # WebP always has a loop count; 1 = play once
        if fmt in ("GIF", "PNG"):
            params["disposal"] = [f.disposal or 0 for f in frames]
        if fmt == "PNG":
            params["blend"] = 0  # the frames are whole pictures: each replaces what it covers
    if fmt == "GIF":
        params["optimize"] = False  # keep every palette entry the frames use
    buf = io.BytesIO()
    pictures[0].save(buf, format=fmt, **params)
    return buf.getvalue()


def _encode_heif(image: DecodedImage, quality: int | None) -> bytes:
    pillow_heif = _import("pillow_heif", "HEIC/HEIF", "pillow-heif")
    depth = 16 if image.bit_depth >= 16 else 8
    samples = _samples(image.pixels, image.alpha, depth)
    if samples.shape[2] == 2:  # no grey+alpha mode: RGBA
        samples = samples[:, :, [0, 0, 0, 1]]
    modes = {(1, 8): "L", (3, 8): "RGB", (4, 8): "RGBA", (1, 16): "L;16", (3, 16): "RGB;16", (4, 16): "RGBA;16"}
    mode = modes[(samples.shape[2], depth)]
    if depth == 16:
        # pillow-heif's 16-bit modes carry the top bits of a 16-bit sample, saved as 12 bits.
        pillow_heif.options.SAVE_HDR_TO_12_BIT = True
    h, w = samples.shape[:2]
    heif = pillow_heif.from_bytes(mode=mode, size=(w, h), data=np.ascontiguousarray(samples).tobytes())
    q = _DEFAULT_QUALITY if quality is None else int(quality)
    # Lossless needs 4:4:4 and RGB kept as RGB (matrix 0); 4:4:4 at high quality, as for JPEG.
    params: dict[str, object] = {"quality": -1, "chroma": 444, "matrix_coefficients": 0} if q >= 100 else {
        "quality": q, "chroma": 444 if q >= 90 else 420}
    if image.exif:
        params["exif"] = image.exif
    if image.icc_profile:
        params["icc_profile"] = image.icc_profile
    buf = io.BytesIO()
    heif.save(buf, **params)
    return buf.getvalue()


def _float_samples(image: DecodedImage) -> np.ndarray:
    """HWC float samples for EXR/float TIFF: half where the image is 8-bit or half already, else float32."""
    from irx.media.image_io import _as_hwc, _fit_alpha  # noqa: PLC0415

    half = image.bit_depth <= 8 or (image.is_float and image.bit_depth == 16)
    dtype = np.float16 if half else np.float32
    pixels = _as_hwc(image.pixels).astype(np.float32)
    if not image.is_float:
        pixels = np.clip(pixels, 0.0, 1.0)  # integer formats hold [0, 1]; float ones keep any value
    channels = [pixels]
    if image.alpha is not None:
        channels.append(_fit_alpha(image.alpha, *pixels.shape[:2])[:, :, None])
    return np.concatenate(channels, axis=2).astype(dtype)


def _encode_exr(image: DecodedImage) -> bytes:
    openexr = _import("OpenEXR", "EXR", "openexr")
    samples = _float_samples(image)
    names = {1: ("Y",), 2: ("Y", "A"), 3: ("R", "G", "B"), 4: ("R", "G", "B", "A")}[samples.shape[2]]
    channels = {n: np.ascontiguousarray(samples[:, :, i]) for i, n in enumerate(names)}
    header = {"compression": openexr.ZIP_COMPRESSION, "type": openexr.scanlineimage}
    buf = io.BytesIO()
    openexr.File(header, channels).write(buf)
    return buf.getvalue()


def _encode_float_tiff(image: DecodedImage) -> bytes:
    tifffile = _import("tifffile", "float TIFF", "tifffile")
    samples = _float_samples(image)
    extras = {"extrasamples": [2]} if samples.shape[2] in (2, 4) else {}  # unassociated alpha
    photometric = "rgb" if samples.shape[2] >= 3 else "minisblack"
    buf = io.BytesIO()
    tifffile.imwrite(buf, samples[:, :, 0] if samples.shape[2] == 1 else samples, photometric=photometric,
                     compression="zlib", iccprofile=image.icc_profile, **extras)
    return buf.getvalue()


def encode_extra(image: DecodedImage, fmt: str, quality: int | None = None) -> bytes | None:
    """Encode ``image`` if ``fmt`` (with this image) is this module's to write, else None (image_io does)."""
    if fmt == "EXR":
        return _encode_exr(image)
    if fmt == "TIFF":
        return _encode_float_tiff(image) if image.is_float else None
    if fmt == "HEIF":
        return _encode_heif(image, quality)
    if fmt in ("AVIF", "JXL", "GIF"):
        return _encode_pillow(image, fmt, quality)
    if fmt in ("WEBP", "PNG") and len(_frames_of(image)) > 1:  # animated WebP and APNG
        return _encode_pillow(image, fmt, quality)
    return None


# --------------------------------------------------------------------------- restoring every frame


def restore_frames(
    finished: DecodedImage,
    restore: Callable[[Sequence[np.ndarray]], list[np.ndarray]],
    fit: Callable[[np.ndarray, np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray | None]],
) -> DecodedImage:
    """Restore the frames after the first of an animation (the first is ``finished``'s pixels already).

    ``restore`` is the engine's batch restore; ``fit(source, output, alpha)`` finishes one frame's output and
    alpha as the first frame's were (output size, strength).
    """
    animation = finished.animation
    if animation is None or len(animation.frames) < 2:
        return finished
    rest = animation.frames[1:]
    outputs = restore([f.pixels for f in rest])
    frames = [replace(animation.frames[0], pixels=finished.pixels, alpha=finished.alpha)]
    for frame, pixels in zip(rest, outputs):
        out, alpha = fit(frame.pixels, pixels, frame.alpha)
        frames.append(replace(frame, pixels=out, alpha=alpha))
    return replace(finished, animation=Animation(frames, animation.loop))
