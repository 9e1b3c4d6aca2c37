#!/usr/bin/env bash
# The package as a user installs it: build the wheel, install it (not editable) into a fresh
# venv, and from an empty folder run README command 1 (its findings must be the README's,
# line for line), then a sweep of the user's own from --config-dir. Nothing may land in the
# folder but the run dirs. CI runs it after the test suite (.ci/run).
#   scripts/check_wheel.sh            (PYTHON=... builds with another interpreter)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say() { echo "check_wheel: $*"; }

t=$SECONDS
# from a copy of the files git tracks (and untracked ones it does not ignore; deleted ones
# skipped): a build/ folder left in the checkout by an earlier build is never packaged again
mkdir "$work/src"
(cd "$root" && { git ls-files -co --exclude-standard; git ls-files -d; } | sort | uniq -u \
  | tr '\n' '\0' | xargs -0 cp --parents -t "$work/src")
"$python" -m build --wheel --outdir "$work/dist" "$work/src" >"$work/build.log" 2>&1 \
  || { cat "$work/build.log"; exit 1; }
wheel="$(ls "$work"/dist/evalharness-*.whl)"
say "built $(basename "$wheel"), $(du -k "$wheel" | cut -f1) KB, in $((SECONDS - t)) s"
# listings go to files first: `cmd | grep -q` under pipefail fails when grep stops reading
# early and cmd dies of SIGPIPE (exit 141)
unzip -l "$wheel" >"$work/wheel.txt"
grep -q "evalharness/conf/sweep/preproc_ablation.yaml" "$work/wheel.txt"
grep -q "evalharness/demo/models/demo_cnn.pt" "$work/wheel.txt"
grep -q "hydra_plugins/evalharness_searchpath/evalharness_searchpath.py" "$work/wheel.txt"

t=$SECONDS
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$wheel"
say "installed the wheel and its dependencies into a fresh venv in $((SECONDS - t)) s"

mkdir "$work/empty"
cd "$work/empty"
export EVALHARNESS_CACHE="$work/cache" EVALHARNESS_HOME="$work/home"
t=$SECONDS
"$work/venv/bin/evalharness" +sweep=preproc_ablation hydra.run.dir=run >"$work/out.txt" 2>"$work/err.txt" \
  || { cat "$work/err.txt"; exit 1; }
say "README command 1 from an empty folder (demo data generated on first use) in $((SECONDS - t)) s"
grep "first use: generating the demo dataset 'demo'" "$work/err.txt" >/dev/null
# the README's findings block, between the fence after "The sweep ends with a findings block"
awk '/^The sweep ends with a findings block/{f=1; next} f && /^```$/{if (p) exit; p=1; next} p' \
  "$root/README.md" >"$work/readme_findings.md"
diff "$work/readme_findings.md" run/findings.md
say "findings equal the README's"

mkdir -p conf/sweep
printf 'name: mine\nfactors:\n  resize: [pil_bilinear, cv2_linear]\nexclude: []\n' >conf/sweep/mine.yaml
"$work/venv/bin/evalharness" --config-dir conf +sweep=mine hydra.run.dir=run_mine \
  >"$work/out2.txt" 2>"$work/err2.txt" || { cat "$work/err2.txt"; exit 1; }
grep -q "2 config(s) x 800 samples" "$work/out2.txt"
"$work/venv/bin/evalharness" --config-dir conf --help >"$work/help.txt"
grep -q "mine\*" "$work/help.txt"
say "a user sweep from --config-dir runs and --help lists it"
extra="$(ls -A | grep -v -x -e run -e run_mine -e conf || true)"
[ -z "$extra" ] || { say "unexpected files in the working folder: $extra"; exit 1; }
say "ok"
