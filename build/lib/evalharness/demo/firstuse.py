"""The demo datasets wherever evalharness is installed: the checkout's, else made on first use.

A source checkout keeps datasets/demo and datasets/demo_det (13 MB) in git. A wheel does not
carry them: the generators make them byte for byte (fixed seeds, pinned Pillow and numpy),
so on first use they are written into the cache (about 14 s for `demo`, 2 s for `demo_det`
on 2 cores) and checked file by file against the sha256 manifest shipped in the package
(manifests/<name>.sha256), which was written from the checkout's files. Identity is proved,
not assumed: a generator that drifts (another Pillow) is refused with the files that differ.

Configs name a demo dataset as `root: ${demo_data:demo}`; the resolver (config/store.py)
calls `demo_root`. The demo models (0.6 MB) are shipped in the package (demo/models/).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from evalharness.paths import PACKAGE_DIR, PROJECT_ROOT, cache_dir

log = logging.getLogger("evalharness")

MANIFESTS = PACKAGE_DIR / "demo" / "manifests"
COMPLETE = ".complete"  # written last: a folder without it is an interrupted generation


def _write_demo(out: Path) -> None:
    from evalharness.demo.demo import write_demo

    write_demo(out)


def _write_demo_det(out: Path) -> None:
    from evalharness.demo.demo_det import write_demo_det

    write_demo_det(out)


GENERATORS: dict[str, tuple[Callable[[Path], None], int]] = {
    "demo": (_write_demo, 14),  # seconds on 2 cores, for the progress line
    "demo_det": (_write_demo_det, 2),
}


def file_hashes(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under folder (the completion mark excluded)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != COMPLETE:
            out[p.relative_to(folder).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def manifest_text(folder: Path) -> str:
    """The manifest of a folder: `sha256  path` lines, sorted (sha256sum's format)."""
    return "".join(f"{h}  {rel}\n" for rel, h in file_hashes(folder).items())


def read_manifest(name: str) -> dict[str, str]:
    path = MANIFESTS / f"{name}.sha256"
    if not path.is_file():
        raise FileNotFoundError(f"no shipped manifest for the demo dataset '{name}': {path}")
    pairs = (line.split("  ", 1) for line in path.read_text().splitlines() if line.strip())
    return {rel: h for h, rel in pairs}


def differences(folder: Path, expected: dict[str, str]) -> list[str]:
    """Files that are missing, extra or different, against a manifest."""
    got = file_hashes(folder)
    out = [f"missing {r}" for r in expected if r not in got]
    out += [f"extra {r}" for r in got if r not in expected]
    out += [f"differs {r}" for r, h in got.items() if r in expected and expected[r] != h]
    return out


def _checkout_copy(name: str) -> Path | None:
    """datasets/<name> of a source checkout (a pyproject.toml beside it), if present."""
    folder = PROJECT_ROOT / "datasets" / name
    if (PROJECT_ROOT / "pyproject.toml").is_file() and folder.is_dir():
        return folder
    return None


def demo_root(name: str) -> str:
    """The folder of a demo dataset: the checkout's, else the cache's (made on first use)."""
    if name not in GENERATORS:
        raise ValueError(f"unknown demo dataset '{name}'; valid: {', '.join(GENERATORS)}")
    return str(_checkout_copy(name) or ensure_generated(name))


def ensure_generated(name: str, root: Path | None = None) -> Path:
    """The cached copy of a demo dataset, generated and verified if it is not there yet.
    Keyed by the manifest's hash: a new manifest is a new folder, never a mixed one."""
    manifest = (MANIFESTS / f"{name}.sha256").read_bytes()
    key = hashlib.sha256(manifest).hexdigest()[:12]
    target = Path(root or cache_dir()) / "demo" / f"{name}-{key}"
    if (target / COMPLETE).is_file():
        return target
    write, seconds = GENERATORS[name]
    log.info("first use: generating the demo dataset '%s' into %s (about %d s on 2 cores)",
             name, target, seconds)  # fmt: skip
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    start = time.monotonic()
    try:
        write(tmp)
        wrong = differences(tmp, read_manifest(name))
        if wrong:
            raise ValueError(
                f"the generated demo dataset '{name}' differs from the shipped manifest in "
                f"{len(wrong)} file(s) ({', '.join(wrong[:3])}): the pinned Pillow and numpy "
                "make it byte for byte; check `pip check`"
            )
        (tmp / COMPLETE).write_text("verified against the shipped sha256 manifest\n")
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: its copy is the same bytes
            if not (target / COMPLETE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("generated and verified %s in %.1f s", target, time.monotonic() - start)
    return target
