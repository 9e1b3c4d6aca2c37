"""Layerwise comparison of two deployments: where in the network do they part, on the images
that flip between them?

- graph.py: the reference ONNX graph (layers in order, each layer's own step);
- qdq.py: a QDQ model's tensors matched to the float model's (qdq_loss_debug's rule);
- probes.py: onnxruntime and OpenVINO probes; torch_probe.py (hooks mapped to ONNX names);
  ncnn_probe.py (pnnx keeps no name map: an order-and-shape alignment of weighted layers);
- metrics.py, divergence.py: per-layer error on flipped vs control images, the first
  divergence per image, the error each step adds, the observer check, a one-line verdict;
- requantize.py: which nodes keep a layer in float (the `exclude` precision setting takes
  them); standalone re-quantization (ORT / NNCF) for scripts;
- deploy.py: what a backend hands over (`Backend.layer_probe` -> ProbeSource), the
  reference graph of two deployments, a probe chosen by its observer check.

Typical use (the CLI verb and the run-dir plumbing call the same functions):

    graph = LayerGraph.from_onnx(fp32_onnx)
    a, b = OrtProbe(fp32_onnx), OrtProbe(int8_qdq_onnx)
    result = layer_divergence(a, b, flipped_tensors, control_tensors, graph)
    print(result.verdict)
"""

from evalharness.layerwise.deploy import (
    ObservedProbe,
    ProbeSource,
    observer_safe_probe,
    reference_onnx,
)
from evalharness.layerwise.divergence import LayerDivergence, compared_layers, layer_divergence
from evalharness.layerwise.graph import LayerGraph, Step
from evalharness.layerwise.probes import ObserverCheck, OpenVinoProbe, OrtProbe, Probe
from evalharness.layerwise.qdq import QdqPoint, qdq_points
from evalharness.layerwise.requantize import (
    ignored_patterns,
    nodes_for_layers,
    requantize_nncf,
    requantize_ort,
)

__all__ = [
    "LayerDivergence",
    "LayerGraph",
    "ObservedProbe",
    "ObserverCheck",
    "OpenVinoProbe",
    "OrtProbe",
    "Probe",
    "ProbeSource",
    "QdqPoint",
    "Step",
    "compared_layers",
    "ignored_patterns",
    "layer_divergence",
    "nodes_for_layers",
    "observer_safe_probe",
    "qdq_points",
    "reference_onnx",
    "requantize_nncf",
    "requantize_ort",
]
