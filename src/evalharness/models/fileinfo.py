"""What a model file says about itself: input name, layout, fixed input size, class count.

A user's ONNX, OpenVINO IR, ncnn or LiteRT classifier carries these in the file, so
`model=onnx_file model.weights=M.onnx` needs no `num_classes` or `input_size` on the command
line: planning (config/runplan.py) fills what the model config leaves to the file. Each
reader only parses metadata (no weights, no session): the ONNX graph without external data,
the IR's topology, the .param text, the .tflite's tensor details.

A dimension that is not a fixed number (a symbolic batch, a dynamic height) is None; the
class count is the last axis of the first output when that output is (batch, classes) or
(batch, classes, 1, 1), else None (the task's output check names the mismatch at run time).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The runtime a model file was made for: the default backend for a file model whose card
# names none (a factor on the command line still chooses another).
OWN_RUNTIME = {"onnx": "onnxruntime", "openvino": "openvino", "ncnn": "ncnn", "tflite": "litert"}

Shape = tuple[int | None, ...]


@dataclass(frozen=True)
class FileInfo:
    input_name: str
    layout: str  # "NCHW" | "NHWC" | "" (not an image input the reader recognises)
    input_hw: tuple[int, int] | None  # fixed height and width, or None (dynamic)
    num_classes: int | None  # from the first output's shape, None when not readable
    output_name: str = ""


def _layout(shape: Shape) -> str:
    """NCHW when axis 1 holds 1 or 3 channels, NHWC when the last axis does (not both)."""
    if len(shape) != 4:
        return ""
    if shape[1] in (1, 3):
        return "NCHW"
    if shape[3] in (1, 3):
        return "NHWC"
    return ""


def _hw(shape: Shape, layout: str) -> tuple[int, int] | None:
    h, w = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    return (
        (int(h), int(w)) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None
    )


def _classes(shape: Shape) -> int | None:
    """(N, C) or (N, C, 1, 1) -> C; anything else is not a classifier's logits."""
    if len(shape) == 2 or (len(shape) == 4 and shape[2:] == (1, 1)):
        c = shape[1]
        return int(c) if isinstance(c, int) and c > 0 else None
    return None


def _info(name: str, shape: Shape, out_name: str, out_shape: Shape) -> FileInfo:
    layout = _layout(shape)
    return FileInfo(name, layout, _hw(shape, layout) if layout else None, _classes(out_shape),
                    out_name)  # fmt: skip


def onnx_info(path: Path) -> FileInfo:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises its own DecodeError on garbage
        raise ValueError(f"{path} is not a readable ONNX model ({type(e).__name__})") from None

    def dims(value) -> Shape:
        out = []
        for d in value.type.tensor_type.shape.dim:
            out.append(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None)
        return tuple(out)

    inits = {i.name for i in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in inits]
    if not inputs or not model.graph.output:
        raise ValueError(f"{path}: the ONNX graph has no input or no output")
    out = model.graph.output[0]
    out_shape = dims(out)
    if _classes(out_shape) is None and not out_shape:  # shapes left out of the graph: infer
        try:
            inferred = onnx.shape_inference.infer_shapes(model)
            out_shape = dims(inferred.graph.output[0])
        except Exception:  # inference is a best effort; the run-time check still names it
            pass
    return _info(inputs[0].name, dims(inputs[0]), out.name, out_shape)


def openvino_info(path: Path) -> FileInfo:
    import openvino as ov

    from evalharness.optional import error_line

    try:
        model = ov.Core().read_model(str(path))
    except Exception as e:  # its first lines say where, the cause comes after
        raise ValueError(f"OpenVINO cannot read {path}: {error_line(e)}") from None

    def dims(port) -> Shape:
        shape = port.get_partial_shape()
        return tuple(d.get_length() if d.is_static else None for d in shape)

    inp, out = model.inputs[0], model.outputs[0]
    return _info(inp.get_any_name(), dims(inp), out.get_any_name(), dims(out))


def _param_fields(path: Path) -> list[list[str]]:
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    if not lines or lines[0][0] != "7767517":
        raise ValueError(f"{path} is not an ncnn .param file (no 7767517 magic)")
    return lines[2:]


def _params(fields: list[str], n_in: int, n_out: int) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in fields[4 + n_in + n_out :] if "=" in kv)


# Layers that keep the class axis as it is between the classifier and the output blob.
_PASS_THROUGH = {"Softmax", "Flatten", "Reshape", "Dropout", "Split", "Noop", "Sigmoid"}


def ncnn_info(path: Path) -> FileInfo:
    """Input: the first Input layer (0=w 1=h 2=c; ncnn is CHW). Classes: the output blob's
    producer, through shape-keeping layers, back to an InnerProduct or 1x1 Convolution."""
    layers = _param_fields(path)
    producer: dict[str, tuple[str, list[str], dict[str, str]]] = {}
    consumed: set[str] = set()
    name, hw = "", None
    for f in layers:
        kind, n_in, n_out = f[0], int(f[2]), int(f[3])
        bottoms, tops = f[4 : 4 + n_in], f[4 + n_in : 4 + n_in + n_out]
        params = _params(f, n_in, n_out)
        consumed.update(bottoms)
        for t in tops:
            producer[t] = (kind, bottoms, params)
        if kind == "Input" and not name:
            name = tops[0]
            w, h = int(params.get("0", 0)), int(params.get("1", 0))
            hw = (h, w) if h > 0 and w > 0 else None
    outputs = [t for t in producer if t not in consumed]
    classes, blob = None, outputs[0] if outputs else ""
    for _ in range(len(layers)):
        kind, bottoms, params = producer.get(blob, ("", [], {}))
        if kind in ("InnerProduct", "Convolution", "Gemm"):
            classes = int(params.get("0", 0)) or None
            break
        if kind not in _PASS_THROUGH or not bottoms:
            break
        blob = bottoms[0]
    return FileInfo(name, "NCHW" if name else "", hw, classes, outputs[0] if outputs else "")


def tflite_info(path: Path) -> FileInfo:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # the litert extra is absent: the file keeps its secrets
        return FileInfo("", "", None, None)
    try:
        interp = Interpreter(model_path=str(path))
    except (ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise ValueError(f"LiteRT cannot load {path}: {first}") from None
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]

    def dims(d) -> Shape:
        sig = d.get("shape_signature", d["shape"])
        return tuple(int(v) if int(v) > 0 else None for v in sig)

    return _info(inp["name"], dims(inp), out["name"], dims(out))


READERS = {"onnx": onnx_info, "openvino": openvino_info, "ncnn": ncnn_info, "tflite": tflite_info}


def read_file_info(path: Path, source: str) -> FileInfo | None:
    """The file's metadata for a file source, None for torch sources."""
    reader = READERS.get(source)
    return reader(Path(path)) if reader else None
