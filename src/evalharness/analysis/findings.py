"""The answer first: a short findings block at the end of a sweep (`findings.md`).

People read the first screen of output and stop. So the sweep ends with what a reader of
summary.csv would work out by hand, in a few lines, on the task's own metric (top-1, mAP,
hmean), each judged in one of three words (analysis/contrast.py, stats/verdict.py):
"changes the result", "no effect within ±m" (shown by the 90% interval, never by a point
estimate), "inconclusive" (with the effect this n could detect and the images that would
resolve it). The margin m is `findings.margin`.

- what the numbers stand on: n, error rows, calibration images, a subset or a shard that
  is not the whole set, a small n whose intervals are wide, the margin;
- for each varying factor, its verdict against the model card's reference (the config that
  changes only that factor, evaluated on demand when the sweep lacks it and they are few;
  else the mean over matched pairs, said so), and its share of the between-config variance
  only where that is defined (a full product of the levels);
- in a small sweep (a single command, `+sweep=int8`), every config against the reference;
- the worst config, its gap to the reference with the part error rows make, and the exact
  Shapley split of that gap.

Every interval comes from one bootstrap index matrix (paired), or from the changed-image
counts for top-1. The same block heads report.html and the numbers are deterministic
(seeded), so `evalharness explain` (its effects table), the report and Results.explain()
say the same words with the same numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from evalharness.analysis.attribution import all_coalition_configs, differing_factors
from evalharness.analysis.contrast import Contrast, contrast
from evalharness.analysis.effects import (
    FactorEffect,
    factor_effects,
    full_product,
    variance_shares,
    with_single_changes,
)
from evalharness.analysis.ondemand import ConfigSource, NoConfigs
from evalharness.analysis.results import RunResults, reference_config, run_dataset, run_margin
from evalharness.rundir.atomic import write_atomic_text
from evalharness.stats.paired import bootstrap_indices, check_resamples
from evalharness.stats.verdict import NO_EFFECT, margin_for

FINDINGS_BOOTSTRAP = 500
MAX_ON_DEMAND = 8  # beyond this many missing configs, nothing is evaluated here
MAX_LEVELS_LISTED = 3  # other levels of a factor, after the one its line names
MAX_CONFIG_LINES = 6  # up to this many non-reference configs, one line each
SMALL_N = 100  # fewer scored images than this: intervals are wide, said so


@dataclass
class Findings:
    """The block as data: the terminal and findings.md print `markdown()`, the report
    renders the same lines."""

    title: str
    facts: list[str]  # n, the reference, what the numbers stand on
    factors: list[str] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)
    worst: list[str] = field(default_factory=list)
    effects: list[FactorEffect] = field(default_factory=list, repr=False)

    def lines(self) -> list[str]:
        return [*self.facts, *self.factors, *self.configs, *self.worst]

    def markdown(self) -> str:
        return f"## {self.title}\n\n" + "\n".join(f"- {line}" for line in self.lines()) + "\n"

    def factor_verdicts(self) -> dict[str, str]:
        """factor -> its verdict word (explain's effects table says the same)."""
        return {fe.factor: fe.word for fe in self.effects}


def _assign(config: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in config.items())


def _value(v: float, lo=None, hi=None) -> str:
    if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
        return f"{v:.2f}"
    return f"{v:.2f} [{lo:.2f}, {hi:.2f}]"


def _errors_text(c: Contrast, fmt: str) -> str:
    """The part of a gap that images failing in one config only make."""
    e = c.errors
    if e is None:
        return ""
    return (
        f"; errors: {e.images} image(s) failed in one config and not the other, "
        f"{fmt.format(e.errors)} {c.verdict.unit} of the gap (errors.csv)"
    )


def _judged_text(c: Contrast, fmt: str) -> str:
    """The verdict on the images both scored, with the error rows as their own term."""
    if c.errors is None:
        return c.verdict.text()
    return (
        f"on the images both scored {c.scored.text()}; errors: {c.errors.images} image(s) "
        f"failed in one config and not the other, {fmt.format(c.errors.errors)} "
        f"{c.verdict.unit} of the gap (errors.csv; the whole gap {c.verdict.text()})"
    )


def factor_line(fe: FactorEffect, share: float | None, fmt: str) -> str:
    """One line per factor: its verdict, read off the level that decides it (the largest
    change; else the widest interval), then the other levels."""
    top = fe.headline()
    share_text = f"; {share * 100:.1f}% of the between-config variance" if share is not None else ""
    if top is None:
        return (
            f"{fe.factor}: no effect estimable: no config differs from the reference only in "
            f"{fe.factor}, and no matched pair does{share_text.replace(';', ' (', 1)}"
        )
    how = "all else as the reference" if top.how.startswith("single") else top.how
    if top.how.endswith("on demand"):
        how += ", evaluated on demand"
    others = sorted((e for e in fe.levels if e is not top), key=lambda e: -abs(e.verdict.estimate))
    if fe.word == NO_EFFECT:
        widest = [top, *others][: MAX_LEVELS_LISTED + 1]
        listed = "; ".join(
            f"{e.level} {e.verdict.estimate:+.{_d(e)}f}, 90% CI "
            f"[{e.verdict.ci90[0]:+.{_d(e)}f}, {e.verdict.ci90[1]:+.{_d(e)}f}]"
            for e in widest
        )
        text = (
            f"{fe.factor}: no effect within ±{top.verdict.margin:g} {top.verdict.unit} for "
            f"every level against {fe.reference} ({listed}; {how}{share_text})"
        )
        more = len(fe.levels) - len(widest)
        return text + (f"; and {more} more (explain/effects.csv)" if more > 0 else "")
    text = (
        f"{fe.factor}: {top.level} against {fe.reference}: {top.verdict.text()} ({how}{share_text})"
    )
    if top.contrast is not None:
        text += _errors_text(top.contrast, fmt)
    if others:
        listed = [f"{e.level}: {e.verdict.text()}" for e in others[:MAX_LEVELS_LISTED]]
        more = len(others) - MAX_LEVELS_LISTED
        text += "; other levels: " + "; ".join(listed)
        text += f"; and {more} more (explain/effects.csv)" if more > 0 else ""
    return text


def _d(e) -> int:
    """Decimals that resolve the margin (1 for 0.5 points, 2 for 0.05 dB)."""
    import math

    return max(1, math.ceil(-math.log10(e.verdict.margin) - 1e-9))


def _agree_text(w) -> str:
    if "agree_ref" not in w or pd.isna(w.get("agree_ref")):
        return ""
    return (
        f"; agree_ref {_value(w.agree_ref, w.get('agree_ref_lo'), w.get('agree_ref_hi'))}"
        "% (images whose outcome equals the reference's)"
    )


def config_lines(res: RunResults, ref, ref_id, idx, m, values, fmt) -> list[str]:
    """Each non-reference config against the reference, lowest first, when there are few.

    The factor lines need two configs that differ in one factor only; a single command such
    as `precision=int8_ort backend=onnxruntime` has none (its reference is torch fp32), yet
    its own paired difference and agreement are the answer the user ran it for.
    """
    others = [c for c in res.summary.config_id if c != ref_id]
    if ref_id is None or not others or len(others) > MAX_CONFIG_LINES:
        return []
    metric = res.metric
    row = res.summary.set_index("config_id")
    lines = []
    for cid in sorted(others, key=lambda c: (row[metric][c], c)):
        c = contrast(res, ref_id, cid, idx, m, values)
        w = row.loc[cid]
        diff = {f: v for f, v in res.factors_of(cid).items() if ref.get(f) != v}
        score = _value(w[metric], w.get(f"{metric}_lo"), w.get(f"{metric}_hi"))
        lines.append(
            f"{_assign(diff)}: {metric} {score}; against the "
            f"reference {c.verdict.text()}; {c.pair.right_to_wrong} image(s) worse, "
            f"{c.pair.wrong_to_right} better (paired sign test p = {c.pair.p_mcnemar:.2g})"
            + _errors_text(c, fmt)
            + _agree_text(w)
        )
    return lines


def choose_worst(res: RunResults, ref: dict[str, str]) -> str:
    """The lowest-scoring config; among ties, the one closest to the reference (the gap
    with the fewest factors to share out)."""
    m = res.metric
    low = res.summary[res.summary[m] == res.summary[m].min()]
    dist = [len(differing_factors(ref, res.factors_of(c))) for c in low.config_id]
    return str(low.config_id.iloc[int(np.argmin(dist))])


def worst_lines(
    run_dir, configs, res, ref, worst_id, idx, m, values, fmt, max_on_demand, own=None
) -> list[str]:
    """The worst config's gap to the reference, judged, and its Shapley split (`res` holds
    any config already evaluated on demand, so coalitions are not run twice)."""
    from evalharness.analysis.explain import attribution  # the tool's Shapley, on demand too

    metric = res.metric
    row = res.summary.set_index("config_id")
    ref_id = res.find(ref)
    if ref_id is None:  # a run dir from before the reference was always planned
        worst = _assign(res.factors_of(worst_id))
        return [f"Worst config: {worst}: {metric} {row[metric][worst_id]:.2f} (no reference row)"]
    if row[metric][worst_id] >= row[metric][ref_id]:
        return [f"Worst config: none scores below the reference ({metric} {row[metric].min():.2f})"]
    worst = res.factors_of(worst_id)
    diff = {f: v for f, v in worst.items() if ref[f] != v}
    c = contrast(res, ref_id, worst_id, idx, m, values)
    w = row.loc[worst_id]
    text = (
        f"Worst config: {_assign(diff)} (all else as the reference): {metric} "
        f"{_value(w[metric], w.get(f'{metric}_lo'), w.get(f'{metric}_hi'))}; against the "
        f"reference {c.verdict.text()}" + _errors_text(c, fmt) + _agree_text(w)
    )
    own_rows = row if own is None else row[row.index.isin(list(own))]
    ties = int((own_rows[metric] == w[metric]).sum()) - 1
    if ties:
        text += f"; {ties} other config(s) score the same, this one is closest to the reference"
    lines = [text]
    missing = [cfg for cfg in all_coalition_configs(ref, worst) if res.find(cfg) is None]
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
        verdict = att.verdict("the reference", "the worst config", fmt)
        lines.append(f"Shapley split: {verdict}")
    return lines


def stand_on(run_dir: Path, res: RunResults, dataset) -> list[str]:
    """What the numbers stand on, where it could mislead: a shard, a subset, a small n."""
    from evalharness.rundir.read import dataset_settings

    out = []
    plan = Path(run_dir) / "plan.json"
    if plan.exists():
        record = json.loads(plan.read_text())
        if record.get("shard_count", 1) > 1:
            out.append(
                f"shard {record['shard_index']} of {record['shard_count']}: partial, merge "
                "before reading (evalharness merge OUT SHARD_DIRS...)"
            )
    limit = dataset_settings(run_dir).get("limit")
    if limit and res.task.labelled and len(res.labels):
        counts = pd.Series(res.labels).value_counts()
        n_classes = len(dataset.classes) if dataset is not None else counts.size
        spread = dataset_settings(run_dir).get("limit_spread")
        how = "spread over the set" if spread else "the first files"
        text = (
            f"a subset: dataset.limit={limit} ({how}) covers {counts.size} of {n_classes} "
            f"classes, {_span(counts.min(), counts.max())} images each"
        )
        if counts.size < n_classes and not spread:
            text += "; dataset.limit_spread=true takes them evenly spaced over the set"
        out.append(text)
    n = len(res.sample_ids)
    if n < SMALL_N:
        out.append(
            f"only {n} images scored: every interval is wide, and a factor can be said to "
            "have no effect only if its whole 90% interval lies within the margin"
        )
    return out


def _coverage_text(row, metric: str) -> str:
    """Where the interval is known to under-cover (mAP on classes with few objects)."""
    cov = row.get(f"{metric}_coverage")
    if cov is None or pd.isna(cov) or cov >= 0.95:
        return ""
    return (
        f" (this interval covered the true {metric} in {cov:.0%} of simulated draws at this "
        "set's objects per class, nominal 95%: stats/map_interval.py)"
    )


def _span(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def findings(
    run_dir: Path,
    configs: ConfigSource | None = None,
    dataset=None,
    n_boot: int = FINDINGS_BOOTSTRAP,
    max_on_demand: int = MAX_ON_DEMAND,
    margin: float | None = None,
) -> Findings:
    """The findings of a finished run dir (see the module docstring); configs it lacks (the
    reference's single changes, Shapley coalitions) are evaluated through `configs` when
    they are few (none without it)."""
    run_dir = Path(run_dir)
    check_resamples(n_boot)
    if configs is None:
        configs, max_on_demand = NoConfigs(), 0
    dataset = dataset if dataset is not None else run_dataset(run_dir)
    res = RunResults.load(run_dir, dataset)
    metric, s = res.metric, res.summary
    fmt = res.task.number_format
    m = margin_for(metric, margin if margin is not None else run_margin(run_dir))
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
    facts += stand_on(run_dir, res, dataset)
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
            f"Reference (model card): {_assign(shown)}: {metric} "
            f"{_value(r[metric], r.get(f'{metric}_lo'), r.get(f'{metric}_hi'))}"
            + _coverage_text(r, metric)
        )
    facts.append(
        f"Verdicts against the reference, paired, at a margin of ±{m:g} {res.task.unit} "
        '(findings.margin): "changes the result" when the 95% interval excludes 0, "no '
        'effect" when the 90% interval lies within the margin, else "inconclusive"'
    )
    out = Findings(f"Findings ({metric})", facts)
    varying = res.varying_factors()
    if not varying:
        out.factors.append("One config: no factor varies, nothing to attribute")
        return out
    extended = with_single_changes(res, ref, configs, max_on_demand)
    evaluated = set(extended.records) - set(res.records)

    def ext_values(cid: str) -> np.ndarray:
        if cid not in cache:
            cache[cid] = extended.values(cid, idx)
        return cache[cid]

    out.effects = factor_effects(extended, ref, idx, m, ext_values, evaluated, configs.problem)
    full, why = full_product(s, varying)
    shares = variance_shares(s, varying, metric).set_index("factor").share if full else None
    order = sorted(out.effects, key=lambda fe: -max(
        (abs(e.verdict.estimate) for e in fe.levels), default=0.0))  # fmt: skip
    for fe in order:
        share = float(shares[fe.factor]) if shares is not None else None
        out.factors.append(factor_line(fe, share, fmt))
    if full and len(varying) > 1:
        out.factors.append(
            f"interactions: {shares['interactions'] * 100:.1f}% of the variance "
            "(what the factors' separate effects leave)"
        )
    elif not full:
        out.factors.append(f"no variance shares: {why}")
    out.configs = config_lines(res, ref, ref_id, idx, m, values, fmt)
    if s[metric].nunique() > 1:
        worst_id = choose_worst(res, ref)  # among the run's own configs
        out.worst = worst_lines(run_dir, configs, extended, ref, worst_id, idx, m, ext_values,
                                fmt, max_on_demand, set(res.records))  # fmt: skip
    return out


def write_findings(
    run_dir: Path,
    configs: ConfigSource | None = None,
    dataset=None,
    n_boot: int = FINDINGS_BOOTSTRAP,
    max_on_demand: int = MAX_ON_DEMAND,
    margin: float | None = None,
) -> str:
    """Compute the findings of a finished run dir, write RUN_DIR/findings.md, return its text.

    The runner calls it after the tables of a whole (unsharded) sweep; merge calls it with
    no `configs` (merging loads no backend, so nothing is evaluated on demand).
    """
    text = findings(run_dir, configs, dataset, n_boot, max_on_demand, margin).markdown()
    write_atomic_text(Path(run_dir) / "findings.md", text)  # a link there is replaced
    return text
