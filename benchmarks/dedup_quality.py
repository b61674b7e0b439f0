"""Duplicate-detection quality of hamkit's Deduplicator against planted duplicates, next to imagededup.

Two test sets, each with known duplicates:

* ``real``: the 75 HAM10000 sample images (600x450 JPEGs, 75 different lesions; ``--data``)
  plus planted copies of some of them, ``--copies`` per kind, each kind's sources drawn
  independently (so some images get several copies):
  ``exact`` (byte copy), ``reencoded`` (JPEG quality 70..95), ``resized`` (0.5x and back up,
  or saved at 0.5x), ``cropped`` (2..5 % off each side, resized back), ``brightness``
  (PIL brightness x0.9 or x1.1). Copies other than ``exact`` are saved as JPEG (quality 90
  unless stated).
* ``synthetic``: :func:`hamkit.synthetic.make_synthetic` (its own planted duplicates of the same
  five kinds, listed in ``duplicates_groundtruth.csv``; brightness is an additive shift of 6..16
  grey levels, crops 2..7 %). Its lesions have 1..3 *different* photos each (shifted, rotated,
  relit): those are not planted duplicates, and pairs of them are counted as false positives
  but also shown apart (column ``FP same lesion``).

Ground truth: a planted copy and its original are duplicates, and so are copies of the same
original with each other (transitive). Found pairs: the pairs in the same *group*, i.e. the
transitive closure (connected components) of the pairs a method reports, as hamkit's default
``group_mode="connected"`` does; imagededup's per-image lists get the same closure. Precision =
found pairs that are true / found pairs; recall = true pairs found / true pairs. Recall per kind:
share of the planted copies of that kind that end up in their original's group.

hamkit runs through its public API: ``Deduplicator(method).find(paths)`` for the hashes (once
with threshold 64, which returns every pair with its Hamming distance, so that the sweep filters
the scores; checked against a run at the default threshold) and ``exact``;
``Deduplicator(CnnMethod(..., pretrained=False)).embed(paths)`` for the CNN, whose cosine similarities
are then thresholded. By default the CNNs have **random weights** (pretrained weights cannot
be downloaded where this was written); users get ``pretrained=True``, whose similarities are
distributed quite differently, so those rows do not say how well the CNN method works for them.
With ``--pretrained`` (needs the weights: internet or a filled torch hub cache) both hamkit's
and imagededup's CNNs use their upstream ImageNet weights instead: run that to choose the CNN
threshold. imagededup runs ``PHash()/DHash()/CNN().find_duplicates(image_dir=...)`` at its
defaults (max distance 10; min similarity 0.9); its random-weight CNN is its own MobileNetV3-small
wrapper built while ``torchvision.models.mobilenet_v3_small`` ignores ``weights=``.

    python benchmarks/dedup_quality.py [--data FOLDER] [--copies 12] [--random-state 0] [--pretrained]
                                       [--synthetic-lesions 200] [--skip-imagededup] [--skip-cnn]
                                       [--backbones timm:tf_efficientnet_lite0 ...]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _shared import random_torchvision_mobilenet
from PIL import Image, ImageEnhance

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ham10000-sample"
KINDS: tuple[str, ...] = ("exact", "reencoded", "resized", "cropped", "brightness")
HASH_SWEEP: tuple[int, ...] = tuple(range(13))
CNN_SWEEP: tuple[float, ...] = (0.90, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)
CNN_BACKBONES: tuple[str, ...] = ("mobilenet_v2", "mobilenet_v3_small")
JPEG_QUALITY = 90


@dataclass
class TestSet:
    """Images with planted duplicates.

    Attributes:
        name: A label for the tables.
        folder: Flat folder holding exactly ``paths``.
        paths: The images, in the order the arrays below use.
        group: Ground-truth duplicate group of each image (an original and its copies share one).
        kind: ``"original"`` or the kind of planted copy, per image.
        source: Index of the image a copy was made from (-1 for originals).
        lesion: Lesion label per image (a copy gets its source's); pairs of different photos
            of one lesion are not planted duplicates but are reported apart.
    """

    name: str
    folder: Path
    paths: list[Path]
    group: np.ndarray
    kind: np.ndarray
    source: np.ndarray
    lesion: np.ndarray

    @property
    def n(self) -> int:
        """Number of images."""
        return len(self.paths)

    def describe(self) -> str:
        """One line: images, originals, copies per kind, true pairs."""
        counts = ", ".join(f"{k} {int(np.sum(self.kind == k))}" for k in KINDS)
        iu = np.triu_indices(self.n, 1)
        true_pairs = int(np.sum(self.group[iu[0]] == self.group[iu[1]]))
        lesion_pairs = int(
            np.sum((self.lesion[iu[0]] == self.lesion[iu[1]]) & (self.group[iu[0]] != self.group[iu[1]]))
        )
        return (
            f"{self.name}: {self.n} images, {int(np.sum(self.source < 0))} originals, planted copies: {counts}; "
            f"{true_pairs} true pairs; {lesion_pairs} pairs of different photos of one lesion"
        )


# ---------------------------------------------------------------------------------------------- test sets
def _save_jpeg(image: Image.Image, path: Path, quality: int = JPEG_QUALITY) -> None:
    image.save(path, format="JPEG", quality=quality)


def plant_copy(kind: str, original: Path, target: Path, rng: np.random.Generator, index: int) -> str:
    """Write a planted copy of ``original`` to ``target``; returns a short description of it.

    Args:
        kind: One of :data:`KINDS`.
        original: The source image.
        target: Where to write the copy (a ``.jpg``).
        rng: Source of the random parameters.
        index: The copy's number within its kind (alternates the variants of ``resized`` and
            the sign of ``brightness``).

    Returns:
        The parameters used, e.g. ``"q=83"``.

    Raises:
        ValueError: Unknown kind.
    """
    if kind == "exact":
        shutil.copyfile(original, target)
        return "byte copy"
    image = Image.open(original).convert("RGB")
    width, height = image.size
    if kind == "reencoded":
        quality = int(rng.integers(70, 96))
        _save_jpeg(image, target, quality)
        return f"q={quality}"
    if kind == "resized":
        half = image.resize((width // 2, height // 2), Image.Resampling.BILINEAR)
        if index % 2 == 0:
            _save_jpeg(half.resize((width, height), Image.Resampling.BICUBIC), target)
            return "0.5x and back"
        _save_jpeg(half, target)
        return "saved at 0.5x"
    if kind == "cropped":
        left, top, right, bottom = rng.uniform(0.02, 0.05, 4)
        box = (left * width, top * height, width - right * width, height - bottom * height)
        _save_jpeg(image.resize((width, height), Image.Resampling.BICUBIC, box=box), target)
        return "crop " + "/".join(f"{v:.1%}" for v in (left, top, right, bottom))
    if kind == "brightness":
        factor = 1.1 if index % 2 == 0 else 0.9
        _save_jpeg(ImageEnhance.Brightness(image).enhance(factor), target)
        return f"x{factor}"
    raise ValueError(f"unknown kind {kind!r}")


def real_test_set(images: Path, folder: Path, copies: int, random_state: int, metadata: Path | None) -> TestSet:
    """The real images plus ``copies`` planted copies per kind (see the module docstring).

    Args:
        images: Folder of the original images.
        folder: Empty folder to write the test set to.
        copies: Planted copies per kind (at most the number of originals).
        random_state: Random state.
        metadata: ``HAM10000_metadata.csv`` for lesion ids, or ``None`` (every image its own lesion).

    Returns:
        The test set.
    """
    originals = sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    lesion_of: dict[str, str] = {}
    if metadata is not None and metadata.is_file():
        with metadata.open(newline="") as handle:
            lesion_of = {row["image_id"]: row["lesion_id"] for row in csv.DictReader(handle)}
    rng = np.random.default_rng(random_state)
    paths, kind, source = [], [], []
    for original in originals:
        target = folder / original.name
        shutil.copyfile(original, target)
        paths.append(target)
        kind.append("original")
        source.append(-1)
    for kind_name in KINDS:
        for k, s in enumerate(rng.choice(len(originals), min(copies, len(originals)), replace=False).tolist()):
            target = folder / f"copy_{kind_name}_{k:02d}_{originals[s].stem}.jpg"
            plant_copy(kind_name, originals[s], target, rng, k)
            paths.append(target)
            kind.append(kind_name)
            source.append(s)
    source_arr = np.array(source)
    group = np.where(source_arr < 0, np.arange(len(paths)), source_arr)
    stems = [originals[g].stem for g in group]
    lesions = np.unique([lesion_of.get(stem, stem) for stem in stems], return_inverse=True)[1]
    return TestSet("real", folder, paths, group, np.array(kind), source_arr, lesions)


def synthetic_test_set(root: Path, folder: Path, n_lesions: int, random_state: int) -> TestSet:
    """:func:`hamkit.synthetic.make_synthetic` at 600x450, its images copied flat into ``folder``.

    Args:
        root: Empty folder for the synthetic dataset.
        folder: Empty folder for the flat copy of its images.
        n_lesions: Lesions to draw.
        random_state: Random state.

    Returns:
        The test set (ground truth from ``duplicates_groundtruth.csv``, made transitive).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from hamkit.synthetic import make_synthetic

    ds = make_synthetic(
        root, n_lesions=n_lesions, random_state=random_state, image_size=(600, 450), duplicate_fraction=0.15
    )
    files = sorted((p for d in ds.image_dirs for p in d.glob("*.jpg")), key=lambda p: p.name)
    paths = []
    for file in files:
        shutil.copyfile(file, folder / file.name)
        paths.append(folder / file.name)
    index = {p.stem: i for i, p in enumerate(paths)}
    with ds.duplicates_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    with ds.metadata_csv.open(newline="") as handle:
        lesion_of = {row["image_id"]: row["lesion_id"] for row in csv.DictReader(handle)}
    kind = np.full(len(paths), "original", dtype=object)
    source = np.full(len(paths), -1)
    for row in rows:
        kind[index[row["image_id"]]] = row["kind"]
        source[index[row["image_id"]]] = index[row["duplicate_of"]]
    copies = np.flatnonzero(source >= 0)
    graph = coo_matrix((np.ones(len(copies)), (copies, source[copies])), shape=(len(paths), len(paths)))
    group = connected_components(graph, directed=False)[1]
    root_of = np.array([i if source[i] < 0 else source[i] for i in range(len(paths))])
    while np.any(source[root_of] >= 0):  # a copy of a copy: follow to the original
        root_of = np.where(source[root_of] >= 0, source[root_of], root_of)
    lesions = np.unique([lesion_of[paths[r].stem] for r in root_of], return_inverse=True)[1]
    return TestSet("synthetic", folder, paths, group, kind.astype(str), source, lesions)


# ---------------------------------------------------------------------------------------------- scoring
@dataclass
class Score:
    """Quality of one method at one threshold on one test set."""

    method: str
    threshold: str
    found: int
    true_found: int
    fp_same_lesion: int
    precision: float
    recall: float
    kind_recall: dict[str, float]
    fp_rate: float


def groups_of(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected-component label of each of ``n`` items linked by the pairs ``(i, j)``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def score(ts: TestSet, method: str, threshold: str, i: np.ndarray, j: np.ndarray) -> Score:
    """Precision / recall of the groups the pairs ``(i, j)`` form, against the ground truth.

    ``fp_rate`` is per *direct* pair, not per group: the share of unrelated pairs (different
    group and different lesion) that the method itself reports; about ``fp_rate * N**2 / 2``
    false pairs are then expected among ``N`` unrelated images.
    """
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    labels = groups_of(ts.n, i, j)
    a, b = np.triu_indices(ts.n, 1)
    lo, hi = np.unique(np.stack([np.minimum(i, j), np.maximum(i, j)], axis=1), axis=0).reshape(-1, 2).T
    unrelated = (ts.group[a] != ts.group[b]) & (ts.lesion[a] != ts.lesion[b])
    direct_fp = int(np.sum((ts.group[lo] != ts.group[hi]) & (ts.lesion[lo] != ts.lesion[hi])))
    found = labels[a] == labels[b]
    truth = ts.group[a] == ts.group[b]
    same_lesion = ts.lesion[a] == ts.lesion[b]
    tp = int(np.sum(found & truth))
    copies = np.flatnonzero(ts.source >= 0)
    hit = labels[copies] == labels[ts.source[copies]]
    kind_recall = {
        k: float(np.mean(hit[ts.kind[copies] == k])) if np.any(ts.kind[copies] == k) else float("nan") for k in KINDS
    }
    n_found = int(found.sum())
    return Score(
        method,
        threshold,
        n_found,
        tp,
        int(np.sum(found & ~truth & same_lesion)),
        tp / n_found if n_found else float("nan"),
        tp / int(truth.sum()),
        kind_recall,
        direct_fp / max(1, int(unrelated.sum())),
    )


def all_pairs_distance(ts: TestSet, method: str) -> np.ndarray:
    """Hamming distance of every pair (upper triangle order), from ``Deduplicator.find``."""
    from hamkit.dedup.deduplicator import Deduplicator

    result = Deduplicator(method, threshold=64, progress=False).find(ts.paths)
    assert result is not None and not result.skipped, "unreadable test images"
    distance = np.full((ts.n, ts.n), 65, dtype=np.int32)
    distance[result.pairs.i, result.pairs.j] = result.pairs.score
    default = Deduplicator(method, progress=False).find(ts.paths)
    assert default is not None
    within = np.argwhere(np.triu(distance <= default.threshold, 1))
    found = set(zip(default.pairs.i.tolist(), default.pairs.j.tolist()))
    if found != set(map(tuple, within.tolist())):
        raise SystemExit(f"{method}: pairs at the default threshold differ from the filtered threshold-64 run")
    return distance


def cnn_similarity(ts: TestSet, backbone: str, pretrained: bool) -> np.ndarray:
    """Cosine similarity matrix of hamkit's CNN embeddings (random weights unless ``pretrained``)."""
    from hamkit.dedup.deduplicator import Deduplicator
    from hamkit.dedup.methods import CnnMethod

    dedup = Deduplicator(CnnMethod(backbone=backbone, pretrained=pretrained), cache_dir=False, progress=False)
    embeddings = dedup.embed(ts.paths)
    return embeddings @ embeddings.T


def sweep(
    ts: TestSet,
    name: str,
    matrix: np.ndarray,
    thresholds: tuple[float, ...],
    keep: Callable[[np.ndarray, float], np.ndarray],
) -> list[Score]:
    """Scores of a pairwise score ``matrix`` at each threshold (``keep`` says which pairs pass)."""
    rows = []
    for t in thresholds:
        i, j = np.nonzero(np.triu(keep(matrix, t), 1))
        rows.append(score(ts, name, f"{t:g}", i, j))
    return rows


def separation(ts: TestSet, matrix: np.ndarray, higher_is_closer: bool) -> str:
    """Worst planted pair vs closest unrelated pair (different group and lesion), per kind."""
    sign = 1 if higher_is_closer else -1
    a, b = np.triu_indices(ts.n, 1)
    values = matrix[a, b]
    unrelated = (ts.group[a] != ts.group[b]) & (ts.lesion[a] != ts.lesion[b])
    closest_unrelated = sign * np.max(sign * values[unrelated])
    copies = np.flatnonzero(ts.source >= 0)
    direct = matrix[np.minimum(copies, ts.source[copies]), np.maximum(copies, ts.source[copies])]
    worst = {k: sign * np.min(sign * direct[ts.kind[copies] == k]) for k in KINDS if np.any(ts.kind[copies] == k)}
    q = np.quantile(values[unrelated], 0.999 if higher_is_closer else 0.001)
    fmt = (lambda v: f"{v:.4f}") if higher_is_closer else (lambda v: f"{int(v)}")
    return (
        "worst planted copy per kind: "
        + ", ".join(f"{k} {fmt(v)}" for k, v in worst.items())
        + f"; closest unrelated pair {fmt(closest_unrelated)} (0.1% quantile of unrelated: {fmt(q)})"
    )


# ---------------------------------------------------------------------------------------------- imagededup
def imagededup_scores(ts: TestSet, with_cnn: bool, pretrained: bool) -> list[Score]:
    """imagededup's PHash, DHash (max distance 10) and CNN (min similarity 0.9) at their defaults."""
    import torch
    from imagededup.methods import CNN, DHash, PHash

    index = {p.name: k for k, p in enumerate(ts.paths)}
    methods: list[tuple[str, str, Callable[[], dict[str, list[str]]]]] = [
        ("imagededup PHash", "10", lambda: PHash(verbose=False).find_duplicates(image_dir=ts.folder)),
        ("imagededup DHash", "10", lambda: DHash(verbose=False).find_duplicates(image_dir=ts.folder)),
    ]
    if with_cnn:

        def cnn() -> dict[str, list[str]]:
            torch.manual_seed(0)
            with contextlib.nullcontext() if pretrained else random_torchvision_mobilenet():
                model = CNN(verbose=False)
            return model.find_duplicates(image_dir=ts.folder)

        weights = "pretrained" if pretrained else "random"
        methods.append((f"imagededup CNN ({weights} mnv3-small)", "0.9", cnn))
    out = []
    for name, threshold, run in methods:
        duplicates = run()
        pairs = np.array(
            [(index[a], index[b]) for a, found in duplicates.items() for b in found], dtype=np.int64
        ).reshape(-1, 2)
        out.append(score(ts, name, threshold, pairs[:, 0], pairs[:, 1]))
    return out


# ---------------------------------------------------------------------------------------------- tables
def _pct(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.0%}" if value in (0.0, 1.0) else f"{value:.1%}"


def _rate(value: float) -> str:
    return "0" if value == 0 else f"{value:.2e}"


def table(scores: list[Score], with_method: bool = True) -> str:
    """Markdown table of scores."""
    head = (["method"] if with_method else []) + [
        "threshold",
        "found pairs",
        "true",
        "FP same lesion",
        "precision",
        "recall",
        *[f"R {k}" for k in KINDS],
        "unrelated pairs matched",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * (len(head) - len(KINDS) - 6) + "---:|" * (len(KINDS) + 6)]
    for s in scores:
        cells = ([s.method] if with_method else []) + [
            s.threshold,
            str(s.found),
            str(s.true_found),
            str(s.fp_same_lesion),
            _pct(s.precision),
            _pct(s.recall),
            *[_pct(s.kind_recall[k]) for k in KINDS],
            _rate(s.fp_rate),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate(ts: TestSet, args: argparse.Namespace) -> None:
    """Print every table for one test set."""
    from hamkit.dedup.deduplicator import DEFAULT_THRESHOLDS, Deduplicator

    print(f"\n## {ts.describe()}\n")
    at_default: list[Score] = []
    sweeps: list[tuple[str, list[Score], str]] = []
    for method in ("phash", "dhash"):
        distance = all_pairs_distance(ts, method)
        default = int(DEFAULT_THRESHOLDS[method])  # type: ignore[arg-type]
        rows = sweep(ts, f"hamkit {method}", distance, HASH_SWEEP, lambda m, t: m <= t)
        at_default.append(next(r for r in rows if r.threshold == str(default)))
        sweeps.append(
            (
                f"hamkit {method} (max Hamming distance; default {default})",
                rows,
                separation(ts, distance, higher_is_closer=False),
            )
        )
    exact = Deduplicator("exact", progress=False).find(ts.paths)
    assert exact is not None
    at_default.append(score(ts, "hamkit exact", "-", exact.pairs.i, exact.pairs.j))
    if not args.skip_cnn:
        for backbone in args.backbones:
            similarity = cnn_similarity(ts, backbone, args.pretrained)
            name = f"hamkit cnn {backbone} ({'pretrained' if args.pretrained else 'random'} weights)"
            rows = sweep(ts, name, similarity, CNN_SWEEP, lambda m, t: m >= t - 1e-7)
            at_default.append(next(r for r in rows if r.threshold == f"{DEFAULT_THRESHOLDS['cnn']:g}"))
            sweeps.append(
                (
                    f"{name} (min cosine similarity; default {DEFAULT_THRESHOLDS['cnn']})",
                    rows,
                    separation(ts, similarity, higher_is_closer=True),
                )
            )
    if not args.skip_imagededup:
        at_default.extend(imagededup_scores(ts, with_cnn=not args.skip_cnn, pretrained=args.pretrained))
    print(f"### {ts.name}: each method at its default threshold\n")
    print(table(at_default))
    if not args.skip_cnn and not args.skip_imagededup and not args.pretrained:
        print(
            "\nimagededup CNN with random weights: its features have L2 norms ~1e-7, below the cut-off under "
            "which sklearn's cosine_similarity treats a norm as zero (10 x float32 eps), so the rows are not "
            "normalised, every similarity comes out ~1e-13 and no pair passes 0.9: an artefact of random weights."
        )
    for title, rows, note in sweeps:
        print(f"\n### {ts.name}: {title}\n")
        print(table(rows, with_method=False))
        print(f"\n{note}")


def main() -> None:
    """Build both test sets in a temporary folder and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED / "images", help="folder of real images")
    parser.add_argument(
        "--metadata",
        type=Path,
        default=SHARED / "HAM10000_metadata.csv",
        help="HAM10000_metadata.csv for lesion ids (optional)",
    )
    parser.add_argument("--copies", type=int, default=12, help="planted copies per kind in the real set (default 12)")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--synthetic-lesions", type=int, default=200)
    parser.add_argument("--skip-imagededup", action="store_true")
    parser.add_argument(
        "--backbones",
        nargs="+",
        default=list(CNN_BACKBONES),
        help="hamkit CNN backbones to measure (e.g. timm:tf_efficientnet_lite0, whose ImageNet weights are installed)",
    )
    parser.add_argument("--skip-cnn", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument(
        "--pretrained",
        action="store_true",
        help="CNNs with upstream pretrained weights (downloads them) instead of random ones",
    )
    args = parser.parse_args()

    import torch

    logging.disable(logging.INFO)  # imagededup logs every call at INFO level
    print(
        f"# {os.cpu_count()} CPUs, torch {torch.__version__}; hamkit thresholds swept: hashes "
        f"{HASH_SWEEP[0]}..{HASH_SWEEP[-1]}, cnn {', '.join(map(str, CNN_SWEEP))}"
    )
    with tempfile.TemporaryDirectory(prefix="dedup_quality_") as tmp:
        tmp_path = Path(tmp)
        if args.data.is_dir():
            (tmp_path / "real").mkdir()
            evaluate(real_test_set(args.data, tmp_path / "real", args.copies, args.random_state, args.metadata), args)
        else:
            print(f"\n## real: skipped, {args.data} is absent (pass --data FOLDER)")
        if not args.skip_synthetic:
            (tmp_path / "synthetic").mkdir()
            evaluate(
                synthetic_test_set(
                    tmp_path / "synthetic_src", tmp_path / "synthetic", args.synthetic_lesions, args.random_state
                ),
                args,
            )


if __name__ == "__main__":
    from _shared import recorded

    with recorded():  # --results FILE: also save the output, with its provenance, as JSON
        main()
