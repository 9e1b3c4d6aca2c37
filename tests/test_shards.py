"""Sharded sweeps through a real Hydra launcher, merged, equal one process; determinism."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from evalharness import PROJECT_ROOT
from evalharness.merge import MergeError, merge

SWEEP = [
    "+sweep=preproc_ablation",
    "sweep.factors.backend=[torch,onnxruntime]",
    "sweep.factors.resize=[pil_bilinear,cv2_linear]",
    "dataset.limit=60",
    "chunk_size=8",
    "progress=false",
]
KEEP = ["config_id", "n", "n_errors", "top1", "top1_lo", "top1_hi", "top5"]


def cli(*args):
    r = subprocess.run(
        [sys.executable, "-m", "evalharness", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    cli(*SWEEP, f"hydra.run.dir={out}")
    return out


def _assert_same_results(a, b):
    pd.testing.assert_frame_equal(
        pd.read_parquet(a / "predictions.parquet"), pd.read_parquet(b / "predictions.parquet")
    )
    sa, sb = pd.read_csv(a / "summary.csv"), pd.read_csv(b / "summary.csv")
    pd.testing.assert_frame_equal(sa[KEEP], sb[KEEP])


@pytest.mark.slow
def test_two_shards_through_the_joblib_launcher_merge_to_the_single_run(single, tmp_path):
    cli(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *SWEEP,
        "shard.count=2",
        "shard.index=0,1",
        f"hydra.sweep.dir={tmp_path / 'shards'}",
    )
    shards = [tmp_path / "shards" / "0", tmp_path / "shards" / "1"]
    merge(tmp_path / "merged", shards)
    _assert_same_results(single, tmp_path / "merged")


@pytest.mark.slow
def test_two_runs_give_identical_predictions(single, tmp_path):
    cli(*SWEEP, f"hydra.run.dir={tmp_path}")
    _assert_same_results(single, tmp_path)


@pytest.mark.slow
def test_merge_refuses_gaps_overlaps_and_foreign_shards(tmp_path):
    base = [*SWEEP[:-2], "dataset.limit=16", "chunk_size=8", "progress=false"]
    cli("-m", *base, "shard.count=2", "shard.index=0,1", f"hydra.sweep.dir={tmp_path / 's'}")
    s0, s1 = tmp_path / "s" / "0", tmp_path / "s" / "1"
    with pytest.raises(MergeError, match="missing \\[1\\]"):
        merge(tmp_path / "m1", [s0])
    with pytest.raises(MergeError, match="repeated \\[0\\]"):
        merge(tmp_path / "m2", [s0, s0])
    other = tmp_path / "other"
    cli(
        *base[:-3],
        "dataset.limit=24",
        "chunk_size=8",
        "progress=false",
        "shard.count=2",
        "shard.index=1",
        f"hydra.run.dir={other}",
    )
    with pytest.raises(MergeError, match="different sweeps"):
        merge(tmp_path / "m3", [s0, other])
    (s1 / "parts" / "chunk-00001.parquet").unlink()
    with pytest.raises(MergeError, match="unfinished"):
        merge(tmp_path / "m4", [s0, s1])


@pytest.mark.slow
def test_two_shards_through_the_submitit_launcher_merge_to_the_single_run(single, tmp_path):
    """The launcher SLURM users get (conf/hydra/launcher/slurm_shards.yaml), run locally."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[slurm]'")
    cli(
        "-m",
        "hydra/launcher=local_shards",
        *SWEEP,
        "shard.count=2",
        "shard.index=0,1",
        f"hydra.sweep.dir={tmp_path / 's'}",
    )
    merge(tmp_path / "merged", [tmp_path / "s" / "0", tmp_path / "s" / "1"])
    _assert_same_results(single, tmp_path / "merged")


# Ray probes cloud metadata (169.254.169.254) and its usage-stats server even with usage
# stats off, and advertises the host's interface address rather than 127.0.0.1. A fresh
# network namespace holding only `lo` keeps the whole cluster on loopback by construction;
# a fresh PID namespace means that ending the script ends every Ray process it started and
# `ray stop` cannot touch a cluster of the user's.
RAY_ON_LOOPBACK = """
set -e
ip link set lo up
"$RAY" start --head --node-ip-address=127.0.0.1 --port=6379 --num-cpus=2 \\
    --include-dashboard=false --disable-usage-stats --temp-dir="$RAY_TMP" >/dev/null
set +e
"$PY" -m evalharness "$@"
rc=$?
"$RAY" stop >/dev/null 2>&1
exit $rc
"""


def _can_isolate_network() -> str | None:
    """Why a loopback-only namespace cannot be made here, or None when it can."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare and ip (util-linux, iproute2)"
    probe = subprocess.run(
        ["unshare", "--net", "--pid", "--fork", "--mount-proc", "ip", "link", "set", "lo", "up"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.strip()[:200]}"
    return None


@pytest.mark.slow
@pytest.mark.ray
def test_two_shards_through_the_ray_launcher_merge_to_the_single_run(single, tmp_path):
    """A Ray cluster started on loopback; the shards run as Ray tasks via hydra-ray-launcher."""
    pytest.importorskip("ray", reason="pip install -e '.[ray]'")
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="pip install -e '.[ray]'")
    if why := _can_isolate_network():
        pytest.skip(why)
    # Ray's unix socket paths must stay under 107 bytes: a short temp dir, not tmp_path.
    ray_tmp = tempfile.mkdtemp(prefix="ehray-", dir="/tmp")
    env = {
        **os.environ,
        "RAY": str(Path(sys.executable).parent / "ray"),
        "PY": sys.executable,
        "RAY_TMP": ray_tmp,
        # A token in the user's ~/.ray/auth_token makes the driver present it to this
        # token-less cluster, which refuses the connection: a home of the test's own.
        "HOME": ray_tmp,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    try:
        r = subprocess.run(
            [
                "unshare",
                "--net",
                "--pid",
                "--fork",
                "--mount-proc",
                "bash",
                "-c",
                RAY_ON_LOOPBACK,
                "ray-shards",
                "-m",
                "hydra/launcher=ray_shards",
                "hydra.launcher.ray.init.address=127.0.0.1:6379",
                *SWEEP,
                "shard.count=2",
                "shard.index=0,1",
                f"hydra.sweep.dir={tmp_path / 's'}",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "Ray Launcher is launching 2 jobs" in r.stdout + r.stderr
    merge(tmp_path / "merged", [tmp_path / "s" / "0", tmp_path / "s" / "1"])
    _assert_same_results(single, tmp_path / "merged")


def _compose_launcher(name: str):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from evalharness import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"hydra/launcher={name}"], return_hydra_config=True)
    return cfg.hydra.launcher


def test_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[slurm]'")
    launcher = _compose_launcher("slurm_shards")
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.timeout_min == 240 and launcher.mem_gb == 16


def test_ray_launcher_config_joins_a_running_cluster():
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="pip install -e '.[ray]'")
    launcher = _compose_launcher("ray_shards")
    assert launcher._target_.endswith("RayLauncher")
    # Joining a cluster: Ray refuses an object store size, which the plugin sets unless given.
    assert launcher.ray.init.address == "auto"
    assert "object_store_memory" in launcher.ray.init
    assert launcher.ray.init.object_store_memory is None
    assert launcher.ray.remote.num_cpus == 1
