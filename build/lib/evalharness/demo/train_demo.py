"""Train the demo CNN on a generated training split (never the demo eval images).

`python -m evalharness.demo.train_demo` writes src/evalharness/demo/models/demo_cnn.pt (a state
dict, shipped in the package). Inputs go
through the model card's reference pipeline -- the same stage code the harness evaluates
with -- so the model is tuned to that preprocessing the way real models are tuned to theirs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from evalharness.demo.demo import TRAIN_SPLIT, FileKind, encode, sample_rng
from evalharness.demo.synth import CLASSES, render
from evalharness.models.demo_cnn import DemoCNN
from evalharness.preprocess.colour import ColourSpec, HostNormSpec
from evalharness.preprocess.decode import DecodeSpec
from evalharness.preprocess.pipeline import build_pipeline, run_pipeline
from evalharness.preprocess.resize import ResizeSpec

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
REFERENCE = build_pipeline(
    DecodeSpec("pil"),
    ResizeSpec("pil", "bilinear", size=64, crop="center", crop_pct=0.875),
    ColourSpec("rgb"),
    HostNormSpec("host", MEAN, STD),
)


def make_split(n: int, workdir: Path) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for i in range(n):
        label = i % len(CLASSES)
        rng = sample_rng(TRAIN_SPLIT, i)
        kind = FileKind("jpeg", "RGB", progressive=bool(rng.integers(0, 2)))
        path = workdir / f"{i}.jpg"
        path.write_bytes(encode(render(label, rng), kind, int(rng.integers(75, 96)), rng))
        xs.append(run_pipeline(REFERENCE, path))
        ys.append(label)
    return np.stack(xs), np.asarray(ys)


def train(n: int, epochs: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        x, y = make_split(n, Path(tmp))
        print(f"generated {n} training images in {time.time() - t0:.0f}s")
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    model = DemoCNN(len(CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * ((n + 127) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        correct = 0
        for b in range(0, n, 128):
            idx = perm[b : b + 128]
            xb = x[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5  # classes are mirror-invariant
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            logits = model(xb)
            loss = nn.functional.cross_entropy(logits, y[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            correct += (logits.argmax(1) == y[idx]).sum().item()
        print(
            f"epoch {epoch + 1}/{epochs}: train acc {correct / n:.3f} loss {loss.item():.3f}",
            flush=True,
        )
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--out", type=Path, default=Path("src/evalharness/demo/models/demo_cnn.pt"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = train(args.n, args.epochs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
