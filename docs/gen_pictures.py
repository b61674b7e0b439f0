"""Make the documentation's pictures from a real ``hamkit run`` output folder.

    python docs/gen_pictures.py RUN_DIR               # write docs/images/*.png and docs/images/README.md
    python docs/gen_pictures.py RUN_DIR --out DIR     # somewhere else

``RUN_DIR`` is the ``--out`` folder of ``hamkit run``. The script takes, from that folder:

* ``report.png``: the top of ``report.html``, photographed by headless Chromium (1200 x 1600);
* ``dedup_review.png``: the first duplicate method's review sheet (``dedup/<method>/review.png``);
* ``segmentation_examples.png``: the segmenter's typical test images with both outlines
  (``segmenter/examples.png``);
* ``confusion_matrix.png``: the classifier's test confusion matrix (``classifier/confusion_matrix.png``,
  or drawn from ``classifier/test_predictions.csv`` with hamkit's own plot when the PNG is absent);
* ``training_curves.png``: the classifier's training curves (``classifier/training_curves.png``).

Every picture is reduced to at most ``--max-width`` pixels and a 256-colour palette, so each
stays well under 300 KB. The data folder's path, which the run's header and report show as
given on the command line, is replaced by ``--data-as`` (and the run folder by ``--out-as``) in
the pictures and in ``README.md``, which says which run the pictures come from (date, command,
preset, device, versions) and the numbers they show.

>>> shown_path("hamkit run --data /x/ham --out /tmp/r", {"/x/ham": "data/ham10000", "/tmp/r": "runs/ham"})
'hamkit run --data data/ham10000 --out runs/ham'
>>> shown_path("/x/ham/HAM10000_metadata.csv", {"/x/ham": "data/ham10000"})
'data/ham10000/HAM10000_metadata.csv'
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from hamkit._io import atomic_path, atomic_write_text
from hamkit.errors import DataError

DEFAULT_OUT = Path(__file__).resolve().parent / "images"
WINDOW = (1200, 1600)
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def shown_path(text: str, replacements: Mapping[str, str]) -> str:
    """``text`` with each key of ``replacements`` (a path) replaced by its value, longest first."""
    for old in sorted(replacements, key=len, reverse=True):
        if old:
            text = text.replace(old, replacements[old])
    return text


def compress_png(source: Path, target: Path, max_width: int) -> Path:
    """Write ``source`` to ``target`` at most ``max_width`` wide, as a 256-colour optimised PNG."""
    image = Image.open(source).convert("RGB")
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.Resampling.LANCZOS)
    palette = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    with atomic_path(target) as tmp:
        palette.save(tmp, format="PNG", optimize=True)
    return target


def find_browser(name: str | None) -> str:
    """The Chromium executable: ``name``, or the first of :data:`BROWSERS` on ``PATH``."""
    for candidate in [name] if name else BROWSERS:
        found = shutil.which(candidate)
        if found:
            return found
    raise DataError(f"no Chromium found (tried {', '.join([name] if name else BROWSERS)}): pass --chromium PATH")


def screenshot_report(run_dir: Path, target: Path, browser: str, replacements: Mapping[str, str]) -> Path:
    """Photograph the top of ``run_dir/report.html``, with the paths in ``replacements`` shortened."""
    report = run_dir / "report.html"
    if not report.is_file():
        raise DataError(f"{report} is missing: pass the --out folder of a finished hamkit run")
    text = report.read_text(encoding="utf-8")
    escaped = {html.escape(old, quote=False): html.escape(new, quote=False) for old, new in replacements.items()}
    with tempfile.TemporaryDirectory(prefix="hamkit-pictures-") as folder:
        page = Path(folder) / "report.html"
        page.write_text(shown_path(shown_path(text, replacements), escaped), encoding="utf-8")
        shot = Path(folder) / "report.png"
        command = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            page.as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if not shot.is_file():
            raise DataError(f"{browser} wrote no screenshot of {report}: {done.stderr.strip()[-300:]}")
        return shot.replace(target)


def draw_confusion_matrix(run_dir: Path, target: Path) -> Path:
    """Draw the confusion matrix from ``classifier/test_predictions.csv`` with hamkit's plot."""
    from hamkit.classes import CLASS_CODES
    from hamkit.metrics import classification_report

    predictions = run_dir / "classifier" / "test_predictions.csv"
    if not predictions.is_file():
        raise DataError(f"{predictions} is missing: the run's classifier step did not finish")
    with predictions.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    classes = [name[2:] for name in rows[0] if name.startswith("p_")] if rows else list(CLASS_CODES)
    index = {name: i for i, name in enumerate(classes)}
    report = classification_report(
        [index[r["true"]] for r in rows], [index[r["predicted"]] for r in rows], classes=classes
    )
    return report.plot_confusion_matrix(target)


def first_file(*candidates: Path) -> Path:
    """The first of ``candidates`` that exists."""
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(f"none of {', '.join(str(p) for p in candidates)} exists: is this a finished hamkit run?")


def relative_source(path: Path, run_dir: Path) -> str:
    """Where a picture came from, as the run folder names it.

    >>> relative_source(Path("/r/classifier/training_curves.png"), Path("/r"))
    'classifier/training_curves.png'
    >>> relative_source(Path("/tmp/x/report.png"), Path("/r"))
    'report.html'
    >>> relative_source(Path("/tmp/x/confusion_matrix.png"), Path("/r"))
    'classifier/test_predictions.csv'
    """
    if path.is_relative_to(run_dir):
        return path.relative_to(run_dir).as_posix()
    return {"report.png": "report.html", "confusion_matrix.png": "classifier/test_predictions.csv"}[path.name]


def read_summary(run_dir: Path) -> dict[str, Any]:
    """The ``summary`` part of ``run_dir/summary.json``."""
    path = run_dir / "summary.json"
    if not path.is_file():
        raise DataError(f"{path} is missing: pass the --out folder of a finished hamkit run")
    return json.loads(path.read_text(encoding="utf-8"))["summary"]


def kilobytes(size: int) -> int:
    """``size`` bytes in whole KB (1,024 bytes), rounded."""
    return round(size / 1024)


def describe(
    summary: Mapping[str, Any], replacements: Mapping[str, str], sources: Mapping[str, str], sizes: Mapping[str, int]
) -> str:
    """``README.md`` of the pictures folder: which run made them and the numbers they show.

    ``sources`` names each picture's file in the run folder, ``sizes`` its size in bytes.
    """
    run, data = summary["run"], summary["data"]
    versions = run.get("versions", {})
    method, dedup = next(iter(summary["dedup"].items()))
    clf, seg = summary["classifier"], summary["segmenter"]["summary"]
    raw = clf.get("argmax", {})
    pretrained = run.get("pretrained", {})
    weights = (
        "both models trained from random weights (no download)"
        if not any(pretrained.values())
        else ", ".join(f"{name} {'pretrained' if on else 'from random weights'}" for name, on in pretrained.items())
    )
    data_as = replacements.get(data.get("root", ""), data.get("root", ""))
    lines = [
        "# The documentation's pictures",
        "",
        "<!-- Generated by docs/gen_pictures.py from a hamkit run folder; do not edit by hand. -->",
        "",
        "Made by `python docs/gen_pictures.py RUN_DIR` from one `hamkit run` of the HAM10000 images as "
        "200x150 copies, all "
        f"{data['images']:,} images ({data['lesions']:,} lesions), started {run['started']}:",
        "",
        "```bash",
        shown_path(run["command"], replacements),
        "```",
        "",
        f"Preset `{run['preset']}`, device {run['device']}, hamkit {versions.get('hamkit', '?')}, torch "
        f"{versions.get('torch', '?')}; {weights}. The data folder is shown as `{data_as}`.",
        "",
        "| picture | from the run folder | shows | size |",
        "|---|---|---|---|",
    ]
    shows = {
        "report.png": "the top of the report: run header, dataset, the start of the duplicates",
        "dedup_review.png": f"the {method} pairs nearest the threshold {dedup['threshold']} ({dedup['pairs']} pairs "
        f"in {dedup['groups']} groups, {dedup['removed']} images to remove)",
        "segmentation_examples.png": f"typical test images (mean Dice {seg['mean_dice']:.3f}, thresholded Jaccard "
        f"{seg['thresholded_jaccard']:.3f} on {seg['n_images']:,} test images)",
        "confusion_matrix.png": f"{clf['n_samples']:,} test images, rows normalised (balanced accuracy "
        f"{clf['balanced_accuracy']:.3f}; raw argmax {raw.get('balanced_accuracy', float('nan')):.3f})",
        "training_curves.png": "the classifier's loss and validation metrics per epoch, the kept epoch marked",
    }
    for name, source in sources.items():
        lines.append(f"| `{name}` | `{source}` | {shows[name]} | {kilobytes(sizes[name])} KB |")
    lines.append("")
    return "\n".join(lines)


def make_pictures(
    run_dir: Path,
    out: Path,
    *,
    browser: str | None = None,
    data_as: str = "data/ham10000",
    out_as: str = "runs/ham10000",
    max_width: int = 1000,
) -> dict[str, int]:
    """Write the pictures and ``README.md`` into ``out``; return each picture's size in bytes."""
    run_dir = run_dir.resolve()
    summary = read_summary(run_dir)
    command = summary["run"]["command"].split()
    given_out = command[command.index("--out") + 1] if "--out" in command[:-1] else str(run_dir)
    replacements = {summary["data"]["root"]: data_as, given_out: out_as, str(run_dir): out_as}
    method = next(iter(summary["dedup"]))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hamkit-pictures-") as folder:
        work = Path(folder)
        confusion = run_dir / "classifier" / "confusion_matrix.png"
        paths = {
            "report.png": screenshot_report(run_dir, work / "report.png", find_browser(browser), replacements),
            "dedup_review.png": first_file(
                run_dir / "dedup" / method / "review.png", run_dir / "figures" / f"duplicates_{method}.png"
            ),
            "segmentation_examples.png": first_file(
                run_dir / "segmenter" / "examples.png", run_dir / "figures" / "segmenter_examples.png"
            ),
            "confusion_matrix.png": confusion
            if confusion.is_file()
            else draw_confusion_matrix(run_dir, work / "confusion_matrix.png"),
            "training_curves.png": first_file(
                run_dir / "classifier" / "training_curves.png", run_dir / "figures" / "classifier_training_curves.png"
            ),
        }
        sources = {name: relative_source(path, run_dir) for name, path in paths.items()}
        sizes = {name: compress_png(path, out / name, max_width).stat().st_size for name, path in paths.items()}
    atomic_write_text(out / "README.md", describe(summary, replacements, sources, sizes))
    return sizes


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python docs/gen_pictures.py RUN_DIR [--out DIR]``."""
    parser = argparse.ArgumentParser(description="Make the documentation's pictures from a hamkit run folder.")
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the --out folder of a finished hamkit run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write (default: docs/images)")
    parser.add_argument("--chromium", default=None, help="the Chromium executable (default: found on PATH)")
    parser.add_argument("--data-as", default="data/ham10000", help="the data path to show (default: data/ham10000)")
    parser.add_argument("--out-as", default="runs/ham10000", help="the run path to show (default: runs/ham10000)")
    parser.add_argument("--max-width", type=int, default=1000, help="widest picture in pixels (default: 1000)")
    args = parser.parse_args(argv)
    try:
        sizes = make_pictures(
            args.run_dir,
            args.out,
            browser=args.chromium,
            data_as=args.data_as,
            out_as=args.out_as,
            max_width=args.max_width,
        )
    except DataError as error:
        print(f"gen_pictures: error: {error}", file=sys.stderr)
        return 1
    for name, size in sizes.items():
        print(f"{args.out / name}  {size / 1024:.0f} KB")
    print(f"total {sum(sizes.values()) / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
