"""ncnn (Tencent's mobile inference engine) on a user's `.param/.bin` or a pnnx conversion.

A torch or ONNX model goes export -> (graph normalization) -> pnnx -> ncnn in the derived
cache (backends/pnnx_convert.py). A user's own `.param/.bin` (model source `ncnn`) is run as
it is: the input blob is the model config's `input_name` or the .param's Input layer; the
outputs are the config's `outputs:` roles or the blobs no layer consumes.

ncnn takes one image at a time (a Mat is C x H x W): the session loops over the batch and
stacks the outputs with a leading batch axis, so a (N, C, H, W) host batch gives (N, ...).

Precision is a set of ncnn Options (documented in conf/precision/*.yaml), and what really
ran is measured, not assumed: the session runs one fixed probe through the variant and
through a plain fp32 net; bit-identical outputs mean this CPU took no reduced path, and
`precision_ran` says fp32. On x86, `use_fp16_storage` stores the weights of some layers as
fp16 (F16C) while arithmetic stays fp32 (`fp16_storage`); fp16 arithmetic needs ARM's
asimdhp (ncnn's own CPU check) or a GPU. Any variant option named `ncnn_<option>` sets that
ncnn Option (e.g. `ncnn_use_winograd_convolution: false`). Threads are fixed per variant.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from evalharness.backends.base import (
    BACKENDS,
    BaseBackend,
    Capabilities,
    IOInfo,
    ModelVariant,
    as_float32_outputs,
    dist_version,
)
from evalharness.backends.export import onnx_signature
from evalharness.backends.pnnx_convert import BIN, PARAM, ncnn_from_onnx
from evalharness.backends.variants import onnx_for_variant
from evalharness.optional import require

_OFF = dict(
    use_fp16_storage=False,
    use_fp16_packed=False,
    use_fp16_arithmetic=False,
    use_bf16_storage=False,
    use_bf16_packed=False,
)
# precision value -> ncnn Options on top of all-off (ncnn's own default turns fp16 on)
PRECISION_OPTIONS = {
    "fp32": {},
    "fp16": dict(use_fp16_storage=True, use_fp16_packed=True, use_fp16_arithmetic=True),
    "bf16": dict(use_bf16_storage=True, use_bf16_packed=True),
    "fp32_unpacked": dict(use_packing_layout=False),
    # what a user who sets nothing runs: ncnn's Option() turns the fp16 paths on
    "default": dict(use_fp16_storage=True, use_fp16_packed=True, use_fp16_arithmetic=True),
}


def read_param(path: Path) -> tuple[list[str], list[str]]:
    """(input blobs, output blobs) of an ncnn .param: Input layers' tops, and the blobs that
    some layer produces and no layer consumes, in file order."""
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    if not lines or lines[0][0] != "7767517":
        raise ValueError(f"{path} is not an ncnn .param file (no 7767517 magic)")
    inputs, produced, consumed = [], [], set()
    for fields in lines[2:]:
        kind, n_in, n_out = fields[0], int(fields[2]), int(fields[3])
        bottoms, tops = fields[4 : 4 + n_in], fields[4 + n_in : 4 + n_in + n_out]
        consumed.update(bottoms)
        produced += tops
        if kind == "Input":
            inputs += tops
    return inputs, [b for b in produced if b not in consumed]


# ncnn ModelBin's 4-byte tag in front of a weight blob (little-endian): 0x01306B47 fp16
# (what `ncnnoptimize ... 65536` and pnnx's default fp16=1 write), 0x000D4B38 int8, 0 fp32
_WEIGHT_TAGS = {0x01306B47: "fp16", 0x000D4B38: "int8", 0: "fp32"}


def weight_storage(bin_path: Path) -> str:
    """How the first weight blob of a .bin is stored: "fp16", "int8" or "fp32" from its tag
    (a blob without a tag is raw fp32 data: read as "fp32")."""
    with open(bin_path, "rb") as f:
        tag = int.from_bytes(f.read(4), "little")
    return _WEIGHT_TAGS.get(tag, "fp32")


def _net(ncnn, param: Path, binf: Path, options: dict, threads: int):
    net = ncnn.Net()
    net.opt.num_threads = threads
    for key, value in options.items():
        if not hasattr(net.opt, key):
            raise ValueError(f"ncnn has no Option '{key}'")
        setattr(net.opt, key, value)
    if net.load_param(str(param)) != 0:
        raise ValueError(f"ncnn cannot load {param} (a layer it does not know?)")
    if net.load_model(str(binf)) != 0:
        raise ValueError(f"ncnn cannot load the weights {binf}")
    return net


def variant_options(variant: ModelVariant) -> dict:
    opts = dict(_OFF, **PRECISION_OPTIONS[variant.precision])
    for key, value in variant.options:
        if key.startswith("ncnn_"):
            opts[key[len("ncnn_") :]] = value
    return opts


class NcnnSession:
    thread_safe = False  # one inference at a time (the engine serializes calls)
    build_seconds = 0.0

    def __init__(
        self,
        param: Path,
        binf: Path,
        variant: ModelVariant,
        blobs: tuple[str, list[str]],
        names: list[str],
        fp32_files: tuple[Path, Path] | None = None,
    ) -> None:
        self.ncnn = require("ncnn", "backend 'ncnn'", "ncnn")
        self.in_blob, self.out_blobs = blobs
        self.names = names
        self.net = _net(self.ncnn, param, binf, variant_options(variant), variant.threads)
        hw = variant.model.input_hw
        self.input = IOInfo(self.in_blob, (None, 3, *(hw or (None, None))))
        self.notes: tuple[str, ...] = ("ncnn: one image at a time (a Mat has no batch axis)",)
        self.precision_ran = "fp32"
        if variant.precision != "fp32":
            self.precision_ran = self._measure_precision(fp32_files or (param, binf), variant)

    def _run_one(self, net, x: np.ndarray) -> list[np.ndarray]:
        ex = net.create_extractor()
        ex.input(self.in_blob, self.ncnn.Mat(np.ascontiguousarray(x, dtype=np.float32)))
        outs = []
        for blob in self.out_blobs:
            ret, mat = ex.extract(blob)
            if ret != 0:
                raise ValueError(f"ncnn could not compute blob '{blob}' (code {ret})")
            outs.append(np.array(mat))
        return outs

    def _measure_precision(self, fp32_files: tuple[Path, Path], variant: ModelVariant) -> str:
        """What the precision really did on this CPU: one probe through this net and through
        the fp32 one (the fp32 conversion, or the same file with every option off)."""
        hw = variant.model.input_hw or (64, 64)
        rng = np.random.default_rng(0)
        probe = rng.standard_normal((3, *hw)).astype(np.float32)
        if variant.placement == "graph":
            probe = rng.uniform(0, 255, (3, *hw)).astype(np.float32)
        plain = _net(self.ncnn, *fp32_files, dict(_OFF), variant.threads)
        ref, mine = self._run_one(plain, probe), self._run_one(self.net, probe)
        diff = max(float(np.abs(a - b).max()) for a, b in zip(ref, mine, strict=True))
        if diff == 0.0:
            self.notes += (
                f"precision {variant.precision}: outputs bit-identical to fp32 on this CPU "
                "(ncnn took no reduced-precision path)",
            )
            return "fp32"
        ran = variant.precision
        if variant.precision in ("fp16", "default") and not self.ncnn.cpu_support_arm_asimdhp():
            ran = "fp16_storage"
            self.notes += ("fp16: weights stored as fp16, arithmetic fp32 (no fp16 FPU)",)
        self.notes += (f"precision {variant.precision}: max |diff| {diff:.2g} vs fp32 (probe)",)
        return ran

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        per_image = [self._run_one(self.net, x) for x in batch]
        stacked = [np.stack([outs[k] for outs in per_image]) for k in range(len(self.names))]
        return as_float32_outputs(self.names, stacked)


def _user_blobs(variant: ModelVariant, param: Path) -> tuple[tuple[str, list[str]], list[str]]:
    """The input and output blobs of a user's .param: from the model config, else the file."""
    inputs, outputs = read_param(param)
    spec = variant.model
    in_blob = spec.input_name or (inputs[0] if len(inputs) == 1 else "")
    if not in_blob:
        raise ValueError(
            f"{param.name} has {len(inputs)} Input layers ({', '.join(inputs)}): set the "
            "model config's input_name"
        )
    outs = [name for _, name in spec.outputs] or outputs
    return (in_blob, outs), outs


def _converted(variant: ModelVariant, cache_dir: str, fp16_weights: bool) -> tuple[Path, list[str]]:
    """pnnx's conversion of the variant's fp32 ONNX (export, graph normalization), and the
    ONNX output names that pnnx's out0, out1... stand for."""
    onnx_path = Path(onnx_for_variant(replace(variant, precision="fp32"), cache_dir))
    inputs, outputs = onnx_signature(onnx_path)
    hw = variant.model.input_hw
    shape = (1, inputs[0].shape[1], *hw) if hw else (1, *inputs[0].shape[1:])
    if len(shape) != 4 or any(d is None for d in shape):
        raise ValueError(
            f"converting {onnx_path.name} to ncnn needs a fixed input size: set the model "
            "card's input_size"
        )
    folder = ncnn_from_onnx(onnx_path, cache_dir, shape, fp16_weights)
    return folder, [o.name for o in outputs]


@BACKENDS.register("ncnn")
class NcnnBackend(BaseBackend):
    name = "ncnn"
    capabilities = Capabilities(
        sources=("torch", "torchvision", "onnx", "ncnn"),
        placements=("host", "graph"),
        precisions=tuple(PRECISION_OPTIONS),
        devices=("cpu",),
        requires=("ncnn",),
        extra="ncnn",
        reference_rank=4,
        probes=True,
    )

    def refuses(self, placement: str, precision: str, device: str, source: str) -> str | None:
        if source == "ncnn" and placement == "graph":
            return "norm 'graph' needs an ONNX or torch model, not an ncnn .param"
        return None

    def load(self, variant: ModelVariant, cache_dir: str, calibration=None) -> NcnnSession:
        require("ncnn", "backend 'ncnn'", "ncnn")  # before any conversion work
        param = variant.model.file_for("ncnn")  # the user's pair (or converted copy): as is
        if param is not None:
            if variant.placement == "graph":
                raise ValueError("norm 'graph' needs an ONNX or torch model, not an ncnn .param")
            blobs, names = _user_blobs(variant, param)
            session = NcnnSession(param, param.with_suffix(".bin"), variant, blobs, names)
            storage = weight_storage(param.with_suffix(".bin"))
            if storage != "fp32":  # fp16 weights run whatever the options say: say so
                session.precision_ran = f"{session.precision_ran} ({storage} weights)"
                session.notes += (f"{param.with_suffix('.bin').name}: weights stored as "
                                  f"{storage}, rounded before any arithmetic",)  # fmt: skip
            return session
        # fp16 keeps pnnx's default fp16 weight storage: what a stock deployment runs
        folder, names = _converted(variant, cache_dir, variant.precision in ("fp16", "default"))
        fp32 = folder
        if variant.precision != "fp32":
            fp32, _ = _converted(variant, cache_dir, False)
        blobs = ("in0", [f"out{i}" for i in range(len(names))])
        return NcnnSession(
            folder / PARAM, folder / BIN, variant, blobs, names, (fp32 / PARAM, fp32 / BIN)
        )

    def layer_probe(self, variant: ModelVariant, cache_dir: str, calibration=None):
        """The pnnx conversion `load` runs, with `load`'s Options and threads; blobs are
        aligned to the ONNX it was converted from (layerwise/ncnn_probe.py: pnnx keeps no
        name map, so only the input, the weighted layers and the outputs are exposed)."""
        from evalharness.layerwise.deploy import ProbeSource
        from evalharness.layerwise.ncnn_probe import NcnnProbe

        require("ncnn", "backend 'ncnn'", "ncnn")
        if variant.model.source == "ncnn":
            raise ValueError("layers needs an ONNX graph for the tensor names: a user's .param "
                             "has none")  # fmt: skip
        folder, _ = _converted(variant, cache_dir, variant.precision == "fp16")
        names = Path(onnx_for_variant(replace(variant, precision="fp32"), cache_dir))
        options = variant_options(variant)

        def build(layers, mode: str) -> NcnnProbe:
            return NcnnProbe(folder / PARAM, folder / BIN, names, layers,
                             threads=variant.threads, options=options)  # fmt: skip

        return ProbeSource(self.name, names, names, build)

    def versions(self) -> dict[str, str]:
        from evalharness.backends.pnnx_convert import pnnx_version

        return {"ncnn": dist_version("ncnn"), "pnnx": pnnx_version()}
