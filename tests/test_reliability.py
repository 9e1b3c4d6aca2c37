"""Issue 17, item by item: each failure reproduced, each fixed behaviour pinned.

1 refused runs leave the run dir as it was; a lock keeps two processes apart
2 models are identified by the content of all their files; derived models in the cache
3 sample ids are unique relative paths; duplicates refused
4 the dataset hash covers file contents; a manifest's sha256 is checked
5/6 bad settings and bad files are one line, never silent, never a traceback
7 merge verifies what it merges
8 report works on a run without the reference config
9 stale temp files are removed on resume
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import onnx
import openvino as ov
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from omegaconf import open_dict

from evalharness.backends.export import export_onnx, with_graph_normalization
from evalharness.data.dataset import load_dataset
from evalharness.models.source import ModelSpec
from evalharness.paths import PROJECT_ROOT
from evalharness.rundir.claim import PlanMismatchError, RunDirBusyError, locked
from evalharness.rundir.store import part_path
from evalharness.runner.merge import MergeError, merge

from .conftest import compose_config, plan_of, run_in_process
from .helpers import DEMO, demo_subset, rerecord

SMALL = ["dataset.limit=24", "chunk_size=8"]


def patch_model(**fields):
    """A cfg_edit for run_in_process: set model fields (of the composed config, plain dicts)."""

    def edit(config):
        config["model"].update(fields)

    return edit


def snapshot(folder) -> dict[str, bytes]:
    """Every file under folder (but the lock) and its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-config run dir, shared (read-only) by several tests."""
    return run_in_process([*SMALL, "colour=bgr"], tmp_path_factory.mktemp("finished"))[1]


# 1 -------------------------------------------------------------------------------------


def test_a_refused_run_changes_nothing_on_disk(finished, tmp_path):
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(finished, run_dir)
    before = snapshot(run_dir)
    with pytest.raises(PlanMismatchError, match="different sweep"):
        run_in_process([*SMALL, "colour=rgb", "resize=cv2_linear"], run_dir)
    assert snapshot(run_dir) == before  # configs.csv, choices.json, ... untouched


def _cli(*args):
    argv = [sys.executable, "-m", "evalharness", "progress=false", *args]
    return subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "args,message",
    [
        (["colour=rgb", "resize=cv2_linear"], "holds results of a different sweep"),
        (["precision=int8_ort", "precision.calibration_method=fast"], "must be one of minmax"),
    ],
)
def test_a_refused_command_leaves_the_run_dir_byte_for_byte(finished, tmp_path, args, message):
    """Hydra used to rewrite .hydra/*.yaml and the job log before the refusal."""
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(finished, run_dir)
    before = snapshot(run_dir)
    r = _cli(*SMALL, *args, f"hydra.run.dir={run_dir}")
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert snapshot(run_dir) == before
    assert {p.name for p in run_dir.iterdir()} == {p.name for p in finished.iterdir()}


def test_a_command_refused_before_the_claim_leaves_no_new_dir(tmp_path):
    fresh = tmp_path / "new" / "run"
    r = _cli(*SMALL, "backend=onnxruntime", "precision=int8_ort",
             "precision.calibration_method=fast", f"hydra.run.dir={fresh}")  # fmt: skip
    assert r.returncode == 2 and r.stderr.startswith("error: precision 'int8_ort'"), r.stderr
    assert not (tmp_path / "new").exists()  # neither the run dir nor the parent Hydra made


def test_a_bad_quantizer_setting_is_refused_before_the_claim_and_a_fixed_rerun_runs(tmp_path):
    run_dir = tmp_path / "run"
    args = ["dataset.limit=30", "calibration.n=10", "backend=onnxruntime", "precision=int8_ort"]
    with pytest.raises(ValueError, match="calibration_method must be one of minmax, entropy"):
        run_in_process([*args, "precision.calibration_method=entropyy"], run_dir)
    assert not run_dir.exists()
    summary, _ = run_in_process([*args, "precision.calibration_method=entropy"], run_dir)
    assert "int8_ort" in set(summary.precision)


def test_a_locked_run_dir_is_refused_at_once_and_a_new_dir_left_absent(tmp_path):
    run_dir = tmp_path / "busy"
    with locked(run_dir):
        with pytest.raises(RunDirBusyError, match="in use by another evalharness process"):
            run_in_process(SMALL, run_dir)
        assert {p.name for p in run_dir.iterdir()} == {".lock"}
    fresh = tmp_path / "never"
    with pytest.raises(PlanMismatchError):
        (fresh / "parts").mkdir(parents=True)
        (fresh / "parts" / "chunk-00000.parquet").write_bytes(b"someone else's")
        run_in_process(SMALL, fresh)
    assert not (fresh / "plan.json").exists()


@pytest.mark.slow
def test_two_sweeps_started_on_one_dir_one_wins_whole(tmp_path):
    """Two processes, two different sweeps, one fresh dir: one runs, the other is refused
    with one line, and the dir holds the winner's configs only (4 of 4 tries lost before)."""
    run_dir = tmp_path / "race"
    base = [sys.executable, "-m", "evalharness", f"hydra.run.dir={run_dir}", "progress=false"]
    procs = [
        subprocess.Popen([*base, *SMALL, f"colour={c}"], cwd=PROJECT_ROOT, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for c in ("rgb", "bgr")
    ]  # fmt: skip
    results = [(p.wait(), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    loser = next(err for rc, err in results if rc == 2)
    assert "in use by another" in loser or "different sweep" in loser
    summary = pd.read_csv(run_dir / "summary.csv")
    configs = pd.read_csv(run_dir / "configs.csv")
    assert set(summary.config_id) == set(configs.config_id)
    plan = json.loads((run_dir / "plan.json").read_text())
    assert set(plan["config_ids"]) == set(configs.config_id)


# 2 -------------------------------------------------------------------------------------


def _model_cfg(patch):
    cfg, choices = compose_config(SMALL)
    with open_dict(cfg):
        cfg.model.update(patch)
    return cfg, choices


def test_an_ir_is_identified_by_its_xml_and_its_bin(tmp_path, export_cache):
    cfg, choices = compose_config([])
    xml = tmp_path / "demo.xml"
    ov.save_model(
        ov.Core().read_model(str(export_onnx(ModelSpec.from_config(cfg.model), export_cache))),
        str(xml),
    )  # noqa: E501
    patch = {"source": "openvino", "weights": str(xml)}
    overrides = [*SMALL, "backend=openvino"]
    first = plan_of(overrides, patch_model(**patch)).specs[0].config_id
    weights = bytearray(xml.with_suffix(".bin").read_bytes())
    weights[-4:] = b"\x00\x00\x80\x3f"  # new weights, same .xml
    xml.with_suffix(".bin").write_bytes(bytes(weights))
    second = plan_of(overrides, patch_model(**patch)).specs[0].config_id
    assert first != second
    xml.with_suffix(".bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"demo.bin \(part of the openvino model"):
        ModelSpec.from_config(_model_cfg(patch)[0].model)


def test_onnx_external_data_and_an_ncnn_bin_are_part_of_the_model_id(tmp_path, export_cache):
    cfg, _ = compose_config([])
    model = onnx.load(str(export_onnx(ModelSpec.from_config(cfg.model), export_cache)))
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="ext.data",
              size_threshold=0)  # fmt: skip

    def ids(patch):
        spec = ModelSpec.from_config(_model_cfg(patch)[0].model)
        return spec.weights_sha256, [f.name for f in spec.files]

    onnx_patch = {"source": "onnx", "weights": str(path)}
    first, files = ids(onnx_patch)
    assert files == ["ext.onnx", "ext.data"]
    data = bytearray((tmp_path / "ext.data").read_bytes())
    data[-4:] = b"\x00\x00\x80\x3f"  # new weights, the same .onnx bytes
    (tmp_path / "ext.data").write_bytes(bytes(data))
    assert ids(onnx_patch)[0] != first
    (tmp_path / "ext.data").unlink()
    with pytest.raises(FileNotFoundError, match=r"ext.data \(part of the onnx model ext.onnx"):
        ids(onnx_patch)
    # ncnn: the .param names the graph, the .bin holds the weights
    param, weights = tmp_path / "net.param", tmp_path / "net.bin"
    param.write_text("7767517\n1 1\nInput in0 0 1 in0\n")
    weights.write_bytes(b"\x00" * 16)
    ncnn_patch = {"source": "ncnn", "weights": str(param), "input_name": "in0",
                  "output_name": "out0"}  # fmt: skip
    first, files = ids(ncnn_patch)
    assert files == ["net.param", "net.bin"]
    weights.write_bytes(b"\x01" + b"\x00" * 15)
    assert ids(ncnn_patch)[0] != first


def test_derived_models_follow_the_content_and_never_sit_beside_the_user_file(
    tmp_path, export_cache
):
    cfg, _ = compose_config([])
    user_dir = tmp_path / "models"
    user_dir.mkdir()
    onnx_path = user_dir / "model.onnx"
    onnx_path.write_bytes(export_onnx(ModelSpec.from_config(cfg.model), export_cache).read_bytes())
    before = sorted(p.name for p in user_dir.iterdir())
    mean, std = (0.5,) * 3, (0.25,) * 3
    a = with_graph_normalization(onnx_path, export_cache, mean, std)
    # replace the file with another model under the same name: a new derived model
    other = onnx.load(str(onnx_path))
    other.graph.initializer[0].raw_data = bytes(len(other.graph.initializer[0].raw_data))
    onnx.save(other, str(onnx_path))
    b = with_graph_normalization(onnx_path, export_cache, mean, std)
    assert a != b and a.exists() and b.exists()
    # fp16 and graph norm of a user's ONNX in a sweep: nothing written beside it
    _, out = run_in_process(
        [*SMALL, "backend=onnxruntime", "precision=fp16", "norm=graph"],
        tmp_path / "run",
        patch_model(source="onnx", weights=str(onnx_path)),
    )
    assert sorted(p.name for p in user_dir.iterdir()) == before


# 3 -------------------------------------------------------------------------------------


def test_files_that_share_a_stem_are_three_samples(tmp_path):
    from PIL import Image

    root = tmp_path / "same_stem"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
    img = Image.fromarray(np.full((20, 20, 3), 128, np.uint8))
    for ext in ("gif", "tiff", "bmp"):
        img.save(root / "a" / f"img.{ext}")
    img.save(root / "b" / "img.png")
    ds = load_dataset(compose_config(["dataset=folder", f"dataset.root={root}"])[0].dataset)
    assert [s.sample_id for s in ds.samples] == [
        "a/img.bmp",
        "a/img.gif",
        "a/img.tiff",
        "b/img.png",
    ]


def test_a_manifest_listing_a_file_twice_is_refused(tmp_path):
    overrides = demo_subset(tmp_path, 4)
    m = pd.read_csv(tmp_path / "manifest.csv", dtype=str)
    m = pd.concat([m, m.iloc[[0]].assign(sample_id="copy")])
    m.to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(ValueError, match="1 file\\(s\\) listed more than once"):
        load_dataset(compose_config(overrides)[0].dataset)
    m.iloc[:4].assign(sample_id=["x", "x", "y", "z"]).to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(ValueError, match="sample id\\(s\\) occur more than once .*'x'"):
        load_dataset(compose_config(overrides)[0].dataset)


# 4 -------------------------------------------------------------------------------------


def test_the_dataset_hash_sees_content_and_the_manifest_sha256_is_checked(tmp_path):
    overrides = demo_subset(tmp_path, 6)
    m = pd.read_csv(DEMO / "manifest.csv", dtype=str).head(6)
    m[["sample_id", "path", "label", "sha256"]].to_csv(tmp_path / "manifest.csv", index=False)
    cfg = compose_config(overrides)[0]
    before = load_dataset(cfg.dataset)
    assert all(s.problem is None for s in before.samples)
    target = tmp_path / m.path[2]
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF  # one changed byte near the end of the JPEG: same size, same name
    target.write_bytes(bytes(data))
    after = load_dataset(cfg.dataset)
    assert after.content_hash != before.content_hash
    assert after.samples[2].problem.startswith("content changed: SHA-256")
    assert after.samples[2].problem_stage == "dataset"
    with open_dict(cfg):
        cfg.dataset.hash = "stat"
    assert load_dataset(cfg.dataset).hash_mode == "stat"


# 5 and 6 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["chunk_size=-5"], "chunk_size must be a whole number >= 1, got -5"),
        (["chunk_size=0"], "chunk_size must be a whole number >= 1, got 0"),
        (["threads=0"], "threads must be a whole number >= 1, got 0"),
        (["shard.index=5", "shard.count=2"], "shard.index must be in 0..1"),
        (["dataset.limit=-1"], "dataset.limit must be a positive whole number"),
        (["batch_size=0"], "batch_size must be a whole number >= 1"),
    ],
)
def test_bad_numbers_are_refused_before_anything_runs(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        run_in_process(overrides, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _manifest_set(tmp_path, text: str):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "m.csv").write_text(text)
    (tmp_path / "ds" / "classes.txt").write_text((DEMO / "classes.txt").read_text())
    return ["dataset=manifest", f"dataset.root={tmp_path / 'ds'}", "dataset.manifest=m.csv",
            "dataset.classes=classes.txt"]  # fmt: skip


@pytest.mark.parametrize(
    "text,message",
    [
        ("path,label\n", "has no samples"),
        ("file,label\na.jpg,1\n", "no 'path' column"),
        ("path,kind\na.jpg,x\n", "neither a 'label' nor a 'label_name' column"),
    ],
)
def test_manifests_that_cannot_be_scored_are_refused(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        run_in_process(_manifest_set(tmp_path, text), tmp_path / "run")


def test_a_fractional_label_is_an_error_row_not_a_rounded_label(tmp_path):
    import shutil

    overrides = _manifest_set(tmp_path, "path,label\n0.jpg,1.7\n1.jpg,2\n")
    for k in range(2):
        shutil.copy(DEMO / "images" / "0000_red_disk.jpg", tmp_path / "ds" / f"{k}.jpg")
    summary, out = run_in_process(overrides, tmp_path / "run")
    errors = pd.read_csv(out / "errors.csv")
    assert errors.reason.tolist() == ["label '1.7' is not a whole number"]


@pytest.mark.parametrize("content", [b"", b"this is not a protobuf at all \x00\xff"])
def test_an_empty_or_garbage_onnx_is_one_line(tmp_path, content):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    cfg, _ = _model_cfg({"source": "onnx", "weights": str(bad)})
    with pytest.raises(ValueError, match="bad.onnx (is empty|is not a readable ONNX model)"):
        ModelSpec.from_config(cfg.model)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_malicious_pickle_is_refused_in_one_line(tmp_path):
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"state_dict": _Evil()}, f)
    with pytest.raises(ValueError, match="evil.pt: refused to load \\(weights_only=True"):
        run_in_process(SMALL, tmp_path / "run", patch_model(weights=str(evil)))


def test_an_onnx_whose_input_is_not_called_input_runs_with_graph_norm(tmp_path, export_cache):
    cfg, _ = compose_config([])
    m = onnx.load(str(export_onnx(ModelSpec.from_config(cfg.model), export_cache)))
    for node in m.graph.node:
        node.input[:] = ["pixels" if n == "input" else n for n in node.input]
    m.graph.input[0].name = "pixels"
    path = tmp_path / "renamed.onnx"
    onnx.save(m, str(path))
    summary, _ = run_in_process(
        [*SMALL, "backend=onnxruntime", "norm=graph"],
        tmp_path / "run",
        patch_model(source="onnx", weights=str(path)),
    )
    ours = summary[~summary.reference].iloc[0]
    assert ours.n_errors == 0 and ours.agree_ref == 100


@pytest.mark.slow
def test_a_full_disk_is_one_line(tmp_path):
    """ENOSPC while writing a part (simulated at the parquet writer): one error line, rc 2."""
    code = (
        "import errno, sys, pyarrow.parquet as pq\n"
        "def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device', 'part')\n"
        "pq.write_table = full\n"
        "from evalharness.__main__ import main\n"
        f"sys.argv = ['evalharness', 'hydra.run.dir={tmp_path / 'run'}', 'progress=false',"
        " 'dataset.limit=8']\n"
        "main()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True,
                       text=True)  # fmt: skip
    assert r.returncode == 2, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert errors == ["error: No space left on device (part)"] and "Traceback" not in r.stderr


# 7 -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    for i in (0, 1):
        run_in_process([*SMALL, "shard.count=2", f"shard.index={i}"], root / str(i))
    return root


def _copy_shards(shards, tmp_path):
    import shutil

    shutil.copytree(shards, tmp_path / "s")
    return [tmp_path / "s" / "0", tmp_path / "s" / "1"]


def test_merge_refuses_an_edited_part(shards, tmp_path):
    dirs = _copy_shards(shards, tmp_path)
    path = part_path(dirs[0], 0)
    table = pq.read_table(path).to_pandas()
    table.loc[0, "pred"] = (table.loc[0, "pred"] + 1) % 10  # one edited prediction
    pq.write_table(pq.read_table(path).from_pandas(table, preserve_index=False), path)
    with pytest.raises(MergeError, match="not what the shard recorded"):
        merge(tmp_path / "out", dirs)
    assert not (tmp_path / "out").exists()


def test_merge_refuses_duplicated_rows_even_with_a_forged_record(shards, tmp_path):
    from evalharness.rundir import records

    dirs = _copy_shards(shards, tmp_path)
    path = part_path(dirs[0], 0)
    table = pq.read_table(path)
    doubled = pq.read_table(path).to_pandas()
    doubled = pd.concat([doubled, doubled.iloc[:5]])
    pq.write_table(table.from_pandas(doubled, schema=table.schema, preserve_index=False), path)
    forged = records.entry_of_file(path, chunk=0, rows=len(doubled))  # records.json forged too
    records.add(dirs[0], {"parts/chunk-00000.parquet": forged})
    with pytest.raises(MergeError, match="rows, expected"):
        merge(tmp_path / "out", dirs)


def test_merge_refuses_a_truncated_part_and_its_own_shard_dir(shards, tmp_path):
    dirs = _copy_shards(shards, tmp_path)
    with pytest.raises(MergeError, match="merge into a new folder"):
        merge(dirs[0], dirs)
    path = part_path(dirs[1], 1)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(MergeError, match="edited or truncated"):
        merge(tmp_path / "out", dirs)


def test_merge_into_a_run_dir_of_another_sweep_changes_nothing(shards, finished, tmp_path):
    import shutil

    target = tmp_path / "other"
    shutil.copytree(finished, target)
    before = snapshot(target)
    with pytest.raises(MergeError, match="different sweep"):
        merge(target, [shards / "0", shards / "1"])
    assert snapshot(target) == before


# 8 -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_report_works_when_the_run_lacks_the_reference(finished, tmp_path):
    import shutil

    from evalharness.report.build import write_report
    from evalharness.runner.ondemand import RunDirConfigs

    run_dir = tmp_path / "noref"
    shutil.copytree(finished, run_dir)
    summary = pd.read_csv(run_dir / "summary.csv")
    summary["reference"] = False  # as an old run dir, or a reference that could not run
    summary.to_csv(run_dir / "summary.csv", index=False)
    rerecord(run_dir, "summary.csv")
    assert write_report(run_dir, RunDirConfigs(run_dir), n_boot=100).exists()


# 9 -------------------------------------------------------------------------------------


def test_stale_temp_files_are_removed_on_resume(finished, tmp_path):
    import shutil

    run_dir = tmp_path / "stale"
    shutil.copytree(finished, run_dir)
    stale = [
        run_dir / ".predictions.parquet.tmp4242",
        run_dir / "parts" / ".chunk-00000.parquet.tmp77",
    ]
    for p in stale:
        p.write_bytes(b"half a file")
    run_in_process([*SMALL, "colour=bgr"], run_dir)
    assert not any(p.exists() for p in stale)


def test_resumed_and_compared_runs_join_on_relative_ids(finished, tmp_path):
    from evalharness.analysis.compare import compare

    comparison = compare(finished, finished)
    table, notes = comparison.table, comparison.notes
    assert not notes and (table.delta == 0).all() and (table.method == "paired bootstrap").all()
    torch.manual_seed(0)  # (torch imported for the evil-pickle test; keep the seed explicit)
