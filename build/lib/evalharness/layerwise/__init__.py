"""Layerwise comparison of two deployments: where in the network do they part, on the images
that flip between them?

- graph.py: the reference ONNX graph (layers in order, each layer's own step);
- qdq.py: a QDQ model's tensors matched to the float model's (qdq_loss_debug's rule);
- probes.py: onnxruntime and OpenVINO probes; torch_probe.py (hooks mapped to ONNX names);
  ncnn_probe.py (pnnx keeps no name map: an order-and-shape alignment of weighted layers);
- metrics.py, divergence.py: per-layer error on flipped vs control images, the first
  divergence per image, the error each step adds, the observer check, a one-line verdict;
- requantize.py: re-quantize with the worst layers kept in float (ORT / NNCF).

Typical use (the CLI verb and the run-dir plumbing call the same functions):

    graph = LayerGraph.from_onnx(fp32_onnx)
    a, b = OrtProbe(fp32_onnx), OrtProbe(int8_qdq_onnx)
    result = layer_divergence(a, b, flipped_tensors, control_tensors, graph)
    print(result.verdict)
"""

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
    "ObserverCheck",
    "OpenVinoProbe",
    "OrtProbe",
    "Probe",
    "QdqPoint",
    "Step",
    "compared_layers",
    "ignored_patterns",
    "layer_divergence",
    "nodes_for_layers",
    "qdq_points",
    "requantize_nncf",
    "requantize_ort",
]
