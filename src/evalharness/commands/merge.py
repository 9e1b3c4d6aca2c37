"""`evalharness merge OUT SHARD_DIR...`: shards of one sweep -> one run dir, then what the
sweep prints at its end (findings, report, tracking as its config asked)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Merge the shards of one sweep into one run dir.",
        epilog="example:\n  evalharness merge results/merged results/sharded/0 results/sharded/1\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("out", type=Path)
    ap.add_argument("shards", type=Path, nargs="+")
    args = ap.parse_args(argv)

    from evalharness.runner.merge import MergeError, finish_merged, merge

    try:
        summary = merge(args.out, args.shards)
    except MergeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"merged {len(args.shards)} shard(s) into {args.out}: {len(summary)} configs")
    done = finish_merged(args.out)
    print(done.findings, end="")
    from evalharness.commands.sweep import print_finished

    print_finished(done, args.out)  # exit code 3 when tracking failed after the merge
    return 0
