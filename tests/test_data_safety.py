"""Issue 17: never lose or silently skip a user's file. One test per numbered case of the issue.

Each test runs the exact command of its case and checks that no input byte changed, that every input is
accounted for in the JSON summary, the exit code, and (where a run can leave any) that no temp file stays.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from irx.cli.main import app
from irx.media.atomic import is_temp_name
from tests.conftest import make_image, write_png

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def summary_of(result) -> dict:
    """The one JSON object a --json run prints on stdout (json.loads refuses anything more or less)."""
    return json.loads(result.stdout)


def accounted(summary: dict) -> list[str]:
    """Every input the summary names, once per category it appears in."""
    return sorted(summary["processed"] + summary["skipped"] + [f["path"] for f in summary["failed"]])


def digests(*paths: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in paths}


def temps_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if is_temp_name(p.name) or p.name.endswith(".irx-claim"))


def png(path: Path, seed: int, size: tuple[int, int] = (24, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_png(path, make_image(*size, seed=seed))


# A wrapper around the real CLI for subprocess tests: touches MARKER when the engine first runs (so a
# signal is sent while work is in flight, not after a fixed sleep) and can slow the engine down.
_HARNESS = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from irx.engine import Engine

    marker, delay = Path(sys.argv[1]), float(sys.argv[2])
    original = Engine.submit  # the pipeline calls it, and Engine.restore (video) too

    def submit(self, images):
        marker.touch()
        if delay:
            time.sleep(delay)
        return original(self, images)

    Engine.submit = submit
    from irx.cli.main import main

    sys.argv = ["irx", *sys.argv[3:]]
    main()
    """
)


def start_irx(tmp_path: Path, args: list[object], *, marker: Path, delay: float = 0.0) -> subprocess.Popen:
    script = tmp_path / "harness.py"
    script.write_text(_HARNESS)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(script), str(marker), str(delay), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"irx ended before starting work: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("irx never started restoring")
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------ 1
def test_case01_an_input_that_is_another_inputs_output_is_never_overwritten(tmp_path, tiny_denoiser, monkeypatch):
    """`irx denoise x.png x_denoise.png --overwrite` and the same for video."""
    from tests.test_video import make_video

    monkeypatch.chdir(tmp_path)
    png(tmp_path / "x.png", 1)
    png(tmp_path / "x_denoise.png", 2)  # the user's own file
    make_video(tmp_path / "clip.mp4", n=6, size=(32, 24), audio=None)
    make_video(tmp_path / "clip_denoise.mp4", n=6, size=(32, 24), audio=None)
    inputs = ["x.png", "x_denoise.png", "clip.mp4", "clip_denoise.mp4"]
    before = digests(*map(Path, inputs))

    result = invoke("denoise", *inputs, "--overwrite", "--model", tiny_denoiser, "--json")
    summary = summary_of(result)
    assert result.exit_code == 1
    assert digests(*map(Path, inputs)) == before
    assert accounted(summary) == sorted(inputs)
    reasons = {f["path"]: f["reason"] for f in summary["failed"]}
    assert set(reasons) == {"x.png", "clip.mp4"} and all("also an input of this run" in r for r in reasons.values())
    # The user's files are restored like any other input, to their own new outputs.
    assert sorted(summary["processed"]) == ["clip_denoise.mp4", "x_denoise.png"]
    assert Path("x_denoise_denoise.png").exists() and Path("clip_denoise_denoise.mp4").exists()


# ------------------------------------------------------------------------------------------ 2
def test_case02_an_input_inside_the_output_folder_is_accounted_for_and_kept(tmp_path, tiny_denoiser, monkeypatch):
    """`irx denoise in/a.png out/a.png -o out --overwrite`."""
    monkeypatch.chdir(tmp_path)
    png(tmp_path / "in" / "a.png", 1)
    png(tmp_path / "out" / "a.png", 2)
    before = digests(Path("in/a.png"), Path("out/a.png"))

    result = invoke("denoise", "in/a.png", "out/a.png", "-o", "out", "--overwrite", "--model", tiny_denoiser, "--json")
    summary = summary_of(result)
    assert result.exit_code == 1
    assert digests(Path("in/a.png"), Path("out/a.png")) == before
    assert accounted(summary) == ["in/a.png", "out/a.png"]
    assert {f["path"] for f in summary["failed"]} == {"in/a.png", "out/a.png"}


# ------------------------------------------------------------------------------------------ 3
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_case03_a_fifo_in_a_recursive_folder_does_not_hang(tmp_path, tiny_denoiser):
    photos = tmp_path / "photos"
    png(photos / "a.png", 1)
    (photos / "sub").mkdir()
    os.mkfifo(photos / "sub" / "pipe.png")
    os.mkfifo(photos / "notes")  # not named like an image: not an input at all
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "irx", "denoise", str(photos), "-r", "--model", str(tiny_denoiser), "--json"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("irx hung on a FIFO")
    summary = json.loads(done.stdout)
    assert done.returncode == 1, done.stderr
    assert summary["processed"] == [str(photos / "a.png")]
    assert summary["failed"] == [
        {"path": str(photos / "sub" / "pipe.png"), "reason": "not a regular file (a pipe, socket, device or broken link); not opened"}
    ]


# ------------------------------------------------------------------------------------------ 4
@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_case04_signals_stop_an_image_run_cleanly(tmp_path, tiny_denoiser, sig, code):
    photos = tmp_path / "photos"
    for i in range(24):
        png(photos / f"p{i:02d}.png", i, size=(384, 384))
    out = tmp_path / "out"
    marker = tmp_path / "started"
    process = start_irx(tmp_path, ["denoise", photos, "-o", out, "--model", tiny_denoiser, "--batch-size", "1", "--json"], marker=marker)
    wait_for(marker, process)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == code, stderr
    assert "terminate called" not in stderr
    summary = json.loads(stdout)
    assert summary["error"] in ("interrupted", "terminated") and summary["counts"]["failed"] == 0
    assert temps_in(out) == [] if out.exists() else True
    done = sorted(p.name for p in out.glob("*.png")) if out.exists() else []
    assert sorted(Path(p).name for p in summary["processed"]) == done


# ------------------------------------------------------------------------------------------ 5
def test_case05_a_name_too_long_fails_only_that_file(tmp_path, tiny_denoiser):
    long_input = png(tmp_path / ("n" * 246 + ".png"), 1)  # fits; its output name (+ "_denoise") does not
    short = png(tmp_path / "a.png", 2)
    result = invoke("denoise", long_input, short, "--model", tiny_denoiser, "--json")
    summary = summary_of(result)
    assert result.exit_code == 1
    assert summary["processed"] == [str(short)] and (tmp_path / "a_denoise.png").exists()
    assert [f["path"] for f in summary["failed"]] == [str(long_input)]
    assert "more than this filesystem holds" in summary["failed"][0]["reason"]
    # Long names that fit, and start alike, get their own temp and claim files: both are restored.
    alike = [png(tmp_path / "alike" / ("m" * 200 + f"{i}.png"), i) for i in range(2)]
    result = invoke("denoise", *alike, "--model", tiny_denoiser, "--json")
    assert result.exit_code == 0 and sorted(summary_of(result)["processed"]) == sorted(map(str, alike))


# ------------------------------------------------------------------------------------------ 6
def _damaged_jpeg(path: Path) -> Path:
    buffer = io.BytesIO()
    Image.fromarray((make_image(64, 64) * 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    data = bytearray(buffer.getvalue())
    middle = len(data) // 2
    for i in range(middle, middle + 64):  # scramble the entropy-coded middle; header and end marker intact
        data[i] = (data[i] * 7 + 13) % 256
    path.write_bytes(bytes(data))
    return path


def test_case06_a_jpeg_with_a_damaged_middle_is_reported(tmp_path, tiny_denoiser):
    bad = _damaged_jpeg(tmp_path / "bad.jpg")
    good = tmp_path / "good.jpg"
    Image.fromarray((make_image(64, 64, seed=3) * 255).astype(np.uint8)).save(good, "JPEG")
    result = invoke("denoise", bad, good, "--model", tiny_denoiser, "--json")
    summary = summary_of(result)
    assert result.exit_code == 0
    assert sorted(summary["processed"]) == sorted([str(bad), str(good)])
    assert [w["path"] for w in summary["warnings"]] == [str(bad)]
    assert "damaged" in summary["warnings"][0]["reason"]
    assert "damaged" in result.stderr

    strict = invoke("denoise", bad, "-o", tmp_path / "strict.jpg", "--strict", "--model", tiny_denoiser, "--json")
    assert strict.exit_code == 1
    assert [f["path"] for f in summary_of(strict)["failed"]] == [str(bad)]
    assert not (tmp_path / "strict.jpg").exists()


# ------------------------------------------------------------------------------------------ 7
def test_case07_user_files_named_like_outputs_inside_a_folder_are_not_ignored(tmp_path, tiny_denoiser):
    photos = tmp_path / "photos"
    png(photos / "a.png", 1)
    png(photos / "holiday_denoise.png", 2)  # the user's own photo, whatever its name
    result = invoke("denoise", photos, "--model", tiny_denoiser, "--json")
    summary = summary_of(result)
    assert result.exit_code == 0
    assert sorted(summary["processed"]) == [str(photos / "a.png"), str(photos / "holiday_denoise.png")]
    assert (tmp_path / "photos_denoise" / "holiday_denoise.png").exists()


# ------------------------------------------------------------------------------------------ 8
def test_case08_names_with_glob_characters_are_taken_literally(tmp_path, tiny_denoiser, monkeypatch):
    monkeypatch.chdir(tmp_path)
    png(tmp_path / "a[1].png", 1)
    png(tmp_path / "what?.png", 2)
    png(tmp_path / "shots*" / "b.png", 3)
    result = invoke("denoise", "a[1].png", "what?.png", "shots*", "--model", tiny_denoiser, "--json")
    summary = summary_of(result)
    assert result.exit_code == 0, result.output
    assert sorted(summary["processed"]) == sorted(["a[1].png", "what?.png", str(Path("shots*") / "b.png")])
    assert Path("a[1]_denoise.png").exists() and Path("what?_denoise.png").exists()
    assert Path("shots*_denoise/b.png").exists()


# ------------------------------------------------------------------------------------------ 9
@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_case09_temp_files_of_killed_runs_are_removed_by_the_next_run(tmp_path, tiny_denoiser):
    from tests.test_video import make_video

    photos = tmp_path / "photos"
    png(photos / "a.png", 1)
    out = tmp_path / "out"
    out.mkdir()
    # kill -9 in the middle of writing out/a.png leaves its temp file behind.
    script = f"from irx.media import atomic_output\nimport os, signal\nwith atomic_output({str(out / 'a.png')!r}) as tmp:\n"
    script += "    tmp.write_bytes(b'half')\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", script], env=env, timeout=120, check=False)
    assert len(temps_in(out)) == 1
    result = invoke("denoise", photos, "-o", out, "--model", tiny_denoiser, "--json")
    assert result.exit_code == 0 and summary_of(result)["counts"]["processed"] == 1
    assert temps_in(out) == [] and (out / "a.png").exists()
    # The next run removes them even when it has nothing to restore.
    subprocess.run([sys.executable, "-c", script.replace("a.png", "b.png")], env=env, timeout=120, check=False)
    assert invoke("denoise", photos, "-o", out, "--model", tiny_denoiser, "-q").exit_code == 0
    assert temps_in(out) == []

    # A plain `kill` (SIGTERM) of a video run leaves no temp file either.
    make_video(tmp_path / "long.mp4", n=200, size=(32, 24), audio=None)
    marker = tmp_path / "started"
    process = start_irx(
        tmp_path, ["denoise", tmp_path / "long.mp4", "-o", out / "long.mp4", "--model", tiny_denoiser, "--json"],
        marker=marker, delay=0.2,
    )
    wait_for(marker, process)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 143, stderr
    assert json.loads(stdout)["error"] == "terminated"
    assert temps_in(out) == [] and not (out / "long.mp4").exists()


# ------------------------------------------------------------------------------------------ 10
@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["denoise", "{a}", "--tile", "huge"], 2),
        (["denoise", "{a}", "--no-such-option"], 2),
        (["denoise", "{a}", "--quality", "0"], 2),
        (["run", "{a}"], 2),
        (["denoise", "{empty}"], 2),
        (["denoise", "{a}", "--model", "a[/]b.pth"], 1),
        (["denoise", "{a}", "--model", "[bold]x[/bold].safetensors"], 1),
        (["denoise", "{a}", "--device", "tpu"], 2),
    ],
)
def test_case10_json_on_every_error_path_and_user_text_is_not_markup(tmp_path, args, code):
    a = png(tmp_path / "a.png", 1)
    (tmp_path / "empty").mkdir()
    argv = [x.format(a=a, empty=tmp_path / "empty") for x in args] + ["--json"]
    result = runner.invoke(app, argv)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, result.output
    summary = summary_of(result)
    assert summary["error"] and "\n" not in summary["error"].strip()
    assert "Traceback" not in result.output and "MarkupError" not in result.output
    if "--model" in args:
        assert args[args.index("--model") + 1] in result.stderr  # printed as written, not as markup
    assert a.read_bytes() == (tmp_path / "a.png").read_bytes() and not (tmp_path / "a_denoise.png").exists()


# ------------------------------------------------------------------------------------------ 11
def test_case11_two_runs_on_one_folder_share_the_work(tmp_path, tiny_denoiser):
    photos = tmp_path / "photos"
    names = [f"p{i:02d}.png" for i in range(12)]
    for i, name in enumerate(names):
        png(photos / name, i)
    out = tmp_path / "out"
    args = ["denoise", photos, "-o", out, "--model", tiny_denoiser, "--batch-size", "1", "--json"]
    first = start_irx(tmp_path, args, marker=tmp_path / "m1", delay=0.4)
    second = start_irx(tmp_path, args, marker=tmp_path / "m2", delay=0.4)
    results = [p.communicate(timeout=400) for p in (first, second)]
    summaries = [json.loads(stdout) for stdout, _ in results]
    assert [first.returncode, second.returncode] == [0, 0], [err for _, err in results]
    assert all(s["failed"] == [] for s in summaries)
    done = [set(s["processed"]) for s in summaries]
    assert not done[0] & done[1]  # no image restored twice
    assert sorted(Path(p).name for p in done[0] | done[1]) == names
    assert sorted(p.name for p in out.iterdir()) == names  # nothing else left, no claims, no temps
    for summary in summaries:
        assert accounted(summary) == sorted(str(photos / n) for n in names)


def test_case11_a_live_claim_is_respected_and_a_dead_one_taken_over(tmp_path, tiny_denoiser):
    from irx.media.atomic import HOST_TAG

    photos = tmp_path / "photos"
    for name in ("a.png", "b.png", "c.png"):
        png(photos / name, ord(name[0]))
    out = tmp_path / "out"
    out.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        (out / ".a.png.irx-claim").write_text(f"{HOST_TAG} {other.pid}\n")  # another run is on a.png
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        (out / ".b.png.irx-claim").write_text(f"{HOST_TAG} {int(dead.stdout)}\n")  # a killed run's claim
        result = invoke("denoise", photos, "-o", out, "--model", tiny_denoiser, "--json")
    finally:
        other.kill()
        other.wait()
    summary = summary_of(result)
    assert result.exit_code == 0
    assert summary["skipped"] == [str(photos / "a.png")]
    assert f"another irx run (pid {other.pid}) is restoring it" in summary["warnings"][0]["reason"]
    assert sorted(summary["processed"]) == [str(photos / "b.png"), str(photos / "c.png")]
    assert sorted(p.name for p in out.iterdir()) == [".a.png.irx-claim", "b.png", "c.png"]


# ------------------------------------------------------------------------------------------ 12
def test_case12_a_model_file_for_another_task_is_refused_and_run_accepts_it(photos_pair, tiny_upscaler, tiny_denoiser):
    a, _ = photos_pair
    result = invoke("denoise", a, "--model", tiny_upscaler, "--json")
    assert result.exit_code == 1 and "not a denoise model" in summary_of(result)["error"]
    assert not a.with_name("a_denoise.png").exists()
    assert invoke("upscale", a, "--model", tiny_denoiser, "-q").exit_code == 1  # a 1x model is no upscaler
    ran = invoke("run", a, "--model", tiny_upscaler, "--json")
    assert ran.exit_code == 0 and summary_of(ran)["counts"]["processed"] == 1
    with Image.open(a.with_name("a_restored.png")) as im:
        assert im.size == (64, 48)


@pytest.fixture()
def photos_pair(tmp_path: Path) -> tuple[Path, Path]:
    return png(tmp_path / "a.png", 1), png(tmp_path / "b.png", 2)


@pytest.mark.parametrize(
    "option", [["--preset", "bogus"], ["--pix-fmt", "bogus"], ["--codec", "nope"], ["--codec", "ffv1", "--preset", "fast"]]
)
def test_case12_bad_video_options_exit_2_before_the_model_loads(tmp_path, option):
    from tests.test_video import make_video

    clip = make_video(tmp_path / "clip.mp4", n=4, size=(32, 24), audio=None)
    # The model does not exist: exit 2 and a video message prove the options were checked first.
    result = invoke("denoise", clip, "--model", tmp_path / "missing.safetensors", *option, "-o", tmp_path / "o.mkv", "--json")
    assert result.exit_code == 2, result.output
    assert "missing.safetensors" not in summary_of(result)["error"]
    assert not (tmp_path / "o.mkv").exists()


def test_case12_a_bad_preset_prints_one_line_and_no_encoder_output(tmp_path, tiny_denoiser):
    from tests.test_video import make_video

    clip = make_video(tmp_path / "clip.mp4", n=4, size=(32, 24), audio=None)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "irx", "denoise", str(clip), "--model", str(tiny_denoiser), "--preset", "bogus"],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "preset" in done.stderr
    assert "x264 [error]" not in done.stderr


def test_case12_an_unquoted_glob_rerun_does_not_restore_outputs_again(photos_pair, tiny_denoiser, monkeypatch):
    a, b = photos_pair
    monkeypatch.chdir(a.parent)
    first = invoke("denoise", "a.png", "b.png", "--model", tiny_denoiser, "-q")
    assert first.exit_code == 0
    before = digests(*sorted(a.parent.glob("*.png")))
    # What the shell passes for `irx denoise *.png` the second time.
    again = invoke("denoise", *sorted(p.name for p in a.parent.glob("*.png")), "--model", tiny_denoiser, "--json")
    summary = summary_of(again)
    assert again.exit_code == 0
    assert accounted(summary) == ["a.png", "a_denoise.png", "b.png", "b_denoise.png"]
    assert summary["processed"] == [] and not list(a.parent.glob("*_denoise_denoise*"))
    assert digests(*sorted(a.parent.glob("*.png"))) == before
