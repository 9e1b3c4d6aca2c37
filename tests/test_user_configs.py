"""The user's own config dirs: `--config-dir`, `hydra.searchpath`, EVALHARNESS_CONFIG_PATH.

They add sweep/, model/, dataset/, stack/ ... files beside the shipped ones; the group check
and `evalharness --help` list them; a file named like a shipped one wins, in Hydra's
composition and in the plan alike, and a line says which file wins.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from evalharness.config.compose import check_group_choices, compose, searchpath_dirs, store_for
from evalharness.config.store import CONFIG_PATH_ENV
from evalharness.paths import CONF_DIR, PROJECT_ROOT

MINE = "name: mine\nfactors:\n  resize: [pil_bilinear, cv2_linear]\nexclude: []\n"
SHADOW = "name: preproc_ablation\nfactors:\n  resize: [pil_bilinear, cv2_area]\nexclude: []\n"


def user_dir(tmp_path: Path, name: str = "cfg", **files: str) -> Path:
    d = tmp_path / name
    for rel, text in files.items():
        path = d / f"{rel.replace('__', '/')}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return d


def cli(*args: str, cwd: Path = PROJECT_ROOT, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evalharness", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_a_user_sweep_composes_and_the_group_check_knows_it(tmp_path):
    d = user_dir(tmp_path, sweep__mine=MINE)
    assert compose(["+sweep=mine"], [d]).config["sweep"]["factors"]["resize"] == [
        "pil_bilinear", "cv2_linear"]  # fmt: skip
    assert check_group_choices(["+sweep=mine"], store_for([d])) is None
    assert "unknown sweep 'mine'" in check_group_choices(["+sweep=mine"], store_for([]))


def test_a_user_file_named_like_a_shipped_one_wins_in_hydra_and_the_plan(tmp_path):
    d = user_dir(tmp_path, sweep__preproc_ablation=SHADOW)
    composed = compose(["+sweep=preproc_ablation"], [d])
    assert composed.config["sweep"]["factors"] == {"resize": ["pil_bilinear", "cv2_area"]}
    store = store_for(composed.user_dirs)
    assert store.load("sweep", "preproc_ablation")["factors"]["resize"][1] == "cv2_area"
    shipped = CONF_DIR / "sweep" / "preproc_ablation.yaml"
    assert store.clashes() == [
        f"config sweep=preproc_ablation: {d / 'sweep' / 'preproc_ablation.yaml'} wins over "
        f"{shipped}"
    ]
    # without the dir, the shipped file again (the search path is per composition)
    assert "backend" in compose(["+sweep=preproc_ablation"]).config["sweep"]["factors"]


def test_hydra_searchpath_and_the_environment_add_dirs_first_wins(tmp_path, monkeypatch):
    a = user_dir(tmp_path, "a", sweep__mine=MINE)
    b = user_dir(tmp_path, "b", sweep__mine=MINE.replace("cv2_linear", "cv2_area"))
    assert searchpath_dirs([f"hydra.searchpath=[file://{a},'file://{b}']"]) == [str(a), str(b)]
    composed = compose([f"hydra.searchpath=[file://{a}]", "+sweep=mine"])
    assert composed.user_dirs == (str(a),)
    monkeypatch.setenv(CONFIG_PATH_ENV, f"{b}:{a}")
    composed = compose(["+sweep=mine"])
    assert composed.config["sweep"]["factors"]["resize"][1] == "cv2_area"  # b is first
    assert composed.user_dirs == (str(b), str(a))


def test_help_lists_the_users_options_and_a_missing_dir_is_one_line(tmp_path):
    d = user_dir(tmp_path, sweep__mine=MINE, model__my_net="name: my_net\n")
    r = cli("--config-dir", str(d), "--help")
    assert r.returncode == 0, r.stderr
    assert "mine*" in r.stdout and "my_net*" in r.stdout and str(d) in r.stdout
    r = cli("--config-dir", str(tmp_path / "nope"), "+sweep=mine")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"error: config dir not found: {tmp_path / 'nope'} (from --config-dir, "
        f"hydra.searchpath or {CONFIG_PATH_ENV})"
    ]


@pytest.mark.slow
def test_a_user_sweep_runs_from_the_command_line_and_the_run_records_its_dir(tmp_path):
    d = user_dir(tmp_path, sweep__mine=MINE, sweep__preproc_ablation=SHADOW)
    run = tmp_path / "run"
    r = cli("--config-dir", str(d), "+sweep=mine", "dataset.limit=20", "progress=false",
            f"hydra.run.dir={run}", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "2 config(s) x 20 samples" in r.stdout
    assert "config sweep=preproc_ablation: " in r.stderr and "wins over" in r.stderr
    import json

    assert json.loads((run / "factors.json").read_text())["config_dirs"] == [str(d)]
