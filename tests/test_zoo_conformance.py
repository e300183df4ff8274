"""Every supported third-party record loads end to end: `irx <task> --model NAME` on a small image.

For each record a random-weight checkpoint is built with the architecture's reference class, in
the record's real hyper-parameters, file format and key layout (irx.zoo.reference), served from
the local Hub stand-in (or a plain local address for url records) and run through the CLI. The
record's pinned SHA-256 is swapped for the stand-in's own (pins are tested in test_hub.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hub_server import FakeHub, isolate_hub_env
from PIL import Image
from typer.testing import CliRunner

import irx.api
from irx.cli.main import app
from irx.tasks import TASKS
from irx.zoo import ModelRecord, default_catalogue
from irx.zoo import registry_data
from irx.zoo.reference import REFERENCES, write_reference_checkpoint

# Restoration records; the face records (irx faces) are checked with their own stand-ins in tests/test_faces.py.
SUPPORTED = [r for r in registry_data.HUB_RECORDS if r.supported and set(r.tasks) <= set(TASKS)]
SIZE = 32  # pixels; small enough for HAT-L and NAFNet-SIDD on two CPU cores


def test_every_supported_record_has_a_reference() -> None:
    assert sorted(REFERENCES) == sorted(r.name for r in SUPPORTED)


def test_every_task_has_a_third_party_default_or_says_why() -> None:
    defaults = {task for r in SUPPORTED for task in r.default_for}
    assert defaults | set(registry_data.NO_THIRD_PARTY_DEFAULT) == set(TASKS)
    assert not defaults & set(registry_data.NO_THIRD_PARTY_DEFAULT)


@pytest.fixture
def served(monkeypatch, tmp_path):
    """A function that serves a record's stand-in and puts the served record in the zoo."""
    with FakeHub() as hub:
        isolate_hub_env(monkeypatch, tmp_path, hub.endpoint)

        def serve(record: ModelRecord) -> ModelRecord:
            assert record.filename is not None
            local = write_reference_checkpoint(record.name, tmp_path / Path(record.filename).name)
            content = local.read_bytes()
            local.unlink()
            pinned = {"sha256": hashlib.sha256(content).hexdigest()}
            if record.source == "url":
                pinned["url"] = hub.add_url_file(record.filename, content)
            else:
                assert record.repo_id is not None
                hub.add_file(record.repo_id, record.filename, content, revision=record.revision or "main")
            served_record = replace(record, **pinned)
            table = tuple(served_record if r.name == record.name else r for r in registry_data.HUB_RECORDS)
            monkeypatch.setattr(registry_data, "HUB_RECORDS", table)
            return served_record

        yield serve
    irx.api.clear_model_cache()  # the descriptors of big models are not needed by later tests


def _image(path: Path, channels: int) -> Path:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (SIZE, SIZE, channels), dtype=np.uint8)
    Image.fromarray(pixels[..., 0] if channels == 1 else pixels).save(path)
    return path


def _is_default(record: ModelRecord) -> bool:
    task = record.tasks[0]
    if task not in record.default_for:
        return False
    hub, _ = default_catalogue().defaults(task, record.scale if task == "upscale" else None)
    return hub is not None and hub.name == record.name


@pytest.mark.parametrize("record", SUPPORTED, ids=lambda r: r.name)
def test_record_loads_and_runs_end_to_end(record: ModelRecord, served, tmp_path) -> None:
    if record.requires and importlib.util.find_spec(record.requires) is None:
        pytest.skip(f"{record.requires} is not installed (CI installs irx[extra-arches])")
    served_record = served(record)
    task = record.tasks[0]
    channels = 1 if "gray" in record.name else 3
    source = _image(tmp_path / "in.png", channels)
    target = tmp_path / "out.png"
    args = [task, str(source), "-o", str(target), "-q", "--device", "cpu"]
    if task == "upscale":
        args += ["--scale", str(record.scale)]
    # A task's default runs with no --model at all; the others by name.
    by_default = _is_default(served_record)
    if not by_default:
        args += ["--model", record.name]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output  # no fallback to a bundled model
    with Image.open(target) as out:
        assert out.size == (SIZE * record.scale, SIZE * record.scale)
        assert len(out.getbands()) == channels
    descriptor = irx.api.load_model(record.name if not by_default else None, task=task,
                                    scale=record.scale if task == "upscale" else None)
    assert (descriptor.architecture.id, descriptor.scale) == (record.arch, record.scale)
    assert descriptor.input_channels == channels


def test_dehaze_keeps_its_bundled_default_and_says_why() -> None:
    assert "dehaze" not in {t for r in registry_data.HUB_RECORDS for t in r.default_for}
    assert "Google Drive" in registry_data.NO_THIRD_PARTY_DEFAULT["dehaze"]
