"""The findings block: each factor judged against the reference in one of three words
("changes the result", "no effect within ±m", "inconclusive"), shares only for a full
product, error rows as their own term, the worst config with its Shapley split, and the
same verdicts as explain, Results.explain() and the report."""

import re
import subprocess
import sys

import pandas as pd
import pytest

from evalharness.analysis.findings import findings, write_findings
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
NUM = r"([+-]\d+\.\d+)"


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
    m = re.search(re.escape(after) + NUM + r" \[" + NUM + ", " + NUM + r"\]", line)
    assert m, line
    return tuple(float(x) for x in m.groups())


def test_findings_judge_every_factor_against_the_reference(full_dir):
    text = write_findings(full_dir, RunDirConfigs(full_dir), n_boot=300)
    assert (full_dir / "findings.md").read_text() == text
    summary = pd.read_csv(full_dir / "summary.csv")
    ref = summary[summary.reference].iloc[0]
    assert "8 config(s) of demo_cnn on demo, each scored on n = 80 images" in text
    assert f"top1 {ref.top1:.2f} [{ref.top1_lo:.2f}, {ref.top1_hi:.2f}]" in text
    assert "at a margin of ±0.5 points (findings.margin)" in text
    assert "only 80 images scored: every interval is wide" in text
    # colour and resize change the result: the single change, its interval excludes 0
    for factor, level, other in (("colour", "bgr", "resize"), ("resize", "cv2_linear", "colour")):
        line = _line(text, f"{factor}: ")
        d, lo, hi = _interval(line, "changes the result: ")
        single = summary.query(
            f"{factor} == '{level}' and decoder == 'pil' and {other} == '{ref[other]}'"
        ).top1.iloc[0]
        assert d == pytest.approx(round(single - ref.top1, 1)) and lo <= d <= hi and hi < 0
        assert f"{factor}: {level} against" in line and "all else as the reference" in line
    # 80 images with none changed by the decoder cannot show "no effect within ±0.5": the
    # score interval at b = c = 0 is about ±z²/(n + z²) = ±4.6 points
    decoder = _line(text, "decoder: ")
    assert decoder.startswith("- decoder: opencv against pil: inconclusive: +0.0 [")
    _, lo, hi = _interval(decoder, "inconclusive: ")
    assert hi == pytest.approx(-lo, abs=0.05) and hi == pytest.approx(3.84 / 83.84 * 100, abs=0.2)
    assert "this n (80) detects about ±4.6 points" in decoder and "would resolve ±0.5" in decoder
    # worst: both mistakes; its Shapley terms sum to its gap
    worst = _line(text, "Worst config: ")
    assert worst.startswith("- Worst config: resize=cv2_linear colour=bgr (all else as")
    gap = _interval(worst, "changes the result: ")[0]
    assert "agree_ref " in worst
    split = _line(text, "Shapley split: ")
    terms = [float(x) for x in re.findall(r"(?:colour|resize) explains ([+-]\d+\.\d)", split)]
    assert len(terms) == 2 and sum(terms) == pytest.approx(gap, abs=0.15)


def test_variance_shares_only_for_a_full_product(full_dir, holed_dir):
    full = findings(full_dir, RunDirConfigs(full_dir), n_boot=200).markdown()
    assert "% of the between-config variance" in full and "interactions: " in full
    holed = findings(holed_dir, RunDirConfigs(holed_dir), n_boot=200, max_on_demand=0)
    text = holed.markdown()
    assert "between-config variance" not in text and "interactions: " not in text
    assert "no variance shares: the configs are not the full product" in text


def test_a_sweep_without_the_single_change_uses_matched_pairs(holed_dir):
    ondemand = holed_dir / "explain" / "ondemand"
    before = sorted(ondemand.iterdir()) if ondemand.exists() else []
    text = write_findings(holed_dir, RunDirConfigs(holed_dir), n_boot=300, max_on_demand=0)
    resize = _line(text, "resize: ")
    assert "mean of 2 matched pair(s): the sweep lacks the single change" in resize
    split = _line(text, "Shapley split")
    assert "not computed: it needs 1 config(s) the sweep lacks" in split
    assert "evalharness explain" in split
    assert (sorted(ondemand.iterdir()) if ondemand.exists() else []) == before  # nothing ran


def test_the_missing_single_change_is_evaluated_on_demand_when_few(holed_dir):
    text = write_findings(holed_dir, RunDirConfigs(holed_dir), n_boot=300)
    resize = _line(text, "resize: ")
    assert "cv2_linear against pil_bilinear: changes the result" in resize
    assert "evaluated on demand" in resize and "matched pair" not in resize
    split = _line(text, "Shapley split: ")
    assert "Of the" in split and "colour explains" in split and "resize explains" in split
    assert len(list((holed_dir / "explain" / "ondemand").iterdir())) == 1


def test_findings_explain_api_and_report_say_the_same(full_dir):
    """One rule: the factor verdicts of the findings block, explain's effects table, the
    Python API's Explanation and the report page agree on one run, number for number."""
    import evalharness
    from evalharness.analysis.explain import explain

    block = findings(full_dir, RunDirConfigs(full_dir), n_boot=300)
    out = explain(full_dir, RunDirConfigs(full_dir), n_boot=300)
    api = evalharness.Results(full_dir).explain(n_boot=300)
    assert block.factor_verdicts() == out.factor_verdicts() == api.factor_verdicts()
    by_level = {(r.factor, r.level): r for r in out.effects.itertuples()}
    for fe in block.effects:
        for e in fe.levels:
            row = by_level[(fe.factor, e.level)]
            assert (row.verdict, row.delta, row.lo, row.hi) == pytest.approx(
                (e.verdict.word, e.verdict.estimate, *e.verdict.ci95)
            ) or row.verdict == e.verdict.word
            assert row.text == e.verdict.text()
    html = (evalharness.Results(full_dir).report(n_boot=300)).read_text()
    for line in block.factors:
        assert line.split(": ", 1)[0] in html
    assert _line(block.markdown(), "decoder: ")[2:] in html.replace("&#39;", "'")


def test_a_single_config_run_says_so(tmp_path):
    _, out = run_in_process(["dataset.limit=20"], tmp_path / "one")
    text = write_findings(out, RunDirConfigs(out))
    assert "1 config(s) of demo_cnn on demo, each scored on n = 20 images" in text
    assert "One config: no factor varies" in text and "Worst config" not in text


def test_a_subset_of_the_first_files_is_named(tmp_path):
    """cifar-style class-sorted folders: dataset.limit takes the first files, one class."""
    from .helpers import DEMO

    manifest = pd.read_csv(DEMO / "manifest.csv").head(60)
    classes = (DEMO / "classes.txt").read_text().split()
    folder = tmp_path / "sorted"
    for row in manifest.itertuples():  # one folder per class, as cifar10_test is laid out
        (folder / classes[row.label]).mkdir(parents=True, exist_ok=True)
        src = DEMO / row.path
        (folder / classes[row.label] / src.name).write_bytes(src.read_bytes())
    _, out = run_in_process(
        ["dataset=folder", f"dataset.root={folder}", "dataset.limit=6"], tmp_path / "run"
    )
    text = write_findings(out, RunDirConfigs(out))
    line = _line(text, "a subset: ")
    assert "dataset.limit=6 (the first files) covers" in line
    assert "dataset.limit_spread=true" in line


def test_a_shard_says_it_is_partial(tmp_path):
    _, out = run_in_process([*SWEEP, "shard.count=2", "shard.index=0"], tmp_path / "s0")
    text = write_findings(out)
    assert "shard 0 of 2: partial, merge before reading" in text


@pytest.mark.slow
def test_the_demo_sweep_ends_with_its_findings(tmp_path):
    """`python -m evalharness +sweep=preproc_ablation`: resize changes the result; decoder,
    backend and placement have no effect within ±0.5 (their 90% intervals at n = 800 are
    ±0.3) -- printed at the end and in findings.md."""
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
        line = _line(text, f"{factor}: ")
        assert line.startswith(f"- {factor}: no effect within ±0.5 points for every level")
        for lo, hi in re.findall(r"90% CI \[" + NUM + ", " + NUM + r"\]", line):
            assert -0.5 < float(lo) and float(hi) < 0.5
    resize = _line(text, "resize: ")
    d, lo, hi = _interval(resize, "cv2_linear against pil_bilinear: changes the result: ")
    assert d == pytest.approx(81.625 - 95.875, abs=0.06) and hi < 0  # printed to 0.1
    assert "Worst config: resize=" in text and "Shapley split" in text


@pytest.mark.slow
def test_thirty_images_show_no_effect_for_no_factor(tmp_path):
    """`dataset.limit=30` on the demo: 30 images cannot show an effect under 0.5 points,
    so no factor is said to have none; those that do not change the result are
    inconclusive, with the size this n can detect."""
    _, out = run_in_process(["+sweep=preproc_ablation", "dataset.limit=30"], tmp_path / "r")
    text = write_findings(out, RunDirConfigs(out), n_boot=300)
    assert "no effect within" not in text
    for factor in ("decoder", "backend", "norm"):
        line = _line(text, f"{factor}: ")
        assert ": inconclusive: " in line and "this n (30) detects about ±11 points" in line
    assert "changes the result" in _line(text, "resize: ")


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
    assert "shard" not in text.split("\n")[2]  # the merged run is whole
