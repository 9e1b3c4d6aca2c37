"""ONNX -> ncnn `.param/.bin` through pnnx, into the derived-model cache.

pnnx writes several files beside its input (`*.pnnx.param`, `*.pnnxsim.onnx`, `*_ncnn.py`,
...), so the ONNX file is first copied into the cache's build folder and converted there;
only `model.ncnn.param` and `model.ncnn.bin` are kept (with pnnx's log, for a person
wondering later). The key is the ONNX file's content hash, the input shape, the weight
storage and pnnx's version. pnnx names the blobs `in0`, `out0`, `out1`... in the ONNX
graph's order.

Weight storage: pnnx's default (`fp16=1`) writes the ncnn weights as float16, so a stock
pnnx deployment runs fp16-rounded weights even where ncnn computes in fp32 (measured on the
demo CNN: max |logit diff| 1.6e-3 against onnxruntime, 4e-6 with `fp16=0`). The fp32
variant converts with `fp16=0`; the fp16 variant keeps pnnx's default.

pnnx is installed with `--no-deps` (its dependencies pull a CUDA build of torch); its wheel
holds a standalone `pnnx` binary, run here as a subprocess.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
from pathlib import Path

from evalharness.backends.derived import derived_dir
from evalharness.hashing import file_sha256
from evalharness.optional import MissingRuntimeError

PNNX_INSTALL = "pip install --no-deps pnnx==20261020"
PARAM, BIN = "model.ncnn.param", "model.ncnn.bin"


def pnnx_binary() -> Path:
    """The standalone pnnx executable inside the pnnx wheel."""
    spec = importlib.util.find_spec("pnnx")
    if spec is None or not spec.submodule_search_locations:
        raise MissingRuntimeError(f"converting a model to ncnn needs pnnx: {PNNX_INSTALL}")
    exe = Path(next(iter(spec.submodule_search_locations))) / "pnnx"
    if not exe.is_file():
        raise MissingRuntimeError(f"the pnnx package has no pnnx binary at {exe}: {PNNX_INSTALL}")
    return exe


def pnnx_version() -> str:
    try:
        return importlib.metadata.version("pnnx")
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def ncnn_from_onnx(
    onnx_path: Path, cache_dir: str | Path, input_shape: tuple[int, ...], fp16_weights: bool
) -> Path:
    """The cached folder holding model.ncnn.param/.bin converted from `onnx_path`."""
    exe = pnnx_binary()
    shape = ",".join(str(d) for d in input_shape)
    fp16 = int(fp16_weights)
    payload = dict(
        kind="pnnx",
        source=file_sha256(onnx_path),
        inputshape=shape,
        fp16=fp16,
        pnnx=pnnx_version(),
    )

    def build(tmp: Path) -> None:
        work = tmp / "work"
        work.mkdir()
        src = work / "model.onnx"
        shutil.copyfile(onnx_path, src)
        proc = subprocess.run(
            [str(exe), str(src), f"inputshape=[{shape}]", f"fp16={fp16}"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=600,
        )
        log = proc.stdout + proc.stderr
        (tmp / "pnnx.log").write_text(log)
        param, binf = work / "model.ncnn.param", work / "model.ncnn.bin"
        if proc.returncode != 0 or not param.is_file() or not binf.is_file():
            raise ValueError(
                f"pnnx cannot convert {onnx_path.name} to ncnn: {_reason(log, proc.returncode)}"
            )
        _check_unconverted(param, onnx_path, log)
        shutil.move(param, tmp / PARAM)
        shutil.move(binf, tmp / BIN)
        shutil.rmtree(work)

    return derived_dir(cache_dir, "ncnn", payload, build, stem=onnx_path.stem)


def _reason(log: str, code: int) -> str:
    """pnnx's own complaint: the last lines that say what failed."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    words = ("error", "not supported", "unsupported", "fail")
    hits = [ln for ln in lines if any(w in ln.lower() for w in words)]
    return (hits or lines or [f"exit code {code}"])[-1][:300]


def _check_unconverted(param: Path, onnx_path: Path, log: str) -> None:
    """pnnx leaves an op it cannot lower as a layer ncnn does not have (`pnnx.*`, `aten::*`,
    `Tensor.slice` with a step); ncnn would refuse it at load with a cryptic line: say it
    now, with the op."""
    bad = []
    for line in param.read_text().splitlines()[2:]:
        layer = line.split(maxsplit=1)[0] if line.strip() else ""
        if "." in layer or "::" in layer:
            bad.append(layer)
    if bad:
        raise ValueError(
            f"pnnx cannot lower {', '.join(sorted(set(bad)))} in {onnx_path.name} to ncnn "
            f"layers ({_reason(log, 0)})"
        )
