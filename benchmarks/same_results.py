"""Same results before and after a change of structure: duplicate pairs, splits and trained weights.

Runs one fingerprint under the current source tree and one under an earlier commit's (its
``src/`` unpacked with ``git archive`` into a temporary folder, imported through ``PYTHONPATH``),
each in its own process, and compares them:

* **pairs**: ``Deduplicator(method).find`` over the first ``--n`` real images (by image id) for
  ``verified``, ``phash`` and ``exact``, every pair with its score (rounded to 6 digits);
* **splits**: ``split_dataset`` of those images, grouped by lesion and by the ``verified`` groups,
  random state 0, and the same on a generated synthetic data set with its ``exact`` groups;
* **weights**: a small ``LesionClassifier`` trained for 2 epochs on the synthetic data (random state 0,
  CPU, random initialisation); a SHA-256 of every tensor of its state dict.

Only names that both versions share are used (method names, ``threshold``), so the same code
runs on both. The result, with the commit, command, date and machine, is written to
``benchmarks/results/same_results.json``.

    python benchmarks/same_results.py --data ../shared/data/ham10000-200px --before main --n 2000
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "same_results.json"
METHODS = ("verified", "phash", "exact")


def _digest(rows: Any) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def _state(function: Any) -> dict[str, int]:
    """Random state 0 as ``function`` takes it: ``random_state=0``, or under the name that versions before
    the rename to ``random_state`` used (so an earlier commit's fingerprint still runs)."""
    takes = inspect.signature(function).parameters
    return {"random_state": 0} if "random_state" in takes else {"seed": 0}


def fingerprint(data: Path, n: int) -> dict[str, Any]:
    """Pairs, splits and trained weights of the hamkit on ``sys.path`` (run in a child process)."""
    import numpy as np
    import torch

    import hamkit
    from hamkit import Deduplicator, LesionClassifier, TrainConfig, make_synthetic, read_metadata, split_dataset
    from hamkit.data.images import find_images

    out: dict[str, Any] = {"hamkit": hamkit.__file__}
    found = find_images(data)
    records = sorted(read_metadata(data / "HAM10000_metadata.csv"), key=lambda r: r.image_id)
    records = [r for r in records if r.image_id in found][:n]
    paths = [found[r.image_id] for r in records]
    groups: dict[str, list[str | None]] = {}
    for method in METHODS:
        started = time.perf_counter()
        result = Deduplicator(method, progress=False, cache_dir=False).find(paths)
        rows = sorted(
            (result.paths[i].stem, result.paths[j].stem, round(float(s), 6))
            for i, j, s in zip(result.pairs.i, result.pairs.j, result.pairs.score, strict=True)
        )
        out[f"pairs_{method}"] = {"count": len(rows), "sha256": _digest(rows), "seconds": time.perf_counter() - started}
        groups[method] = [None if label is None else str(label) for label in result.group_labels()]
    split = split_dataset(records, **_state(split_dataset), extra_groups=[groups["verified"]])
    out["split_real"] = _digest(sorted(split.as_dict().items()))
    with tempfile.TemporaryDirectory() as folder:
        synthetic = make_synthetic(Path(folder) / "data", n_lesions=60, **_state(make_synthetic), image_size=(96, 72))
        synthetic_records = read_metadata(synthetic.metadata_csv)
        exact = Deduplicator("exact", progress=False, cache_dir=False, num_workers=0).find(synthetic.root)
        by_stem = dict(zip([p.stem for p in exact.paths], exact.group_labels(), strict=True))
        synthetic_split = split_dataset(
            synthetic_records, **_state(split_dataset), extra_groups=[[by_stem[r.image_id] for r in synthetic_records]]
        )
        synthetic_split.save(Path(folder) / "split.csv")
        out["split_synthetic"] = _digest(sorted(synthetic_split.as_dict().items()))
        torch.set_num_threads(1)
        # recipe= is how every version takes it
        recipe = TrainConfig(epochs=2, batch_size=16, lr=2e-3, **_state(TrainConfig))
        model = LesionClassifier("resnet18", image_size=32, pretrained=False, recipe=recipe, device="cpu")
        model.fit(synthetic.root, split_csv=Path(folder) / "split.csv", num_workers=0, progress=False)
        state = model.network_.state_dict()
        hasher = hashlib.sha256()
        for key in sorted(state):
            hasher.update(key.encode())
            hasher.update(np.ascontiguousarray(state[key].detach().cpu().numpy()).tobytes())
        out["weights"] = hasher.hexdigest()
    return out


def source_of(ref: str, folder: Path) -> Path:
    """``src/`` of the commit ``ref`` unpacked into ``folder``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


def run_child(src: Path, data: Path, n: int) -> dict[str, Any]:
    """:func:`fingerprint` in a child process that imports hamkit from ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--data", str(data), "--n", str(n)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the HAM10000 folder (official layout)")
    parser.add_argument("--n", type=int, default=2000, help="real images compared (the first by image id)")
    parser.add_argument("--before", default="main", help="the commit to compare with (default: main)")
    parser.add_argument("--after", default=None, help="the commit to compare (default: this source tree)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(fingerprint(args.data, args.n)))
        return
    sys.path.insert(0, str(HERE))
    from _shared import provenance

    def commit(ref: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", ref], capture_output=True, text=True, check=True
        ).stdout.strip()

    with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
        after_src = ROOT / "src" if args.after is None else source_of(args.after, Path(second))
        after_src = Path(shutil.copytree(after_src, Path(second) / "tree" / "src"))  # later edits do not reach it
        before = run_child(source_of(args.before, Path(first)), args.data, args.n)
        after = run_child(after_src, args.data, args.n)
    keys = [key for key in before if key != "hamkit"]
    same = {
        key: (before[key]["sha256"] == after[key]["sha256"])
        if isinstance(before[key], dict)
        else before[key] == after[key]
        for key in keys
    }
    result = {
        **provenance(),
        "note": "machine shared with other jobs; wall times are upper bounds",
        "before": {"commit": commit(args.before), **{k: v for k, v in before.items() if k != "hamkit"}},
        "after": {"commit": commit(args.after or "HEAD"), **{k: v for k, v in after.items() if k != "hamkit"}},
        "images": args.n,
        "same": same,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    for key in keys:
        counts = f" ({before[key]['count']} / {after[key]['count']} pairs)" if isinstance(before[key], dict) else ""
        print(f"{key:18s} {'same' if same[key] else 'DIFFERENT'}{counts}")
    print(f"wrote {RESULTS}")
    if not all(same.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
