"""GPU utilisation during a sweep, sampled with nvidia-smi (what the device reports, not a guess).

A sweep with a variant on an NVIDIA device (torch/onnxruntime `cuda`, `tensorrt`) starts
`nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms N`
beside it and reads one line per period; stats.json then gets `gpu_utilisation_mean`,
`gpu_utilisation_max` (percent of the sampling period a kernel ran, on the card
the frameworks call device 0) and
`gpu_memory_used_max_mb`. Where nvidia-smi is absent or fails, the sampler records nothing and
says so in `gpu_monitor` (never an error: the figures are about the run, not the result).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from typing import Any

NVIDIA_DEVICES = {"cuda", "tensorrt"}
QUERY = "utilization.gpu,memory.used"


def wants_gpu_monitor(devices: set[str]) -> bool:
    return bool(devices & NVIDIA_DEVICES)


class GpuMonitor:
    """Context manager: samples GPU 0 every `period_ms` until exit; `.stats()` summarises."""

    def __init__(self, period_ms: int = 200, command: str = "nvidia-smi") -> None:
        self.period_ms, self.command = period_ms, command
        self.util: list[float] = []
        self.memory_mb: list[float] = []
        self.problem: str | None = None
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> GpuMonitor:
        exe = shutil.which(self.command)
        if exe is None:
            self.problem = f"{self.command} not found"
            return self
        args = [exe, f"--id={visible_gpu()}", f"--query-gpu={QUERY}",
                "--format=csv,noheader,nounits", f"-lms={self.period_ms}"]  # fmt: skip
        try:
            self._proc = subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
        except OSError as e:
            self.problem = f"{self.command}: {e}"
            return self
        self._reader = threading.Thread(target=self._read, name="eh-gpu-monitor", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            parsed = parse_line(line)
            if parsed is not None:
                self.util.append(parsed[0])
                self.memory_mb.append(parsed[1])

    def __exit__(self, *exc) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if not self.util:
            self.problem = f"{self.command} gave no readable sample"

    def stats(self) -> dict[str, Any]:
        if not self.util:
            return {"gpu_monitor": self.problem or "not run"}
        return {
            "gpu_monitor": f"{self.command}, {len(self.util)} samples every {self.period_ms} ms",
            "gpu_utilisation_mean": round(sum(self.util) / len(self.util), 1),
            "gpu_utilisation_max": max(self.util),
            "gpu_memory_used_max_mb": max(self.memory_mb),
        }


def visible_gpu() -> str:
    """The card the frameworks call device 0: the first of CUDA_VISIBLE_DEVICES (an index or
    a UUID, both of which nvidia-smi --id takes), else 0."""
    first = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return first or "0"


def parse_line(line: str) -> tuple[float, float] | None:
    """`"87, 1234"` -> (87.0, 1234.0); anything else (N/A, an error line) -> None."""
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 2:
        return None
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        return None
