"""Named stacks: `stack=NAME` and `sweep.factors.stack` set the factors a deployment sets,
keep the real factor columns, and refuse a stack whose backend is not here in one line."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from evalharness.backends.base import BACKENDS
from evalharness.config.plan import PlanError
from evalharness.config.stacks import StackError, stack_factors, stack_names
from evalharness.config.store import OptionStore
from evalharness.paths import PROJECT_ROOT

from .conftest import plan_of

PY = {"decoder": "opencv", "resize": "cv2_linear", "colour": "rgb", "backend": "onnxruntime"}
OV = {"decoder": "opencv", "resize": "ov_ppp_linear", "norm": "ov_ppp", "backend": "openvino"}


def _plan(overrides, sweep_factors=None, exclude=None):
    def edit(config):
        if sweep_factors is not None:
            config["sweep"] = {"factors": sweep_factors, "exclude": exclude or []}

    return plan_of(overrides, edit).specs


def _config(spec) -> dict:
    return spec.factor_dict


def test_every_stack_names_existing_options_of_real_factors():
    store = OptionStore()
    assert set(stack_names(store)) == {"python_cv2_ort", "rust_tract", "ncnn", "openvino_ppp"}
    for name in stack_names(store):
        try:
            values = stack_factors(name, store)
        except StackError as e:  # only a backend that is not in this installation
            assert "which this installation does not have" in str(e)
            continue
        assert {"decoder", "resize", "colour", "backend"} <= set(values)


def test_stack_sets_its_factors_over_the_model_card():
    spec = _plan(["stack=python_cv2_ort"])[0]
    assert {k: _config(spec)[k] for k in PY} == PY
    assert spec.stack == "python_cv2_ort" and not spec.is_reference
    assert "stack" not in _config(spec)  # a shorthand, not a factor column


def test_the_command_line_wins_over_the_stack():
    spec = _plan(["stack=python_cv2_ort", "colour=bgr"])[0]
    assert _config(spec)["colour"] == "bgr" and _config(spec)["decoder"] == "opencv"


def test_a_stack_whose_backend_is_absent_is_refused_in_one_line():
    for name, backend in (("rust_tract", "tract"), ("ncnn", "ncnn")):
        if backend in BACKENDS:
            continue  # the runtimes work is installed: the stack plans (or names its extra)
        with pytest.raises(StackError) as e:
            _plan([f"stack={name}"])
        assert str(e.value).startswith(f"stack '{name}' needs backend '{backend}'")
        assert len(str(e.value).splitlines()) == 1


def test_sweeping_stacks_gives_real_factor_columns_per_stack():
    specs = _plan(["+sweep=preproc_ablation"], {"stack": ["python_cv2_ort", "openvino_ppp"]})
    by_stack = {s.stack: _config(s) for s in specs if s.stack}
    assert {k: by_stack["python_cv2_ort"][k] for k in PY} == PY
    assert {k: by_stack["openvino_ppp"][k] for k in OV} == OV
    assert by_stack["python_cv2_ort"]["norm"] == "host"
    assert sum(s.is_reference for s in specs) == 1  # the card's reference, added


def test_a_swept_factor_wins_over_the_stack_value():
    specs = _plan(
        ["+sweep=preproc_ablation"],
        {"stack": ["python_cv2_ort", "openvino_ppp"], "colour": ["rgb", "bgr"]},
    )
    swept = [s for s in specs if s.stack]
    assert len(swept) == 4
    assert {(s.stack, _config(s)["colour"]) for s in swept} == {
        (st, c) for st in ("python_cv2_ort", "openvino_ppp") for c in ("rgb", "bgr")
    }


def test_exclude_rules_can_name_a_stack():
    specs = _plan(
        ["+sweep=preproc_ablation"],
        {"stack": ["python_cv2_ort", "openvino_ppp"], "colour": ["rgb", "bgr"]},
        exclude=[{"stack": "openvino_ppp", "colour": "bgr"}],
    )
    assert {(s.stack, _config(s)["colour"]) for s in specs if s.stack} == {
        ("python_cv2_ort", "rgb"),
        ("python_cv2_ort", "bgr"),
        ("openvino_ppp", "rgb"),
    }


def _hide_tract(monkeypatch):
    """This machine as one without the tract extra: its module cannot be found."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tract" else real(name, *a)
    )


HIDE_TRACT = """import importlib.util
_real = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name == "tract" else _real(name, *a)
"""


def test_a_swept_stack_that_cannot_run_is_listed_with_the_impossible_combinations(monkeypatch):
    _hide_tract(monkeypatch)
    with pytest.raises(PlanError) as e:
        _plan(["+sweep=preproc_ablation"], {"stack": ["python_cv2_ort", "rust_tract"]})
    assert "1 impossible combination" in str(e.value)
    assert "stack=rust_tract: stack 'rust_tract' needs backend 'tract'" in str(e.value)


def test_a_stack_runs_its_preprocessing_on_an_explicit_backend():
    """What the cases do while tract is absent: the Rust stack's decode and resize on ORT."""
    specs = _plan(
        ["+sweep=preproc_ablation"],
        {"stack": ["python_cv2_ort", "rust_tract"], "backend": ["onnxruntime"]},
    )
    rust = next(_config(s) for s in specs if s.stack == "rust_tract")
    assert (rust["decoder"], rust["resize"], rust["backend"]) == (
        "kornia_rs",
        "rust_lanczos3",
        "onnxruntime",
    )
    spec = _plan(["stack=rust_tract", "backend=onnxruntime"])[0]
    assert _config(spec)["decoder"] == "kornia_rs" and spec.stack == "rust_tract"


def test_unknown_stack_names_the_valid_ones():
    with pytest.raises(KeyError, match="unknown stack 'rust_trac'.*did you mean 'rust_tract'"):
        _plan(["+sweep=preproc_ablation"], {"stack": ["rust_trac"]})


def test_a_stack_run_keeps_factor_columns_only(run_app):
    summary, out = run_app(["stack=openvino_ppp", "dataset.limit=4"])
    row = summary[~summary.reference].iloc[0]
    assert {k: row[k] for k in OV} == OV
    assert "stack" not in json.loads((out / "factors.json").read_text())["factors"]
    configs = pd.read_csv(out / "configs.csv")
    assert (configs["variant.options"].str.contains('"ppp_resize": "linear"')).sum() == 1


def test_cli_stack_without_its_backend_is_one_line(tmp_path):
    (tmp_path / "hide").mkdir()
    (tmp_path / "hide" / "sitecustomize.py").write_text(HIDE_TRACT)
    path = os.pathsep.join(p for p in [str(tmp_path / "hide"), os.environ.get("PYTHONPATH")] if p)
    env = {**os.environ, "PYTHONPATH": path}
    r = subprocess.run(
        [sys.executable, "-m", "evalharness", "stack=rust_tract", f"hydra.run.dir={tmp_path}/r"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: stack 'rust_tract' needs backend")
