"""`--compare`: a before/after picture beside each output, and for folders one HTML page with a slider per image.

The picture ``<output stem>.compare.png`` is the input resized to the output's size on the left, a thin white
divider, and the output on the right (8-bit RGB; an animation shows its first frame; alpha is dropped). The page
``compare.html`` goes to the folder that holds all the outputs; it needs nothing but the compare pictures
beside it (no network, no scripts from elsewhere) and links every output. Both are irx's own outputs in the
ledger (irx.media.outputs): they replace only earlier compare files irx wrote, never a user's file.
"""

from __future__ import annotations

import html
import io
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from irx.media.atomic import atomic_write_bytes
from irx.media.outputs import Ledgers, record_output

__all__ = ["DIVIDER", "PAGE_NAME", "compare_path", "side_by_side", "write_compare", "write_compare_page"]

DIVIDER = 4  # pixels of white between the halves
PAGE_NAME = "compare.html"
_TASK = "compare"


def compare_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}.compare.png")


def _rgb8(pixels: np.ndarray) -> np.ndarray:
    from irx.media.image_io import to_uint  # noqa: PLC0415

    arr = np.asarray(pixels, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return to_uint(arr, 8)


def side_by_side(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """uint8 RGB: ``before`` resized to ``after``'s size | white divider | ``after``."""
    right = _rgb8(after)
    h, w = right.shape[:2]
    left = np.asarray(before, dtype=np.float32)
    if left.shape[:2] != (h, w):
        shrinking = left.shape[1] > w
        left = cv2.resize(left, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    out = np.full((h, 2 * w + DIVIDER, 3), 255, np.uint8)
    out[:, :w] = _rgb8(left)
    out[:, w + DIVIDER :] = right
    return out


def _ours_or_absent(path: Path) -> bool:
    return not os.path.lexists(path) or Ledgers().entry(path) is not None


def _write_own(path: Path, data: bytes, source: Path) -> Path:
    if not _ours_or_absent(path):
        raise FileExistsError(f"{path} exists and was not written by irx; the compare file was not written")
    atomic_write_bytes(path, data, overwrite=True)
    record_output(path, task=_TASK, source=source)
    return path


def write_compare(output: Path, source: Path, before: np.ndarray, after: np.ndarray) -> Path:
    """Write the before/after picture of ``output``; FileExistsError if a user's file has its name."""
    from PIL import Image  # noqa: PLC0415

    buf = io.BytesIO()
    Image.fromarray(side_by_side(before, after)).save(buf, format="PNG", compress_level=3)
    return _write_own(compare_path(output), buf.getvalue(), source)


_STYLE = """body{font-family:sans-serif;background:#222;color:#eee;margin:1em}
figure{margin:0 0 2em}.cmp{position:relative;overflow:hidden;max-width:100%}
.cmp img{position:absolute;top:0;height:100%;max-width:none;user-select:none}
input[type=range]{width:100%}a{color:#9cf}"""
# The "before" layer is the whole picture; clip it at the slider's place in the left half (data-k: half / width).
_SCRIPT = """for(const f of document.querySelectorAll('figure')){const r=f.querySelector('input'),
b=f.querySelector('.before'),k=parseFloat(f.dataset.k);if(!r)continue;
const s=()=>{b.style.clipPath='inset(0 '+(100-r.value*k)+'% 0 0)'};r.addEventListener('input',s);s()}"""


def write_compare_page(entries: Sequence[tuple[Path, Path]], folder: Path) -> Path | None:
    """An HTML page in ``folder`` linking every (source, output), with a slider where its compare picture is."""
    from PIL import Image  # noqa: PLC0415

    figures = []
    for source, output in entries:
        picture = compare_path(output)
        out_ref = html.escape(os.path.relpath(output, folder).replace(os.sep, "/"))
        try:
            if Ledgers().entry(picture) is None:
                raise OSError("not irx's compare picture")
            with Image.open(picture) as im:
                width, height = im.size
        except OSError:  # no picture of ours: the output is still listed
            figures.append(f'<figure><figcaption>{html.escape(source.name)}: <a href="{out_ref}">{out_ref}</a>'
                           " (no compare picture)</figcaption></figure>")
            continue
        half = (width - DIVIDER) // 2
        ref = html.escape(os.path.relpath(picture, folder).replace(os.sep, "/"))
        zoom = 100.0 * width / half  # the picture is two halves wide; show one half in the frame
        shift = 100.0 * (half + DIVIDER) / half
        figures.append(
            f'<figure data-k="{half / width:.6f}"><div class="cmp" style="width:{half}px;aspect-ratio:{half}/{height}">'
            f'<img src="{ref}" alt="after" style="width:{zoom:.4f}%;left:-{shift:.4f}%">'
            f'<img class="before" src="{ref}" alt="before" style="width:{zoom:.4f}%;left:0"></div>'
            f'<input type="range" min="0" max="100" value="50" aria-label="before/after">'
            f'<figcaption>{html.escape(source.name)}: before (left of the slider) / after: '
            f'<a href="{out_ref}">{out_ref}</a></figcaption></figure>'
        )
    if not figures:
        return None
    page = (
        '<!doctype html><html><head><meta charset="utf-8"><title>irx before/after</title>'
        f"<style>{_STYLE}</style></head><body><h1>irx before/after</h1>{''.join(figures)}"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
    return _write_own(folder / PAGE_NAME, page.encode("utf-8"), folder)
