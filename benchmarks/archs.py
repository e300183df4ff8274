"""Forward time and peak memory of irx's architectures against SwinIR, NAFNet and softmax attention.

    python3 benchmarks/archs.py            # default set, 64^2 .. 1024^2, about 5 minutes
    python3 benchmarks/archs.py --full     # adds the ~25M "base" models
    python3 benchmarks/archs.py --big      # adds 2048^2 (slow on CPU)
    python3 benchmarks/archs.py --train-speed   # training steps/s of LAformer/RWKV-IR tiny only
    python3 benchmarks/archs.py --table-only    # rewrite the docs table from archs.json

Method. Each model runs in its own subprocess (fresh allocator, fresh peak), sizes ascending,
batch 1, fp32, no grad, ``--threads`` torch threads (default 1: on a shared CPU, 2 threads lose
more to OpenMP barrier waits than they gain). Time: best of up to 3 runs (1 run when a run
takes over 2 s). Memory: the process's peak resident set (``ru_maxrss``) after the forward pass
minus the peak before the first one (model and input already built). Sizes go up, so each peak
belongs to the current size. tracemalloc cannot see torch's allocations, hence RSS.
A model stops growing when the next size is predicted (x4 pixels) to take over ``--cap`` seconds
or, for the softmax block, to need over 3 GB for its (T x T) attention matrix.

Writes benchmarks/results/archs.json, benchmarks/results/archs.png, and the summary table
between the markers in docs/architectures.md. Numbers from a shared CPU are noisy: compare
ratios within one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# benchmarks/ is on sys.path when a benchmark runs as a script.
from doc_markers import replace_between

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "architectures.md"
START, END = "<!-- bench:archs:start -->", "<!-- bench:archs:end -->"

# name -> (builder, kwargs). Grouped by parameter count: ~0.2M, ~2-5M, ~20M.
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "RELA block (C=32)": ("rela_block", {"dim": 32}),
    "softmax block (C=32)": ("softmax_block", {"dim": 32}),
    "LAformer tiny": ("laformer", {"variant": "tiny"}),
    "RWKV-IR tiny": ("rwkvir", {"variant": "tiny"}),
    "NAFNet w16": ("nafnet", dict(width=16, middle_blk_num=1, enc_blk_nums=[1, 1, 1], dec_blk_nums=[1, 1, 1])),
    "SwinIR e48": ("swinir", dict(embed_dim=48, depths=[2, 2, 2], num_heads=[6, 6, 6])),
    "LAformer small": ("laformer", {"variant": "small"}),
    "RWKV-IR small": ("rwkvir", {"variant": "small"}),
    "NAFNet w24": ("nafnet", dict(width=24, middle_blk_num=2, enc_blk_nums=[2, 2, 2, 4], dec_blk_nums=[2, 2, 2, 2])),
    "SwinIR e96": ("swinir", dict(embed_dim=96, depths=[6, 6, 6, 6], num_heads=[6, 6, 6, 6])),
}
FULL_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "LAformer base": ("laformer", {"variant": "base"}),
    "NAFNet w32": ("nafnet", dict(width=32, middle_blk_num=12, enc_blk_nums=[2, 2, 4, 8], dec_blk_nums=[2, 2, 2, 2])),
}


def _softmax_block(dim: int) -> Any:
    """Quadratic reference: one pre-norm block of global (all tokens) softmax attention."""
    import torch
    from torch import nn

    class SoftmaxBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.GroupNorm(1, dim)
            self.qkv = nn.Conv2d(dim, 3 * dim, 1)
            self.proj = nn.Conv2d(dim, dim, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, c, h, w = x.shape
            q, k, v = self.qkv(self.norm(x)).flatten(2).chunk(3, dim=1)  # (B, C, T) each
            attn = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=-1)  # (B, T, T)
            return x + self.proj((v @ attn.transpose(1, 2)).reshape(b, c, h, w))

    return SoftmaxBlock()


def _build(kind: str, kw: dict[str, Any]) -> tuple[Any, int]:
    """The model and its input channel count."""
    if kind == "laformer" or kind == "rwkvir":
        from irx.archs import build_model

        return build_model(kind, kw["variant"], scale=1), 3
    if kind == "nafnet":
        from spandrel.architectures.NAFNet.__arch.NAFNet_arch import NAFNet

        return NAFNet(img_channel=3, **kw), 3
    if kind == "swinir":
        from spandrel.architectures.SwinIR.__arch.SwinIR import SwinIR

        return SwinIR(img_size=64, window_size=8, mlp_ratio=2, upscale=1, upsampler="", **kw), 3
    if kind == "rela_block":
        from irx.archs.laformer import LAformerBlock

        return LAformerBlock(kw["dim"], heads=1, ffn_hidden=2 * kw["dim"]), kw["dim"]
    if kind == "softmax_block":
        return _softmax_block(kw["dim"]), kw["dim"]
    raise ValueError(kind)


def _maxrss_mb() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / (1024 if platform.system() == "Darwin" else 1)


def child(kind: str, kw: dict[str, Any], sizes: list[int], threads: int, cap: float) -> None:
    """Measure one model at ascending sizes; print one JSON line per size."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, chans = _build(kind, kw)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"params": params}), flush=True)
    too_slow = False
    for size in sizes:
        if kind == "softmax_block" and 2 * (size * size) ** 2 * 4 > 3e9:
            # Two (T x T) fp32 matrices (scores and softmax) live at once.
            print(json.dumps({"size": size, "skipped": f"needs {2 * (size**2) ** 2 * 4 / 1e9:.0f} GB"}), flush=True)
            continue
        if too_slow:
            print(json.dumps({"size": size, "skipped": f"over {cap:.0f} s"}), flush=True)
            continue
        x = torch.rand(1, chans, size, size)
        base = _maxrss_mb()
        times = []
        with torch.no_grad():
            for _ in range(3):
                t0 = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t0)
                if times[-1] > 2.0:
                    break
        best = min(times)
        print(json.dumps({"size": size, "seconds": best, "peak_mb": _maxrss_mb() - base}), flush=True)
        too_slow = best * 4 > cap


def run_model(name: str, kind: str, kw: dict[str, Any], sizes: list[int], threads: int, cap: float) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps([kind, kw, sizes, threads, cap])]
    out: dict[str, Any] = {"name": name, "kind": kind, "config": kw, "sizes": {}}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=cap * 6 + 60, cwd=ROOT)
        lines, err = proc.stdout.splitlines(), proc.stderr
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        lines, err = stdout.splitlines(), "timeout"
    for line in lines:
        rec = json.loads(line)
        if "params" in rec:
            out["params"] = rec["params"]
        else:
            out["sizes"][str(rec.pop("size"))] = rec
    if not out["sizes"]:
        out["error"] = err.strip().splitlines()[-1:] if err else "no output"
    return out


def _growth(rec: dict) -> str:
    """Time per megapixel at the largest measured size over that at 256^2 (1.0 = linear)."""
    s = {int(k): v for k, v in rec["sizes"].items() if "seconds" in v}
    if 256 not in s or max(s) <= 256:
        return "-"
    big = max(s)
    growth = (s[big]["seconds"] / big**2) / (s[256]["seconds"] / 256**2)
    return f"x{growth:.2f} ({big}^2)"


def table(results: list[dict], sizes: list[int]) -> str:
    head = "| model | params | " + " | ".join(f"{n}^2 s/MP (peak MB)" for n in sizes) + " | s/MP growth vs 256^2 |"
    rows = [head, "|" + "---|" * (len(sizes) + 3)]
    for rec in results:
        cells = []
        for n in sizes:
            v = rec["sizes"].get(str(n))
            if v is None:
                cells.append("-")
            elif "skipped" in v:
                cells.append(f"skip ({v['skipped']})")
            else:
                cells.append(f"{v['seconds'] / (n * n / 1e6):.2f} ({v['peak_mb']:.0f})")
        params = f"{rec.get('params', 0) / 1e6:.2f}M"
        rows.append(f"| {rec['name']} | {params} | " + " | ".join(cells) + f" | {_growth(rec)} |")
    return "\n".join(rows)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for rec in results:
        pts = sorted((int(k), v) for k, v in rec["sizes"].items() if "seconds" in v)
        if not pts:
            continue
        mp = [n * n / 1e6 for n, _ in pts]
        style = "--" if "block" in rec["name"] else "-"
        ax1.plot(mp, [v["seconds"] / m for (_, v), m in zip(pts, mp)], style, marker="o", label=rec["name"])
        ax2.plot(mp, [max(v["peak_mb"], 1.0) for _, v in pts], style, marker="o", label=rec["name"])
    for ax, title in ((ax1, "forward seconds per megapixel"), (ax2, "peak extra RSS (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("megapixels")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_doc(md: str, meta: str) -> None:
    replace_between(DOC, START, END, f"{meta}\n\n{md}")


def train_speed(threads: int, steps: int = 8) -> list[dict]:
    """Training steps per second of the tiny 1x models: batch 16 of 64x64, L1, AdamW."""
    import statistics

    import torch

    from irx.archs import build_model

    torch.set_num_threads(threads)
    out = []
    for arch, kw in (("laformer", {}), ("laformer", {"rank_enhance": False}), ("rwkvir", {})):
        torch.manual_seed(0)
        model = build_model(arch, "tiny", scale=1, **kw).train()
        opt = torch.optim.AdamW(model.parameters(), 1e-3)
        x, y = torch.rand(16, 3, 64, 64), torch.rand(16, 3, 64, 64)
        wall, cpu = [], []
        for i in range(steps + 2):
            t, c = time.perf_counter(), time.process_time()
            loss = (model(x) - y).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i >= 2:  # first steps pay for allocator and oneDNN warm-up
                wall.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
        rec = {
            "model": f"{arch} tiny" + (" (rank_enhance=False)" if kw else ""),
            "threads": threads,
            "steps_per_s_median": 1 / statistics.median(wall),
            "steps_per_s_best": 1 / min(wall),
            "cpu_s_per_step": statistics.median(cpu),
        }
        print(json.dumps(rec), flush=True)
        out.append(rec)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--full", action="store_true", help="add the ~25M base models")
    ap.add_argument("--big", action="store_true", help="add 2048^2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cap", type=float, default=40.0, help="seconds a single forward may be predicted to take")
    ap.add_argument("--only", nargs="*", help="model names to run (default: all)")
    ap.add_argument("--no-doc", action="store_true", help="do not rewrite docs/architectures.md")
    ap.add_argument("--train-speed", action="store_true", help="measure tiny training steps/s and exit")
    ap.add_argument("--table-only", action="store_true", help="rewrite the docs table from archs.json")
    args = ap.parse_args()
    if args.child:
        child(*json.loads(args.child))
        return
    if args.train_speed:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "train_speed.json").write_text(json.dumps(train_speed(args.threads), indent=1))
        return
    sizes = [64, 128, 256, 512, 1024] + ([2048] if args.big else [])
    if args.table_only:
        saved = json.loads((RESULTS / "archs.json").read_text())
        write_doc(table(saved["results"], sizes), saved["meta"])
        return

    models = {**MODELS, **(FULL_MODELS if args.full else {})}
    if args.only:
        models = {k: v for k, v in models.items() if k in args.only}
    results = []
    t0 = time.time()
    for name, (kind, kw) in models.items():
        rec = run_model(name, kind, kw, sizes, args.threads, args.cap)
        results.append(rec)
        print(f"{name:24s} {rec.get('params', 0) / 1e6:6.2f}M  " + "  ".join(
            f"{k}:{v['seconds']:.2f}s/{v['peak_mb']:.0f}MB" if "seconds" in v else f"{k}:skip"
            for k, v in rec["sizes"].items()
        ) + (f"  ERROR {rec['error']}" if "error" in rec else ""), flush=True)  # fmt: skip
    import torch

    meta = (
        f"Run {time.strftime('%Y-%m-%d')}, torch {torch.__version__}, {args.threads} thread(s), "
        f"CPU shared with other jobs ({time.time() - t0:.0f} s in all); batch 1, fp32, 1x models."
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    saved_path = RESULTS / "archs.json"
    if args.only and saved_path.exists():
        # A partial run replaces its models' rows and keeps the others' figures (and says so).
        saved = json.loads(saved_path.read_text())
        fresh = {r["name"]: r for r in results}
        kept = [fresh.pop(r["name"], r) for r in saved["results"]]
        results = kept + list(fresh.values())
        meta = f"{saved['meta']} Re-measured alone: {', '.join(args.only)} ({meta})"
    saved_path.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    plot(results, RESULTS / "archs.png")
    md = table(results, sizes)
    print(md)
    if not args.no_doc:
        write_doc(md, meta)


if __name__ == "__main__":
    main()
