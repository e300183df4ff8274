"""Zoo records, bundled JSON sidecars, resolution order, defaults, user config and `irx models`."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hub_server import FakeHub, free_port, isolate_hub_env
from safetensors.torch import save_file
from typer.testing import CliRunner

from irx.cli.models import models_app
from irx.errors import ModelError, UsageError
from irx.zoo import (
    Catalogue,
    ModelRecord,
    UserConfig,
    load_bundled_records,
    load_user_config,
    resolve,
)
from irx.zoo.records import read_bundled_record, write_bundled_record
from irx.zoo.registry_data import HUB_RECORDS

REPO = "acme/denoiser"


def save_weights(folder: Path, name: str, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.safetensors"
    save_file({"w": torch.randn(3, 3)}, str(path))
    return path


def bundled(name: str, tasks=("denoise",), scale: int = 1, default_for=()) -> ModelRecord:
    return ModelRecord(name=name, tasks=tasks, arch="Tiny", scale=scale, source="bundled",
                       filename=f"{name}.safetensors", license="MIT", default_for=default_for)


def hub_record(name: str, filename: str = "model.safetensors", default_for=(), **kw) -> ModelRecord:
    return ModelRecord(name=name, tasks=("denoise",), arch="Tiny", scale=1, source="hub", filename=filename,
                       repo_id=REPO, revision="main", license="CC-BY-4.0", third_party=True,
                       default_for=default_for, **kw)


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A fake Hub, isolated caches, and a weights folder with two bundled models."""
    with FakeHub() as hub:
        paths = isolate_hub_env(monkeypatch, tmp_path, hub.endpoint)
        weights = Path(paths["IRX_WEIGHTS_DIR"])
        for rec in (bundled("tiny-denoise", default_for=("denoise",)),
                    bundled("tiny-up2", tasks=("upscale",), scale=2),
                    bundled("tiny-up4", tasks=("upscale",), scale=4)):
            save_weights(weights, rec.name, seed=rec.scale)
            write_bundled_record(rec, weights)
        hub.weights = weights  # type: ignore[attr-defined]
        hub.content = b"hub weights " * 1000  # type: ignore[attr-defined]
        hub.add_file(REPO, "model.safetensors", hub.content)  # type: ignore[attr-defined]
        yield hub


def catalogue(hub: FakeHub, *extra: ModelRecord) -> Catalogue:
    return Catalogue([*load_bundled_records(hub.weights), *extra], hub.weights)


# ---------------------------------------------------------------- records and JSON


def test_record_validation():
    ok = bundled("a-model")
    assert ok.tasks == ("denoise",) and hash(ok)
    with pytest.raises(ValueError, match="unknown task"):
        replace(ok, tasks=("sharpen",))
    with pytest.raises(ValueError, match="repo_id"):
        ModelRecord(name="h", tasks=("denoise",), arch="X", scale=1, source="hub", filename="f.pth")
    with pytest.raises(ValueError, match="64 hex"):
        replace(ok, sha256="abc")
    with pytest.raises(ValueError, match="default_for"):
        replace(ok, default_for=("upscale",))
    with pytest.raises(ValueError, match="name"):
        replace(ok, name="has space")


def test_bundled_json_round_trip_and_hash(tmp_path):
    weights = save_weights(tmp_path, "my-model")
    rec = replace(bundled("my-model", default_for=("denoise",)), metrics={"psnr": 31.5})
    json_path = write_bundled_record(rec, tmp_path)
    data = json.loads(json_path.read_text())
    assert data["schema"] == 1 and data["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert data["tasks"] == ["denoise"] and data["source"] == "bundled"
    loaded = load_bundled_records(tmp_path)
    assert loaded == [replace(rec, sha256=data["sha256"])]
    with pytest.raises(ModelError, match="re-export"):
        write_bundled_record(replace(rec, sha256="0" * 64), tmp_path)


def test_exporter_call_form_keeps_extra_fields(tmp_path):
    save_weights(tmp_path, "trained")
    record = {**bundled("trained").to_dict(), "sha256": None, "training": {"steps": 12}}
    write_bundled_record(tmp_path / "trained.json", record)  # (json_path, dict), as irx.train calls it
    data = json.loads((tmp_path / "trained.json").read_text())
    assert data["training"] == {"steps": 12} and len(data["sha256"]) == 64
    assert read_bundled_record(tmp_path / "trained.json").name == "trained"


def test_broken_or_orphan_records(tmp_path):
    save_weights(tmp_path, "good")
    write_bundled_record(bundled("good"), tmp_path)
    (tmp_path / "orphan.json").write_text(json.dumps({**bundled("orphan").to_dict(), "sha256": None}))
    assert [r.name for r in load_bundled_records(tmp_path)] == ["good"]  # no weights: skipped
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ModelError, match="bad.json"):
        load_bundled_records(tmp_path)


def test_hub_table_is_consistent():
    names = [r.name for r in HUB_RECORDS]
    assert len(names) == len(set(names))
    for r in HUB_RECORDS:
        assert r.source in ("hub", "url") and r.third_party and r.license
        assert (r.repo_id and r.url is None) if r.source == "hub" else (r.url and r.sha256 and not r.repo_id)
        assert not r.supported or r.filename
    by = {r.name: r for r in HUB_RECORDS}
    assert not by["laformer-official"].supported and by["laformer-official"].filename is None
    assert all(r.requires == "spandrel_extra_arches" for r in HUB_RECORDS if r.arch == "Restormer")
    assert by["dat-x4"].filename == "DAT_x4.safetensors" and by["ultrasharp-x4"].license == "CC-BY-NC-SA-4.0"
    assert sorted(r.scale for r in HUB_RECORDS if r.name.startswith("realesrgan")) == [2, 4, 8]


def test_unknown_name_suggests_close_matches(env):
    with pytest.raises(ModelError, match="did you mean: tiny-denoise"):
        resolve("tiny-denoize", catalogue=catalogue(env))
    with pytest.raises(ModelError, match="does not exist"):
        resolve("./nowhere/model.pth", catalogue=catalogue(env))
    with pytest.raises(ModelError, match="two zoo records"):
        Catalogue([bundled("x"), bundled("x")])


# ---------------------------------------------------------------- defaults


def test_defaults_per_task_and_scale(env):
    cat = catalogue(env)
    cfg = UserConfig()
    assert resolve(None, "denoise", catalogue=cat, user_config=cfg).record.name == "tiny-denoise"
    assert resolve(None, "upscale", scale=2, catalogue=cat, user_config=cfg).record.name == "tiny-up2"
    assert resolve(None, "upscale", scale=4, catalogue=cat, user_config=cfg).record.name == "tiny-up4"
    with pytest.raises(ModelError, match="no default model for upscale x3"):
        resolve(None, "upscale", scale=3, catalogue=cat, user_config=cfg)
    with pytest.raises(ModelError, match="no default model for dehaze"):
        resolve(None, "dehaze", catalogue=cat, user_config=cfg)


def test_hub_default_is_used_when_reachable(env):
    cat = catalogue(env, hub_record("hub-denoise", default_for=("denoise",)))
    got = resolve(None, "denoise", catalogue=cat, user_config=UserConfig(), quiet=True)
    assert got.record.name == "hub-denoise" and got.warning is None
    assert got.path.read_bytes() == env.content


def test_hub_default_falls_back_to_bundled_when_down_or_offline(monkeypatch, tmp_path, env):
    cat = catalogue(env, hub_record("hub-denoise", default_for=("denoise",)))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    got = resolve(None, "denoise", catalogue=cat, user_config=UserConfig())
    assert got.record.name == "tiny-denoise" and got.origin == "fallback"
    assert "hub-denoise" in got.warning and "cannot reach the Hub" in got.warning and "\n" not in got.warning
    requests = len(env.requests)
    got = resolve(None, "denoise", catalogue=cat, user_config=UserConfig(), offline=True)
    assert got.record.name == "tiny-denoise" and "offline" in got.warning
    assert len(env.requests) == requests


# ---------------------------------------------------------------- resolution order


def test_resolution_order_path_then_hf_then_name_then_default(env, tmp_path, monkeypatch):
    cat = catalogue(env, hub_record("hub-denoise"))
    monkeypatch.chdir(tmp_path)
    # 1. A local file wins even when its name is also a zoo name.
    local = save_weights(tmp_path, "x", seed=9).rename(tmp_path / "tiny-denoise")
    got = resolve("tiny-denoise", "denoise", catalogue=cat)
    assert got.origin == "path" and got.path == local.resolve() and got.record is None
    local.unlink()
    # 2. hf:// (the record is found from repo + file, so its pin and licence apply).
    got = resolve(f"hf://{REPO}/model.safetensors", "denoise", catalogue=cat, quiet=True)
    assert got.origin == "hf" and got.record.name == "hub-denoise" and got.path.read_bytes() == env.content
    # 3. A zoo name (bundled) and a Hub repo id.
    got = resolve("tiny-denoise", "denoise", catalogue=cat)
    assert got.origin == "zoo" and got.path == env.weights / "tiny-denoise.safetensors"
    assert resolve(REPO, catalogue=cat).record.name == "hub-denoise"
    # 4. Nothing: the config default, else the task default.
    cfg = UserConfig(default_models={"denoise": "hub-denoise"})
    assert resolve(None, "denoise", catalogue=cat, user_config=cfg).record.name == "hub-denoise"
    assert resolve("", "denoise", catalogue=cat, user_config=UserConfig()).record.name == "tiny-denoise"


def test_models_that_do_not_fit_are_refused(env):
    cat = catalogue(env, hub_record("later", supported=False, description="layout unknown"),
                    hub_record("needs-extra", filename="x.pth", requires="surely_not_installed_pkg"))
    with pytest.raises(ModelError, match="upscale, not denoise"):
        resolve("tiny-up4", "denoise", catalogue=cat)
    # A named model of another scale is taken: the pipeline resizes its output (tests/test_output_size.py).
    assert resolve("tiny-up4", "upscale", scale=2, catalogue=cat).record.name == "tiny-up4"
    with pytest.raises(ModelError, match="cannot load it yet: layout unknown"):
        resolve("later", catalogue=cat)
    with pytest.raises(ModelError, match="surely-not-installed-pkg"):
        resolve("needs-extra", catalogue=cat)
    with pytest.raises(UsageError, match="unknown task"):
        resolve(None, "sharpen", catalogue=cat)


def test_damaged_bundled_weights_are_reported(env):
    path = env.weights / "tiny-denoise.safetensors"
    path.write_bytes(path.read_bytes()[:-4] + b"XXXX")
    with pytest.raises(ModelError, match="damaged.*reinstall"):
        resolve("tiny-denoise", catalogue=catalogue(env))


# ---------------------------------------------------------------- user config


def test_config_file_defaults(env, tmp_path, monkeypatch):
    cfg_file = tmp_path / "config" / "irx" / "config.toml"  # XDG_CONFIG_HOME points at tmp/config
    cfg_file.parent.mkdir(parents=True)
    cfg_file.write_text('device = "cuda"\nprecision = "fp16"\n[defaults]\ndenoise = "hub-denoise"\n'
                        'upscale = "tiny-up4"\nupscale_x2 = "tiny-up2"\n[engine]\ntile = 256\n')
    cfg = load_user_config()
    assert cfg.device == "cuda" and cfg.precision == "fp16" and cfg.path == cfg_file
    assert cfg.extra == {"engine": {"tile": 256}}
    cat = catalogue(env, hub_record("hub-denoise"))
    got = resolve(None, "denoise", catalogue=cat, quiet=True)  # config read from the file
    assert got.record.name == "hub-denoise" and got.origin == "config"
    assert resolve(None, "upscale", scale=2, catalogue=cat).record.name == "tiny-up2"
    assert resolve(None, "upscale", scale=4, catalogue=cat).record.name == "tiny-up4"
    with pytest.raises(ModelError, match="x4, but x3"):
        resolve(None, "upscale", scale=3, catalogue=cat)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[defaults\n", "not valid TOML"),
        ('precision = "fp8"\n', "precision must be one of"),
        ('[defaults]\nsharpen = "x"\n', "unknown task 'sharpen'"),
        ("[defaults]\ndenoise = 3\n", "non-empty string"),
        ("device = 1\n", "device must be a string"),
    ],
)
def test_invalid_config_names_file_and_problem(tmp_path, monkeypatch, text, message):
    cfg_file = tmp_path / "mine.toml"
    cfg_file.write_text(text)
    monkeypatch.setenv("IRX_CONFIG", str(cfg_file))
    with pytest.raises(UsageError, match=message) as err:
        load_user_config()
    assert str(cfg_file) in str(err.value)


def test_missing_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("IRX_CONFIG", raising=False)
    assert load_user_config() == UserConfig()
    monkeypatch.setenv("IRX_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(UsageError, match="does not exist"):
        load_user_config()


# ---------------------------------------------------------------- CLI


def test_cli_list_json_and_path(env, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(models_app, ["list", "--task", "upscale", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["tiny-up2"]["cached"] and rows["tiny-up2"]["source"] == "bundled"
    assert rows["tiny-up2"]["size_mb"] is not None
    assert "dat-x4" in rows and rows["dat-x4"]["cached"] is False and "tiny-denoise" not in rows
    result = runner.invoke(models_app, ["path", "tiny-up4"])
    assert result.exit_code == 0 and result.output.strip() == str(env.weights / "tiny-up4.safetensors")
    result = runner.invoke(models_app, ["path", f"hf://{REPO}/model.safetensors", "--offline"])
    assert isinstance(result.exception, ModelError)
    result = runner.invoke(models_app, ["download", "-q", f"hf://{REPO}/model.safetensors"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(models_app, ["path", f"hf://{REPO}/model.safetensors", "--offline"])
    assert result.exit_code == 0 and Path(result.output.strip()).read_bytes() == env.content


def test_cli_verify_exit_status(env):
    runner = CliRunner()
    result = runner.invoke(models_app, ["verify"])
    assert result.exit_code == 0, result.output
    assert "tiny-denoise" in result.output and "ok" in result.output
    path = env.weights / "tiny-up2.safetensors"
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    # Same size and mtime as when it was verified: only a real re-read (which verify does) sees it.
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    result = runner.invoke(models_app, ["verify", "tiny-up2"])
    assert result.exit_code == 1 and "MISMATCH" in result.output
    result = runner.invoke(models_app, ["info", "tiny-up4"])
    assert result.exit_code == 0 and "bundled" in result.output


def test_downloaded_weights_load_safely(env):
    from safetensors.torch import save

    from irx.zoo import load_weights

    tensors = {"params_ema.body.weight": torch.arange(6.0).reshape(2, 3)}
    env.add_file("acme/sr", "sub/dir/x2.safetensors", save(tensors))
    got = resolve("hf://acme/sr/sub/dir/x2.safetensors@main", catalogue=catalogue(env), quiet=True)
    state = load_weights(got.path)
    assert list(state) == ["params_ema.body.weight"]
    assert torch.equal(state["params_ema.body.weight"], tensors["params_ema.body.weight"])


def test_cli_list_shows_defaults_online_and_offline_with_licence_and_cost(env, monkeypatch):
    import irx.cli.models as cli_models

    costs = {"nafnet-gopro-width64": {"params": 67_890_000, "cpu_s_per_mp": 123.4}}
    monkeypatch.setattr(cli_models, "_costs", lambda: costs)
    result = CliRunner().invoke(models_app, ["list", "--task", "deblur"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    line = next(row for row in result.output.splitlines() if row.strip().startswith("deblur"))
    assert "nafnet-gopro-width64" in line and "tiny-denoise" not in line  # no bundled deblur model here
    assert "MIT" in line and "67.89M" in line and "123.4" in line
    result = CliRunner().invoke(models_app, ["list", "--task", "dehaze"])
    assert "dehaze: no online default: no public dehazing checkpoint" in result.output
    rows = json.loads(CliRunner().invoke(models_app, ["list", "--task", "deblur", "--json"]).output)
    assert {r["name"]: r for r in rows}["nafnet-gopro-width64"]["params"] == 67_890_000


def test_cli_list_prints_the_extra_arches_hint_literally(env, monkeypatch):
    import irx.cli.models as cli_models
    import irx.zoo.records as records

    def no_extras(record):
        return record.requires is None

    monkeypatch.setattr(records, "requirement_met", no_extras)
    monkeypatch.setattr(cli_models, "requirement_met", no_extras)
    result = CliRunner().invoke(models_app, ["list", "--task", "derain"])
    assert "restormer-derain needs pip install 'irx[extra-arches]' (licence: Academic, non-commercial)" in result.output


def test_cli_errors_with_brackets_print_literally(env):
    result = CliRunner().invoke(models_app, ["download", "odd[name]"])
    assert result.exit_code == 1 and "odd[name]" in result.output


def test_loader_hint_names_the_extra_when_it_is_missing(monkeypatch, tmp_path):
    from safetensors.torch import save_file

    import irx.archs
    from irx.api import _load_descriptor

    monkeypatch.setattr(irx.archs, "_extra_registry", lambda: None)
    monkeypatch.setattr(irx.archs, "_registry", None)
    path = tmp_path / "unknown.safetensors"
    save_file({"surely.not.a.known.layer": torch.zeros(2)}, str(path))
    with pytest.raises(ModelError, match=r"pip install 'irx\[extra-arches\]'"):
        _load_descriptor(path, False)
    monkeypatch.setattr(irx.archs, "_registry", None)  # rebuilt with the extras for later tests
