"""Sharded sweeps through a real Hydra launcher, merged, equal one process; determinism."""

import os
import subprocess
import sys

import pandas as pd
import pytest

from evalharness.paths import PROJECT_ROOT
from evalharness.runner.merge import MergeError, merge

from .helpers import rerecord

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
    merged = merge(tmp_path / "m-ok", [s0, s1])  # the library versions the shards ran with
    assert merged.v_torch.unique().tolist() == [pd.read_csv(s0 / "summary.csv").v_torch[0]]
    summary = pd.read_csv(s1 / "summary.csv")
    summary.to_csv(s1 / "summary.csv.ok", index=False)
    summary.assign(v_torch="2.0.0").to_csv(s1 / "summary.csv", index=False)
    rerecord(s1, "summary.csv")  # a shard that ran another torch
    with pytest.raises(MergeError, match="different torch versions"):
        merge(tmp_path / "m5", [s0, s1])
    summary.assign(v_cpu="other-node").to_csv(s1 / "summary.csv", index=False)
    rerecord(s1, "summary.csv")
    assert " | other-node" in merge(tmp_path / "m6", [s0, s1]).v_cpu[0]
    (s1 / "summary.csv").unlink()
    with pytest.raises(MergeError, match="no summary.csv"):
        merge(tmp_path / "m7", [s0, s1])
    (s1 / "summary.csv.ok").rename(s1 / "summary.csv")
    rerecord(s1, "summary.csv")
    (s1 / "parts" / "chunk-00001.parquet").unlink()
    with pytest.raises(MergeError, match="unfinished"):
        merge(tmp_path / "m4", [s0, s1])


@pytest.mark.slow
def test_a_shard_that_drew_no_chunk_merges(tmp_path):
    """More shards than chunks: shard 1 runs nothing, and the merge equals the single run."""
    small = [*SWEEP[:-3], "dataset.limit=8", "chunk_size=8", "progress=false"]
    cli(*small, f"hydra.run.dir={tmp_path / 'single'}")
    cli("-m", *small, "shard.count=2", "shard.index=0,1", f"hydra.sweep.dir={tmp_path / 's'}")
    assert pd.read_csv(tmp_path / "s" / "1" / "summary.csv").empty
    merged = merge(tmp_path / "merged", [tmp_path / "s" / "0", tmp_path / "s" / "1"])
    assert merged.v_torch.notna().all()
    _assert_same_results(tmp_path / "single", tmp_path / "merged")


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


@pytest.mark.slow
@pytest.mark.ray
def test_two_shards_through_the_ray_launcher_merge_to_the_single_run(single, tmp_path):
    """Two shards as Ray tasks (hydra-ray-launcher) on a Ray head that
    scripts/ray_on_loopback.sh starts inside loopback-only network and PID namespaces."""
    pytest.importorskip("ray", reason="pip install -e '.[ray]'")
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="pip install -e '.[ray]'")
    script = str(PROJECT_ROOT / "scripts" / "ray_on_loopback.sh")
    check = subprocess.run([script, "--check"], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip(check.stdout.strip() or check.stderr.strip())
    r = subprocess.run(
        [
            script,
            "-m",
            "hydra/launcher=ray_shards",
            *SWEEP,
            "shard.count=2",
            "shard.index=0,1",
            f"hydra.sweep.dir={tmp_path / 's'}",
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    out = r.stdout + r.stderr
    assert "Ray Launcher is launching 2 jobs" in out and "(_run_job pid=" in out
    merge(tmp_path / "merged", [tmp_path / "s" / "0", tmp_path / "s" / "1"])
    _assert_same_results(single, tmp_path / "merged")


def _compose_launcher(name: str):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from evalharness.paths import CONF_DIR

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
