"""Face detection: the `FaceDetector` interface and YuNet (an ONNX model run by cv2.FaceDetectorYN).

A detector takes an HxWx3 uint8 RGB image and returns `Face`s with a box and 5 landmarks in the
template's order (image-left eye, image-right eye, nose tip, image-left and image-right mouth corners
for an upright face). Anything with a ``detect`` method of that shape is a detector (tests pass stubs).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from irx.errors import ModelError


@dataclass(frozen=True)
class Face:
    """One detected face: box (x, y, width, height), landmarks (5, 2) in pixels, and score."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float = 1.0


class FaceDetector(Protocol):
    def detect(self, image: np.ndarray) -> list[Face]: ...


class YuNetDetector:
    """YuNet through OpenCV. ONNX files are data (a graph and weights): loading one runs no code.

    YuNet finds faces of roughly 10 to 300 pixels, so a large photo is searched at a reduced size
    (its longer side at most ``max_side``) and the coordinates scaled back.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        score_threshold: float = 0.7,
        nms_threshold: float = 0.3,
        max_side: int = 1280,
    ) -> None:
        self.path = Path(path)
        self.max_side = max_side
        try:
            self._net = cv2.FaceDetectorYN.create(str(self.path), "", (320, 320), score_threshold, nms_threshold, 5000)
        except cv2.error as error:
            reason = str(error).strip().splitlines()[-1][:160]
            raise ModelError(f"{self.path.name}: not a YuNet face detector OpenCV can load ({reason})") from None
        self._lock = threading.Lock()  # one cv2 network must not run in two threads at once

    def detect(self, image: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        small = image
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            scale_x, scale_y = size[0] / width, size[1] / height
        else:
            scale_x = scale_y = 1.0
        bgr = np.ascontiguousarray(small[..., ::-1])
        with self._lock:
            self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, rows = self._net.detect(bgr)
        if rows is None:
            return []
        factor = np.array([scale_x, scale_y])
        faces = []
        for row in np.asarray(rows, dtype=np.float64):
            # Back to full-size pixel centres: x = (x_small + 0.5) / scale - 0.5.
            points = (row[4:14].reshape(5, 2) + 0.5) / factor - 0.5
            x, y = (row[0:2] + 0.5) / factor - 0.5
            w, h = row[2:4] / factor
            faces.append(Face((float(x), float(y), float(w), float(h)), points.astype(np.float32), float(row[14])))
        return faces
