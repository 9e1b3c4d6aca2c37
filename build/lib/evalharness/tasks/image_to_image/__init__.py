"""Image-to-image models (upscalers, denoisers): metrics, tiling, export and runtimes.

The modules import nothing from the rest of the package, so the engine can adopt them
without a cycle: `metrics` (PSNR/SSIM as the SR papers compute them, and the comparison of
a runtime's output with a reference output), `tiling` (tiles with context, padding to a
size multiple), `export` (ONNX export, the shape guard, onnxruntime/OpenVINO/ncnn runners).
"""
