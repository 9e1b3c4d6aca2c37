"""Every option of every config group composes and resolves (lightning-hydra-template style)."""

import pytest

from evalharness.backends.base import BACKENDS
from evalharness.config.plan import PlanError
from evalharness.config.store import OptionStore
from evalharness.preprocess.resize import RESIZERS
from evalharness.registry import FACTORS

from .conftest import compose_config, plan_of

STORE = OptionStore()

# Groups whose options are named by a `name` field (case/ and hydra/ hold global overlays).
GROUPS = [*FACTORS, "dataset", "model", "sweep", "stack"]


def _in_model_resize(group: str, name: str) -> bool:
    """A resize the model does (ov_ppp_*): planned only on the backend that does it."""
    return group == "resize" and bool(RESIZERS.get(STORE.load(group, name)["library"]).in_model)


def test_default_config_composes():
    cfg, choices = compose_config([])
    assert choices["backend"] == "torch" and choices["decoder"] == "pil"
    assert cfg.model.card.input_size == 64


@pytest.mark.parametrize("group", GROUPS)
def test_option_name_matches_file_name(group):
    """Configs mirror code: the `name` inside each option file is its file name."""
    for name in STORE.names(group):
        assert STORE.load(group, name)["name"] == name, f"conf/{group}/{name}.yaml"


def _factor_options():
    for group in FACTORS:
        for name in STORE.names(group):
            yield group, name


def _backend_for(group: str, name: str) -> list[str]:
    """A backend that declares this norm/precision/device, when torch (the default) does
    not: read from the capabilities, as planning reads them."""
    if (group, name) == ("precision", "fp16"):
        return ["backend=openvino"]  # torch declares fp16 for device=cuda only
    field = {"norm": "placements", "precision": "precisions", "device": "devices"}.get(group)
    if field is None:
        return []
    value = STORE.load(group, name).get("placement", name) if group == "norm" else name
    for backend in ["torch", *BACKENDS.names()]:
        if value in getattr(BACKENDS.get(backend).capabilities, field):
            return [] if backend == "torch" else [f"backend={backend}"]
    raise AssertionError(f"no backend declares {group} '{name}'")


def _device_absent(group: str, name: str, overrides: list[str]) -> str | None:
    if group != "device" or name == "cpu":
        return None
    backend = next((o.split("=")[1] for o in overrides if o.startswith("backend=")), "torch")
    return BACKENDS.get(backend)().device_missing(name)


@pytest.mark.parametrize("group,name", list(_factor_options()))
def test_every_factor_option_resolves(group, name):
    overrides = [f"{group}={name}", *_backend_for(group, name)]
    if _in_model_resize(group, name):
        overrides.append("backend=openvino")
    absent = _device_absent(group, name, overrides)
    if absent:  # a GPU this machine lacks: refused at planning, naming the device
        with pytest.raises(PlanError, match=f"(?i)device '{name}'"):
            plan_of(overrides)
        return
    specs = plan_of(overrides).specs
    assert specs[0].factor_dict[group] == name
    # the model card's reference is always planned: the config itself, or added after it
    assert len(specs) == 1 and specs[0].is_reference or len(specs) == 2 and specs[1].is_reference


def _image_model(tmp_path) -> list[str]:
    """A tiny spandrel upscaler on a paired set: for the sweeps of image-to-image factors."""
    import numpy as np
    import torch
    from PIL import Image
    from spandrel.architectures.Compact import Compact

    torch.save(Compact(num_feat=4, num_conv=1, upscale=2).state_dict(), tmp_path / "m.pth")
    for folder, size in (("HR", 16), ("LR", 8)):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(tmp_path / folder / "a.png")
    return ["model=spandrel_file", f"model.weights={tmp_path / 'm.pth'}", "dataset=image_pairs",
            f"dataset.root={tmp_path}"]  # fmt: skip


def test_sweep_configs_compose(tmp_path):
    image_model = _image_model(tmp_path)
    for name in STORE.names("sweep"):
        if name == "gpu" and BACKENDS.get("torch")().device_missing("cuda"):
            with pytest.raises(PlanError, match="selects no config"):
                plan_of([f"+sweep={name}"])
            continue
        model = image_model if name.startswith("sr_") else []  # image-to-image sweeps
        specs = plan_of([*model, f"+sweep={name}"]).specs
        assert len({s.config_id for s in specs}) == len(specs)


def test_preproc_ablation_has_72_configs_with_stable_ids():
    a = plan_of(["+sweep=preproc_ablation"]).specs
    b = plan_of(["+sweep=preproc_ablation"]).specs
    assert len(a) >= 72
    assert [s.config_id for s in a] == [s.config_id for s in b]


def test_impossible_combination_is_named_before_any_work():
    with pytest.raises(PlanError, match="backend=torch .*norm=ov_ppp.*'ov_ppp' is not available"):
        plan_of(["norm=ov_ppp", "backend=torch"])


def test_sweep_exclude_removes_impossible_combinations():
    def both_norms(config):
        config["sweep"]["factors"]["norm"] = ["host", "ov_ppp"]

    def excluded(config):
        both_norms(config)
        config["sweep"]["exclude"] = [{"norm": "ov_ppp", "backend": ["torch", "onnxruntime"]}]

    with pytest.raises(PlanError, match="24 impossible combination"):
        plan_of(["+sweep=preproc_ablation"], both_norms)
    specs = plan_of(["+sweep=preproc_ablation"], excluded).specs
    assert len(specs) == 72 - 24 + 0  # 36 host + 12 ov_ppp on openvino (reference among them)
    assert {s.factor_dict["backend"] for s in specs if s.factor_dict["norm"] == "ov_ppp"} == {
        "openvino"
    }


def test_unknown_factor_value_in_sweep_names_valid_choices():
    def libjpeg(config):
        config["sweep"]["factors"]["decoder"] = ["pil", "libjpeg"]

    with pytest.raises(KeyError, match="unknown decoder 'libjpeg'.*valid: .*opencv"):
        plan_of(["+sweep=preproc_ablation"], libjpeg)


def test_one_at_a_time_mode_varies_one_factor_from_the_base():
    cfg, choices = compose_config(["+sweep=factor_catalogue"])
    specs = plan_of(["+sweep=factor_catalogue"]).specs
    base = specs[0].factor_dict
    assert base == {f: choices[f] for f in FACTORS} and specs[0].is_reference
    for s in specs[1:]:
        changed = [f for f, v in s.factor_dict.items() if v != base[f]]
        assert len(changed) == 1
    n_values = sum(len(v) for v in cfg.sweep.factors.values())
    assert len(specs) == 1 + n_values - len(cfg.sweep.factors)  # minus each base value
