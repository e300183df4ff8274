"""Rain streaks and haze.

Rain: random drops are smeared into oriented line streaks, softened with a Gaussian across
their width, and blended over the image ("screen": 1 - (1-I)(1-R), which brightens without
clipping hard; or "additive": I + R, clipped).

Haze: the atmospheric scattering model I = J t + A (1 - t) with t = exp(-beta d). There is no
depth for ordinary photos, so d is synthetic: a vertical gradient (far at the top, as in most
outdoor scenes) with a random tilt, mixed with smooth low-frequency noise, scaled to [0, 1]
over a canvas `context` times the image's size, of which the image is a random window.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """An anti-aliased line of the given length; angle 0 is vertical, positive leans right."""
    length = max(float(length), 1.0)
    half = math.ceil(length / 2) + 1
    size = 2 * half + 1
    sub = 8  # draw at 8x resolution with cv2.LINE_AA, then reduce, for sub-pixel accuracy
    canvas = np.zeros((size * sub, size * sub), np.uint8)
    a = math.radians(angle_deg)
    dx, dy = math.sin(a) * length / 2, math.cos(a) * length / 2
    c = (size * sub) / 2
    p0 = (round((c - dx * sub) * 16), round((c - dy * sub) * 16))
    p1 = (round((c + dx * sub) * 16), round((c + dy * sub) * 16))
    cv2.line(canvas, p0, p1, 255, thickness=sub, lineType=cv2.LINE_AA, shift=4)
    small = canvas.astype(np.float32).reshape(size, sub, size, sub).mean(axis=(1, 3)) / 255.0
    return small


def rain_layer(
    h: int,
    w: int,
    rng: np.random.Generator,
    density: float,
    length: float,
    angle: float,
    width: float,
) -> np.ndarray:
    """A rain-streak map (H x W, values in [0, 1]) with about `density` drops per pixel."""
    drops = (rng.random((h, w)) < density).astype(np.float32)
    drops *= rng.uniform(0.4, 1.0, (h, w)).astype(np.float32)  # drops differ in brightness
    streaks = cv2.filter2D(drops, cv2.CV_32F, line_kernel(length, angle),
                           borderType=cv2.BORDER_CONSTANT)
    if width > 0:
        g = cv2.getGaussianKernel(2 * math.ceil(3 * width) + 1, width)
        # Blur, then rescale so a single isolated streak keeps its peak brightness.
        streaks = cv2.GaussianBlur(streaks, (0, 0), width) / float(g.max())
    return np.clip(streaks, 0.0, 1.0)


def add_rain(img: np.ndarray, rain: np.ndarray, intensity: float, blend: str) -> np.ndarray:
    r = (rain * intensity)[:, :, None]
    if blend == "screen":
        return 1.0 - (1.0 - img) * (1.0 - r)
    if blend == "additive":
        return img + r
    raise ValueError(f"unknown rain blend {blend!r}; use 'screen' or 'additive'")


def synthetic_depth(h: int, w: int, rng: np.random.Generator, context: float = 1.0) -> np.ndarray:
    """A smooth pseudo depth map (1 = far) for an h x w image.

    With context 1 the map spans [0, 1] over the image itself, as when a whole photo is hazed
    for evaluation. With context k > 1 the image is a random window of a scene k times larger
    (the map is drawn for the large canvas and cropped), so a training patch sees the gentle,
    partial depth ramp that a patch of a hazed photo has, not a full near-to-far ramp of its own.
    """
    ch, cw = max(h, round(h * context)), max(w, round(w * context))
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
    yy /= max(ch - 1, 1)
    xx /= max(cw - 1, 1)
    gradient = (1.0 - yy) + rng.uniform(-0.4, 0.4) * (xx - 0.5)
    cells = int(rng.integers(3, 7))
    coarse = rng.random((cells, cells)).astype(np.float32)
    blobs = cv2.resize(coarse, (cw, ch), interpolation=cv2.INTER_CUBIC)
    d = 0.7 * gradient + 0.3 * blobs
    d -= d.min()
    d /= max(float(d.max()), 1e-6)
    if (ch, cw) == (h, w):
        return d
    top, left = int(rng.integers(0, ch - h + 1)), int(rng.integers(0, cw - w + 1))
    return np.ascontiguousarray(d[top : top + h, left : left + w])


def airlight_colour(airlight: float, tint: float, channels: int,
                    rng: np.random.Generator) -> np.ndarray:
    """The atmospheric light per channel: grey `airlight`, or with `tint` > 0 shifted toward blue
    (clear-sky scattering) or yellow-grey (smog, dust) by up to `tint`, clipped to [0, 1]."""
    if tint <= 0 or channels != 3:
        return np.full(channels, airlight, np.float32)
    shift = rng.uniform(-1.0, 1.0) * tint  # > 0 bluish
    colour = airlight * np.array([1.0 - shift, 1.0, 1.0 + shift])
    return np.clip(colour, 0.0, 1.0).astype(np.float32)


def add_haze(img: np.ndarray, depth: np.ndarray, beta: float,
             airlight: float | np.ndarray) -> np.ndarray:
    """I = J t + A (1 - t), t = exp(-beta d); `airlight` is a scalar or one value per channel."""
    t = np.exp(-beta * depth)[:, :, None].astype(np.float32)
    a = np.asarray(airlight, np.float32).reshape(1, 1, -1)
    return img * t + a * (1.0 - t)
