"""The task registry (irx.tasks) agrees with every table that depends on it."""

from __future__ import annotations

import numpy as np
import pytest

import irx.baselines as baselines
import irx.degrade as degrade
from irx.errors import UsageError
from irx.tasks import TASK_HELP, TASKS, get_task, task_specs
from irx.train.config import RECIPES_DIR, load_config
from irx.zoo.records import Catalogue

SPECS = task_specs()


def test_names_are_unique_and_unknown_tasks_are_a_usage_error():
    assert len(set(TASKS)) == len(TASKS) == len(SPECS) and set(TASK_HELP) == set(TASKS)
    with pytest.raises(UsageError, match="choose one of: denoise"):
        get_task("sharpen")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_degradation_tables_agree_with_the_spec(spec):
    assert spec.name in degrade._APPLY  # its degradation function
    types = spec.param_types
    for table in (spec.train_params, spec.eval_params, spec.fallbacks):
        assert set(table) <= set(types), f"{spec.name}: a parameter the task does not declare"
    assert spec.has_scale == ("scale" in types)
    assert spec.variants and any(v.held_out for v in spec.variants)
    clean = np.full((24, 32, 3), 0.5, np.float32)
    for params in (spec.train_params, spec.eval_params, *(v.params for v in spec.variants)):
        assert set(params) <= set(types)
        out = degrade.make_degradation(spec.name, **params)(clean, np.random.default_rng(0))
        assert out.shape[2] == 3 and np.isfinite(out).all()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_baselines_exist_and_input_comes_first(spec):
    assert spec.baselines[0] == "input"
    for name in spec.baselines[1:]:
        assert name in baselines._FUNCS
    assert baselines.BASELINES[spec.name] == spec.baselines


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_task_has_a_bundled_recipe_and_an_offline_default(spec):
    recipes = [load_config(p) for p in sorted(RECIPES_DIR.glob("*.toml"))]
    mine = [r for r in recipes if r.degradation.task == spec.name]
    assert mine, f"no training recipe for {spec.name}"
    assert all((r.model.scale > 1) == spec.has_scale for r in mine)
    cat = Catalogue.default()
    scales = sorted({r.model.scale for r in mine}) if spec.has_scale else [None]
    for scale in scales:
        _, offline = cat.defaults(spec.name, scale)
        assert offline is not None and offline.source == "bundled", f"no bundled default for {spec.name} x{scale}"
        assert offline.scale == (scale or 1) and spec.name in offline.tasks


def test_every_task_is_a_command_and_only_sized_tasks_show_scale():
    from typer.testing import CliRunner

    from irx.cli.main import app

    for spec in SPECS:
        result = CliRunner().invoke(app, [spec.name, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and spec.help.split()[0] in result.output
        assert ("--scale" in result.output) == spec.has_scale, spec.name
