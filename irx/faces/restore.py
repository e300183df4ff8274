"""Face restoration of whole images: detect, align, restore each face, paste it back.

    from irx.faces import FaceRestorer
    faces = FaceRestorer.from_names("gfpgan-v1.4")          # zoo names or weights files
    out = faces.apply(photo)                                # 1x: only the faces change
    out = faces.apply(photo, restored_background)           # any other restore's output, any scale

Arrays are HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA) in uint8, uint16 or float in [0, 1]. Alpha is
never touched (it comes from the background); grey images are restored in colour and turned back
to grey. Outside every face's mask the result is the background, value for value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from irx.errors import ModelError, UsageError
from irx.faces.align import (
    alignment_matrix,
    crop_mask,
    paste_face,
    paste_matrix,
    warp_face,
)
from irx.faces.detect import Face, FaceDetector, YuNetDetector
from irx.faces.records import (
    DEFAULT_DETECTOR,
    DEFAULT_RESTORER,
    FACE_DETECT,
    FACE_RESTORE,
    face_record,
    face_record_names,
)


class FaceModel(Protocol):
    """Restores one aligned face: ``size`` x ``size`` x 3 float32 RGB in [0, 1] in, the same out."""

    size: int

    def __call__(self, crop: np.ndarray) -> np.ndarray: ...


class SpandrelFaceModel:
    """A face model spandrel loaded (GFPGAN, RestoreFormer, CodeFormer).

    These networks work in [-1, 1] and spandrel's own call clamps to [0, 1], so the network is called
    directly. CodeFormer's ``fidelity`` (0: most restoration, 1: closest to the input) is its own
    weight input; GFPGAN runs with its fixed noise so a photo always gives the same result.
    """

    size = 512

    def __init__(self, descriptor: Any, *, fidelity: float = 0.5, name: str = "face model") -> None:
        if getattr(descriptor, "purpose", None) != "FaceSR":
            arch = getattr(getattr(descriptor, "architecture", None), "name", type(descriptor).__name__)
            raise ModelError(
                f"{name} is not a face restoration model (it is {arch}); use one of "
                f"{', '.join(face_record_names(FACE_RESTORE))} or a GFPGAN, RestoreFormer or CodeFormer file"
            )
        self.descriptor = descriptor
        self.arch = descriptor.architecture.id
        self.fidelity = fidelity

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        import torch  # noqa: PLC0415 - keeps `import irx.faces` light

        module = self.descriptor.model
        device = next(module.parameters()).device
        options: dict[str, Any] = {}
        if self.arch == "CodeFormer":
            options["weight"] = self.fidelity
        elif self.arch == "GFPGAN":
            options.update(randomize_noise=False, return_rgb=False)
        x = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None].to(device)
        with torch.inference_mode():
            out = module(x * 2 - 1, **options)
            out = out[0] if isinstance(out, tuple) else out
            out = ((out.float().clamp(-1, 1) + 1) / 2)[0]
        return out.permute(1, 2, 0).cpu().numpy()


# ---------------------------------------------------------------------- model files


def face_model_file(spec: str | os.PathLike[str], task: str, *, offline: bool | None = None) -> Path:
    """The verified local file for a face zoo name, a weights file, or hf://owner/repo/file."""
    from irx.zoo import ensure_local, resolve  # noqa: PLC0415 - the zoo imports huggingface_hub
    from irx.zoo.hub import HubFile, cached_file, hub_settings  # noqa: PLC0415
    from irx.zoo.safe_load import WEIGHT_EXTENSIONS  # noqa: PLC0415

    text = os.fspath(spec).strip()
    flag = "--detector" if task == FACE_DETECT else "--model"
    path = Path(text).expanduser()
    if path.is_file():
        return path.resolve()
    if text.startswith("hf://"):
        return resolve(text, offline=offline).path
    record = face_record(text, task)
    if record is None:
        if os.sep in text or "/" in text or path.suffix.lower() in (*WEIGHT_EXTENSIONS, ".onnx"):
            raise ModelError(f"{flag} {text}: no such file (and it is not a face model name)")
        kind = "face detector" if task == FACE_DETECT else "face model"
        raise ModelError(f"unknown {kind} {text!r}; choose one of {', '.join(face_record_names(task))} or pass {flag} FILE")
    settings = hub_settings(offline)
    assert record.repo_id is not None and record.filename is not None
    if settings.offline and cached_file(HubFile(record.repo_id, record.filename, record.revision or "main"), settings) is None:
        raise ModelError(
            f"{record.name} ({record.license}) is not downloaded and irx is offline; run "
            f"`irx models download {record.name}` while online, or pass {flag} FILE"
        )
    return ensure_local(record, offline=offline)


def load_detector(
    spec: str | os.PathLike[str] | None = None, *, offline: bool | None = None, score_threshold: float = 0.7
) -> YuNetDetector:
    """YuNet from a zoo name or an .onnx file (default: the zoo's YuNet)."""
    path = face_model_file(spec or DEFAULT_DETECTOR, FACE_DETECT, offline=offline)
    return YuNetDetector(path, score_threshold=score_threshold)


def load_face_model(
    spec: str | os.PathLike[str] | None = None,
    *,
    device: str = "auto",
    offline: bool | None = None,
    fidelity: float = 0.5,
) -> SpandrelFaceModel:
    """A face restorer from a zoo name or a weights file, loaded by irx's safe loader."""
    from irx.api import load_model  # noqa: PLC0415 - torch is imported only when work starts

    text = os.fspath(spec or DEFAULT_RESTORER)
    path = face_model_file(text, FACE_RESTORE, offline=offline)
    return SpandrelFaceModel(load_model(path, device=device, offline=offline), fidelity=fidelity, name=text)


# ---------------------------------------------------------------------- restoring images


@dataclass
class FaceRestorer:
    """Detects faces in an image and pastes restored ones onto it (or onto a restored background)."""

    model: FaceModel
    detector: FaceDetector
    strength: float = 1.0  # 0: faces untouched, 1: the model's faces; in between, a blend

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise UsageError(f"face strength must be between 0 and 1, not {self.strength}")

    @classmethod
    def from_names(
        cls,
        model: str | os.PathLike[str] | None = None,
        detector: str | os.PathLike[str] | None = None,
        *,
        device: str = "auto",
        offline: bool | None = None,
        strength: float = 1.0,
        fidelity: float = 0.5,
        score_threshold: float = 0.7,
    ) -> FaceRestorer:
        """Load the detector and the face model by zoo name or file (defaults: YuNet and GFPGAN v1.4)."""
        return cls(
            model=load_face_model(model, device=device, offline=offline, fidelity=fidelity),
            detector=load_detector(detector, offline=offline, score_threshold=score_threshold),
            strength=strength,
        )

    def detect(self, image: np.ndarray) -> list[Face]:
        """The faces of an image in any of the accepted layouts."""
        rgb, _ = _colour(image)
        return list(self.detector.detect(np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)))

    def apply(
        self, original: np.ndarray, background: np.ndarray | None = None, faces: list[Face] | None = None
    ) -> np.ndarray:
        """``background`` (default: ``original``) with the faces of ``original`` restored and pasted.

        ``background`` is ``original`` restored some other way, at any size (an upscale); it must
        have the same channels and dtype. Faces are found in ``original`` unless ``faces`` is given.
        """
        background = original if background is None else background
        _check_pair(original, background)
        result = background.copy()
        source, _ = _colour(original)
        if faces is None:
            faces = self.detect(original)
        if self.strength == 0 or not faces:
            return result
        canvas, peak = _colour(background)
        scale = (background.shape[1] / original.shape[1], background.shape[0] / original.shape[0])
        cover = np.zeros(canvas.shape[:2], np.float32)
        size = self.model.size
        weight = crop_mask(size)
        for face in faces:
            matrix = alignment_matrix(face.landmarks, size)
            if matrix is None:
                continue
            crop = warp_face(source, matrix, size)
            restored = np.clip(np.asarray(self.model(crop), dtype=np.float32), 0, 1)
            if restored.shape != crop.shape:
                raise ModelError(f"the face model returned {restored.shape}, not an aligned face of {crop.shape}")
            if self.strength < 1:
                restored = crop + (restored - crop) * np.float32(self.strength)
            paste_face(canvas, cover, restored, weight, paste_matrix(matrix, scale))
        changed = cover > 0
        if result.ndim == 2 or result.shape[2] in (1, 2):
            colour = cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)[..., None]
        else:
            colour = canvas
        values = colour[changed]
        if peak != 1.0:
            values = np.clip(np.rint(values * peak), 0, peak)
        target = result if result.ndim == 3 else result[..., None]
        channels = colour.shape[2]
        target[changed, :channels] = values.astype(result.dtype)
        return result


def restore_faces(
    image: np.ndarray,
    *,
    restorer: FaceModel,
    detector: FaceDetector,
    upscale: int = 1,
    background: np.ndarray | None = None,
    strength: float = 1.0,
) -> np.ndarray:
    """Restore the faces of ``image``; with ``upscale`` > 1 (and no ``background``) the rest of the
    image is enlarged with bicubic interpolation and the faces are restored at that size."""
    if upscale < 1:
        raise UsageError(f"upscale must be at least 1, not {upscale}")
    if background is None and upscale > 1:
        background = resize_like(image, upscale)
    return FaceRestorer(restorer, detector, strength).apply(image, background)


def resize_like(image: np.ndarray, scale: int) -> np.ndarray:
    """``image`` enlarged ``scale`` times (bicubic), in its own dtype and layout."""
    height, width = image.shape[:2]
    resized = cv2.resize(image, (width * scale, height * scale), interpolation=cv2.INTER_CUBIC)
    if image.ndim == 3 and resized.ndim == 2:
        resized = resized[..., None]
    if np.issubdtype(image.dtype, np.floating):
        resized = np.clip(resized, 0, 1)
    return resized.astype(image.dtype)


def _colour(image: np.ndarray) -> tuple[np.ndarray, float]:
    """float32 RGB in [0, 1] of an image in any accepted layout, and its peak value."""
    if image.dtype == np.uint8:
        peak = 255.0
    elif image.dtype == np.uint16:
        peak = 65535.0
    elif np.issubdtype(image.dtype, np.floating):
        peak = 1.0
    else:
        raise UsageError(f"unsupported image dtype {image.dtype}: use uint8, uint16 or float in [0, 1]")
    data = image[..., None] if image.ndim == 2 else image
    if data.ndim != 3 or data.shape[2] not in (1, 2, 3, 4):
        raise UsageError(f"unsupported image shape {image.shape}: use HxW or HxWxC with C in 1, 2, 3, 4")
    colour = data[..., :1] if data.shape[2] in (1, 2) else data[..., :3]
    rgb = np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else colour
    return np.ascontiguousarray(rgb, dtype=np.float32) / np.float32(peak), peak


def _check_pair(original: np.ndarray, background: np.ndarray) -> None:
    if background.dtype != original.dtype or background.ndim != original.ndim or (
        original.ndim == 3 and background.shape[2] != original.shape[2]
    ):
        raise UsageError(
            f"the background ({background.shape}, {background.dtype}) must have the layout and dtype "
            f"of the original ({original.shape}, {original.dtype})"
        )
