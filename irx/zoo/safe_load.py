"""Load weights files without running code from them.

- ``.safetensors``: read by safetensors (a data-only format).
- pickles (``.pth``, ``.pt``, ``.ckpt``, ``.bin``, legacy or zip): ``torch.load(weights_only=True)``,
  torch's restricted unpickler, which builds tensors and plain containers only. A file that refers
  to anything else (a class, a function such as ``os.system``) is refused with UnsafeModelError
  before any of it runs. irx never calls ``torch.load`` with ``weights_only=False``.
- TorchScript archives carry a program; they are refused unless ``trust_remote_code=True``.

The format is read from the file's first bytes, not trusted from its extension.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from irx.errors import ModelError, UnsafeModelError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

WEIGHT_EXTENSIONS = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")

# Containers spandrel's canonicalize_state_dict does not open itself (GAN checkpoints mostly).
_EXTRA_CONTAINERS = ("generator", "netG", "g_ema", "model_ema", "ema")
_SPANDREL_CONTAINERS = ("model_state_dict", "state_dict", "params_ema", "params-ema", "params", "model", "net")
# Globals a plain checkpoint names (tensor rebuilding, storages, dtypes, containers); any other
# global is reported as a code payload. Only used to explain a refusal.
_BENIGN_GLOBAL = re.compile(
    r"^(torch\.(_utils|_tensor|storage|serialization)\.\w+|torch\.\w+|collections\.OrderedDict"
    r"|_codecs\.encode|(__builtin__|builtins)\.(set|frozenset|bytearray|slice|complex)|numpy\..+)$"
)


def sniff_format(path: str | os.PathLike[str]) -> str:
    """'safetensors', 'torchscript', 'zip-pickle', 'pickle' or 'unknown', from the content."""
    p = Path(path)
    with open(p, "rb") as f:
        head = f.read(9)
    size = p.stat().st_size
    if head[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
        # torch.jit.save writes constants.pkl and a code/ folder; torch.save never does.
        if any(n.endswith("/constants.pkl") or n == "constants.pkl" or "/code/" in n for n in names):
            return "torchscript"
        return "zip-pickle"
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size:
        return "safetensors"
    if head[:1] == b"\x80":  # pickle PROTO opcode (legacy torch.save files too)
        return "pickle"
    return "unknown"


def load_weights(
    path: str | os.PathLike[str], *, trust_remote_code: bool = False
) -> dict[str, torch.Tensor] | torch.jit.ScriptModule:
    """A canonical state dict (tensors on the CPU), or a ScriptModule for trusted TorchScript.

    Containers such as ``params_ema``, ``state_dict``, ``model``, ``net`` or ``generator`` are
    unwrapped and ``module.`` prefixes dropped (spandrel's canonicalisation).
    """
    import torch  # imported here so that `irx models list` and friends start fast

    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelError(f"weights file {p} does not exist")
    try:
        kind = sniff_format(p)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelError(f"cannot read weights file {p}: {exc}; it may be truncated, download it again") from exc

    if kind == "torchscript":
        if not trust_remote_code:
            raise UnsafeModelError(
                f"{p.name} is a TorchScript archive, which contains a program; "
                "pass --trust-remote-code only if you trust where it came from"
            )
        try:
            return torch.jit.load(str(p), map_location="cpu")
        except Exception as exc:  # torch raises RuntimeError subclasses with long traces
            raise ModelError(f"cannot load TorchScript archive {p.name}: {_first_line(exc)}") from exc
    if kind == "safetensors":
        return _finish(_load_safetensors(p), p)
    if kind in ("zip-pickle", "pickle"):
        return _finish(_load_pickle(p), p)
    raise ModelError(
        f"{p.name} is not a weights file irx can read (expected safetensors or a PyTorch checkpoint: "
        f"{', '.join(WEIGHT_EXTENSIONS)})"
    )


def _load_safetensors(p: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(str(p), device="cpu")
    except Exception as exc:  # SafetensorError is not exported under a stable name
        raise ModelError(f"cannot read {p.name} as safetensors: {_first_line(exc)}; download it again") from exc


def _load_pickle(p: Path) -> Any:
    import torch

    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it was not written with; the refusal says enough.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = sorted(g for g in pickle_globals(p) if not _BENIGN_GLOBAL.match(g))
        match = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if match and not _BENIGN_GLOBAL.match(match.group(1)):
            # torch's own reason first: it is the global that stopped the load.
            found = [match.group(1)] + [g for g in found if g != match.group(1)]
        if found:
            raise UnsafeModelError(
                f"refused to load {p.name}: it refers to {', '.join(found[:4])}, which unpickling would call "
                "(a possible code payload); get the weights as .safetensors, or from a source you trust"
            ) from None
        raise ModelError(
            f"cannot load {p.name} safely ({_torch_reason(exc)}); convert it to .safetensors in a trusted environment"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelError(f"cannot read {p.name}: {_first_line(exc)}; it may be truncated, download it again") from exc


def pickle_globals(path: str | os.PathLike[str]) -> set[str]:
    """Names of the globals (``module.name``) a pickle file refers to, found without unpickling.

    Used to explain a refusal; the safety itself comes from torch's restricted unpickler.
    """
    p = Path(path)
    blobs: list[bytes] = []
    try:
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as zf:
                blobs = [zf.read(n) for n in zf.namelist() if n.endswith(".pkl")]
        else:
            blobs = [p.read_bytes()]
    except (OSError, zipfile.BadZipFile):
        return set()
    found: set[str] = set()
    for blob in blobs:
        stream = io.BytesIO(blob)
        # Legacy torch files are several pickles in a row; scan each until the data runs out.
        while stream.tell() < len(blob):
            start = stream.tell()
            strings: list[str] = []
            try:
                for op, arg, _ in pickletools.genops(stream):
                    if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                        found.add(arg.replace(" ", "."))
                    elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                        found.add(f"{strings[-2]}.{strings[-1]}")
                    elif isinstance(arg, str):
                        strings.append(arg)
            except Exception:  # noqa: BLE001 - not a pickle past this point (e.g. raw storage bytes)
                break
            if stream.tell() == start:
                break
    return found


def _finish(obj: Any, p: Path) -> dict[str, torch.Tensor]:
    import torch

    if not isinstance(obj, Mapping):
        raise ModelError(f"{p.name} holds a {type(obj).__name__}, not a state dict of tensors")
    state = dict(obj)
    if not any(isinstance(state.get(k), Mapping) for k in _SPANDREL_CONTAINERS):
        for key in _EXTRA_CONTAINERS:
            if isinstance(state.get(key), Mapping):
                state = dict(state[key])
                break
    try:
        from spandrel import canonicalize_state_dict

        state = dict(canonicalize_state_dict(state))
    except ImportError:  # pragma: no cover - spandrel is a dependency
        pass
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    dropped = len(state) - len(tensors)
    if dropped:
        log.debug("%s: ignored %d non-tensor entries", p.name, dropped)
    if not tensors:
        raise ModelError(f"{p.name} contains no tensors; it is not a model's weights")
    return tensors


def _torch_reason(exc: BaseException) -> str:
    """The useful sentence of torch's long weights_only error."""
    match = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
    return match.group(1).strip()[:200] if match else _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
