"""The GPU utilisation sampler, against a stand-in nvidia-smi (no GPU on the CI machine)."""

import stat
import time

from evalharness.engine.gpu_monitor import GpuMonitor, parse_line, visible_gpu, wants_gpu_monitor

FAKE = """#!/bin/sh
# answers like `nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits
# -lms=N`: one line per period until terminated; records its arguments for the test
echo "$@" > "$(dirname "$0")/args.txt"
for u in 10 90 "[N/A], [N/A]" 50; do
  case "$u" in *N/A*) echo "$u" ;; *) echo "$u, 2048" ;; esac
done
exec sleep 30
"""


def fake_smi(tmp_path):
    exe = tmp_path / "nvidia-smi"
    exe.write_text(FAKE)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


def test_samples_are_read_summarised_and_the_sampler_stops(tmp_path, monkeypatch):
    exe = fake_smi(tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    t0 = time.perf_counter()
    with GpuMonitor(period_ms=50, command=str(exe)) as mon:
        deadline = time.time() + 10
        while len(mon.util) < 3 and time.time() < deadline:
            time.sleep(0.02)
    assert time.perf_counter() - t0 < 15  # terminated, not waited for
    stats = mon.stats()
    assert stats["gpu_utilisation_mean"] == 50.0  # (10 + 90 + 50) / 3, the N/A line skipped
    assert stats["gpu_utilisation_max"] == 90.0
    assert stats["gpu_memory_used_max_mb"] == 2048.0
    assert "3 samples every 50 ms" in stats["gpu_monitor"]
    args = (tmp_path / "args.txt").read_text()
    assert "--id=3" in args and "-lms=50" in args  # the card torch calls cuda:0


def test_an_absent_nvidia_smi_is_recorded_not_raised(tmp_path):
    with GpuMonitor(command=str(tmp_path / "no-such-smi")) as mon:
        pass
    assert mon.stats() == {"gpu_monitor": f"{tmp_path / 'no-such-smi'} not found"}


def test_parsing_and_when_to_sample(monkeypatch):
    assert parse_line("87, 1234\n") == (87.0, 1234.0)
    assert parse_line("[N/A], [N/A]") is None
    assert parse_line("No devices were found") is None
    assert wants_gpu_monitor({"cpu", "cuda"}) and wants_gpu_monitor({"tensorrt"})
    assert not wants_gpu_monitor({"cpu"}) and not wants_gpu_monitor({"gpu"})  # OpenVINO's Intel GPU
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpu() == "0"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abc")
    assert visible_gpu() == "GPU-abc"
