"""The command line, end to end, in subprocesses as a user runs it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from evalharness.paths import CONF_DIR, PROJECT_ROOT
from evalharness.rundir.store import done_chunks


def cli(*args: str, cwd: Path = PROJECT_ROOT, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "evalharness", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        **kw,
    )


def test_unknown_option_is_one_line_with_the_choices():
    r = cli("decoder=opencvv")
    assert r.returncode == 2
    names = sorted(p.stem for p in (CONF_DIR / "decoder").glob("*.yaml"))
    assert r.stderr.strip().splitlines() == [
        f"error: unknown decoder 'opencvv' (did you mean 'opencv'?); valid: {', '.join(names)}"
    ]


@pytest.mark.parametrize(
    "args,message",
    [
        (["dataset.root=/nonexistent/demo"], "dataset 'demo': manifest not found: /nonexistent"),
        (["norm=ov_ppp"], "norm=ov_ppp .*'ov_ppp' is not available on torch"),
        (["model.weights=/no/such.pt"], "model 'demo_cnn': weights file not found: /no/such.pt"),
    ],
)
def test_a_wrong_config_value_is_one_line(args, message, tmp_path):
    import re

    r = cli(*args, f"hydra.run.dir={tmp_path}")
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and re.search(message, lines[0]), r.stderr


def test_a_launcher_that_cannot_start_is_one_line(tmp_path):
    """A multirun whose launcher fails (here SLURM's, on a machine without srun)."""
    import shutil

    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[slurm]'")
    if shutil.which("srun") or shutil.which("sbatch"):
        pytest.skip("this machine has SLURM: the jobs would really be submitted")
    r = cli("-m", "hydra/launcher=slurm_shards", "dataset.limit=8", f"hydra.sweep.dir={tmp_path}")
    assert r.returncode == 2
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert errors[0].startswith("error: the multirun stopped: ") and "srun" in errors[0]


@pytest.mark.slow
def test_single_run_writes_the_tables(tmp_path):
    r = cli("dataset.limit=30", "backend=openvino", f"hydra.run.dir={tmp_path}", "progress=false")
    assert r.returncode == 0, r.stderr
    assert "top1 [95% CI]" in r.stdout
    summary = pd.read_csv(tmp_path / "summary.csv")
    # the config asked for, then the model card's reference (torch), always evaluated
    assert summary.backend.tolist() == ["openvino", "torch"] and (summary.n == 30).all()
    assert summary.reference.tolist() == [False, True]
    assert summary.agree_ref[1] == 100 and 95 <= summary.agree_ref[0] <= 100
    assert not (tmp_path / ".hydra").exists()  # Hydra writes nothing of its own here
    assert len(pd.read_parquet(tmp_path / "predictions.parquet")) == 60


@pytest.mark.slow
def test_multirun_writes_one_run_dir_per_job(tmp_path):
    r = cli(
        "-m",
        "backend=torch,onnxruntime",
        "dataset.limit=20",
        "progress=false",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert r.returncode == 0, r.stderr
    tops = [pd.read_csv(tmp_path / str(i) / "summary.csv") for i in (0, 1)]
    assert [t.backend[0] for t in tops] == ["torch", "onnxruntime"]


@pytest.mark.slow
def test_kill_9_mid_sweep_then_resume_equals_an_uninterrupted_run(tmp_path):
    args = [
        "+sweep=preproc_ablation",
        "sweep.factors.backend=[torch,openvino]",
        "dataset.limit=96",
        "chunk_size=8",
        "progress=false",
    ]
    full = tmp_path / "full"
    assert cli(*args, f"hydra.run.dir={full}").returncode == 0

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalharness", *args, f"hydra.run.dir={killed}"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(list((killed / "parts").glob("chunk-*"))) < 4:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # done = renamed *and* recorded in the manifest (a kill between the two recomputes it)
    n_before = len(done_chunks(killed))
    assert 4 <= n_before < 12, "the kill should land mid-sweep"
    assert not (killed / "predictions.parquet").exists()

    r = cli(*args, f"hydra.run.dir={killed}")
    assert r.returncode == 0, r.stderr
    assert f"{12 - n_before} chunk(s) computed, {n_before} resumed" in r.stdout
    a = pd.read_parquet(full / "predictions.parquet")
    b = pd.read_parquet(killed / "predictions.parquet")
    pd.testing.assert_frame_equal(a, b)
    keep = ["config_id", "n", "n_errors", "top1", "top1_lo", "top1_hi", "top5"]
    sa, sb = pd.read_csv(full / "summary.csv"), pd.read_csv(killed / "summary.csv")
    pd.testing.assert_frame_equal(sa[keep], sb[keep])


@pytest.mark.parametrize(
    "arg,line",
    [
        ("chunksize=3", "error: unknown setting 'chunksize' (did you mean 'chunk_size'?); valid: "),
        ("dataset.hashh=stat", "error: unknown setting 'dataset.hashh' (did you mean 'hash'?)"),
        ("dataset.limit=[", "error: cannot parse 'dataset.limit=[': "),
        # OmegaConf (not Hydra) fails on a dotted sweep key set from the command line
        (
            "sweep.factors.resize.limit_side_len=[960]",
            "error: the overrides cannot be applied (ValueError: ",
        ),
    ],
)
def test_a_mistyped_key_is_one_line_and_leaves_no_dir(arg, line, tmp_path):
    sweep = ["+sweep=preproc_ablation"] if arg.startswith("sweep.") else []
    r = cli(*sweep, arg, f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), r.stderr
    assert not (tmp_path / "run").exists()


def test_dataset_hash_stat_as_the_readme_writes_it(tmp_path):
    r = cli("dataset.hash=stat", "dataset.limit=8", "progress=false", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    assert set(pd.read_csv(tmp_path / "summary.csv").dataset_hash_mode) == {"stat"}


def test_every_dataset_config_names_its_hash_mode():
    for path in (CONF_DIR / "dataset").glob("*.yaml"):
        assert "\nhash: content" in path.read_text(), path.name
