"""Model sources: torch builder, torchvision architecture, ONNX file, OpenVINO IR."""

import openvino as ov
import pandas as pd
import pytest
import torch
from omegaconf import open_dict

from evalharness.backends.export import export_onnx
from evalharness.config.plan import PlanError
from evalharness.models.source import ModelSpec, build_torch_model, clean_state_dict

from .conftest import compose_config, run_in_process

LIMIT = ["dataset.limit=24", "chunk_size=24", "progress=false"]


def _run(tmp_path, overrides, model_patch, name="run"):
    def patch(cfg):
        cfg["model"].update(model_patch)

    return run_in_process([*LIMIT, *overrides], tmp_path / name, patch)


@pytest.fixture(scope="module")
def reference_preds(tmp_path_factory):
    _, out = run_in_process(LIMIT, tmp_path_factory.mktemp("ref"))
    return pd.read_parquet(out / "predictions.parquet").pred.tolist()


def _preds_of(out, summary, backend: str) -> list[int]:
    """Predictions of the config on `backend` (a run also holds the card's reference)."""
    cid = summary[summary.backend == backend].config_id.iloc[0]
    preds = pd.read_parquet(out / "predictions.parquet")
    return preds[preds.config_id == cid].pred.tolist()


def _demo_onnx(export_cache):
    cfg, _ = compose_config([])
    return export_onnx(ModelSpec.from_config(cfg.model), export_cache)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_onnx_file_source(tmp_path, export_cache, reference_preds, backend):
    onnx_path = _demo_onnx(export_cache)
    summary, out = _run(
        tmp_path, [f"backend={backend}"], {"source": "onnx", "weights": str(onnx_path)}
    )
    assert _preds_of(out, summary, backend) == reference_preds


def test_openvino_ir_source(tmp_path, export_cache, reference_preds):
    xml = tmp_path / "demo.xml"
    ov.save_model(ov.Core().read_model(str(_demo_onnx(export_cache))), str(xml))
    summary, out = _run(
        tmp_path, ["backend=openvino", "norm=ov_ppp"], {"source": "openvino", "weights": str(xml)}
    )
    assert _preds_of(out, summary, "openvino") == reference_preds
    # an IR's reference runs on OpenVINO too, with host normalization
    assert summary[summary.reference].norm.tolist() == ["host"]


def test_a_file_model_cannot_run_where_it_does_not_exist(tmp_path, export_cache):
    with pytest.raises(PlanError, match="a onnx model cannot run on torch"):
        _run(
            tmp_path,
            ["backend=torch"],
            {"source": "onnx", "weights": str(_demo_onnx(export_cache))},
        )


def test_torchvision_architecture_with_local_weights(tmp_path):
    import torchvision

    weights = tmp_path / "squeeze.pth"
    torch.manual_seed(0)
    model = torchvision.models.get_model("squeezenet1_1", weights=None, num_classes=10)
    # Saved as a DataParallel checkpoint: the `module.` prefix must be stripped on load.
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, weights)
    summary, _ = _run(
        tmp_path, [], {"source": "torchvision", "arch": "squeezenet1_1", "weights": str(weights)}
    )
    assert summary.n.iloc[0] == 24


def test_mismatched_weights_fail_with_the_keys(tmp_path):
    weights = tmp_path / "bad.pt"
    torch.save({"conv.weight": torch.zeros(1)}, weights)
    cfg, _ = compose_config([])
    with open_dict(cfg):
        cfg.model.weights = str(weights)
    with pytest.raises(
        ValueError, match="do not fit the builder: missing .*unexpected .*conv.weight"
    ):
        build_torch_model(ModelSpec.from_config(cfg.model))


def test_wrong_output_width_fails_before_any_sample(tmp_path):
    model = demo_weights(tmp_path, 12)
    with pytest.raises(ValueError, match="has 12 classes, dataset 'demo' has 10"):
        _run(
            tmp_path, [], {"num_classes": 12, "builder": {"num_classes": 12}, "weights": str(model)}
        )


def demo_weights(tmp_path, n_classes):
    from evalharness.models.demo_cnn import DemoCNN

    path = tmp_path / "demo12.pt"
    torch.save(DemoCNN(n_classes).state_dict(), path)
    return path


def test_clean_state_dict_strips_wrappers():
    sd = clean_state_dict({"state_dict": {"module.a": 1, "_orig_mod.b": 2, "c": 3}})
    assert sd == {"a": 1, "b": 2, "c": 3}
