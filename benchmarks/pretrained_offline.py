"""Random initialisation against the offline ImageNet weights: the same network, split, random state and
epochs, side by side.

Each arm runs ``benchmarks/cpu_preset.py`` in its own process (so its time and memory are its
own) on the real images, with the recipe of the ``cpu`` preset of ``hamkit run``; the arms differ
only in where the network's weights start: random numbers, or the EfficientNet-Lite0 ImageNet
weights installed with hamkit. Both train for the same number of epochs, so they cost the same
time. The table prints the test metrics of the raw argmax and of the calibrated decision rule,
and the ratio of their seconds; every row is written to ``benchmarks/results/pretrained_offline.json``
with the commit, command, date and machine.

    python benchmarks/pretrained_offline.py --data ../shared/data/ham10000-200px
    python benchmarks/pretrained_offline.py --data ... --reuse /tmp/sizing.jsonl  # rows already run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "pretrained_offline.json"


def preset_flags() -> list[str]:
    """The ``cpu`` preset's classifier recipe as ``cpu_preset.py`` flags."""
    from hamkit.pipeline.config import load_config

    section = load_config(preset="cpu")["classifier"]
    return [
        "--backbone",
        section["backbone"],
        "--image-size",
        str(section["image_size"]),
        "--epochs",
        str(section["epochs"]),
        "--batch-size",
        str(section["batch_size"]),
        "--lr",
        str(section["lr"]),
        "--optimizer",
        section["optimizer"],
        "--weight-decay",
        str(section["weight_decay"]),
        "--augment",
        section["augment"],
        "--warmup-epochs",
        str(section["warmup_epochs"]),
    ]


def run_arm(data: Path, flags: list[str], pretrained: bool) -> dict[str, Any]:
    """Train one arm in a child process and return its JSON row."""
    command = [sys.executable, str(HERE / "cpu_preset.py"), "--data", str(data), *flags]
    if pretrained:
        command.append("--pretrained")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    rows = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not rows:
        raise SystemExit(f"arm failed (rc {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(rows[-1])


def same_recipe(row: dict[str, Any], flags: list[str]) -> bool:
    """Whether a row from an earlier run used these flags."""
    wanted = dict(zip(flags[::2], flags[1::2], strict=True))
    return all(str(row.get(k.lstrip("-").replace("-", "_"))) == v for k, v in wanted.items())


def table(rows: list[dict[str, Any]]) -> str:
    """The side-by-side table (markdown)."""
    names = ("balanced_accuracy", "macro_f1", "melanoma_sensitivity", "macro_auc")
    lines = [
        "| weights | s/epoch | ratio | raw: bal. acc / macro F1 / mel. sens. / AUC "
        "| decision rule: bal. acc / macro F1 / mel. sens. | ECE before -> after |",
        "|---|---|---|---|---|---|",
    ]
    reference = rows[0]["s_per_epoch"]
    for row in rows:
        raw = " / ".join(f"{row[n]:.3f}" for n in names)
        tuned = " / ".join(f"{row['tuned_' + n]:.3f}" for n in names[:3])
        weights = "ImageNet (installed)" if row["pretrained"] else "random"
        lines.append(
            f"| {weights} | {row['s_per_epoch']:.0f} | {row['s_per_epoch'] / reference:.2f} | {raw} | {tuned} "
            f"| {row['ece_before']:.3f} -> {row['ece_after']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="HAM10000 folder (official layout)")
    parser.add_argument("--reuse", type=Path, help="a JSON-lines file of cpu_preset.py rows to take arms from")
    args = parser.parse_args()
    flags = preset_flags()
    earlier = []
    if args.reuse and args.reuse.is_file():
        earlier = [json.loads(line) for line in args.reuse.read_text().splitlines() if line.strip()]
    rows = []
    for pretrained in (False, True):
        found = [r for r in earlier if r.get("pretrained") == pretrained and same_recipe(r, flags)]
        rows.append(found[-1] if found else run_arm(args.data, flags, pretrained))
    print(table(rows))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"benchmark": "pretrained_offline", "rows": rows}, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
