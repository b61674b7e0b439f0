"""Operating points and subgroups of a trained ``hamkit run`` classifier on its test split.

Copies the saved classifier and the split of a ``hamkit run`` folder (the run folder is only
read), then does what a user would:

1. ``hamkit evaluate MODEL --data DATA --split-csv SPLIT --out OUT``: the saved decision at a
   glance, the operating points of every class, the subgroup tables (sex, age band, body site,
   ``dx_type``) with lesion-bootstrap intervals;
2. ``hamkit calibrate MODEL ... --operating-point mel:sensitivity=0.90`` on the validation split,
   then ``hamkit evaluate`` of that model: what the stated operating point gives on test.

Writes ``benchmarks/results/evaluation_real.json`` with the commit, command, date and machine;
``docs/gen_benchmarks.py`` renders it into docs/benchmarks.md:

    python benchmarks/evaluation_real.py --run RUN_DIR --data ham10000-200px
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _shared import provenance

HERE = Path(__file__).resolve().parent
TARGET = "mel:sensitivity=0.90"
KEEP = ("n_samples", "test_lesions", "at_a_glance", "operating_points", "subgroups", "decision", "mistakes")


def _hamkit(*args: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "hamkit", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"hamkit {' '.join(args)} failed:\n{done.stderr}")
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a hamkit run folder (classifier/model, split.csv)")
    parser.add_argument("--data", type=Path, required=True, help="the data folder the run used")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "evaluation_real.json")
    parser.add_argument("--note", default="", help="a line on where the run folder came from, kept in the results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hamkit-bench-") as folder:
        work = Path(folder)
        model, split = work / "model", work / "split.csv"
        shutil.copytree(args.run / "classifier" / "model", model)
        shutil.copyfile(args.run / "split.csv", split)
        common = ["--data", str(args.data), "--split-csv", str(split), "--device", args.device, "--quiet"]
        config = json.loads((model / "config.json").read_text())
        if config.get("lesion_crop"):  # a classifier of lesion crops takes the run's segmenter along
            common += ["--segmenter", str(args.run / "segmenter" / "model")]
        seconds, _ = _hamkit("evaluate", str(model), *common, "--out", str(work / "saved"))
        saved = json.loads((work / "saved" / "report.json").read_text())
        print(f"hamkit evaluate of the saved model: {seconds:.0f} s")
        _hamkit("calibrate", str(model), *common, "--operating-point", TARGET, "--out", str(work / "at-target"))
        point_seconds, _ = _hamkit("evaluate", str(work / "at-target"), *common, "--out", str(work / "at-target-eval"))
        at_target = json.loads((work / "at-target-eval" / "report.json").read_text())
        card = json.loads((work / "saved" / "model_card.json").read_text())
    found = {
        "benchmark": "evaluation_real",
        "run": "the cpu preset's full run (hamkit run --data ham10000-200px)",
        "hamkit_command": "hamkit evaluate run/classifier/model --data ham10000-200px --split-csv run/split.csv "
        + ("--segmenter run/segmenter/model " if "--segmenter" in common else "")
        + "--out OUT",
        "operating_point_command": f"hamkit calibrate run/classifier/model --data ham10000-200px --split-csv "
        f"run/split.csv {'--segmenter run/segmenter/model ' if '--segmenter' in common else ''}"
        f"--operating-point {TARGET} --out MODEL2, then hamkit evaluate MODEL2",
        "evaluate_seconds": seconds,
        "evaluate_at_target_seconds": point_seconds,
        "timing_note": "machine shared with other jobs; wall times are upper bounds",
        "note": args.note,
        "saved": {k: saved[k] for k in KEEP if k in saved},
        "at_target": {k: at_target[k] for k in KEEP if k in at_target},
        "card_licence": card["licence"],
        "card_evaluated_on": card.get("evaluated_on"),
        **provenance(),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(found, indent=1) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
