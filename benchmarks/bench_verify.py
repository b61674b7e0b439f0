"""What verifying one candidate pair costs, against matching every keypoint at once.

Decodes ``--images`` real images (default: the first 2,000 HAM10000 200x150 copies), builds the
``verified`` method's candidates (10 per image), and times, on one thread, per candidate pair:

* hamkit's two-stage verification (:func:`hamkit.dedup.verify.verify_pair`: a quick match of the
  200 strongest keypoints rejects most pairs; the rest get the full match and the aligned
  comparison), split into rejected and accepted pairs;
* the reference: the full cross-checked match of all (up to 500) keypoints and RANSAC for every
  pair, without the quick stage (what a plain keypoint verifier does), followed by the same
  aligned comparison where the full match passes.

Both run in this process on the same pairs, alternating in rounds.

    python benchmarks/bench_verify.py [--data FOLDER] [--images 2000] [--pairs 3000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ham10000-200px"


def main() -> dict[str, float]:
    """Time both verifiers on the same candidate pairs and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import cv2

    from hamkit.dedup import verify
    from hamkit.dedup.candidates import candidate_pairs
    from hamkit.dedup.scenes import Scene

    cv2.setNumThreads(1)
    paths = sorted(args.data.glob("HAM10000_images_part_*/*.jpg"))[: args.images]
    scenes = [Scene.from_path(p) for p in paths]
    found = candidate_pairs(np.stack([s.thumb for s in scenes]), k=10)
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(found), min(args.pairs, len(found)), replace=False))
    pairs = [(int(found.i[p]), int(found.j[p]), bool(found.mirrored[p])) for p in pick]

    def features(b: int, mirrored: bool) -> verify.SceneFeatures:
        return scenes[b].mirror_features if mirrored else scenes[b].features

    def two_stage() -> tuple[list[float], list[float]]:
        times, scores = [], []
        for a, b, mirrored in pairs:
            start = time.perf_counter()
            score, _ = verify.verify_pair(
                scenes[a].gray, scenes[a].features, scenes[b].gray, features(b, mirrored), mirrored=mirrored
            )
            times.append(time.perf_counter() - start)
            scores.append(score)
        return times, scores

    def full_match() -> list[float]:
        times = []
        for a, b, mirrored in pairs:
            start = time.perf_counter()
            transform, count = verify._fit(scenes[a].features, features(b, mirrored), None, 1000)
            if transform is not None and count >= verify.MIN_INLIERS:
                gray_b = np.ascontiguousarray(scenes[b].gray[:, ::-1]) if mirrored else scenes[b].gray
                verify.aligned_similarity(scenes[a].gray, gray_b, transform)
            times.append(time.perf_counter() - start)
        return times

    best_two, best_full, scores = None, None, None
    for _ in range(args.rounds):
        times, scores = two_stage()
        best_two = times if best_two is None or sum(times) < sum(best_two) else best_two
        times = full_match()
        best_full = times if best_full is None or sum(times) < sum(best_full) else best_full
    assert best_two is not None and best_full is not None and scores is not None
    two, full, kept = np.array(best_two), np.array(best_full), np.array(scores) >= 0.5
    print(
        f"{len(paths)} images, {len(found)} candidate pairs, {len(pairs)} timed ({kept.sum()} verified "
        f"at 0.5), 1 thread, best of {args.rounds}"
    )
    print("| verifier | ms per pair (all) | rejected | verified |")
    print("|---|---|---|---|")
    print(
        f"| hamkit two-stage | {two.mean() * 1e3:.2f} | {two[~kept].mean() * 1e3:.2f} | "
        f"{two[kept].mean() * 1e3 if kept.any() else float('nan'):.2f} |"
    )
    print(
        f"| full match of every keypoint (reference) | {full.mean() * 1e3:.2f} | {full[~kept].mean() * 1e3:.2f} | "
        f"{full[kept].mean() * 1e3 if kept.any() else float('nan'):.2f} |"
    )
    print(f"ratio (reference / hamkit, all pairs): {full.mean() / two.mean():.2f}x")
    return {
        "images": len(paths),
        "candidates": len(found),
        "timed": len(pairs),
        "two_stage_ms": float(two.mean() * 1e3),
        "two_stage_rejected_ms": float(two[~kept].mean() * 1e3),
        "two_stage_verified_ms": float(two[kept].mean() * 1e3) if kept.any() else None,
        "full_match_ms": float(full.mean() * 1e3),
    }


if __name__ == "__main__":
    from _shared import recorded

    with recorded() as record:  # --results FILE: also save the output, with its provenance, as JSON
        record["rows"] = main()
