"""Rewrite the part of a docs page between two HTML-comment markers (the benchmarks' quoted tables)."""

from __future__ import annotations

from pathlib import Path


def replace_between(doc: Path, start: str, end: str, text: str) -> bool:
    """Put `text` between the markers `start` and `end` in `doc`; False (nothing written) if either is missing."""
    if not doc.exists():
        return False
    page = doc.read_text()
    if start not in page or end not in page:
        return False
    before, rest = page.split(start, 1)
    after = rest.split(end, 1)[1]
    doc.write_text(f"{before}{start}\n{text}\n{end}{after}")
    return True
