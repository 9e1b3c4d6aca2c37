"""The findings block: per-factor shares and effects against the reference, 'no effect'
said explicitly, the worst config with its Shapley split, n and agree_ref."""

import re
import subprocess
import sys

import pandas as pd
import pytest

from evalharness.analysis.findings import LevelEffect, _Fmt, factor_line, write_findings
from evalharness.paths import PROJECT_ROOT
from evalharness.runner.ondemand import RunDirConfigs

from .conftest import run_in_process

SWEEP = [
    "+sweep=deployment_gap",
    "sweep.factors.backend=[torch]",
    "sweep.factors.decoder=[pil,opencv]",
    "sweep.factors.resize=[pil_bilinear,cv2_linear]",
    "sweep.factors.colour=[rgb,bgr]",
    "sweep.factors.meanstd=[card]",
    "dataset.limit=80",
    "chunk_size=40",
]


@pytest.fixture(scope="module")
def full_dir(tmp_path_factory):
    return run_in_process(SWEEP, tmp_path_factory.mktemp("findings"))[1]


@pytest.fixture(scope="module")
def holed_dir(tmp_path_factory):
    def drop(cfg):  # no config changes resize alone: cv2_linear only ever with bgr
        cfg["sweep"]["exclude"] = [{"resize": "cv2_linear", "colour": "rgb"}]

    return run_in_process(SWEEP, tmp_path_factory.mktemp("holed"), drop)[1]


def _line(text: str, start: str) -> str:
    return next(ln for ln in text.splitlines() if ln.startswith(f"- {start}"))


def _interval(line: str, after: str) -> tuple[float, float, float]:
    m = re.search(re.escape(after) + r"([+-]\d+\.\d) \[([+-]\d+\.\d), ([+-]\d+\.\d)\]", line)
    assert m, line
    return tuple(float(x) for x in m.groups())


def test_findings_name_every_factor_and_the_worst_config(full_dir):
    text = write_findings(full_dir, RunDirConfigs(full_dir), n_boot=300)
    assert (full_dir / "findings.md").read_text() == text
    summary = pd.read_csv(full_dir / "summary.csv")
    ref = summary[summary.reference].iloc[0]
    assert "8 config(s) of demo_cnn on demo, each scored on n = 80 images" in text
    assert f"top1 {ref.top1:.2f} [{ref.top1_lo:.2f}, {ref.top1_hi:.2f}]" in text
    # colour and resize matter, with the single change's paired interval excluding 0
    for factor, level, other in (("colour", "bgr", "resize"), ("resize", "cv2_linear", "colour")):
        line = _line(text, f"{factor}: ")
        d, lo, hi = _interval(line, f"largest effect {factor}={level}: ")
        single = summary.query(
            f"{factor} == '{level}' and decoder == 'pil' and {other} == '{ref[other]}'"
        ).top1.iloc[0]
        assert d == pytest.approx(round(single - ref.top1, 1)) and lo <= d <= hi and hi < 0
        assert "all else as the reference" in line
    decoder = _line(text, "decoder: ")
    assert decoder.startswith("- decoder: no effect: all levels within ±")
    assert "every interval contains 0" in decoder
    # worst: both mistakes; its Shapley terms sum to its gap
    worst = _line(text, "Worst config: ")
    assert worst.startswith("- Worst config: resize=cv2_linear colour=bgr (all else as")
    gap = _interval(worst, ", ")[0]
    assert "agree_ref " in worst
    split = _line(text, "Shapley split: ")
    terms = [float(x) for x in re.findall(r"(?:colour|resize) explains ([+-]\d+\.\d)", split)]
    assert len(terms) == 2 and sum(terms) == pytest.approx(gap, abs=0.15)


def test_a_sweep_without_the_single_change_uses_matched_pairs(holed_dir):
    ondemand = holed_dir / "explain" / "ondemand"
    before = sorted(ondemand.iterdir()) if ondemand.exists() else []
    text = write_findings(holed_dir, RunDirConfigs(holed_dir), n_boot=300, max_on_demand=0)
    resize = _line(text, "resize: ")
    assert "mean of 2 matched pair(s): the sweep lacks the single change" in resize
    assert "the shares overlap and do not add up" in text  # not a full product
    split = _line(text, "Shapley split")
    assert "not computed: it needs 1 config(s) the sweep lacks" in split
    assert "evalharness explain" in split
    assert (sorted(ondemand.iterdir()) if ondemand.exists() else []) == before  # nothing ran


def test_missing_coalition_configs_are_evaluated_on_demand_when_few(holed_dir):
    text = write_findings(holed_dir, RunDirConfigs(holed_dir), n_boot=300)
    split = _line(text, "Shapley split: ")
    assert "Of the" in split and "colour explains" in split and "resize explains" in split
    assert len(list((holed_dir / "explain" / "ondemand").iterdir())) == 1


def test_a_single_config_run_says_so(tmp_path):
    _, out = run_in_process(["dataset.limit=20"], tmp_path / "one")
    text = write_findings(out, RunDirConfigs(out))
    assert "1 config(s) of demo_cnn on demo, each scored on n = 20 images" in text
    assert "One config: no factor varies" in text and "Worst config" not in text


def test_lines_use_the_tasks_unit_and_number_format():
    """Metric-agnostic: a detection task's 'mAP points' with two decimals reads as such."""
    fmt = _Fmt("{:+.2f}", "mAP points")
    effects = [
        LevelEffect("letterbox", -3.456, -5.0, -1.9, 40, 1, True),
        LevelEffect("squash", 0.5, -0.2, 1.3, 12, 1, True),
    ]
    line = factor_line("resize", 0.9, "pil_bilinear", effects, fmt)
    assert "largest effect resize=letterbox: -3.46 [-5.00, -1.90] mAP points" in line
    assert "other levels: squash +0.50 [-0.20, +1.30] mAP points" in line
    quiet = factor_line("decoder", 0.01, "pil", [effects[1]], fmt)
    assert quiet.startswith("decoder: no effect: all levels within ±0.50 mAP points")
    assert "12 image outcome(s) change" in quiet


@pytest.mark.slow
def test_the_demo_sweep_ends_with_its_findings(tmp_path):
    """`python -m evalharness +sweep=preproc_ablation`: decoder, backend and placement do
    not matter on the demo, resize does -- printed at the end and in findings.md."""
    r = subprocess.run(
        [sys.executable, "-m", "evalharness", "+sweep=preproc_ablation", "progress=false",
         f"hydra.run.dir={tmp_path}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "findings.md").read_text()
    assert r.stdout.rstrip().endswith(text.rstrip())  # the block is the last thing printed
    assert "72 config(s) of demo_cnn on demo, each scored on n = 800 images" in text
    for factor in ("decoder", "backend", "norm"):
        assert _line(text, f"{factor}: ").startswith(f"- {factor}: no effect: all levels within")
    resize = _line(text, "resize: ")
    d, lo, hi = _interval(resize, "largest effect resize=cv2_linear: ")  # ties: sorted first
    assert d == pytest.approx(81.625 - 95.875, abs=0.06) and hi < 0  # printed to 0.1
    assert "Worst config: resize=" in text and "Shapley split" in text


def test_merging_shards_ends_with_the_findings_of_the_whole_sweep(tmp_path, capsys):
    from evalharness.commands.merge import main as merge_main

    shards = [
        run_in_process([*SWEEP, "shard.count=2", f"shard.index={i}"], tmp_path / str(i))[1]
        for i in range(2)
    ]
    assert merge_main([str(tmp_path / "merged"), *map(str, shards)]) == 0
    out = capsys.readouterr().out
    text = (tmp_path / "merged" / "findings.md").read_text()
    assert out.rstrip().endswith(text.rstrip())
    assert "each scored on n = 80 images" in text and "Worst config: resize=cv2_linear" in text
