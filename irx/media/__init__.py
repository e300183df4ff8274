"""Media input and output: still images (full fidelity) and atomic file writes."""

from __future__ import annotations

from irx.media.atomic import (
    OutputExistsError,
    atomic_output,
    atomic_write_bytes,
    atomic_write_with,
    cleanup_stale_temps,
    is_temp_name,
)
from irx.media.image_io import (
    IMAGE_EXTENSIONS,
    DecodedImage,
    decode_image_bytes,
    encode_image,
    format_for_path,
    is_image_path,
    read_image,
    to_uint,
    write_image,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "DecodedImage",
    "OutputExistsError",
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_with",
    "cleanup_stale_temps",
    "decode_image_bytes",
    "encode_image",
    "format_for_path",
    "is_image_path",
    "is_temp_name",
    "read_image",
    "to_uint",
    "write_image",
]
