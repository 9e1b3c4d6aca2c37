"""`evalharness parity --decoders A,B,...`: how much decoders differ, pair by pair.

    evalharness parity --decoders pil,opencv,kornia_rs,simplejpeg_fast \\
        dataset=imagenet_val_1300 model=efficientnet_lite0 backend=onnxruntime --out parity/
    evalharness parity --decoders pil,kornia_rs --pixels-only \\
        dataset=folder dataset.root=../shared/data/coco-mini-val2017

Pixels: every file is decoded once by each decoder; per pair, the share of files whose
pixels differ at all and the share of values (pixel x channel) that differ, max and mean
|diff| (mean over every value of the compared files), PSNR over all compared pixels (and the
worst file's), and the files that cannot be compared (one decoder failed, or the shapes
differ, e.g. EXIF applied by one only).
Model (unless --pixels-only): the decoders are swept through the model under the base
config (the model card's pipeline plus the overrides), and per pair the task metric of each,
the paired difference with its bootstrap interval, the images that flip either way with
McNemar's p, the share of images whose prediction is identical, and each side's error rows
(a file a decoder cannot read is an error row, scored as wrong).

Writes, under --out: pixel_pairs.csv, pixel_files.csv (per file and pair), and with the
model part model_pairs.csv and the run dir (run/) it came from.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from evalharness.analysis.results import RunResults
from evalharness.config.compose import compose, store_for
from evalharness.config.runplan import build_plan
from evalharness.config.store import OptionStore
from evalharness.data.dataset import load_dataset
from evalharness.preprocess.decode import DecodeSpec, decode
from evalharness.preprocess.errors import StageError
from evalharness.stats.paired import bootstrap_indices, compare_values


def decode_spec(option: str, store: OptionStore) -> DecodeSpec:
    """The DecodeSpec of a conf/decoder option (its library and policies)."""
    opt = store.load("decoder", option)
    return DecodeSpec(opt["library"], opt["exif"], opt["alpha"], int(opt["reduce"]))


def decode_all(path: Path, specs: dict[str, DecodeSpec]) -> dict[str, np.ndarray | str]:
    out: dict[str, np.ndarray | str] = {}
    for name, spec in specs.items():
        try:
            out[name] = decode(path, spec)
        except StageError as e:
            out[name] = f"error: {e.reason}"
    return out


def file_row(a: np.ndarray | str, b: np.ndarray | str) -> dict:
    """One file, one pair: comparable?, differs?, max |diff|, sum |diff|, sum diff^2, n values."""
    if isinstance(a, str) or isinstance(b, str):
        return dict(comparable=False, note=a if isinstance(a, str) else b)
    if a.shape != b.shape:
        return dict(comparable=False, note=f"shape {a.shape} vs {b.shape}")
    d = np.abs(a.astype(np.int32) - b.astype(np.int32))
    return dict(
        comparable=True,
        note="",
        differs=bool(d.any()),
        max_abs=int(d.max()),
        sum_abs=float(d.sum()),
        sum_sq=float((d.astype(np.float64) ** 2).sum()),
        n_differing=int(np.count_nonzero(d)),
        n_values=int(d.size),
    )


def pixel_tables(
    samples, names: list[str], store: OptionStore
) -> tuple[pd.DataFrame, pd.DataFrame]:
    specs = {n: decode_spec(n, store) for n in names}
    rows = []
    for s in samples:
        arrays = decode_all(s.path, specs)
        for a, b in itertools.combinations(names, 2):
            rows.append(dict(sample_id=s.sample_id, a=a, b=b, **file_row(arrays[a], arrays[b])))
    files = pd.DataFrame(rows)
    return files, summarize_pixels(files, names)


def _psnr(sum_sq: float, n: float) -> float:
    return float("inf") if sum_sq == 0 else float(10 * np.log10(255.0**2 * n / sum_sq))


def summarize_pixels(files: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    out = []
    for a, b in itertools.combinations(names, 2):
        pair = files[(files.a == a) & (files.b == b)]
        ok = pair[pair.comparable.astype(bool)]
        n = float(ok.n_values.sum()) if len(ok) else 0.0
        per_file = [_psnr(r.sum_sq, r.n_values) for r in ok.itertuples()]
        out.append(
            dict(
                a=a,
                b=b,
                files=len(pair),
                compared=len(ok),
                files_differing=float(ok.differs.mean()) if len(ok) else float("nan"),
                values_differing=float(ok.n_differing.sum() / n) if n else float("nan"),
                max_abs=int(ok.max_abs.max()) if len(ok) else -1,
                mean_abs=float(ok.sum_abs.sum() / n) if n else float("nan"),
                psnr=_psnr(float(ok.sum_sq.sum()), n) if n else float("nan"),
                psnr_worst_file=min(per_file) if per_file else float("nan"),
                not_comparable=len(pair) - len(ok),
            )
        )
    return pd.DataFrame(out)


def run_decoder_sweep(overrides: list[str], names: list[str], run_dir: Path) -> RunResults:
    """Every decoder through the model under the base config: one run, shared stages."""
    from evalharness.runner.run import execute

    composed = compose(["progress=false", *overrides])
    config = dict(composed.config)
    config["sweep"] = {"name": "decoder_parity", "factors": {"decoder": names}, "exclude": []}
    composed = replace(composed, config=config)
    execute(build_plan(composed), run_dir)
    return RunResults.load(run_dir)


def decoder_configs(res: RunResults, names: list[str]) -> dict[str, str]:
    """decoder -> config_id within the swept group (the card's reference may sit beside it)."""
    others = [f for f in res.factors if f != "decoder"]
    for _, group in res.summary.groupby(others, sort=False):
        found = dict(zip(group.decoder.astype(str), group.config_id, strict=True))
        if set(names) <= set(found):
            return {n: found[n] for n in names}
    raise ValueError("the run lacks a config for some decoder")


def model_pairs(res: RunResults, names: list[str], n_boot: int = 2000) -> pd.DataFrame:
    ids = decoder_configs(res, names)
    idx = bootstrap_indices(len(res.sample_ids), n_boot)
    m = res.metric
    errors = res.summary.set_index("config_id").n_errors
    rows = []
    for a, b in itertools.combinations(names, 2):
        ca, cb = ids[a], ids[b]
        r = compare_values(
            res.values(ca, idx), res.values(cb, idx), res.scores(ca), res.scores(cb),
            res.sample_ids,
        )  # fmt: skip
        same = res.task.agree(res.records[ca], res.records[cb]).mean() * 100
        rows.append(
            {
                "a": a, "b": b, f"{m}_a": r.acc_a, f"{m}_b": r.acc_b, "delta": r.delta,
                "delta_lo": r.delta_lo, "delta_hi": r.delta_hi, "right_to_wrong": r.right_to_wrong,
                "wrong_to_right": r.wrong_to_right, "p_mcnemar": r.p_mcnemar,
                "same_prediction": same, "errors_a": int(errors[ca]), "errors_b": int(errors[cb]),
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


@dataclass
class DecoderParity:
    """Decoders pair by pair: per file, per pair on pixels, and (unless pixels only) through
    the model with paired intervals; the model part's run dir."""

    files: pd.DataFrame
    pixels: pd.DataFrame
    n_files: int
    model: pd.DataFrame | None = None
    metric: str = ""
    n_images: int = 0
    run_dir: Path | None = None


def decoder_parity(
    overrides: list[str], names: list[str], out: Path, pixels_only: bool = False
) -> DecoderParity:
    """Decode every file with each decoder and compare the pairs; then sweep the decoders
    through the model into out/run (the same samples) unless `pixels_only`."""
    if len(names) < 2:
        raise ValueError("--decoders needs at least two decoder options")
    composed = compose(["progress=false", *overrides])
    samples = load_dataset(composed.config["dataset"]).samples
    store = store_for(composed.user_dirs)
    files, pixels = pixel_tables(samples, names, store)
    report = DecoderParity(files, pixels, len(samples))
    if not pixels_only:
        res = run_decoder_sweep(overrides, names, out / "run")
        report.model = model_pairs(res, names)
        report.metric, report.n_images, report.run_dir = (
            res.metric,
            len(res.sample_ids),
            out / "run",
        )
    return report
