"""CUDA checks and throughput of irx's bundled models: fp32 vs fp16 vs bf16, engine vs CPU.

    python3 benchmarks/gpu.py                      # writes benchmarks/results/gpu.json
    python3 benchmarks/gpu.py -o /tmp/gpu.json --seconds 1

Needs a CUDA GPU (exits with a message otherwise). For every bundled model (trained weights, not
random ones, since half precision fails on real activations first) it measures:
  - forward time of one 512x512 image and of a batch of 8 (CUDA events, median of repeats) and the
    peak GPU memory, in fp32, fp16 and bf16;
  - how far the half-precision outputs are from fp32 (PSNR between the two uint8-quantised outputs;
    over 50 dB is invisible) and whether any output is not finite;
  - the engine end to end (irx.restore, tiling off) on CUDA in each precision against the CPU fp32
    result on the repository's sample photo.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from irx.metrics import psnr

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def first_image(t: torch.Tensor) -> np.ndarray:
    """The first image of a BCHW batch as float32 HWC on the host (irx.metrics quantises it to uint8)."""
    return t[0].float().permute(1, 2, 0).cpu().numpy()


def time_forward(model: torch.nn.Module, x: torch.Tensor, seconds: float) -> float:
    """Median milliseconds of model(x) over repeats filling about `seconds`."""
    with torch.no_grad():
        for _ in range(2):
            model(x)
        torch.cuda.synchronize()
        times: list[float] = []
        deadline = time.perf_counter() + seconds
        while len(times) < 3 or (time.perf_counter() < deadline and len(times) < 50):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model(x)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    return float(np.median(times))


def bench_model(path: Path, seconds: float) -> dict[str, Any]:
    from safetensors.torch import load_file

    from irx.archs.laformer import load_laformer

    model = load_laformer(load_file(str(path))).cuda().eval()
    scale = model.scale
    gen = torch.Generator().manual_seed(0)
    size = 512 // scale
    one = torch.rand(1, 3, size, size, generator=gen).cuda()
    batch = torch.rand(8, 3, size // 2, size // 2, generator=gen).cuda()
    row: dict[str, Any] = {"model": path.stem, "params": sum(p.numel() for p in model.parameters()),
                           "input": f"{size}x{size}", "batch8_input": f"{size // 2}x{size // 2}"}
    with torch.no_grad():
        reference = first_image(model(one))
    for name, dtype in PRECISIONS.items():
        m = model.to(dtype)
        torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            out = m(one.to(dtype))
        peak = torch.cuda.max_memory_allocated() / 2**20
        row[name] = {
            "ms_1": round(time_forward(m, one.to(dtype), seconds), 3),
            "ms_batch8": round(time_forward(m, batch.to(dtype), seconds), 3),
            "peak_mib_1": round(peak, 1),
            "finite": bool(torch.isfinite(out).all()),
            "psnr_vs_fp32": None if name == "fp32" else round(psnr(first_image(out), reference), 2),
        }
        model = m.float()
    return row


def engine_check() -> list[dict[str, Any]]:
    """irx.restore on CUDA in each precision against CPU fp32, on the sample photo."""
    from PIL import Image

    import irx

    sample = ROOT / "examples" / "astronaut_noisy.png"
    image = Image.open(sample).convert("RGB")
    model = "laformer_tiny_denoise"  # bundled: no network
    cpu = np.asarray(irx.restore(image, model=model, device="cpu", precision="fp32", tile=0))
    rows = []
    for name in PRECISIONS:
        start = time.perf_counter()
        out = np.asarray(irx.restore(image, model=model, device="cuda", precision=name, tile=0))
        rows.append({"model": model, "image": sample.name, "precision": name,
                     "psnr_vs_cpu_fp32": round(psnr(out, cpu), 2),
                     "seconds_incl_load": round(time.perf_counter() - start, 3)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=RESULTS / "gpu.json")
    parser.add_argument("--seconds", type=float, default=2.0, help="timing budget per measurement")
    parser.add_argument("--weights", type=Path, default=ROOT / "irx" / "zoo" / "weights")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("benchmarks/gpu.py needs a CUDA GPU", file=sys.stderr)
        return 1
    torch.backends.cudnn.benchmark = True
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "models": [],
        "engine": [],
    }
    for path in sorted(args.weights.glob("laformer_*.safetensors")):
        try:
            row = bench_model(path, args.seconds)
        except Exception as exc:  # noqa: BLE001 - one broken model must not hide the others
            row = {"model": path.stem, "error": f"{type(exc).__name__}: {exc}"}
        result["models"].append(row)
        print(json.dumps(row), flush=True)
    try:
        result["engine"] = engine_check()
    except Exception as exc:  # noqa: BLE001
        result["engine"] = [{"error": f"{type(exc).__name__}: {exc}"}]
    print(json.dumps(result["engine"]), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{'model':34} {'fp32 ms':>8} {'fp16 ms':>8} {'bf16 ms':>8} {'fp16 dB':>8} {'bf16 dB':>8}")
    for row in result["models"]:
        if "error" in row:
            print(f"{row['model']:34} {row['error']}")
            continue
        print(f"{row['model']:34} {row['fp32']['ms_1']:8.2f} {row['fp16']['ms_1']:8.2f} {row['bf16']['ms_1']:8.2f} "
              f"{row['fp16']['psnr_vs_fp32']:8.2f} {row['bf16']['psnr_vs_fp32']:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
