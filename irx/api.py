"""The Python API the CLI is built on: `load_model` and `restore`.

    import irx
    model = irx.load_model(task="denoise")             # the bundled default, or a path / hf:// / zoo name
    clean = irx.restore(pil_image, task="denoise")      # PIL in, PIL out; numpy and torch work the same way
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from irx.engine import Engine
from irx.engine.device import resolve_devices
from irx.errors import IrxError, IrxWarning, ModelError, UsageError
from irx.tasks import has_scale

ImageLike = TypeVar("ImageLike")

_CACHE: dict[tuple[str, str], Any] = {}
_CACHE_LOCK = threading.Lock()


def load_model(
    spec: str | Path | None = None,
    *,
    task: str | None = None,
    scale: int | None = None,
    device: str | torch.device = "cpu",
    offline: bool | None = None,
    trust_remote_code: bool = False,
) -> Any:
    """Resolve and load a model as a spandrel ImageModelDescriptor, cached per file and device.

    `spec` is a local file, `hf://owner/repo/file[@revision]`, a zoo name, or None for the task's default.
    Weights are read without executing code from the file (see irx.zoo.safe_load).
    """
    from irx.zoo import resolve  # noqa: PLC0415 - keeps `import irx` light

    if spec is None and task is None:
        raise UsageError("give a model (path, hf://..., or zoo name) or a task")
    resolved = resolve(None if spec is None else str(spec), task, scale=scale, offline=offline)
    if resolved.warning:
        warnings.warn(resolved.warning, IrxWarning, stacklevel=2)
    target = device if isinstance(device, torch.device) else resolve_devices(str(device))[0]
    key = (str(Path(resolved.path).resolve()), str(target))
    with _CACHE_LOCK:
        descriptor = _CACHE.get(key)
        if descriptor is None:
            descriptor = _load_descriptor(Path(resolved.path), trust_remote_code)
            descriptor.to(target).eval()
            _CACHE[key] = descriptor
    if resolved.record is None and task is not None:
        _check_file_fits(descriptor, task, Path(resolved.path).name)
    return descriptor


def _check_file_fits(descriptor: Any, task: str, name: str) -> None:
    """A model file has no zoo record saying what it is for; its scale tells 1x tasks from upscaling."""
    scale = int(getattr(descriptor, "scale", 1) or 1)
    if has_scale(task) and scale == 1:
        raise ModelError(f"{name} is a 1x model, not an upscaler; use it with a 1x task, or with `irx run`")
    if not has_scale(task) and scale != 1:
        raise ModelError(
            f"{name} upscales x{scale}, so it is not a {task} model; use `irx upscale`, or `irx run` for any model"
        )


def clear_model_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def _load_descriptor(path: Path, trust_remote_code: bool) -> Any:
    from spandrel import ModelLoader, UnsupportedModelError  # noqa: PLC0415

    from irx.archs import extra_arches_installed, spandrel_registry  # noqa: PLC0415
    from irx.zoo import load_weights  # noqa: PLC0415

    weights = load_weights(path, trust_remote_code=trust_remote_code)
    if isinstance(weights, torch.jit.ScriptModule):
        return ScriptedModel(weights)
    try:
        return ModelLoader(registry=spandrel_registry()).load_from_state_dict(weights)
    except UnsupportedModelError:
        hint = "" if extra_arches_installed() else (
            " (for Restormer, MPRNet and other restricted-licence models: pip install 'irx[extra-arches]')"
        )
        raise ModelError(f"{path.name}: not an architecture irx or spandrel knows{hint}") from None
    except IrxError:
        raise
    except Exception as error:  # noqa: BLE001 - a malformed state dict of a known architecture
        raise ModelError(f"{path.name}: could not build the model from its weights: {error}") from error


class ScriptedModel:
    """A trusted TorchScript module behind the small part of spandrel's descriptor interface irx uses."""

    supports_half = False
    supports_bfloat16 = False
    size_requirements = None
    input_channels = 3
    output_channels = 3

    def __init__(self, module: torch.jit.ScriptModule) -> None:
        self.model = module.eval()
        with torch.inference_mode():
            probe = self.model(torch.zeros(1, 3, 16, 16))
        self.scale = int(probe.shape[-1] // 16)

    def to(self, *args: Any, **kwargs: Any) -> ScriptedModel:
        self.model.to(*args, **kwargs)
        return self

    def eval(self) -> ScriptedModel:
        return self

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(image).clamp(0, 1)


# ---------------------------------------------------------------------- restore()
def restore(
    image: ImageLike,
    *,
    task: str | None = None,
    model: Any = None,
    scale: float | None = None,
    device: str = "auto",
    precision: str = "auto",
    tile: int | str | None = "auto",
    tile_overlap: int = 16,
    batch_size: int | str = "auto",
) -> ImageLike:
    """Restore one image (PIL image, numpy array or torch tensor) and return the same kind.

    numpy: HxW or HxWxC (C = 1, 3 or 4) in uint8, uint16 or float [0, 1]; torch: CHW or BCHW float in [0, 1].
    Alpha (PIL RGBA/LA, a 4th numpy channel) is carried over for 1x tasks and resized for upscaling.
    """
    devices = resolve_devices(device)
    from irx.zoo import model_scale_for  # noqa: PLC0415 - keeps `import irx` light

    # A scale with no model of its own (1.5, 3) runs the next larger one, whose output is resized.
    model_scale = model_scale_for(task, scale) if task is not None else None
    descriptor = model if model is not None and not isinstance(model, str | Path) else load_model(
        model, task=task, scale=model_scale, device=devices[0]
    )
    engine = Engine(
        descriptor,
        device=devices[0],
        precision=precision,
        tile=tile,
        tile_overlap=tile_overlap,
        batch_size=batch_size,
    )
    if isinstance(image, torch.Tensor):
        return _restore_tensor(image, engine, scale)  # type: ignore[return-value]
    if isinstance(image, np.ndarray):
        return _restore_array(image, engine, scale)  # type: ignore[return-value]
    try:
        from PIL import Image  # noqa: PLC0415
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None  # type: ignore[assignment]
    if Image is not None and isinstance(image, Image.Image):
        return _restore_pil(image, engine, scale)  # type: ignore[return-value]
    raise UsageError(f"restore() takes a PIL image, a numpy array or a torch tensor, not {type(image).__name__}")


def _run(engine: Engine, pixels: np.ndarray, alpha: np.ndarray | None, scale: float | None) -> tuple[np.ndarray, np.ndarray | None]:
    from irx.pipeline import fit_to_scale  # noqa: PLC0415

    return fit_to_scale(engine.restore_one(pixels), alpha, pixels.shape[:2], engine.scale, scale)


def _restore_array(array: np.ndarray, engine: Engine, scale: float | None) -> np.ndarray:
    dtype = array.dtype
    if dtype == np.uint8:
        peak = 255.0
    elif dtype == np.uint16:
        peak = 65535.0
    elif np.issubdtype(dtype, np.floating):
        peak = 1.0
    else:
        raise UsageError(f"unsupported array dtype {dtype}: use uint8, uint16 or float in [0, 1]")
    squeeze = array.ndim == 2
    data = (array[..., None] if squeeze else array).astype(np.float32) / peak
    if data.ndim != 3 or data.shape[2] not in (1, 2, 3, 4):
        raise UsageError(f"unsupported array shape {array.shape}: use HxW or HxWxC with C in 1, 2, 3, 4")
    has_alpha = data.shape[2] in (2, 4)
    alpha = data[..., -1] if has_alpha else None
    pixels, alpha = _run(engine, np.ascontiguousarray(data[..., :-1] if has_alpha else data), alpha, scale)
    if alpha is not None:
        pixels = np.concatenate([pixels, alpha[..., None]], axis=2)
    if squeeze:
        pixels = pixels[..., 0]
    if peak == 1.0:
        return pixels.astype(dtype)
    return np.clip(np.rint(pixels * peak), 0, peak).astype(dtype)


def _restore_tensor(tensor: torch.Tensor, engine: Engine, scale: float | None) -> torch.Tensor:
    batched = tensor.dim() == 4
    if tensor.dim() not in (3, 4):
        raise UsageError(f"unsupported tensor shape {tuple(tensor.shape)}: use CHW or BCHW")
    items = tensor if batched else tensor.unsqueeze(0)
    arrays = [item.detach().float().cpu().permute(1, 2, 0).numpy() for item in items]
    outputs = [torch.from_numpy(_restore_array(a, engine, scale)).permute(2, 0, 1) for a in arrays]
    result = torch.stack(outputs).to(device=tensor.device, dtype=tensor.dtype)
    return result if batched else result[0]


def _restore_pil(image: Any, engine: Engine, scale: float | None) -> Any:
    from PIL import Image  # noqa: PLC0415

    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image).astype(np.uint16)
        return Image.fromarray(_restore_array(array, engine, scale))
    if mode not in ("L", "LA", "RGB", "RGBA"):  # palette, CMYK, 1-bit...
        image = image.convert("RGBA" if "A" in mode or "transparency" in image.info else "RGB")
    array = np.asarray(image)
    restored = _restore_array(array, engine, scale)
    out = Image.fromarray(restored, mode=image.mode)
    out.info.update({k: v for k, v in image.info.items() if k in ("icc_profile", "exif", "dpi")})
    return out

