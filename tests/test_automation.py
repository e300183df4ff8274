"""Pipes and automation: stdin -> stdout byte streams, --watch, and --json progress lines."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import irx
from irx.settings import RestoreSettings
from irx.watch import watch_files
from tests.conftest import make_image, write_png

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", IRX_CACHE_DIR=str(tmp_path / "cache"))
    env["OMP_NUM_THREADS"] = "1"
    return env


def _irx(*args: str) -> list[str]:
    return [sys.executable, "-m", "irx", *map(str, args)]


def _png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.rint(array * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_stdin_to_stdout_is_the_restored_image_and_nothing_else(tmp_path, tiny_denoiser):
    pixels = make_image(20, 24, seed=3)
    data = _png_bytes(pixels)
    done = subprocess.run(_irx("denoise", "-", "-o", "-", "--model", tiny_denoiser, "--format", "tiff",
                               "--json"),
                          input=data, capture_output=True, env=_env(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    # stdout is exactly one TIFF image (format from --format), the same as the Python API's result.
    assert done.stdout[:4] == b"II*\x00"
    with Image.open(io.BytesIO(done.stdout)) as im:
        got = np.asarray(im.convert("RGB"))
    expected = np.asarray(irx.restore(Image.open(io.BytesIO(data)).convert("RGB"), model=str(tiny_denoiser),
                                      device="cpu"))
    assert np.array_equal(got, expected)
    # stderr: JSON progress lines, then the summary object (stdout carries the image).
    lines = done.stderr.decode().splitlines()
    events = [json.loads(line) for line in lines if line.startswith('{"event"')]
    assert [e["event"] for e in events][0] == "start" and events[-1]["event"] == "stop"
    assert {"event": "file_done", "path": "-"} in events
    summary = json.loads("\n".join(lines[lines.index("{"):]))
    assert summary["processed"] == ["-"] and summary["counts"]["failed"] == 0


def test_bad_stdin_fails_with_one_line_and_empty_stdout(tmp_path, tiny_denoiser):
    done = subprocess.run(_irx("denoise", "-", "-o", "-", "--model", tiny_denoiser), input=b"not an image",
                          capture_output=True, env=_env(tmp_path), timeout=300)
    assert done.returncode != 0 and done.stdout == b""
    assert "stdin: not a recognised image" in done.stderr.decode()


def _default_sigint() -> None:
    # A shell's background job ignores SIGINT, and Python keeps an ignored SIGINT ignored: undo that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_watch_picks_up_a_dropped_file_and_stops_on_a_signal(tmp_path, tiny_denoiser, stop_signal):
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    inbox.mkdir()
    write_png(inbox / "early.png", make_image(16, 16, seed=1))
    proc = subprocess.Popen(_irx("denoise", inbox, "-o", outbox, "--model", tiny_denoiser, "--watch", "--json"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(tmp_path),
                            preexec_fn=_default_sigint)
    try:
        _wait_for(outbox / "early.png", proc)
        write_png(inbox / "late.png", make_image(16, 16, seed=2))  # dropped after the watch started
        _wait_for(outbox / "late.png", proc)
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    summary = json.loads(out)
    assert sorted(summary["processed"]) == [str(inbox / "early.png"), str(inbox / "late.png")]
    assert summary["skipped"] == [] and "error" not in summary
    done = [json.loads(line)["path"] for line in err.decode().splitlines() if '"file_done"' in line]
    assert sorted(done) == sorted(summary["processed"])


def _wait_for(path: Path, proc: subprocess.Popen, limit: float = 240) -> None:
    start = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"irx --watch ended early: {proc.stderr.read().decode()}")
        if time.monotonic() - start > limit:
            pytest.fail(f"{path} did not appear within {limit}s")
        time.sleep(0.2)


def test_watch_waits_until_a_file_stops_growing_and_skips_what_is_done(tmp_path, tiny_denoiser):
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    inbox.mkdir()
    outbox.mkdir()
    write_png(outbox / "done.png", make_image(8, 8, seed=5))  # an output that exists already
    write_png(inbox / "done.png", make_image(8, 8, seed=6))
    stop = threading.Event()
    result: dict = {}
    settings = RestoreSettings.resolve(device="cpu")
    thread = threading.Thread(target=lambda: result.update(summary=watch_files(
        [str(inbox)], task="denoise", model=str(tiny_denoiser), output=str(outbox), settings=settings,
        poll_s=0.05, settle_s=0.6, stop=stop)))
    thread.start()
    try:
        data = _png_bytes(make_image(24, 24, seed=7))
        with open(inbox / "slow.png", "wb") as handle:  # written in pieces, as a slow copy does
            for start in range(0, len(data), max(1, len(data) // 8)):
                handle.write(data[start : start + max(1, len(data) // 8)])
                handle.flush()
                time.sleep(0.15)
        deadline = time.monotonic() + 120
        while not (outbox / "slow.png").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(60)
    summary = result["summary"]
    # Taken mid-copy, the file would have failed to decode: it was taken once, whole.
    assert summary.processed == [str(inbox / "slow.png")] and summary.failed == []
    assert summary.skipped == [str(inbox / "done.png")]
    assert (outbox / "slow.png").exists()


def test_file_to_stdout_in_process(tmp_path, tiny_denoiser):
    from typer.testing import CliRunner

    from irx.cli.main import app

    source = write_png(tmp_path / "a.png", make_image(12, 16, seed=9))
    result = CliRunner().invoke(app, ["denoise", str(source), "-o", "-", "--model", str(tiny_denoiser), "-q"])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.startswith(b"\x89PNG")  # the input's format
    with Image.open(io.BytesIO(result.stdout_bytes)) as im:
        assert im.size == (16, 12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # nothing written beside the input
    refused = CliRunner().invoke(app, ["denoise", "-", "-o", "-", "--compare", "--model", str(tiny_denoiser)])
    assert refused.exit_code == 2 and refused.stdout_bytes == b""
