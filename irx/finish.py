"""What becomes of a model's output before it is written: strength, restored alpha, faces.

- Strength (``RestoreSettings.strength``, ``--strength``): ``input + s * (restored - input)``, with the input
  first resized to the output's size (the resize irx uses everywhere, `resize_pixels`) when upscaling.
  Models with their own strength input get it instead (see `with_model_strength`); 0 always gives the
  input back and 1 the model's own output.
- Alpha when upscaling (``alpha="model"``): the alpha channel goes through the model as a grey image and
  the mean of the model's channels is kept, as Real-ESRGAN's alpha upsampler does; ``"resize"`` only
  resizes it.
- Faces (``faces=True``): an irx.faces.FaceRestorer pastes the restored faces of the input into the output.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

# spandrel's fixed noise level for DRUNet and FDnCNN (their call functions use 15/255, the KAIR default).
SPANDREL_NOISE_LEVEL = 15 / 255

# Architectures whose network takes its own strength input, and what `strength` is mapped onto.
MODEL_STRENGTH = {
    "DRUNet": "noise level: strength x 15/255 (spandrel's level)",
    "FDnCNN": "noise level: strength x 15/255 (spandrel's level)",
    "FBCNN": "quality factor: strength x the quality factor FBCNN predicts for the image",
}


def resize_pixels(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float HWC (or HW) pixels resized to (width, height): bicubic to enlarge, area to shrink, clipped."""
    width, height = size
    if (pixels.shape[1], pixels.shape[0]) == (width, height):
        return pixels
    shrinking = pixels.shape[1] > width
    resized = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    if pixels.ndim == 3:
        resized = resized.reshape(height, width, -1)
    return np.clip(resized, 0, 1).astype(np.float32)


def blend(source: np.ndarray, restored: np.ndarray, strength: float) -> np.ndarray:
    """``source + strength * (restored - source)``, the source resized to the output's size first.

    1 returns ``restored`` itself; 0 the (resized) source, value for value.
    """
    if strength >= 1.0:
        return restored
    base = resize_pixels(np.asarray(source, np.float32), (restored.shape[1], restored.shape[0]))
    if strength <= 0.0:
        return base.copy() if base is source else base
    mixed = base + np.float32(strength) * (restored.astype(np.float32) - base)
    return np.clip(mixed, 0, 1).astype(np.float32)


def model_strength_kind(descriptor: Any) -> str | None:
    """The key of MODEL_STRENGTH for a loaded spandrel model, or None when it has no strength input."""
    arch = getattr(getattr(descriptor, "architecture", None), "id", None)
    if arch == "DnCNN":
        return "FDnCNN" if getattr(getattr(descriptor, "model", None), "mode", None) == "FDnCNN" else None
    return arch if arch in MODEL_STRENGTH else None


def with_model_strength(descriptor: Any, strength: float) -> tuple[Any, float]:
    """(the model to run, the pixel blend still to apply) for ``strength``.

    A model with its own strength input gets a copy of its descriptor whose call feeds it the mapped
    value (the cached descriptor, shared by other runs, is left alone), and no pixel blend is needed;
    at 0 the pixel blend (0) returns the input. Any other model is run as it is and blended.
    """
    kind = model_strength_kind(descriptor)
    if kind is None or strength >= 1.0 or strength <= 0.0:
        return descriptor, strength
    wrapped = copy.copy(descriptor)
    wrapped._call_fn = _fbcnn_call(strength) if kind == "FBCNN" else _noise_level_call(strength)
    return wrapped, 1.0


def _noise_level_call(strength: float) -> Callable[[Any, Any], Any]:
    import torch  # noqa: PLC0415 - torch only when a model runs

    level = strength * SPANDREL_NOISE_LEVEL

    def call(model: Any, image: Any) -> Any:
        noise_map = torch.full((image.shape[0], 1, *image.shape[2:]), level, dtype=image.dtype, device=image.device)
        return model(torch.cat([image, noise_map], dim=1))

    return call


def _fbcnn_call(strength: float) -> Callable[[Any, Any], Any]:
    def call(model: Any, image: Any) -> Any:
        # FBCNN predicts the image's quality factor (1 - QF/100: higher, heavier deblocking) and is steered
        # by it; scaling the prediction restores less. A hook keeps its single forward pass.
        handle = model.qf_pred.register_forward_hook(lambda _module, _inputs, qf: qf * strength)
        try:
            return model(image)[0]
        finally:
            handle.remove()

    return call


def alpha_as_grey(alpha: np.ndarray) -> np.ndarray:
    """An HW alpha channel as the HxWx1 grey image the engine runs through an RGB model (repeated to
    RGB on the way in, the mean of the output channels on the way out)."""
    return np.ascontiguousarray(alpha[..., None], dtype=np.float32)


def pixel_strength(descriptor: Any, strength: float) -> float:
    """The pixel blend left for a model run through `with_model_strength`: none (1) where the model
    takes the strength itself, except at 0, where the input is returned."""
    if model_strength_kind(descriptor) is not None and 0.0 < strength < 1.0:
        return 1.0
    return strength
