"""The answer first: a short findings block at the end of a sweep (`findings.md`).

People read the first screen of output and stop. So the sweep ends with what a reader of
summary.csv would work out by hand, in a few lines, on the task's own metric (top-1, mAP,
hmean):

- for each varying factor, its share of the between-config variance and its largest level
  effect against the model card's reference config (the config that changes only that
  factor; the marginal contrast when the sweep lacks it), with a paired 95% interval;
  factors whose every interval contains 0 are said to have no effect, with the bound;
- the worst config, its gap to the reference and the exact Shapley split of that gap
  (coalition configs the sweep lacks are evaluated on demand when they are few);
- n, the number of images each config is scored on, and the worst config's agree_ref;
- in a small sweep (a single command, `+sweep=int8`), every config against the reference
  with its paired interval, the images it makes worse/better and its agree_ref: there the
  factors often cannot be separated (the reference is torch fp32, int8 runs elsewhere), but
  each config's own difference always can.

Every interval comes from one bootstrap index matrix (the effects, the gap and the Shapley
terms are paired); a few hundred resamples are plenty for a summary. The same block heads
report.html; the numbers are deterministic (seeded), so both say the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from evalharness.analysis.attribution import all_coalition_configs, differing_factors
from evalharness.analysis.effects import variance_shares
from evalharness.analysis.ondemand import ConfigSource, NoConfigs
from evalharness.analysis.results import RunResults, reference_config, run_dataset
from evalharness.stats.paired import bootstrap_indices, compare_values, percentile_ci

FINDINGS_BOOTSTRAP = 500
MAX_ON_DEMAND = 8  # beyond this many missing coalition configs, no Shapley split here
MAX_LEVELS_LISTED = 3  # other levels of a factor that matters, after the largest
MAX_CONFIG_LINES = 6  # up to this many non-reference configs, one line each


@dataclass
class LevelEffect:
    level: str
    delta: float  # metric(level) - metric(reference), in the task's unit
    lo: float
    hi: float
    changed: int  # images whose per-image score differs from the reference's (single change)
    pairs: int  # matched config pairs the effect averages (1 for the single change)
    single: bool  # True: the reference with only this factor changed

    @property
    def significant(self) -> bool:
        return self.lo > 0 or self.hi < 0


@dataclass
class Findings:
    """The block as data: the terminal and findings.md print `markdown()`, the report
    renders the same lines."""

    title: str
    facts: list[str]  # n, the reference
    factors: list[str] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)
    worst: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [*self.facts, *self.factors, *self.configs, *self.worst]

    def markdown(self) -> str:
        return f"## {self.title}\n\n" + "\n".join(f"- {line}" for line in self.lines()) + "\n"


def _assign(config: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in config.items())


class _Fmt:
    """Numbers in the task's unit: differences signed (`number_format`), bounds unsigned."""

    def __init__(self, number_format: str, unit: str) -> None:
        self.diff = number_format
        self.abs = number_format.replace("+", "")
        self.unit = unit

    def delta(self, d: float, lo: float, hi: float) -> str:
        f = self.diff.format
        return f"{f(d)} [{f(lo)}, {f(hi)}] {self.unit}"

    def value(self, v: float, lo: float | None = None, hi: float | None = None) -> str:
        if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
            return f"{v:.2f}"
        return f"{v:.2f} [{lo:.2f}, {hi:.2f}]"


def level_effects(
    res: RunResults, ref: dict[str, str], factor: str, idx: np.ndarray, values
) -> list[LevelEffect]:
    """Each non-reference level of `factor` against the reference config, paired.

    The config that changes only `factor` is the direct answer. When the sweep lacks it
    (exclusions; a one-at-a-time sweep of other factors) the effect is the mean paired
    difference over the matched pairs the sweep has -- two configs equal in every other
    factor, one at the level, one at the reference level -- never a contrast of marginal
    means, which an unbalanced sweep confounds with the other factors.
    """
    ref_id = res.find(ref)
    others = [f for f in res.factors if f != factor]
    s = res.summary.assign(_level=res.summary[factor].astype(str))
    at_ref = {tuple(r[others]): r.config_id for _, r in s[s._level == ref[factor]].iterrows()}
    out = []
    for level in sorted(s._level.unique()):
        if level == ref[factor]:
            continue
        cid = res.find({**ref, factor: level})
        if cid is not None and ref_id is not None:
            r = compare_values(
                values(ref_id), values(cid), res.scores(ref_id), res.scores(cid), res.sample_ids
            )
            changed = r.right_to_wrong + r.wrong_to_right
            out.append(LevelEffect(level, r.delta, r.delta_lo, r.delta_hi, changed, 1, True))
            continue
        pairs = [
            (at_ref[key], row.config_id)
            for _, row in s[s._level == level].iterrows()
            if (key := tuple(row[others])) in at_ref
        ]
        if not pairs:
            continue
        d = np.mean([values(c) - values(b) for b, c in pairs], axis=0)
        lo, hi = percentile_ci(d[1:])
        out.append(LevelEffect(level, float(d[0]), lo, hi, 0, len(pairs), False))
    return out


def factor_line(factor: str, share: float, ref_level: str, effects: list[LevelEffect], fmt) -> str:
    """One line per factor: share, then the largest effect, or 'no effect' with its bound."""
    share_text = f"{share * 100:.1f}% of the between-config variance"
    if not effects:
        return (
            f"{factor}: {share_text}; no effect estimable: no two configs differ only in "
            f"{factor} with one at the reference level ({ref_level})"
        )
    if not any(e.significant for e in effects):
        bound = max(abs(e.delta) for e in effects)
        changed = sum(e.changed for e in effects)
        note = f"; {changed} image outcome(s) change, in both directions" if changed else ""
        return (
            f"{factor}: no effect: all levels within ±{fmt.abs.format(bound)} {fmt.unit} of the "
            f"reference ({ref_level}), every interval contains 0 ({share_text}{note})"
        )
    ranked = sorted(effects, key=lambda e: -abs(e.delta))
    top = ranked[0]
    how = (
        "all else as the reference"
        if top.single
        else f"mean of {top.pairs} matched pair(s): the sweep lacks the single change"
    )
    text = (
        f"{factor}: {share_text}; largest effect {factor}={top.level}: "
        f"{fmt.delta(top.delta, top.lo, top.hi)} against the reference {ref_level} ({how})"
    )
    others = [f"{e.level} {fmt.delta(e.delta, e.lo, e.hi)}" for e in ranked[1:]]
    if others:
        more = len(others) - MAX_LEVELS_LISTED
        text += "; other levels: " + ", ".join(others[:MAX_LEVELS_LISTED])
        text += f" and {more} more (explain/effects.csv)" if more > 0 else ""
    return text


def _agree_text(w, fmt) -> str:
    if "agree_ref" not in w or pd.isna(w.get("agree_ref")):
        return ""
    return (
        f"; agree_ref {fmt.value(w.agree_ref, w.get('agree_ref_lo'), w.get('agree_ref_hi'))}"
        "% (images whose outcome equals the reference's)"
    )


def config_lines(res: RunResults, ref: dict[str, str], values, fmt) -> list[str]:
    """Each non-reference config against the reference, lowest first, when there are few.

    The factor lines need two configs that differ in one factor only; a single command such
    as `precision=int8_ort backend=onnxruntime` has none (its reference is torch fp32), yet
    its own paired difference and agreement are the answer the user ran it for.
    """
    ref_id = res.find(ref)
    others = [c for c in res.summary.config_id if c != ref_id]
    if ref_id is None or not others or len(others) > MAX_CONFIG_LINES:
        return []
    m = res.metric
    row = res.summary.set_index("config_id")
    lines = []
    for cid in sorted(others, key=lambda c: (row[m][c], c)):
        r = compare_values(
            values(ref_id), values(cid), res.scores(ref_id), res.scores(cid), res.sample_ids
        )
        w = row.loc[cid]
        diff = {f: v for f, v in res.factors_of(cid).items() if ref.get(f) != v}
        lines.append(
            f"{_assign(diff)}: {m} {fmt.value(w[m], w.get(f'{m}_lo'), w.get(f'{m}_hi'))}, "
            f"{fmt.delta(r.delta, r.delta_lo, r.delta_hi)} against the reference; "
            f"{r.right_to_wrong} image(s) worse, {r.wrong_to_right} better "
            f"(paired sign test p = {r.p_mcnemar:.2g})" + _agree_text(w, fmt)
        )
    return lines


def choose_worst(res: RunResults, ref: dict[str, str]) -> str:
    """The lowest-scoring config; among ties, the one closest to the reference (the gap
    with the fewest factors to share out)."""
    m = res.metric
    low = res.summary[res.summary[m] == res.summary[m].min()]
    dist = [len(differing_factors(ref, res.factors_of(c))) for c in low.config_id]
    return str(low.config_id.iloc[int(np.argmin(dist))])


def worst_lines(run_dir, configs, res, ref, idx, values, fmt, max_on_demand) -> list[str]:
    from evalharness.analysis.explain import attribution  # the tool's Shapley, on demand too

    m = res.metric
    row = res.summary.set_index("config_id")
    ref_id = res.find(ref)
    worst_id = choose_worst(res, ref)
    if ref_id is None:  # a run dir from before the reference was always planned
        worst = _assign(res.factors_of(worst_id))
        return [f"Worst config: {worst}: {m} {row[m][worst_id]:.2f} (no reference row to compare)"]
    if row[m][worst_id] >= row[m][ref_id]:
        return [f"Worst config: none scores below the reference ({m} {row[m].min():.2f})"]
    worst = res.factors_of(worst_id)
    diff = {f: v for f, v in worst.items() if ref[f] != v}
    r = compare_values(
        values(ref_id), values(worst_id), res.scores(ref_id), res.scores(worst_id), res.sample_ids
    )
    w = row.loc[worst_id]
    text = (
        f"Worst config: {_assign(diff)} (all else as the reference): {m} "
        f"{fmt.value(w[m], w.get(f'{m}_lo'), w.get(f'{m}_hi'))}, "
        f"{fmt.delta(r.delta, r.delta_lo, r.delta_hi)} against the reference"
    )
    text += _agree_text(w, fmt)
    ties = int((row[m] == w[m]).sum()) - 1
    if ties:
        text += f"; {ties} other config(s) score the same, this one is closest to the reference"
    lines = [text]
    missing = [c for c in all_coalition_configs(ref, worst) if res.find(c) is None]
    if len(diff) == 1:
        lines.append(f"Shapley split: one factor differs, {next(iter(diff))} is the whole gap")
    elif len(missing) > max_on_demand:
        lines.append(
            f"Shapley split not computed: it needs {len(missing)} config(s) the sweep lacks "
            f"(more than {max_on_demand}); `evalharness explain {run_dir} --b "
            f"{_assign(diff)}` evaluates them"
        )
    else:
        att, _ = attribution(configs, res, ref, worst, idx)
        verdict = att.verdict("the reference", "the worst config", res.task.number_format)
        lines.append(f"Shapley split: {verdict}")
    return lines


def findings(
    run_dir: Path,
    configs: ConfigSource | None = None,
    dataset=None,
    n_boot: int = FINDINGS_BOOTSTRAP,
    max_on_demand: int = MAX_ON_DEMAND,
) -> Findings:
    """The findings of a finished run dir (see the module docstring); configs the Shapley
    split needs and the run lacks are evaluated through `configs` (none without it)."""
    run_dir = Path(run_dir)
    if configs is None:
        configs, max_on_demand = NoConfigs(), 0
    dataset = dataset if dataset is not None else run_dataset(run_dir)
    res = RunResults.load(run_dir, dataset)
    m, s = res.metric, res.summary
    fmt = _Fmt(res.task.number_format, res.task.unit)
    ref = reference_config(run_dir, res)
    ref_id = res.find(ref)
    idx = bootstrap_indices(len(res.sample_ids), n_boot)
    cache: dict[str, np.ndarray] = {}

    def values(cid: str) -> np.ndarray:
        if cid not in cache:
            cache[cid] = res.values(cid, idx)
        return cache[cid]

    n, n_err = int(s.n.max()), int(s.n_errors.sum())
    facts = [
        f"{len(s)} config(s) of {s.model.iloc[0]} on {s.dataset.iloc[0]}, each scored on "
        f"n = {n} images"
        + (f" ({n_err} error rows in all, counted as misses: errors.csv)" if n_err else "")
    ]
    calib = run_dir / "calibration.csv"
    if calib.exists():
        table = pd.read_csv(calib, dtype=str)
        source = table.source.iloc[0] if len(table) else ""
        facts.append(
            f"int8 calibrated on {len(table)} images {source}"
            + (", scored by no config" if source.startswith("held out") else "")
            + " (calibration.csv)"
        )
    if ref_id is not None:
        r = s.set_index("config_id").loc[ref_id]
        shown = {f: v for f, v in ref.items() if f in res.varying_factors()} or ref
        facts.append(
            f"Reference (model card): {_assign(shown)}: {m} "
            f"{fmt.value(r[m], r.get(f'{m}_lo'), r.get(f'{m}_hi'))}"
        )
    out = Findings(f"Findings ({m})", facts)
    varying = res.varying_factors()
    if not varying:
        out.factors.append("One config: no factor varies, nothing to attribute")
        return out
    if s[m].nunique() == 1:
        out.factors.append(f"Every config scores {m} {s[m].iloc[0]:.2f}: no factor changes it")
        out.configs = config_lines(res, ref, values, fmt)  # the same score, not the same images
        return out
    shares = variance_shares(s, varying, m).set_index("factor").share
    for f in sorted(varying, key=lambda f: -shares[f]):
        effects = level_effects(res, ref, f, idx, values)
        out.factors.append(factor_line(f, float(shares[f]), ref[f], effects, fmt))
    if len(varying) > 1 and shares[varying].sum() > 1 + 1e-9:
        out.factors.append(
            "the sweep is not a full product of its factors: the shares overlap and do not "
            "add up to 100%"
        )
    elif len(varying) > 1:
        out.factors.append(
            f"interactions: {shares['interactions'] * 100:.1f}% of the variance "
            "(what the factors' separate effects leave)"
        )
    out.configs = config_lines(res, ref, values, fmt)
    out.worst = worst_lines(run_dir, configs, res, ref, idx, values, fmt, max_on_demand)
    return out


def write_findings(
    run_dir: Path,
    configs: ConfigSource | None = None,
    dataset=None,
    n_boot: int = FINDINGS_BOOTSTRAP,
    max_on_demand: int = MAX_ON_DEMAND,
) -> str:
    """Compute the findings of a finished run dir, write RUN_DIR/findings.md, return its text.

    The runner calls it after the tables of a whole (unsharded) sweep; merge calls it with
    no `configs` (merging loads no backend, so no Shapley coalition is evaluated).
    """
    text = findings(run_dir, configs, dataset, n_boot, max_on_demand).markdown()
    (Path(run_dir) / "findings.md").write_text(text)
    return text
