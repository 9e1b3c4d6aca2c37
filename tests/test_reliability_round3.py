"""Issue 30 (reliability, round 3), item by item: each probe as a hostile or clumsy user ran
it, failing on the code before the fix, and the behaviour that holds now.

1 the lock never follows a link, never truncates a file it did not create
2 a dir is ours only by our records.json, not by file names
3 dataset paths stay inside the root (real paths); duplicates by real path
4 a cached derived model is verified against its recorded sha256
5 compare --fail-on-drop fails closed
6 edited run files are refused (--trust-edited reads them, said); an edited part is recomputed
7 on-demand configs refuse a dataset that changed since the run
8 the pixel limit holds for formats Pillow cannot parse
10 quantization leaves no temp files, after a failure or a kill
11 bootstrap counts are checked
12 tracebacks that became one line; a read-only run dir is read, outputs go to --out
13 a claim that fails before any result is released
(9, MLflow reachability, is issue 31's.)
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pyarrow.parquet as pq
import pytest
from onnx import numpy_helper

from evalharness.commands import run_command
from evalharness.paths import PROJECT_ROOT
from evalharness.rundir.claim import PlanMismatchError

from .conftest import compose_config, run_in_process
from .helpers import DEMO, demo_subset

SMALL = ["dataset.limit=24", "chunk_size=8"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file (and link target) under folder, for byte-for-byte comparisons."""
    out = {}
    for p in sorted(folder.rglob("*")):
        key = str(p.relative_to(folder))
        out[key] = ("-> " + os.readlink(p)).encode() if p.is_symlink() else (
            p.read_bytes() if p.is_file() else b"<dir>")  # fmt: skip
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-config run dir (colour rgb vs bgr), shared read-only."""
    return run_in_process([*SMALL, "colour=bgr"], tmp_path_factory.mktemp("r3") / "run")[1]


def _copy(finished: Path, tmp_path: Path, name: str = "copy") -> Path:
    dest = tmp_path / name
    shutil.copytree(finished, dest, symlinks=True)
    return dest


def _one_error_line(capsys) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# 1 -------------------------------------------------------------------------------------


def test_01_a_lock_link_is_never_followed_and_a_users_lock_never_written(tmp_path):
    """Before: locked() opened .lock with O_CREAT (following the link), truncated it and
    wrote a PID before the plan check refused the dir."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    d = tmp_path / "d"
    d.mkdir()
    (d / ".lock").symlink_to(victim)
    (d / "notes.txt").write_text("n\n")
    before = _tree(d)
    with pytest.raises(PlanMismatchError, match="symbolic link"):
        run_in_process(SMALL, d)
    assert victim.read_text() == "precious\n" and _tree(d) == before
    # a user's own .lock (a plain file) in a dir that is not ours: refused, not rewritten
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / ".lock").write_text("my lock, not yours\n")
    (mine / "notes.txt").write_text("n\n")
    before = _tree(mine)
    with pytest.raises(PlanMismatchError, match="not an evalharness run dir"):
        run_in_process(SMALL, mine)
    assert _tree(mine) == before


def test_01_analysis_never_writes_through_a_link_in_the_run_dir(finished, tmp_path, capsys):
    """findings.md was written with write_text (through a link); explain/ could point out."""
    run = _copy(finished, tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run / "findings.md").unlink(missing_ok=True)
    (run / "findings.md").symlink_to(victim)
    assert run_command("findings", [str(run), "--max-on-demand", "0"]) == 0
    assert victim.read_text() == "precious\n" and not (run / "findings.md").is_symlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "explain").symlink_to(elsewhere)
    assert run_command("explain", [str(run), "--bootstrap", "200"]) == 2
    assert "is a symbolic link; nothing is written through it" in _one_error_line(capsys)
    assert list(elsewhere.iterdir()) == []


# 2 -------------------------------------------------------------------------------------


def test_02_files_named_like_ours_do_not_make_a_run_dir(finished, tmp_path):
    """Before: a folder of configs.csv, run_config.yaml, choices.json, calibration.csv and
    training.log was taken for a run dir; three were replaced and the user's calibration.csv
    made a plain fp32 run say "int8 calibrated on 1 images"."""
    d = tmp_path / "users"
    d.mkdir()
    for name in ("configs.csv", "run_config.yaml", "choices.json"):
        shutil.copy(finished / name, d / name)
    (d / "calibration.csv").write_text("sample_id,source\nmy_image.jpg,mine\n")
    (d / "training.log").write_text("epoch 1\n")
    before = _tree(d)
    with pytest.raises(PlanMismatchError, match="not an evalharness run dir"):
        run_in_process(SMALL, d)
    assert _tree(d) == before


# 3 -------------------------------------------------------------------------------------


def _escape_set(tmp_path: Path, rows: list[str]) -> list[str]:
    """A manifest set of 6 demo images plus `rows` (paths as a manifest would list them)."""
    root = tmp_path / "set"
    overrides = demo_subset(root, 6)
    manifest = pd.read_csv(root / "manifest.csv", dtype=str)
    extra = [dict(sample_id=f"x{i}", path=p, label="0") for i, p in enumerate(rows)]
    pd.concat([manifest, pd.DataFrame(extra)]).to_csv(root / "manifest.csv", index=False)
    return overrides


def _dataset_cfg(overrides: list[str]) -> dict:
    cfg, _ = compose_config(overrides)
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg.dataset, resolve=True)


def test_03_dataset_paths_cannot_leave_the_root(tmp_path, monkeypatch):
    """Before: a manifest row ../../secret/x.jpg was decoded, scored and shown in the
    report's gallery; an absolute path was read and hashed; a link in the root to a file
    also listed by ../ was scored twice."""
    import evalharness.data.dataset as dataset_module
    from evalharness.data.dataset import load_dataset

    secret = tmp_path / "secret"
    secret.mkdir()
    first = sorted((DEMO / "images").iterdir())[0]
    shutil.copy(first, secret / "x.jpg")
    victim = tmp_path / "victim.jpg"
    shutil.copy(first, victim)
    hashed = []
    real_hash = dataset_module.file_sha256
    monkeypatch.setattr(dataset_module, "file_sha256", lambda p: hashed.append(p) or real_hash(p))
    cfg = _dataset_cfg(_escape_set(tmp_path, ["../secret/x.jpg", str(victim)]))
    with pytest.raises(ValueError, match="2 file\\(s\\) lie outside the dataset root"):
        load_dataset(cfg)
    assert hashed == []  # refused before any file was opened
    # a link inside the root to the file a ../ row lists: refused as outside, and with
    # allow_outside_root the two rows are one file (duplicate by real path)
    root = tmp_path / "set"
    (root / "images" / "link.jpg").symlink_to(secret / "x.jpg")
    manifest = pd.read_csv(root / "manifest.csv", dtype=str)
    manifest = manifest[manifest.sample_id != "x1"]
    manifest.loc[len(manifest)] = ["x2", "images/link.jpg", "0"]
    manifest.to_csv(root / "manifest.csv", index=False)
    with pytest.raises(ValueError, match="outside the dataset root"):
        load_dataset(cfg)
    with pytest.raises(ValueError, match="listed more than once"):
        load_dataset({**cfg, "allow_outside_root": True})
    # allowed and not duplicated: read, on the user's word
    manifest[manifest.sample_id != "x2"].to_csv(root / "manifest.csv", index=False)
    assert len(load_dataset({**cfg, "allow_outside_root": True})) == 7


# 4 -------------------------------------------------------------------------------------


def test_04_an_edited_cached_model_is_refused_naming_the_file(tmp_path):
    """Before: +5.0 on one bias of the cached export (still a valid ONNX) kept the config
    id and gave top-1 65.0 instead of 95.0, blamed on "backend=onnxruntime -30.0"."""
    from evalharness.backends.derived import CacheMismatchError
    from evalharness.backends.export import export_onnx
    from evalharness.models.source import ModelSpec

    cfg, _ = compose_config([])
    spec = ModelSpec.from_config(cfg.model)
    path = export_onnx(spec, tmp_path / "cache")
    good = _sha(path)
    model = onnx.load(str(path))
    bias = next(t for t in model.graph.initializer if t.name.endswith("bias"))
    bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + 5.0, bias.name))
    onnx.save(model, str(path))
    with pytest.raises(CacheMismatchError, match=f"{path.name} is not the model that was built"
                       ".*delete it and it is built again"):  # fmt: skip
        export_onnx(spec, tmp_path / "cache")
    path.unlink()
    assert export_onnx(spec, tmp_path / "cache") == path and _sha(path) == good


# 5 -------------------------------------------------------------------------------------


def _csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "b_rows,threshold,needle",
    [
        ([{"backend": "torch", "top1": "abc"}], "0.5", "top1 is 'abc', not a number"),
        ([{"backend": "torch", "top1": ""}], "0.5", "top1 is 'blank', not a number"),
        ([{"backend": "torch", "top1": 195}], "0.5", "outside 0-100"),
        ([{"backend": "onnxruntime", "top1": 80}], "0.5", "nothing compared"),
        ([{"backend": "torch", "top1": 90}], "nan", "--fail-on-drop must be a number >= 0"),
        ([{"backend": "torch", "top1": 90}], "-1", "--fail-on-drop must be a number >= 0"),
    ],
)
def test_05_the_gate_fails_closed(tmp_path, capsys, b_rows, threshold, needle):
    """Before: NaN deltas, nothing compared, 195 %, a NaN threshold all exited 0, and a
    negative threshold failed an improvement."""
    a = _csv(tmp_path / "a.csv", [{"backend": "torch", "n": 100, "top1": 80.0}])
    b = _csv(tmp_path / "b.csv", b_rows)
    rc = run_command("compare", [str(a), str(b), "--fail-on-drop", threshold,
                                 "--out", str(tmp_path / "o.csv")])  # fmt: skip
    assert rc == 2 and needle in _one_error_line(capsys)
    if needle == "nothing compared":  # a header-only CSV compares nothing either
        (tmp_path / "h.csv").write_text("backend,top1\n")
        rc = run_command("compare", [str(a), str(tmp_path / "h.csv"), "--fail-on-drop", "1"])
        assert rc == 2 and "nothing compared" in _one_error_line(capsys)


def test_05_every_differing_factor_is_shown_and_the_gate_says_ok_or_fail(tmp_path, capsys):
    a = _csv(tmp_path / "a.csv", [{"backend": "torch", "decoder": d, "n": 1000, "top1": 80.0}
                                  for d in ("pil", "opencv")])  # fmt: skip
    b = _csv(tmp_path / "b.csv", [{"backend": "torch", "n": 1000, "top1": 80.2}])
    assert run_command("compare", [str(a), str(b), "--fail-on-drop", "0.5"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [ln for ln in out if "80.00" in ln]
    assert len(rows) == 2 and "pil" in rows[0] + rows[1] and "opencv" in rows[0] + rows[1]
    assert out[-1].startswith("OK: no config dropped more than 0.5")
    assert run_command("compare", [str(b), str(a), "--fail-on-drop", "0.1"]) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("FAIL: 2 of 2 config(s)")


# 6 -------------------------------------------------------------------------------------


def test_06_an_edited_summary_is_refused_everywhere_unless_trusted(
    finished, tmp_path, capsys, library_log
):
    """Before: summary.csv edited by hand was read by Results.load, findings and compare as
    if measured."""
    from evalharness.analysis.results import RunResults
    from evalharness.rundir.records import EditedRunError, trusting_edits

    run = _copy(finished, tmp_path)
    summary = pd.read_csv(run / "summary.csv")
    summary["top1"] = 100.0
    summary.to_csv(run / "summary.csv", index=False)
    with pytest.raises(EditedRunError, match="summary.csv was changed after the run wrote it"):
        RunResults.load(run)
    for argv in (["findings", str(run)], ["compare", str(finished), str(run)],
                 ["explain", str(run)], ["report", str(run)]):  # fmt: skip
        assert run_command(argv[0], argv[1:]) == 2
        assert "--trust-edited reads it anyway" in _one_error_line(capsys)
    with trusting_edits():
        assert (RunResults.load(run).summary.top1 == 100.0).all()
    assert run_command("findings", [str(run), "--trust-edited", "--max-on-demand", "0"]) == 0
    said = [r.getMessage() for r in library_log.records if "not verified" in r.getMessage()]
    assert said and all("(--trust-edited)" in m and "summary.csv" in m for m in said)


def test_06_an_edited_part_is_computed_again_not_resumed(finished, tmp_path, library_log):
    """Before: a finished part edited, the same sweep re-run: "1 resumed", top-1 75 -> 100."""
    from evalharness.rundir.store import part_path

    run = _copy(finished, tmp_path)
    path = part_path(run, 1)
    table = pq.read_table(path).to_pandas()
    table["correct1"] = True
    pq.write_table(pq.read_table(path).from_pandas(table, preserve_index=False), path)
    summary, _ = run_in_process([*SMALL, "colour=bgr"], run)
    stats = json.loads((run / "stats.json").read_text())
    assert stats["chunks_computed"] == 1 and stats["chunks_resumed"] == 2
    assert "chunk-00001.parquet was changed after the run wrote it" in library_log.text
    pd.testing.assert_series_equal(
        summary.top1, pd.read_csv(finished / "summary.csv").top1, check_names=False
    )


# 7 -------------------------------------------------------------------------------------


def test_07_explain_refuses_data_that_changed_since_the_run(tmp_path, capsys):
    """Before: 10 of 40 images overwritten, `explain RUN --b resize=cv2_linear` evaluated
    the on-demand config on the new images with no word."""
    overrides = demo_subset(tmp_path / "set", 16)
    run = run_in_process([*overrides, "chunk_size=8"], tmp_path / "run")[1]
    images = sorted((tmp_path / "set" / "images").iterdir())
    for a, b in zip(images[:4], images[-4:], strict=True):
        shutil.copy(b, a)  # four images replaced by others
    rc = run_command("explain", [str(run), "--b", "resize=cv2_linear", "--bootstrap", "200"])
    assert rc == 2 and "the dataset changed since" in _one_error_line(capsys)
    assert not (run / "explain" / "ondemand").exists()  # nothing was evaluated


# 8 -------------------------------------------------------------------------------------


def _hdr_header(w: int, h: int) -> bytes:
    """A Radiance HDR header only (what OpenCV reads and Pillow cannot parse)."""
    return f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {h} +X {w}\n".encode() + b"\x00" * 64


@pytest.mark.parametrize(
    "name,data",
    [
        ("hdr.jpg", _hdr_header(3000, 3000)),
        (
            "pam.jpg",
            b"P7\nWIDTH 3000\nHEIGHT 3000\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n"
            + b"\x00" * 64,
        ),  # PAM: OpenCV reads it, Pillow does not
    ],
)
def test_08_the_pixel_limit_holds_where_pillow_cannot_read_the_header(
    tmp_path, monkeypatch, name, data
):
    """Before: a 9500x9500 HDR named .jpg went to OpenCV (2.28 GB RSS); a 4 KB header-only
    30000x30000 file made it request 2.7 GB."""
    from dataclasses import replace

    from evalharness.preprocess.decode import DECODERS, DecodeSpec, decode
    from evalharness.preprocess.errors import StageError

    path = tmp_path / name
    path.write_bytes(data)
    called = []
    info = DECODERS.get("opencv")
    spy = replace(info, fn=lambda p, s: called.append(p) or info.fn(p, s))
    monkeypatch.setitem(DECODERS._items, "opencv", spy)
    with pytest.raises(StageError, match="refused"):
        decode(path, DecodeSpec("opencv"), max_pixels=1_000_000)
    assert called == []  # no decoder saw the file


# 10 ------------------------------------------------------------------------------------

INT8 = ["dataset.limit=30", "calibration.n=10", "backend=onnxruntime", "precision=int8_ort"]


def test_10_quantization_leaves_no_temp_files_after_a_failure_or_a_kill(tmp_path, monkeypatch):
    """Before: .pre.onnx and .pre-inferred.onnx stayed in the cache on failure or kill."""
    import onnxruntime.quantization as ortq

    cache = tmp_path / "cache"
    real = ortq.quantize_static

    def full_disk(model_input, model_output, *a, **k):
        Path(model_output).write_bytes(b"\x08\x07half a model")
        raise OSError(errno.ENOSPC, "No space left on device", str(model_output))

    monkeypatch.setattr(ortq, "quantize_static", full_disk)
    with pytest.raises(OSError, match="No space left"):
        run_in_process([*INT8, f"cache_dir={cache}"], tmp_path / "run")
    int8 = cache / "int8"
    assert sorted(p.name for p in int8.iterdir()) == [".lock"]  # no temp file, no half model
    # a build a killed process left (its flock is free) is removed by the next build
    dead = int8 / ".build-dead"
    dead.mkdir()
    (dead / ".held").write_text("")
    (dead / "model.onnx.pre.onnx").write_bytes(b"junk")
    monkeypatch.setattr(ortq, "quantize_static", real)
    summary, _ = run_in_process([*INT8, f"cache_dir={cache}"], tmp_path / "run")
    assert "int8_ort" in set(summary.precision) and not dead.exists()
    assert not [p for p in int8.rglob("*") if ".pre" in p.name or p.name.startswith(".build")]


def test_10_a_truncated_build_is_never_cached(tmp_path):
    from evalharness.backends.derived import derived_file

    weights = numpy_helper.from_array(np.ones(1000, np.float32), "w")
    whole = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [], [weights]))
    data = whole.SerializeToString()

    def truncated(tmp: Path) -> None:
        tmp.write_bytes(data[: len(data) * 2 // 3])  # a writer that lost ENOSPC

    with pytest.raises(ValueError, match="not a readable ONNX model"):
        derived_file(tmp_path, "onnx", {"k": 1}, ".onnx", truncated, stem="m")
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == [".lock"]


# 11 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["findings", "explain", "report"])
@pytest.mark.parametrize("count", ["0", "-3", "1"])
def test_11_bootstrap_counts_are_checked(finished, capsys, command, count):
    """Before: 0 was an IndexError, -3 numpy's message, 1 a "95% CI" excluding its own
    estimate."""
    assert run_command(command, [str(finished), "--bootstrap", count]) == 2
    assert "bootstrap resamples must be a whole number >= 100" in _one_error_line(capsys)


# 12 ------------------------------------------------------------------------------------


def test_12_int8_ort_quantizes_an_onnx_with_external_data(tmp_path):
    """Before: onnxruntime's pre-processing lost the external data ("... not regular file")."""
    from evalharness.backends.export import export_onnx
    from evalharness.models.source import ModelSpec

    cfg, _ = compose_config([])
    model = onnx.load(str(export_onnx(ModelSpec.from_config(cfg.model), tmp_path / "c")))
    path = tmp_path / "m" / "ext.onnx"
    path.parent.mkdir()
    onnx.save(model, str(path), save_as_external_data=True, location="ext.data",
              size_threshold=0)  # fmt: skip

    def user_onnx(config):
        config["model"].update(source="onnx", weights=str(path))

    summary, _ = run_in_process([*INT8, f"cache_dir={tmp_path / 'c'}"], tmp_path / "run",
                                user_onnx)  # fmt: skip
    assert "int8_ort" in set(summary.precision)
    assert sorted(p.name for p in path.parent.iterdir()) == ["ext.data", "ext.onnx"]


def test_12_two_commands_needing_one_config_wait_for_each_other(tmp_path):
    """Before: the second explain needing the same on-demand config failed with
    RunDirBusyError's traceback; its claim now waits for the first."""
    from evalharness.rundir import records
    from evalharness.rundir.claim import claim

    d, plan, done = tmp_path / "ondemand", {"plan_hash": "p"}, []

    def second() -> None:
        with claim(d, plan, {}, wait=True) as resuming:
            done.append(resuming)

    with claim(d, plan, {}) as resuming:
        assert resuming is False
        records.add(d, {"summary.csv": {"sha256": "-", "size": 0}})  # the first one's result
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.6)
        assert not done  # waiting, not refused
    t.join(10)
    assert done == [True]  # then it resumes the very same config


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--n", "0"], "--n must be a whole number >= 1"),
        (["--n", "-3"], "--n must be a whole number >= 1"),
        (["--golden", "__FILE__"], "is a file; give a folder"),
    ],
)
def test_12_parity_arguments_are_one_line(tmp_path, capsys, args, needle):
    """Before: --n 0 was a ZeroDivisionError, --golden FILE a traceback."""
    afile = tmp_path / "golden.txt"
    afile.write_text("x")
    args = [str(afile) if a == "__FILE__" else a for a in args]
    rc = run_command("parity", ["--a", "decoder=pil", "--b", "decoder=opencv", *args])
    assert rc == 2 and needle in _one_error_line(capsys)


def test_12_openvino_errors_keep_their_cause(tmp_path):
    """Before: only "Exception from src/inference/src/cpp/core.cpp:84:" was left."""
    from evalharness.optional import error_line

    ov = pytest.importorskip("openvino")
    bad = tmp_path / "bad.xml"
    bad.write_text("<net>not a model</net>")
    with pytest.raises(RuntimeError) as e:
        ov.Core().read_model(str(bad))
    line = error_line(e.value)
    assert "\n" not in line and not line.startswith("Exception from src")
    assert "Unable to read the model" in line or "bad.xml" in line


def _read_only(run: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """Run a command with `run` read-only: as an unprivileged user a chmod does it; as root
    (which ignores modes) a read-only bind mount in a user namespace."""
    import evalharness

    cmd = [sys.executable, "-m", "evalharness", *argv]
    env = {**os.environ, "PYTHONPATH": str(Path(evalharness.__file__).parents[1])}
    if os.geteuid() != 0:
        for p in [run, *run.rglob("*")]:
            p.chmod(p.stat().st_mode & ~0o222)
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=PROJECT_ROOT)
    if not shutil.which("unshare"):
        pytest.skip("running as root without unshare: cannot make a dir read-only")
    script = f'mount --bind -o ro "{run}" "{run}" && exec "$@"'
    full = ["unshare", "-rm", "sh", "-c", script, "sh", *cmd]
    r = subprocess.run(full, capture_output=True, text=True, env=env, cwd=PROJECT_ROOT)
    if "mount" in r.stderr and r.returncode != 0 and "error:" not in r.stderr:
        pytest.skip(f"no read-only bind mount here: {r.stderr.strip()[:100]}")
    return r


def test_12_a_read_only_run_dir_is_read_and_outputs_go_elsewhere(finished, tmp_path):
    """Before: findings, explain and report on a read-only run dir were EROFS tracebacks
    (findings could not even print)."""
    run = _copy(finished, tmp_path)
    before = _tree(run)
    r = _read_only(run, ["findings", str(run)])
    assert r.returncode == 0 and "## Findings (top1)" in r.stdout, r.stderr
    assert "read-only" in r.stderr and "Traceback" not in r.stderr
    r = _read_only(run, ["explain", str(run)])
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"error: cannot write {run / 'explain'} (read-only); give --out DIR"]  # fmt: skip
    out = tmp_path / "out"
    r = _read_only(run, ["explain", str(run), "--out", str(out), "--bootstrap", "200"])
    assert r.returncode == 0 and (out / "effects.csv").exists(), r.stderr
    assert _tree(run) == before


# 13 ------------------------------------------------------------------------------------


def test_13_a_failed_model_load_releases_the_claim(tmp_path):
    """Before: a bad pickle failed after the claim; the dir kept only its plan files and the
    corrected command was refused as "a different sweep"."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"state_dict": Evil()}))
    run = tmp_path / "run"

    def bad_model(config):
        config["model"].update(weights=str(evil))

    with pytest.raises(ValueError, match="refused to load"):
        run_in_process(SMALL, run, bad_model)
    assert not run.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(ValueError, match="refused to load"):
        run_in_process(SMALL, existing, bad_model)
    assert list(existing.iterdir()) == []  # a dir the user made stays, empty
    summary, _ = run_in_process(SMALL, existing)  # the corrected command, same dir
    assert len(summary) == 1 and np.isfinite(summary.top1).all()
