"""CPU cost of each task's default models: seconds per input megapixel and peak memory.

For every task this measures the third-party default (random weights in the record's real
configuration, built by irx.zoo.reference: speed does not depend on the values) next to the
bundled irx model, each in its own subprocess so that its peak resident memory is its own.
Heavy models are run at a smaller input than 512x512 (``SIDE``); seconds per megapixel are then
scaled linearly from that size, and the size used is recorded next to the number.

It also counts the parameters of every supported third-party record. Writes
benchmarks/results/zoo.json (everything) and irx/zoo/costs.json (what `irx models list` shows),
and the table in docs/models.md between the zoo-cost markers.

    python benchmarks/zoo.py            # about 10 minutes on two CPU cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from doc_markers import replace_between

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "zoo.json"
COSTS = ROOT / "irx" / "zoo" / "costs.json"
DOC = ROOT / "docs" / "models.md"
MARKERS = ("<!-- zoo-cost:start -->", "<!-- zoo-cost:end -->")

# Input side measured per model: 512 unless the model is too slow for two cores at that size.
SIDE: dict[str, int] = {"restormer-derain": 128, "dat-official-x2": 64, "hat-l-x4": 64, "nafnet-gopro-width64": 256,
                        "scunet-real-psnr": 256, "fbcnn-color": 256}


def _measure_one(name: str, side: int) -> dict[str, Any]:
    """Run in a fresh process: time one forward pass at side x side and read the peak RSS."""
    import torch
    from spandrel import ModelLoader

    from irx.archs import spandrel_registry
    from irx.zoo import default_catalogue
    from irx.zoo.reference import REFERENCES, reference_state_dict

    torch.set_grad_enabled(False)
    if name in REFERENCES:
        state = reference_state_dict(name)
    else:  # a bundled irx model: the real file
        from irx.zoo import load_weights

        cat = default_catalogue()
        state = load_weights(cat.bundled_path(cat.get(name)))
    # The descriptor pads to the model's size requirements, as irx's engine does.
    model = ModelLoader(registry=spandrel_registry()).load_from_state_dict(state).eval()
    del state
    channels = 3
    model(torch.rand(1, channels, 64, 64))  # warm-up (allocator, kernels)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    x = torch.rand(1, channels, side, side)
    start = time.perf_counter()
    model(x)
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "side": side,
        "seconds": round(seconds, 3),
        "s_per_mp": round(seconds / (side * side / 1e6), 2),
        "peak_rss_mb": round(peak_kb / 1024),
        "forward_mb": round(max(0, peak_kb - before) / 1024),
    }


def _measure(name: str, side: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--one", name, str(side)], check=True, capture_output=True,
                         text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _pairs() -> list[tuple[str, str, str]]:
    """(task label, third-party default, its bundled offline default) per task (upscale per scale)."""
    from irx.tasks import TASKS
    from irx.zoo import default_catalogue

    cat = default_catalogue()
    rows = []
    for task in TASKS:
        for scale in (2, 4) if task == "upscale" else (None,):
            hub, bundled = cat.defaults(task, scale)
            label = f"{task} x{scale}" if scale else task
            rows.append((label, hub.name if hub else "", bundled.name if bundled else ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=2, metavar=("NAME", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_measure_one(args.one[0], int(args.one[1]))))
        return

    from irx.zoo.reference import REFERENCES, parameter_count

    params = {name: parameter_count(name) for name in REFERENCES}
    measured: dict[str, dict[str, Any]] = {}
    for label, hub, bundled in _pairs():
        for name in (hub, bundled):
            if name and name not in measured:
                measured[name] = _measure(name, SIDE.get(name, 512))
                print(f"{label:12s} {name:32s} {measured[name]}", flush=True)
    for name, cost in measured.items():
        if name not in params:
            from irx.api import _load_descriptor
            from irx.zoo import default_catalogue

            cat = default_catalogue()
            model = _load_descriptor(cat.bundled_path(cat.get(name)), False).model
            params[name] = sum(p.numel() for p in model.parameters())
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": _threads(),
                    "python": platform.python_version(), "torch": _torch_version(),
                    # other work on the machine slows every number alike; ratios stay meaningful
                    "load_average_1min_at_end": round(os.getloadavg()[0], 1)},
        "note": "random weights in each record's real configuration; s_per_mp is per input megapixel, "
                "measured at side x side and scaled linearly",
        "tasks": [{"task": label, "default": hub or None, "offline": bundled} for label, hub, bundled in _pairs()],
        "models": {name: {"params": params.get(name), **cost} for name, cost in measured.items()},
        "params": params,
    }
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    costs = {name: {"params": count} for name, count in params.items()}
    for name, cost in measured.items():
        costs.setdefault(name, {})["cpu_s_per_mp"] = cost["s_per_mp"]
        costs[name]["peak_rss_mb"] = cost["peak_rss_mb"]
    COSTS.write_text(json.dumps(dict(sorted(costs.items())), indent=1) + "\n")
    replace_between(DOC, *MARKERS, _table(result))


def _table(result: dict[str, Any]) -> str:
    models = result["models"]
    lines = ["| task | model | params | CPU s/MP | peak RSS | measured at |", "|---|---|---|---|---|---|"]
    for row in result["tasks"]:
        for name in (row["default"], row["offline"]):
            if not name:
                continue
            m = models[name]
            lines.append(f"| {row['task']} | {name} | {m['params'] / 1e6:.2f}M | {m['s_per_mp']} | "
                         f"{m['peak_rss_mb']} MB | {m['side']}x{m['side']} |")
    return "\n".join(lines)


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _torch_version() -> str:
    import torch

    return torch.__version__


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
