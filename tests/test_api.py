"""The notebook API: evalharness.sweep(...) -> Results, end to end on a small demo subset."""

import subprocess
import sys

import pandas as pd
import pytest

import evalharness
from evalharness.api import Explanation, Results, to_overrides

SUBSET = {
    "sweep": "preproc_ablation",
    "sweep.factors.backend": ["torch"],
    "sweep.factors.decoder": ["pil"],
    "sweep.factors.resize": ["pil_bilinear", "cv2_linear", "cv2_area"],
    "sweep.factors.norm": ["host"],
    "dataset.limit": 60,
    "progress": False,
}


@pytest.fixture(scope="module")
def res(tmp_path_factory):
    return evalharness.sweep(SUBSET, run_dir=tmp_path_factory.mktemp("api") / "run")


def test_importing_evalharness_stays_light():
    code = (
        "import sys, evalharness\n"
        "heavy = {'torch', 'pandas', 'hydra', 'matplotlib', 'onnxruntime', 'evalharness.api'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
        "print(callable(evalharness.sweep))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["[]", "True"]


def test_overrides_from_a_dict_a_string_or_a_list():
    assert to_overrides(SUBSET) == [
        "+sweep=preproc_ablation",  # not in the defaults list: Hydra wants the '+'
        "sweep.factors.backend=[torch]",
        "sweep.factors.decoder=[pil]",
        "sweep.factors.resize=[pil_bilinear,cv2_linear,cv2_area]",
        "sweep.factors.norm=[host]",
        "dataset.limit=60",
        "progress=false",
    ]
    assert to_overrides({"backend": "openvino", "dataset.root": "/data/my val", "x": None}) == [
        "backend=openvino",
        'dataset.root="/data/my val"',
        "x=null",
    ]
    assert to_overrides("+sweep=preproc_ablation 'dataset.root=/a b'") == [
        "+sweep=preproc_ablation",
        "dataset.root=/a b",
    ]
    assert to_overrides(["backend=torch"]) == ["backend=torch"] and to_overrides(None) == []


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["decoder=pli"], "unknown decoder 'pli' (did you mean 'pil'?)"),
        (["backend=torch,onnxruntime"], "is a multirun list; in one run use a sweep"),
    ],
)
def test_mistakes_raise_one_clear_error(overrides, message, tmp_path):
    with pytest.raises(ValueError) as e:
        evalharness.sweep(overrides, run_dir=tmp_path / "run")
    assert message in str(e.value)
    assert not (tmp_path / "run").exists()


def test_summary_and_predictions_are_dataframes(res):
    assert isinstance(res.summary, pd.DataFrame) and len(res.summary) == 3
    assert list(res.summary.resize) == ["pil_bilinear", "cv2_linear", "cv2_area"]
    assert res.summary.reference.tolist() == [True, False, False]
    assert isinstance(res.predictions, pd.DataFrame) and len(res.predictions) == 3 * 60
    assert res.metric == "top1"
    loaded = Results.load(res.run_dir)
    pd.testing.assert_frame_equal(loaded.summary, res.summary)


def test_the_sweep_wrote_its_findings(res):
    text = (res.run_dir / "findings.md").read_text()
    assert res.findings == text == res._repr_markdown_()
    assert "n = 60 images" in text and "resize: cv2_linear against pil_bilinear: " in text


def test_explain_returns_tables_and_a_verdict_whose_terms_sum_to_the_gap(res):
    ex = res.explain(b={"resize": "cv2_linear"}, n_boot=300)
    assert isinstance(ex, Explanation) and ex.verdict.startswith("Of the ")
    s = res.summary.set_index("resize").top1
    assert ex.gap == pytest.approx(s["cv2_linear"] - s["pil_bilinear"], abs=1e-9)
    terms = ex.attribution[ex.attribution.factor != "residual"]
    assert list(terms.factor) == ["resize"]
    assert terms.shapley.sum() == pytest.approx(ex.gap, abs=1e-9)
    assert {"effects", "variance", "pairs", "per_class"} <= set(ex.tables)
    assert ex.a["resize"] == "pil_bilinear" and len(ex.pairs) == 2
    with pytest.raises(ValueError, match="unknown factor 'colours'"):
        res.explain(b={"colours": "bgr"})


def test_compare_and_report(res, tmp_path):
    table = res.compare(res)  # a run against itself: every delta 0, paired
    assert len(table) == 3 and (table.delta == 0).all() and table.attrs["notes"] == []
    assert set(table.method) == {"paired bootstrap"}
    page = res.report(tmp_path / "pages" / "gap.html", n_boot=200)
    assert page.exists() and "<h2>Findings (top1)</h2>" in page.read_text()
    assert (res.run_dir / "report.html").exists()


def test_the_same_run_dir_resumes(res):
    again = evalharness.sweep(SUBSET, run_dir=res.run_dir)
    pd.testing.assert_frame_equal(
        again.summary.drop(columns="images_per_s"), res.summary.drop(columns="images_per_s")
    )
