"""compare: constructed CSVs with known deltas, one-sided rows, reported figures, the gate."""

import pandas as pd
import pytest

from evalharness.analysis.compare import compare, newcombe
from evalharness.commands.compare import main


def _csv(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def pair(tmp_path):
    a = _csv(
        tmp_path / "a.csv",
        [
            {"backend": "torch", "decoder": "pil", "n": 1000, "top1": 80.0, "top5": 95.0},
            {"backend": "torch", "decoder": "opencv", "n": 1000, "top1": 79.0, "top5": 95.0},
            {"backend": "onnxruntime", "decoder": "pil", "n": 1000, "top1": 80.0, "top5": 95.0},
        ],
    )
    b = _csv(
        tmp_path / "b.csv",
        [
            {"backend": "torch", "decoder": "pil", "n": 1000, "top1": 80.5, "top5": 95.0},
            {"backend": "torch", "decoder": "opencv", "n": 1000, "top1": 70.0, "top5": 90.0},
            {"backend": "openvino", "decoder": "pil", "n": 1000, "top1": 80.0, "top5": 95.0},
        ],
    )
    return a, b


def test_known_deltas_and_one_sided_rows(pair):
    c = compare(*pair)
    table, notes = c.table, c.notes
    t = table.set_index("decoder")
    assert t.loc["pil", "delta"] == pytest.approx(0.5)
    assert t.loc["opencv", "delta"] == pytest.approx(-9.0)
    assert t.loc["opencv", "top5_delta"] == pytest.approx(-5.0)
    assert bool(t.loc["opencv", "significant"]) and not bool(t.loc["pil", "significant"])
    assert (table.method == "Newcombe (independent)").all()
    assert sorted(notes) == [
        "only in A: backend=onnxruntime decoder=pil",
        "only in B: backend=openvino decoder=pil",
    ]


def test_newcombe_matches_the_published_example():
    # Newcombe (1998), method 10, example (e): 56/70 vs 48/80 -> difference .2000, CI .0524 .3339
    lo, hi = newcombe(48 / 80, 80, 56 / 70, 70)
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)


def test_gate_exit_codes(pair, tmp_path):
    a, b = pair
    assert main([str(a), str(b), "--fail-on-drop", "10", "--out", str(tmp_path / "o.csv")]) == 0
    assert main([str(a), str(b), "--fail-on-drop", "5", "--out", str(tmp_path / "o.csv")]) == 1
    assert main([str(a), str(tmp_path / "nope.csv")]) == 2


def test_reported_figure_without_n(tmp_path, pair):
    a, _ = pair
    reported = _csv(
        tmp_path / "reported.csv", [{"backend": "torch", "decoder": "pil", "accuracy": 0.7728}]
    )
    table = compare(a, reported).table
    row = table.iloc[0]
    assert row.delta == pytest.approx(77.28 - 80.0)
    assert row.method == "vs reported figure (Wilson)"
    assert row.lo < row.delta < row.hi


def test_paired_when_both_sides_have_predictions(run_app, tmp_path):
    args = [
        "dataset.limit=40",
        "+sweep=preproc_ablation",
        "sweep.factors.backend=[torch]",
        "sweep.factors.decoder=[pil]",
        "sweep.factors.resize=[pil_bilinear,cv2_linear]",
        "sweep.factors.norm=[host]",
    ]
    run_app(args, tmp_path / "a")
    run_app(
        [*args[:-2], "sweep.factors.resize=[pil_bilinear,cv2_area]", "sweep.factors.norm=[host]"],
        tmp_path / "b",
    )
    c = compare(tmp_path / "a", tmp_path / "b")
    table, notes = c.table, c.notes
    assert len(table) == 1 and table.method.iloc[0] == "paired bootstrap"
    assert table.delta.iloc[0] == 0 and table.p_mcnemar.iloc[0] == 1.0
    assert len(notes) == 2


def test_every_row_gets_the_one_verdict_rule(tmp_path, pair):
    """Independent rows at n = 1000: -9 points changes the result; +0.5 cannot be told
    from a 0.5-point margin (Newcombe's interval is about ±3.5 points wide): inconclusive.
    A row within a wide margin is "no effect"; a reported figure without n stays
    inconclusive when its interval is missing."""
    t = compare(*pair).table.set_index("decoder")
    assert t.loc["opencv", "verdict"] == "changes the result"
    assert t.loc["pil", "verdict"] == "inconclusive"
    assert "about" in t.loc["pil", "verdict_text"]  # the effect this n can detect
    wide = compare(*pair, margin=5.0).table.set_index("decoder")
    assert wide.loc["pil", "verdict"] == "no effect"
    with pytest.raises(ValueError, match="margin must be > 0"):
        compare(*pair, margin=0.0)
