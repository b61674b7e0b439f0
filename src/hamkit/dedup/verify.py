"""Verification of candidate pairs: do two images show the same scene?

A candidate pair (:mod:`hamkit.dedup.candidates`) is confirmed in two steps, with OpenCV:

1. **Alignment.** ORB keypoints (after CLAHE, so that the low-contrast texture of a lesion gives
   keypoints) are matched with cross-checked Hamming matching, and a similarity transform
   (rotation, scale, shift) is fitted with RANSAC. ORB is rotation invariant; a mirrored copy is
   matched against the mirror image of its partner (the candidate stage says which). The number
   of RANSAC inliers must reach ``min_inliers``.
2. **Aligned content.** The second image is warped onto the first; both are band-pass filtered
   (difference of Gaussians, sigma 1.5 and 6 px at a working size of at most
   :data:`WORK_SIDE` px, so JPEG noise and illumination gradients drop out) and compared tile by
   tile on a 4 x 4 grid with normalised cross-correlation. Only *textured* tiles count (a tile of
   smooth skin has no band-pass signal and cannot vote), and the score is the **median** over
   them, so a shared dark vignette or a ruler in one corner cannot make two different lesions
   agree. Fewer than 3 textured tiles in common: score 0 (not verified).

The score, in ``[-1, 1]``, is what :class:`~hamkit.Deduplicator` thresholds (``method="verified"``).

Examples:
    >>> rng = np.random.default_rng(0)
    >>> import cv2
    >>> a = cv2.GaussianBlur((rng.random((150, 200)) * 255).astype(np.uint8), (0, 0), 2)
    >>> b = np.ascontiguousarray(a[:, ::-1])  # a mirror image: its mirror's features are a's
    >>> mirror_of_b = np.ascontiguousarray(b[:, ::-1])
    >>> score, inliers = verify_pair(a, scene_features(a), b, scene_features(mirror_of_b), mirrored=True)
    >>> score > 0.9 and inliers >= 20
    True
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

__all__ = ["MIN_INLIERS", "WORK_SIDE", "SceneFeatures", "scene_features", "verify_pair", "verify_pairs"]

WORK_SIDE = 200
"""Longest side, in pixels, of the greyscale image that verification works on."""

MIN_INLIERS = 15
"""Default minimum of RANSAC inliers, between what pairs of different HAM10000 images reach and
what altered copies reach (both measured on the Benchmarks page of the documentation)."""

_TILES = 4
_EDGE = 15  # ORB's border and patch size, in pixels
_COARSE = 200  # keypoints of the first, quick match
_COARSE_MIN = 8  # inliers among them that send a pair on to the full match
_MIN_TEXTURE = 1.0  # grey levels of band-pass standard deviation for a tile to count
_local = threading.local()


@dataclass(frozen=True)
class SceneFeatures:
    """ORB keypoints of one image.

    Attributes:
        points: ``(K, 2)`` float32 keypoint positions (x, y).
        descriptors: ``(K, 32)`` uint8 ORB descriptors (``K`` may be 0).
    """

    points: np.ndarray
    descriptors: np.ndarray


def _tools():
    """Per-thread OpenCV objects (they are not shared between threads)."""
    import cv2

    if not hasattr(_local, "orb"):
        _local.orb = cv2.ORB_create(  # type: ignore[attr-defined]
            nfeatures=500, fastThreshold=10, edgeThreshold=_EDGE, patchSize=_EDGE
        )
        _local.clahe = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(4, 4))
        _local.matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    return cv2, _local.orb, _local.clahe, _local.matcher


def scene_features(gray: np.ndarray) -> SceneFeatures:
    """ORB keypoints and descriptors of a greyscale image.

    Args:
        gray: ``(H, W)`` uint8 image (at most :data:`WORK_SIDE` px on its longest side is
            what the verifier uses).

    Returns:
        The :class:`SceneFeatures`.
    """
    _, orb, clahe, _ = _tools()
    if min(gray.shape[:2]) < 2 * _EDGE + 1:  # too small for a keypoint patch
        return SceneFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
    keypoints, descriptors = orb.detectAndCompute(clahe.apply(np.ascontiguousarray(gray)), None)
    if descriptors is None or not keypoints:
        return SceneFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
    order = np.argsort([-k.response for k in keypoints], kind="stable")  # strongest first
    points = np.array([k.pt for k in keypoints], dtype=np.float32)[order]
    return SceneFeatures(np.ascontiguousarray(points), np.ascontiguousarray(descriptors[order]))


def _band_pass(cv2, gray: np.ndarray) -> np.ndarray:
    image = gray.astype(np.float32)
    return cv2.GaussianBlur(image, (0, 0), 1.5) - cv2.GaussianBlur(image, (0, 0), 6.0)


def aligned_similarity(gray_a: np.ndarray, gray_b: np.ndarray, transform: np.ndarray) -> float:
    """Median tile correlation of the band-passed images once ``gray_b`` is warped onto ``gray_a``.

    Args:
        gray_a: ``(H, W)`` uint8 reference image.
        gray_b: The other image (uint8).
        transform: ``(2, 3)`` affine map from ``gray_b``'s pixels to ``gray_a``'s.

    Returns:
        The score in ``[-1, 1]``; 0 with fewer than 3 textured tiles in common.
    """
    cv2 = _tools()[0]
    height, width = gray_a.shape
    warped = cv2.warpAffine(
        gray_b.astype(np.float32), transform, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    valid = cv2.warpAffine(np.ones(gray_b.shape, np.uint8), transform, (width, height), flags=cv2.INTER_NEAREST)
    valid = cv2.erode(valid, np.ones((9, 9), np.uint8)).astype(np.float32)  # keep off the warped border
    x, y = _band_pass(cv2, gray_a), _band_pass(cv2, warped)

    def tile_mean(values: np.ndarray) -> np.ndarray:
        return cv2.resize(values, (_TILES, _TILES), interpolation=cv2.INTER_AREA)

    area = tile_mean(valid)
    safe = np.maximum(area, 1e-6)
    mx, my = tile_mean(x * valid) / safe, tile_mean(y * valid) / safe
    vx = tile_mean(x * x * valid) / safe - mx * mx
    vy = tile_mean(y * y * valid) / safe - my * my
    cov = tile_mean(x * y * valid) / safe - mx * my
    textured = (area >= 0.5) & (vx > _MIN_TEXTURE**2) & (vy > _MIN_TEXTURE**2)
    if textured.sum() < 3:
        return 0.0
    ncc = cov[textured] / np.sqrt(vx[textured] * vy[textured])
    return float(np.clip(np.median(ncc), -1.0, 1.0))


def verify_pair(
    gray_a: np.ndarray,
    features_a: SceneFeatures,
    gray_b: np.ndarray,
    features_b: SceneFeatures,
    *,
    mirrored: bool = False,
    min_inliers: int = MIN_INLIERS,
) -> tuple[float, int]:
    """Align two images by their keypoints and score their aligned content.

    Args:
        gray_a: First greyscale image (uint8).
        features_a: Its :func:`scene_features`.
        gray_b: Second greyscale image (uint8).
        features_b: Its :func:`scene_features`; of its mirror image when ``mirrored``.
        mirrored: Match ``gray_a`` against the mirror image of ``gray_b``.
        min_inliers: Fewer RANSAC inliers than this: not the same scene (score 0).

    Returns:
        ``(score, inliers)``: the :func:`aligned_similarity` (0 when the alignment fails) and
        the number of RANSAC inliers.
    """
    if mirrored:
        gray_b = np.ascontiguousarray(gray_b[:, ::-1])
    # a quick look at the strongest keypoints rejects most pairs of different images
    transform, count = _fit(features_a, features_b, _COARSE, 300)
    if count < _COARSE_MIN:
        return 0.0, count
    transform, count = _fit(features_a, features_b, None, 1000)
    if transform is None or count < min_inliers:
        return 0.0, count
    return aligned_similarity(gray_a, gray_b, transform), count


def _fit(
    features_a: SceneFeatures, features_b: SceneFeatures, top: int | None, iterations: int
) -> tuple[np.ndarray | None, int]:
    """Similarity transform from ``b`` to ``a`` by RANSAC over cross-checked matches of the
    ``top`` strongest keypoints (all with ``None``), and its inlier count."""
    cv2, _, _, matcher = _tools()
    des_a, des_b = features_a.descriptors[:top], features_b.descriptors[:top]
    if len(des_a) < 4 or len(des_b) < 4:
        return None, 0
    matches = matcher.match(des_a, des_b)
    if len(matches) < 4:
        return None, 0
    src = features_b.points[[m.trainIdx for m in matches]]
    dst = features_a.points[[m.queryIdx for m in matches]]
    transform, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=3.0, maxIters=iterations, confidence=0.99, refineIters=10
    )
    return transform, 0 if inliers is None else int(inliers.sum())


def verify_pairs(
    grays: Sequence[np.ndarray],
    features: Sequence[SceneFeatures],
    mirror_features: Sequence[SceneFeatures],
    i: np.ndarray,
    j: np.ndarray,
    mirrored: np.ndarray,
    *,
    min_inliers: int = MIN_INLIERS,
    workers: int = 1,
    progress: bool = False,
    both: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`verify_pair` for many pairs, in ``workers`` threads (OpenCV releases the GIL).

    Args:
        grays: Greyscale image per index.
        features: :func:`scene_features` per index.
        mirror_features: :func:`scene_features` of each image's mirror image.
        i: First indices of the pairs.
        j: Second indices.
        mirrored: Per pair, whether to mirror the second image.
        min_inliers: See :func:`verify_pair`.
        workers: Threads.
        progress: Show a progress bar.
        both: Per pair, whether to try the other mirror parity too when the first fails.

    Returns:
        ``(score, inliers)``: float32 and int32 arrays, one entry per pair.
    """
    from tqdm.auto import tqdm

    scores = np.zeros(len(i), dtype=np.float32)
    inliers = np.zeros(len(i), dtype=np.int32)
    chunks = [np.arange(start, min(start + 256, len(i))) for start in range(0, len(i), 256)]

    def work(chunk: np.ndarray) -> int:
        for p in chunk.tolist():
            a, b = int(i[p]), int(j[p])
            flips = (bool(mirrored[p]), not mirrored[p]) if both is not None and both[p] else (bool(mirrored[p]),)
            results = []
            for flip in flips:
                results.append(
                    verify_pair(
                        grays[a],
                        features[a],
                        grays[b],
                        mirror_features[b] if flip else features[b],
                        mirrored=flip,
                        min_inliers=min_inliers,
                    )
                )
                if results[-1][0] > 0:
                    break
            scores[p], inliers[p] = max(results, key=lambda result: result[0])  # ties: the first
        return len(chunk)

    with (
        tqdm(total=len(i), desc="verify", unit="pair", disable=not progress, leave=False) as bar,
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
    ):
        for done in pool.map(work, chunks):
            bar.update(done)
    return scores, inliers
