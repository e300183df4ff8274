"""JPEG compression with OpenCV's libjpeg, at a chosen chroma subsampling.

Cameras and scanners write 4:2:2 or 4:4:4 as often as the web's 4:2:0, and the artefacts
differ (4:2:0 bleeds colour across 2x2 blocks), so the mode is a parameter.
"""

from __future__ import annotations

import cv2
import numpy as np

from ._util import to_uint8

SUBSAMPLING = {"420": 0x221111, "422": 0x211111, "444": 0x111111}


def jpeg_roundtrip(img: np.ndarray, quality: int, subsampling: str = "420") -> np.ndarray:
    """Quantise an HWC RGB (or 1-channel) float image to uint8, encode at `quality`, decode.

    OpenCV works in BGR, so colour images are swapped before encoding and after decoding.
    `subsampling` ("420", "422", "444") applies to colour images only.
    """
    if subsampling not in SUBSAMPLING:
        raise ValueError(f"unknown chroma subsampling {subsampling!r}; use 420, 422 or 444")
    u8 = to_uint8(img)
    colour = u8.shape[2] == 3
    src = cv2.cvtColor(u8, cv2.COLOR_RGB2BGR) if colour else u8[:, :, 0]
    flags = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    if colour:
        flags += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, SUBSAMPLING[subsampling]]
    ok, buf = cv2.imencode(".jpg", src, flags)
    if not ok:
        raise RuntimeError("OpenCV could not encode the image as JPEG")
    flag = cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE
    dec = cv2.imdecode(buf, flag)
    dec = cv2.cvtColor(dec, cv2.COLOR_BGR2RGB) if colour else dec[:, :, None]
    return dec.astype(np.float32) / 255.0
