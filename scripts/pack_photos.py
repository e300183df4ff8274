#!/usr/bin/env python3
"""Pack a recipe's training photos small enough to carry to another machine (e.g. a rented GPU).

    python scripts/pack_photos.py deblur_small dehaze_small -o .gpu_data --max-side 768

Each photo is decoded and shrunk exactly as the trainer's loader would (the folder's `downscale`,
then `--max-side`), and stored as a JPEG of quality 95 without chroma subsampling: about 45 dB from
the shrunk image, far below what restoration models resolve, at a tenth of the PNG size. Next to the
photos it writes <recipe>.toml for each recipe, reading the pack (data_root = the pack folder, the
downscale already applied), and MANIFEST.tsv (source, size, SHA-256 of the source file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import tomllib
from PIL import Image

from irx.train.config import load_config, resolve_recipe
from irx.train.data import list_images, load_image
from irx.zoo.records import sha256_file

JPEG_QUALITY = 95


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def toml_dumps(raw: dict[str, Any]) -> str:
    """A recipe (tables of plain values, at most one level of sub-tables) as TOML text."""
    lines: list[str] = []
    for table, values in raw.items():
        subtables = {k: v for k, v in values.items() if isinstance(v, dict) and k in ("params", "val_params")}
        lines.append(f"[{table}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items() if k not in subtables]
        for name, sub in subtables.items():
            lines.append(f"\n[{table}.{name}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in sub.items()]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="+", help="recipe names or TOML files (their train_dirs are packed)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="pack folder (created)")
    parser.add_argument("--max-side", type=int, default=768, help="longer side of the packed photos")
    parser.add_argument("--data-root", type=Path, default=None, help="where the recipes' folders are")
    args = parser.parse_args()

    packed: dict[str, Path] = {}
    manifest = ["packed\tsource\twidth\theight\tsource_sha256"]
    for recipe in args.recipes:
        path = resolve_recipe(recipe)
        cfg = load_config(path, data_root=args.data_root)
        if cfg.data.max_side > args.max_side:
            print(f"warning: {path.name} asks for max_side {cfg.data.max_side} > --max-side {args.max_side}",
                  file=sys.stderr)
        for entry in cfg.data.train_dirs:
            if entry.path.name in packed:
                continue
            folder = args.output / entry.path.name
            folder.mkdir(parents=True, exist_ok=True)
            for source in list_images(entry.path):
                image = load_image(source, entry.downscale, args.max_side)
                target = folder / (source.stem + ".jpg")
                Image.fromarray(image).save(target, quality=JPEG_QUALITY, subsampling=0)
                digest = sha256_file(source)
                h, w = image.shape[:2]
                manifest.append(f"{target.relative_to(args.output)}\t{source}\t{w}\t{h}\t{digest}")
            packed[entry.path.name] = folder
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        raw["data"]["data_root"] = str(args.output)
        # The pack holds the shrunk photos: each folder is read as is.
        raw["data"]["train_dirs"] = [Path(str(d.get("path") if isinstance(d, dict) else d)).name
                                     for d in raw["data"]["train_dirs"]]
        (args.output / path.name).write_text(f"# {path.name} reading the pack in {args.output}\n\n"
                                             + toml_dumps(raw), encoding="utf-8")
    (args.output / "MANIFEST.tsv").write_text("\n".join(manifest) + "\n", encoding="utf-8")
    size = sum(p.stat().st_size for p in args.output.rglob("*") if p.is_file())
    print(f"packed {len(manifest) - 1} photos from {len(packed)} folders into {args.output} ({size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
