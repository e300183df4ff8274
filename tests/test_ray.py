"""The Ray engine gives the local engine's outputs, survives a killed worker, resumes, and splits videos.

One local Ray cluster of CPU workers serves the whole module (starting one is slow on two cores).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray")

from conftest import make_image, write_png  # noqa: E402
from test_video import read_video, stream_packets  # noqa: E402
from test_video_split import make_clip  # noqa: E402

from typer.testing import CliRunner  # noqa: E402

from irx.cli.main import app  # noqa: E402
from irx.errors import UsageError  # noqa: E402
from irx.run import restore_files  # noqa: E402
from irx.settings import RestoreSettings  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def cluster() -> object:
    # 3 logical CPUs: two CPU workers and one for the decode and encode tasks.
    ray.init(num_cpus=3, num_gpus=0, object_store_memory=80 * 1024**2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


def settings(engine: str, **changes: object) -> RestoreSettings:
    return RestoreSettings(device="cpu", engine=engine, workers=2 if engine == "ray" else None, **changes)


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def outputs(folder: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(folder)): pixels(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A nested folder of images of several sizes (grey and alpha too) and one corrupt file."""
    folder = tmp_path / "photos"
    (folder / "trip" / "day2").mkdir(parents=True)
    sizes = [(16, 16), (24, 40), (16, 16), (33, 17), (48, 48), (16, 16)]
    for i, (h, w) in enumerate(sizes):
        write_png(folder / ("trip" if i % 2 else "") / f"p{i}.png", make_image(h, w, seed=i))
    write_png(folder / "trip" / "day2" / "grey.png", make_image(20, 28, channels=1, seed=7))
    write_png(folder / "trip" / "day2" / "alpha.png", make_image(18, 18, channels=4, seed=8))
    (folder / "trip" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def test_a_folder_gives_exactly_the_local_engines_outputs(photos: Path, tmp_path: Path, tiny_denoiser: Path) -> None:
    local = restore_files([photos], model=str(tiny_denoiser), output=tmp_path / "local",
                          settings=settings("local", recursive=True))
    remote = restore_files([photos], model=str(tiny_denoiser), output=tmp_path / "ray",
                           settings=settings("ray", recursive=True))
    assert sorted(remote.processed) == sorted(local.processed) and len(local.processed) == 8
    assert remote.failed == local.failed and [f["path"] for f in remote.failed] == [str(photos / "trip" / "broken.png")]
    got, want = outputs(tmp_path / "ray"), outputs(tmp_path / "local")
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].shape == want[name].shape and np.array_equal(got[name], want[name]), name
    assert not list((tmp_path / "ray").rglob(".*"))  # no claims or temp files left behind

    # A rerun skips what is done, as the local engine does; the command line's --json and exit code agree.
    answers = {}
    for engine in ("local", "ray"):
        args = ["run", str(photos), "-r", "-o", str(tmp_path / engine), "--model", str(tiny_denoiser),
                "--device", "cpu", "--json", "--engine", engine] + (["--workers", "2"] if engine == "ray" else [])
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, result.output  # the corrupt file fails again
        answers[engine] = json.loads(result.stdout)
    for key in ("processed", "skipped", "failed", "counts"):
        assert answers["ray"][key] == answers["local"][key], key
    assert answers["ray"]["counts"] == {"processed": 0, "skipped": 8, "failed": 1}
    assert outputs(tmp_path / "ray").keys() == want.keys()


def _restore_workers() -> list[int]:
    """Pids of this machine's Ray restore worker processes (Ray names them after the actor class)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if command.startswith(b"ray::RestoreWorker"):
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker processes in /proc")
def test_a_killed_worker_is_restarted_and_its_images_retried(tmp_path: Path, tiny_denoiser: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(24):
        write_png(folder / f"{i:02d}.png", make_image(64, 64, seed=i))
    out = tmp_path / "ray"
    result: dict[str, object] = {}
    run = threading.Thread(target=lambda: result.update(summary=restore_files(
        [folder], model=str(tiny_denoiser), output=out, settings=settings("ray", batch_size=1))))
    run.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and run.is_alive() and time.monotonic() < deadline:
        workers = _restore_workers()
        if workers and out.is_dir() and any(out.glob("*.png")):  # mid-run: some images are written
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    run.join(timeout=300)
    assert killed is not None, "the run ended before a worker could be killed"
    summary = result["summary"]
    assert len(summary.processed) == 24 and summary.failed == []
    reference = restore_files([folder], model=str(tiny_denoiser), output=tmp_path / "local", settings=settings("local"))
    assert len(reference.processed) == 24
    got, want = outputs(out), outputs(tmp_path / "local")
    assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)


def test_a_video_split_across_workers_joins_to_the_single_process_frames_and_audio(
    tmp_path: Path, tiny_denoiser: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from irx.media.video import split as split_module

    src = make_clip(tmp_path / "clip.mkv", codec="ffv1", n=36, gop=6)
    planned = []
    real_plan = split_module.plan_split
    monkeypatch.setattr(split_module, "plan_split", lambda *a, **k: planned.append(real_plan(*a, **k)) or planned[-1])
    remote = restore_files([src], model=str(tiny_denoiser), output=tmp_path / "ray" / "clip.mkv",
                           settings=settings("ray", codec="ffv1"))
    local = restore_files([src], model=str(tiny_denoiser), output=tmp_path / "local" / "clip.mkv",
                          settings=settings("local", codec="ffv1"))
    assert remote.processed == local.processed == [str(src)] and remote.failed == []
    assert len(planned) == 1 and planned[0] is not None and len(planned[0].windows) == 4  # 2 parts per worker
    got, want = read_video(tmp_path / "ray" / "clip.mkv"), read_video(tmp_path / "local" / "clip.mkv")
    assert len(got["frames"]) == len(want["frames"]) == 36
    assert got["pts"] == want["pts"] and got["end"] == want["end"]
    assert all(np.array_equal(x, y) for x, y in zip(got["frames"], want["frames"]))  # FFV1 is lossless
    audio = stream_packets(tmp_path / "ray" / "clip.mkv", "audio")
    assert audio == stream_packets(tmp_path / "local" / "clip.mkv", "audio") and len(audio) > 5


def test_without_ray_installed_the_engine_is_a_one_line_usage_error(
    tmp_path: Path, tiny_denoiser: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = write_png(tmp_path / "a.png", make_image(16, 16))
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    with pytest.raises(UsageError, match=r"pip install 'irx\[ray\]'") as caught:
        restore_files([image], model=str(tiny_denoiser), output=tmp_path / "out", settings=settings("ray"))
    assert caught.value.param == "engine" and not (tmp_path / "out").exists()


def test_irx_restorer_restores_a_ray_data_style_batch(tiny_denoiser: Path) -> None:
    from irx.api import load_model
    from irx.engine import Engine
    from irx.ray import IrxRestorer

    restorer = IrxRestorer(str(tiny_denoiser), device="cpu")
    same = (np.stack([make_image(16, 16, seed=s) for s in range(3)]) * 255).round().astype(np.uint8)
    batch = restorer({"image": same, "id": np.arange(3)})
    assert batch["image"].shape == same.shape and batch["image"].dtype == np.uint8
    assert list(batch["id"]) == [0, 1, 2]  # other columns pass through
    engine = Engine(load_model(str(tiny_denoiser), device="cpu"), device="cpu")
    want = engine.restore([image.astype(np.float32) / 255 for image in same])
    assert np.array_equal(batch["image"], np.stack([np.rint(w * 255).astype(np.uint8) for w in want]))
    # images of different sizes (a list column) come back as a list of their own sizes
    mixed = [same[0], (make_image(24, 20) * 255).astype(np.uint8)]
    out = IrxRestorer(str(tiny_denoiser), device="cpu", output_column="restored")({"image": mixed})
    assert [r.shape for r in out["restored"]] == [(16, 16, 3), (24, 20, 3)] and out["image"] is mixed


def test_workers_beyond_the_cluster_are_a_usage_error(tmp_path: Path, tiny_denoiser: Path) -> None:
    image = write_png(tmp_path / "a.png", make_image(16, 16))
    with pytest.raises(UsageError, match="need 6 CPUs") as caught:
        restore_files([image], model=str(tiny_denoiser), output=tmp_path / "out",
                      settings=settings("ray").with_(workers=5))
    assert caught.value.param == "workers"


def test_a_model_that_does_not_load_stops_the_run_before_any_file(tmp_path: Path) -> None:
    from irx.errors import ModelError

    image = write_png(tmp_path / "a.png", make_image(16, 16))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelError):
        restore_files([image], model=str(broken), output=tmp_path / "out", settings=settings("ray"))
    assert not (tmp_path / "out").exists()


def test_workers_follow_the_clusters_gpus_else_its_cpus() -> None:
    from irx.ray import _cluster_workers

    class Cluster:
        def __init__(self, **resources: float) -> None:
            self.resources = resources

        def cluster_resources(self) -> dict[str, float]:
            return self.resources

    assert _cluster_workers(Cluster(CPU=16, GPU=4), None) == (4, True)  # one per GPU
    assert _cluster_workers(Cluster(CPU=16, GPU=4), 2) == (2, True)
    with pytest.raises(UsageError, match="need 5 GPUs"):
        _cluster_workers(Cluster(CPU=16, GPU=4), 5)
    assert _cluster_workers(Cluster(CPU=9), None) == (4, False)  # one per two CPUs, one CPU kept for decoding
    assert _cluster_workers(Cluster(CPU=2), None) == (1, False)
