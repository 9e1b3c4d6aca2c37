"""`explain` on a real (small) demo sweep: exact attribution, on-demand configs, tables."""

import pandas as pd
import pytest

from evalharness.commands.explain import main as explain_main

from .conftest import run_in_process

SWEEP = [
    "+sweep=deployment_gap",
    "sweep.factors.backend=[torch]",
    "sweep.factors.decoder=[pil]",
    "sweep.factors.resize=[pil_bilinear,cv2_linear]",
    "dataset.limit=80",
    "chunk_size=40",
]
MISTAKES = ["--b", "resize=cv2_linear", "colour=bgr", "meanstd=half"]


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    def leave_one_out(cfg):
        # Leave one coalition config out of the sweep: explain must evaluate it on demand.
        cfg["sweep"]["exclude"] = [{"resize": "cv2_linear", "colour": "bgr", "meanstd": "card"}]

    return run_in_process(SWEEP, tmp_path_factory.mktemp("gap"), leave_one_out)[1]


def test_attribution_terms_sum_to_the_measured_gap(sweep_dir, capsys):
    assert explain_main([str(sweep_dir), *MISTAKES, "--bootstrap", "300"]) == 0
    out = capsys.readouterr().out
    assert "Shapley attribution" in out and "Of the" in out
    att = pd.read_csv(sweep_dir / "explain" / "attribution.csv")
    terms = att[att.factor != "residual"]
    assert set(terms.factor) == {"resize", "colour", "meanstd"}
    summary = pd.read_csv(sweep_dir / "summary.csv")
    ref = summary.query("resize == 'pil_bilinear' and colour == 'rgb' and meanstd == 'card'")
    bad = summary.query("resize == 'cv2_linear' and colour == 'bgr' and meanstd == 'half'")
    gap = bad.top1.iloc[0] - ref.top1.iloc[0]
    assert terms.shapley.sum() == pytest.approx(gap, abs=1e-9)
    assert (terms.lo <= terms.shapley).all() and (terms.shapley <= terms.hi).all()
    assert len(list((sweep_dir / "explain" / "ondemand").iterdir())) == 1


def test_tables_are_written(sweep_dir):
    assert explain_main([str(sweep_dir), "--target", "50", "--bootstrap", "200"]) == 0
    out = sweep_dir / "explain"
    names = ["effects", "marginal_means", "variance", "interactions", "pairs", "per_class",
             "target"]  # fmt: skip
    for name in names:
        assert (out / f"{name}.csv").exists(), name
    pairs = pd.read_csv(out / "pairs.csv")
    assert (pairs.p_holm >= pairs.p_mcnemar).all()
    assert set(pairs.verdict) <= {"changes the result", "no effect", "inconclusive"}
    per_class = pd.read_csv(out / "per_class.csv")
    assert "red_disk" in per_class.columns and {"resize", "colour"} <= set(per_class.columns)
    # a cell of the product is excluded: no variance shares, said why
    assert pd.read_csv(out / "variance.csv").empty
    effects = pd.read_csv(out / "effects.csv")
    assert set(effects.factor) == {"resize", "colour", "meanstd"}
    assert (effects.reference.isin(["pil_bilinear", "rgb", "card"])).all()


def test_bad_factor_is_one_line(sweep_dir, capsys):
    assert explain_main([str(sweep_dir), "--b", "colours=bgr"]) == 2
    assert "unknown factor 'colours'" in capsys.readouterr().err


def test_a_setting_the_run_does_not_sweep_says_how_to_sweep_it(sweep_dir, capsys):
    assert explain_main([str(sweep_dir), "--b", "resize.limit_side_len=960"]) == 2
    err = capsys.readouterr().err
    assert "'resize.limit_side_len' is not swept in this run" in err
    assert "lists resize.limit_side_len: [...]" in err and err.count("\n") == 1


def test_a_swept_setting_is_named_by_its_sweep_key_or_its_column():
    from types import SimpleNamespace

    from evalharness.analysis.explain import setting_keys_as_columns

    res = SimpleNamespace(factors=["resize", "colour", "limit_side_len"])
    given = {"resize": "limit_max", "resize.limit_side_len": "960", "colour": "rgb"}
    assert setting_keys_as_columns(given, res) == {
        "resize": "limit_max",
        "limit_side_len": "960",
        "colour": "rgb",
    }
    assert setting_keys_as_columns({"limit_side_len": "736"}, res) == {"limit_side_len": "736"}


def test_a_setting_value_none_or_dash_is_read_back_as_written(tmp_path):
    """pandas reads "None" as missing: the reference row of a sweep over a setting its
    option leaves null could then never be found again."""
    from evalharness.rundir.summary import read_summary

    path = tmp_path / "summary.csv"
    pd.DataFrame(
        {"config_id": ["a", "b"], "dataset": ["d", "d"], "resize": ["x", "y"],
         "crop_pct": ["None", "-"], "reference": [True, False], "top1": [50.0, None]}
    ).to_csv(path, index=False)  # fmt: skip
    table = read_summary(path)
    assert table.crop_pct.tolist() == ["None", "-"]
    assert table.top1.isna().tolist() == [False, True] and table.reference.dtype == bool
