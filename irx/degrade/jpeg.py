"""JPEG compression with OpenCV's libjpeg (4:2:0 chroma subsampling for colour, its default)."""

from __future__ import annotations

import cv2
import numpy as np

from ._util import to_uint8


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Quantise an HWC RGB (or 1-channel) float image to uint8, encode at `quality`, decode.

    OpenCV works in BGR, so colour images are swapped before encoding and after decoding.
    """
    u8 = to_uint8(img)
    colour = u8.shape[2] == 3
    src = cv2.cvtColor(u8, cv2.COLOR_RGB2BGR) if colour else u8[:, :, 0]
    ok, buf = cv2.imencode(".jpg", src, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode the image as JPEG")
    flag = cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE
    dec = cv2.imdecode(buf, flag)
    dec = cv2.cvtColor(dec, cv2.COLOR_BGR2RGB) if colour else dec[:, :, None]
    return dec.astype(np.float32) / 255.0
