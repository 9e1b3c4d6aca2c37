"""Every command in the README runs as written, in order, from an empty folder.

The fenced ```bash and ```python blocks are read from README.md; each command runs through
bash (python blocks through the interpreter) in one temporary working folder, so a command
that reads an earlier one's run dir (`explain results/gap`) finds it. What is substituted,
and nothing else:
- `.venv/bin/python` and `evalharness` are this interpreter's (a `.venv/bin/` of links in the
  working folder, a wrapper on the PATH): the README's install is what CI ran before this;
- the placeholder folders and files (`/data/val`, `/models/resnet50.onnx`, ...) are made here
  from generated images and small models the test exports (`/data/coco` and YOLO labels from
  ../shared/data's COCO images);
- sweeps get `dataset.limit=16 chunk_size=8 calibration.n=8 progress=false`, except README
  command 1, which runs in full and must print the README's findings block line for line.
Skipped, with the reason on the command's own line in the README: lines whose comment says
"README test skips"; the install-and-test command (it is what CI runs); commands that need
../shared/data when it is absent. HOME is a temporary folder (the MLflow store lands there).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evalharness.paths import PROJECT_ROOT

from .conftest import SHARED_DATA

README = PROJECT_ROOT / "README.md"
LIMIT = "dataset.limit=16 chunk_size=8 calibration.n=8 progress=false"
TOOL_VERBS = {"explain", "compare", "merge", "report", "findings", "parity", "verify", "layers"}
REAL = ("imagenet_val_1300", "cifar10_test", "coco_mini_val2017", "icdar2015_test",
        "efficientnet_lite0", "yolox_nano", "nanodet_m", "ppocr_v", "resnet20_cifar",
        "/data/coco", "/data/my_set", "../shared", "4x.pth", "sr_set5",
        "denoise_set12")  # fmt: skip
SKIP_MARK = "README test skips"


def readme_commands(text: str) -> list[tuple[str, str]]:
    """(language, command) for every command of the README's bash and python blocks."""
    out, lang, block = [], None, []
    for line in text.splitlines():
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence and lang is None:
            lang, block = fence.group(1) or "text", []
        elif fence:
            if lang == "python":
                out.append(("python", "\n".join(block)))
            elif lang in ("bash", "sh"):
                joined = "\n".join(block).replace("\\\n", " ")
                out += [("bash", c.strip()) for c in joined.splitlines()
                        if c.strip() and not c.strip().startswith("#")]  # fmt: skip
            lang = None
        elif lang is not None:
            block.append(line)
    return out


def _colour_model_files(models: Path) -> None:
    """1,000-class colour classifiers (red -> class 0, blue -> 999) as every file kind."""
    import openvino as ov

    from .test_own_model import colour_ncnn, colour_onnx

    models.mkdir()
    for name in ("resnet50", "m", "net", "mobilenet_tf"):
        colour_onnx(models / f"{name}.onnx")
    (models / "ir").mkdir()  # an IR's net.bin and ncnn's net.bin cannot share a folder
    ov.save_model(ov.Core().read_model(str(models / "net.onnx")), str(models / "ir" / "net.xml"))
    colour_ncnn(models)
    for ext in ("param", "bin"):
        (models / f"colour.{ext}").rename(models / f"net.{ext}")
    try:
        import torch

        from .tflite_builder import tflite_from_cnn

        net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                  torch.nn.Linear(3, 1000))  # fmt: skip
        tflite_from_cnn(net.eval(), (32, 32), models / "net.tflite")
    except Exception:  # the builder needs the litert extra's flatbuffers: the line says so
        pass


def _placeholders(root: Path) -> dict[str, Path]:
    """The README's example paths, made real under root."""
    from PIL import Image

    data = root / "data"
    val = data / "val"
    val.mkdir(parents=True)
    for k in range(3):
        Image.new("RGB", (48, 40), (230, 20, 20)).save(val / f"n01440764_{k}.JPEG")
        Image.new("RGB", (48, 40), (20, 20, 230)).save(val / f"n15075141_{k}.JPEG")
    x = data / "x"
    x.mkdir()
    for k in range(3):
        Image.new("RGB", (48, 40), (230, 20, 20)).save(x / f"tench_{k}.jpg")
        Image.new("RGB", (48, 40), (20, 20, 230)).save(x / f"tissue_{k}.jpg")
    names = ["tench", *[f"c{i}" for i in range(1, 999)], "tissue"]
    (x / "classes.txt").write_text("\n".join(names) + "\n")
    imagenet = data / "imagenet" / "val"
    imagenet.mkdir(parents=True)
    lines = []
    for f in sorted(val.iterdir()):
        shutil.copy(f, imagenet / f.name)
        lines.append(f"{f.name} {0 if f.name.startswith('n01440764') else 999}")
    (imagenet / "val.txt").write_text("\n".join(lines) + "\n")
    shutil.copy(PROJECT_ROOT / "src/evalharness/data/imagenet_synsets.txt",
                imagenet / "synset_words.txt")  # fmt: skip
    _colour_model_files(root / "models")
    paths = {"/data/val_flat": val, "/data/val": val, "/data/x": x,
             "/data/imagenet/val": imagenet, "/models": root / "models"}  # fmt: skip
    coco = SHARED_DATA / "coco-mini-val2017"
    if coco.is_dir():
        paths["/data/coco"] = _coco_layout(coco, data / "coco")
        paths["/data/my_set"] = _yolo_layout(coco, data / "my_set")
    upscaler = SHARED_DATA.parent / "models" / "sr" / "realesr-animevideov3.pth"
    if upscaler.is_file():  # "your .pth": the shared Real-ESRGAN Compact x4
        paths["4x.pth"] = upscaler
    return paths


def _coco_layout(coco: Path, dest: Path) -> Path:
    (dest / "annotations").mkdir(parents=True)
    shutil.copy(coco / "instances_val2017.json", dest / "annotations" / "instances_val2017.json")
    shutil.copytree(coco / "images", dest / "val2017")  # copies: links out of a root refuse
    return dest


def _yolo_layout(coco: Path, dest: Path) -> Path:
    """The same COCO images with YOLO txt labels (class = index among sorted category ids)."""
    import json

    data = json.loads((coco / "instances_val2017.json").read_text())
    cats = sorted(c["id"] for c in data["categories"])
    index = {c: i for i, c in enumerate(cats)}
    names = {c["id"]: c["name"] for c in data["categories"]}
    (dest / "labels").mkdir(parents=True)
    shutil.copytree(coco / "images", dest / "images")
    for im in data["images"]:
        w, h = im["width"], im["height"]
        rows = [f"{index[a['category_id']]} {(a['bbox'][0] + a['bbox'][2] / 2) / w:.9f} "
                f"{(a['bbox'][1] + a['bbox'][3] / 2) / h:.9f} {a['bbox'][2] / w:.9f} "
                f"{a['bbox'][3] / h:.9f}" for a in data["annotations"]
                if a["image_id"] == im["id"] and not a.get("iscrowd")]  # fmt: skip
        (dest / "labels" / f"{Path(im['file_name']).stem}.txt").write_text("\n".join(rows) + "\n")
    (dest / "data.yaml").write_text(
        "names:\n" + "".join(f"  {i}: {names[c]}\n" for i, c in enumerate(cats))
    )
    return dest


def _substitute(cmd: str, paths: dict[str, Path]) -> str:
    for placeholder in sorted(paths, key=len, reverse=True):
        cmd = re.sub(
            r"(?<![\w./-])" + re.escape(placeholder) + r"(?=[/\s'\"]|$)",
            str(paths[placeholder]),
            cmd,
        )
    return cmd


def _limited(cmd: str, first: bool) -> str:
    """A sweep gets the small limit (README command 1 runs in full)."""
    words = cmd.split()
    if first or not words or words[0] not in ("evalharness", ".venv/bin/evalharness"):
        return cmd
    if len(words) > 1 and (words[1] in TOOL_VERBS or words[1].startswith("--help")):
        return cmd
    if "--help" in words:
        return cmd
    body, _, comment = cmd.partition("  #")
    return f"{body} {LIMIT}" + (f"  #{comment}" if comment else "")


def _why_skip(cmd: str) -> str | None:
    if SKIP_MARK in cmd:
        return cmd.split(SKIP_MARK, 1)[1].strip(" :")
    if "pip install" in cmd and "-m pytest" in cmd:
        return "the install and test command: it is what CI runs"
    if not SHARED_DATA.is_dir() and any(r in cmd for r in REAL):
        return "needs ../shared/data"
    return None


def _environment(work: Path) -> dict[str, str]:
    bin_dir = work / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    # a wrapper, not a link: a link's venv is looked up beside the link (no pyvenv.cfg here)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python").chmod(0o755)
    wrapper = f'#!/bin/sh\nexec "{sys.executable}" -m evalharness "$@"\n'
    for place in (bin_dir / "evalharness", work / "bin" / "evalharness"):
        place.parent.mkdir(exist_ok=True)
        place.write_text(wrapper)
        place.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "EVALHARNESS_HOME"))}
    env.update(HOME=str(work / "home"), PATH=f"{work / 'bin'}:{env.get('PATH', '')}",
               PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT / "src"), *filter(None, [
                   os.environ.get("PYTHONPATH")])]))  # fmt: skip
    (work / "home").mkdir()
    return env


def _readme_findings(text: str) -> str:
    block = text.split("The sweep ends with a findings block", 1)[1]
    return block.split("```\n", 1)[1].split("```", 1)[0]


@pytest.mark.slow
def test_every_readme_command_runs_as_written(tmp_path):
    text = README.read_text()
    commands = readme_commands(text)
    assert len(commands) > 20
    work = tmp_path / "work"
    work.mkdir()
    env = _environment(work)
    paths = _placeholders(tmp_path / "ph")
    ran, skipped, failures = 0, [], []
    for i, (lang, cmd) in enumerate(commands):
        why = _why_skip(cmd)
        if why:
            skipped.append(f"{cmd[:60]}: {why}")
            continue
        first = i == 0
        if lang == "python":
            if "mlflow" in cmd and _missing("sqlalchemy"):
                skipped.append("python MLflow client: sqlalchemy absent")
                continue
            argv = [
                sys.executable,
                "-c",
                cmd.replace('"dataset.limit": 200', '"dataset.limit": 16'),
            ]
        else:
            if first:  # the quick start: its install is what CI did; the sweep runs in full
                cmd = cmd.split("&&")[-1].strip()
            argv = ["bash", "-c", _limited(_substitute(cmd, paths), first)]
        r = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=900)
        ran += 1
        if r.returncode != 0:
            failures.append(f"{cmd}\n  -> rc {r.returncode}: {r.stderr.strip()[-600:]}")
        if first and r.returncode == 0:
            (run,) = (work / "results").iterdir()
            assert (run / "findings.md").read_text() == _readme_findings(text)
            shutil.rmtree(work / "results")
    print(f"ran {ran} README commands, skipped {len(skipped)}:\n  " + "\n  ".join(skipped))
    assert not failures, "\n".join(failures)


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def test_the_readme_parser_finds_the_commands_and_the_marked_skips():
    commands = readme_commands(README.read_text())
    bash = [c for lang, c in commands if lang == "bash"]
    assert bash[0].endswith(".venv/bin/python -m evalharness +sweep=preproc_ablation")
    assert any(c.startswith("evalharness model=onnx_file model.weights=/models/resnet50.onnx")
               for c in bash)  # fmt: skip
    marked = [c for c in bash if SKIP_MARK in c]
    assert marked and all(_why_skip(c) for c in marked)
    assert _limited("evalharness explain results/gap --b x", False) == (
        "evalharness explain results/gap --b x")  # fmt: skip
    assert _limited("evalharness stack=rust_tract  # a stack", False) == (
        f"evalharness stack=rust_tract {LIMIT}  # a stack")  # fmt: skip
