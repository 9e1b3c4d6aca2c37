"""Installed like any package: what a wheel needs is inside src/evalharness, the demo
datasets are made on first use byte for byte (proved by the shipped sha256 manifests).

The wheel itself is built, installed into a fresh venv and run from an empty folder by
scripts/check_wheel.sh (CI runs it after the test suite: it downloads nothing but takes
minutes)."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from evalharness.demo import firstuse
from evalharness.paths import PACKAGE_DIR, PROJECT_ROOT


@pytest.mark.parametrize("name", ["demo", "demo_det"])
def test_the_checkouts_demo_datasets_are_what_the_manifests_say(name):
    assert (
        firstuse.differences(PROJECT_ROOT / "datasets" / name, firstuse.read_manifest(name)) == []
    )


def test_the_demo_configs_point_into_the_package_or_the_generator():
    from evalharness.config.compose import compose

    cfg = compose([]).config
    assert Path(cfg["model"]["weights"]) == PACKAGE_DIR / "demo" / "models" / "demo_cnn.pt"
    assert Path(cfg["dataset"]["root"]) == PROJECT_ROOT / "datasets" / "demo"  # a checkout


def test_package_data_covers_every_file_the_code_reads():
    """Every non-Python file under src/evalharness matches a package-data pattern."""
    import fnmatch

    data = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["evalharness"]
    for p in PACKAGE_DIR.rglob("*"):
        if not p.is_file() or p.suffix in (".py", ".pyc") or "__pycache__" in p.parts:
            continue
        rel = p.relative_to(PACKAGE_DIR).as_posix()
        assert any(
            fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(rel, pat.replace("**/", ""))
            for pat in patterns
        ), f"{rel} is not shipped in the wheel (pyproject package-data)"


@pytest.mark.slow
def test_first_use_generates_the_demo_sets_and_proves_them(tmp_path, monkeypatch, library_log):
    import time

    start = time.monotonic()
    det = firstuse.ensure_generated("demo_det", tmp_path)
    demo = firstuse.ensure_generated("demo", tmp_path)
    took = time.monotonic() - start
    assert (det / ".complete").is_file() and (demo / ".complete").is_file()
    assert "first use: generating the demo dataset 'demo'" in library_log.text
    for name, folder in (("demo", demo), ("demo_det", det)):
        assert firstuse.differences(folder, firstuse.read_manifest(name)) == []
    assert took < 120
    start = time.monotonic()
    assert firstuse.ensure_generated("demo", tmp_path) == demo  # a second use: as it is
    assert time.monotonic() - start < 1
    # a generator that drifted from the manifest is refused, nothing is left in the cache
    wrong = tmp_path / "manifests"
    wrong.mkdir()
    text = (firstuse.MANIFESTS / "demo_det.sha256").read_text()
    (wrong / "demo_det.sha256").write_text("0" * 64 + text[64:])
    monkeypatch.setattr(firstuse, "MANIFESTS", wrong)
    with pytest.raises(ValueError, match=r"differs from the shipped manifest in 1 file\(s\)"):
        firstuse.ensure_generated("demo_det", tmp_path / "other")
    assert list((tmp_path / "other" / "demo").iterdir()) == []


def test_the_wheel_check_script_is_what_ci_runs():
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert "scripts/check_wheel.sh" in ci
    r = subprocess.run(["bash", "-n", str(PROJECT_ROOT / "scripts" / "check_wheel.sh")])
    assert r.returncode == 0
    assert sys.executable  # the script takes the interpreter to build with as $PYTHON
