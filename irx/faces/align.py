"""Face geometry: the FFHQ five-point template, alignment by a similarity transform, and paste-back.

A face is aligned by the similarity transform (rotation, uniform scale, translation) that best maps
its 5 landmarks onto the FFHQ template, the convention GFPGAN, RestoreFormer and CodeFormer were
trained with. The restored crop goes back through the inverse transform and is blended with a mask
that is zero on a band along the crop's border and rises smoothly inside it, so no seam shows and
every pixel outside the mask keeps its exact value.

Coordinates are OpenCV's: pixel centres at integers, matrices are 2x3 and map source to destination.
"""

from __future__ import annotations

import cv2
import numpy as np

# The five FFHQ landmarks in a 512x512 aligned face (image-left eye, image-right eye, nose tip,
# image-left and image-right mouth corners), as published with GFPGAN/facexlib/CodeFormer.
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.19360],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float32,
)


def template(size: int = 512) -> np.ndarray:
    """The five template points for a ``size`` x ``size`` aligned face."""
    return FFHQ_TEMPLATE_512 * np.float32(size / 512)


def alignment_matrix(landmarks: np.ndarray, size: int = 512) -> np.ndarray | None:
    """The 2x3 similarity transform from image coordinates to the aligned crop; None if degenerate."""
    points = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    if not np.isfinite(points).all():
        return None
    # LMEDS keeps one badly placed landmark from tilting the whole face.
    matrix, _ = cv2.estimateAffinePartial2D(points, template(size), method=cv2.LMEDS)
    if matrix is None or not np.isfinite(matrix).all() or abs(np.linalg.det(matrix[:, :2])) < 1e-12:
        return None
    return matrix


def apply_matrix(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through a 2x3 matrix."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp_face(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The aligned ``size`` x ``size`` crop; beyond the image edge the image is mirrored, which gives
    the face model plausible surroundings for a face cut by the frame.

    A face larger than the crop is first reduced with area averaging: a bilinear warp alone would
    alias fine detail (hair, fabric) into patterns the face model then sharpens.
    """
    shrink = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if shrink < 0.75:
        image, matrix = _reduced_source(image, matrix, size, shrink)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _reduced_source(image: np.ndarray, matrix: np.ndarray, size: int, shrink: float) -> tuple[np.ndarray, np.ndarray]:
    """The part of ``image`` the crop samples, area-reduced by ``shrink``, and the matrix from it to the crop."""
    height, width = image.shape[:2]
    corners = apply_matrix(cv2.invertAffineTransform(matrix), np.array([[0, 0], [size, 0], [0, size], [size, size]]))
    x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + 3, (width, height))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return image, matrix
    region = image[y0:y1, x0:x1]
    new_size = (max(1, round((x1 - x0) * shrink)), max(1, round((y1 - y0) * shrink)))
    reduced = cv2.resize(region, new_size, interpolation=cv2.INTER_AREA)
    fx, fy = new_size[0] / (x1 - x0), new_size[1] / (y1 - y0)
    # Reduced pixel u sits at source x = (u + 0.5) / fx - 0.5 + x0 (pixel centres).
    linear = matrix[:, :2] @ np.diag([1 / fx, 1 / fy])
    offset = matrix[:, :2] @ np.array([0.5 / fx - 0.5 + x0, 0.5 / fy - 0.5 + y0]) + matrix[:, 2]
    return reduced, np.hstack([linear, offset[:, None]])


def paste_matrix(matrix: np.ndarray, scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """The transform from the aligned crop to an output ``scale`` (x, y) times the source size."""
    inverse = cv2.invertAffineTransform(matrix)
    sx, sy = scale
    out = inverse * np.array([[sx], [sy]])
    # Pixel centres: source x maps to output sx * x + (sx - 1) / 2.
    out[0, 2] += (sx - 1) / 2
    out[1, 2] += (sy - 1) / 2
    return out


def crop_mask(size: int) -> np.ndarray:
    """The blend weight over an aligned crop: exactly 0 on a band along the border (1/16 of the size),
    1 in the middle, a Gaussian ramp between (another 1/8), so the crop's edge never shows."""
    band = max(2, size // 16)
    mask = np.zeros((size, size), np.float32)
    mask[2 * band : -2 * band, 2 * band : -2 * band] = 1.0
    # The kernel reaches `band` pixels: the outer `band` pixels stay exactly 0.
    blurred = cv2.GaussianBlur(mask, (2 * band + 1, 2 * band + 1), band / 3, borderType=cv2.BORDER_CONSTANT)
    return np.clip(blurred, 0.0, 1.0)


def paste_face(
    canvas: np.ndarray, cover: np.ndarray, face: np.ndarray, weight: np.ndarray, matrix: np.ndarray
) -> None:
    """Blend ``face`` (a crop with blend ``weight``) into ``canvas`` through ``matrix`` (crop -> canvas).

    Only the canvas pixels the crop can reach are touched; ``cover`` (the canvas's running union of
    weights) is raised where the face lands. Both are changed in place.
    """
    height, width = canvas.shape[:2]
    size = face.shape[0]
    corners = apply_matrix(matrix, np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]]))
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x0 >= x1 or y0 >= y1:
        return
    local = matrix.copy()
    local[:, 2] -= (x0, y0)
    box = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(face, local, box, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(weight, local, box, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if warped.ndim == 2:
        warped = warped[..., None]
    region = canvas[y0:y1, x0:x1]
    inside = alpha > 0
    a = alpha[inside][:, None]
    region[inside] = region[inside] * (1 - a) + warped[inside] * a
    np.maximum(cover[y0:y1, x0:x1], alpha, out=cover[y0:y1, x0:x1])
