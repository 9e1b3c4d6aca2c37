#!/usr/bin/env bash
# Run `python -m evalharness ARGS...` against a Ray head started for it alone, inside fresh
# network and PID namespaces that hold only the loopback interface (root, unshare, ip):
#   PYTHON=.venv/bin/python scripts/ray_on_loopback.sh -m hydra/launcher=ray_shards \
#       +sweep=preproc_ablation shard.count=2 shard.index=0,1 hydra.sweep.dir=results/ray
# Why a namespace: Ray probes cloud metadata (169.254.169.254) and its usage server even with
# usage stats off, and advertises the host's interface address rather than 127.0.0.1. Here none
# of that leaves the machine, and when the script ends every Ray process it started ends too,
# so `ray stop` cannot touch a cluster of the user's. On a real cluster, skip this script and
# pass hydra.launcher.ray.init.address=HEAD:6379 instead.
# `scripts/ray_on_loopback.sh --check` only says whether such a namespace can be made here
# (exit 0) or, in one line, why not (exit 3); the test and the benchmark ask it first.
set -euo pipefail
PYTHON=${PYTHON:-python3}
if [[ "${1:-}" == "--check" ]]; then
  for tool in unshare ip; do
    command -v "$tool" >/dev/null || { echo "needs $tool (util-linux, iproute2)"; exit 3; }
  done
  why=$(unshare --net --pid --fork --mount-proc ip link set lo up 2>&1) \
    || { echo "cannot create a network namespace: ${why:0:200}"; exit 3; }
  exit 0
fi
if [[ -z "${EVALHARNESS_RAY_NAMESPACE:-}" ]]; then
  exec env EVALHARNESS_RAY_NAMESPACE=1 unshare --net --pid --fork --mount-proc bash "$0" "$@"
fi
ip link set lo up
# Short: Ray's unix socket paths under it must fit in 107 bytes.
tmp=$(mktemp -d /tmp/ehray-XXXXXX)
trap '"$PYTHON" -m ray.scripts.scripts stop >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
# A token in the user's ~/.ray/auth_token would make the driver present it to this token-less
# cluster, which then refuses it: the run gets a home of its own.
export HOME=$tmp RAY_USAGE_STATS_ENABLED=0 RAY_ADDRESS=127.0.0.1:6379
"$PYTHON" -m ray.scripts.scripts start --head --node-ip-address=127.0.0.1 --port=6379 \
  --num-cpus="${RAY_NUM_CPUS:-2}" --include-dashboard=false --disable-usage-stats \
  --temp-dir="$tmp" >"$tmp/ray-start.log" 2>&1 || { cat "$tmp/ray-start.log" >&2; exit 1; }
"$PYTHON" -m evalharness "$@"
