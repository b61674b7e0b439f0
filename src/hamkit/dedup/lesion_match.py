"""Same lesion, another photograph: local features, visual-word candidates and RANSAC verification.

The ``"lesion"`` method (:class:`~hamkit.dedup.methods.lesion.LesionMethod`) is built from
these plain functions, which work offline on the CPU with OpenCV and faiss only:

1. :func:`lesion_features`: each image at :data:`WORK_SIDE` px on its longest side, contrast
   equalised (CLAHE), its strongest SIFT keypoints with RootSIFT descriptors. SIFT is free in
   OpenCV, invariant to rotation and scale and, once equalised, tolerant of another exposure and
   white balance: what a second photograph of the same lesion changes.
2. :func:`visual_word_candidates`: a vocabulary of visual words learnt (k-means, faiss) on the
   descriptors of the images searched, a tf-idf histogram per image, and for each image its
   ``k`` most similar images (as landmark retrieval does). Mirror images are searched too: a
   mirrored image's descriptors are the original's with their cells and orientations permuted
   (:func:`mirror_descriptors`), so no second extraction is needed.
3. :func:`match_pairs`: every candidate pair is matched keypoint to keypoint (Lowe's ratio
   test) and a similarity transform is fitted with RANSAC, in both mirror parities; the score
   is :func:`inlier_score` of the inliers of a plausible transform (scale within
   :data:`MAX_SCALE`). Two different naevi on smooth skin have no geometric consensus of
   distinctive local structure; two photographs of one lesion have, whatever the framing,
   zoom, rotation and lighting.

Nothing is learnt from labels: the vocabulary is fitted on the images' own descriptors, without
lesion ids, so it can be fitted on any data set (the threshold can be calibrated with labels).

Examples:
    >>> inlier_score(np.array([0, 10, 30])).round(2).tolist()
    [0.0, 0.5, 0.75]
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = [
    "INLIER_HALF",
    "LesionFeatures",
    "MAX_SCALE",
    "WORK_SIDE",
    "inlier_score",
    "lesion_features",
    "match_pair",
    "match_pairs",
    "mirror_descriptors",
    "visual_word_candidates",
]

WORK_SIDE = 300
"""Longest side (px) of the image the keypoints are found on (200x150 images are enlarged:
SIFT finds few keypoints on a small, smooth image)."""

MAX_KEYPOINTS = 200
"""Keypoints kept per image (the strongest)."""

INLIER_HALF = 10
"""RANSAC inliers at which :func:`inlier_score` is 0.5."""

MAX_SCALE = 3.0
"""A transform that enlarges or shrinks by more than this is implausible for one lesion."""

CONTRAST = 0.02
"""SIFT's contrast threshold (OpenCV's default is 0.04): half, so that a smooth or dark image
still has keypoints to match."""

RATIO = 0.85
"""Lowe's ratio test: a match is kept when its distance is below this times the second best."""

RANSAC_PX = 1.5 * WORK_SIDE / 100
"""RANSAC reprojection threshold in working-image pixels (1.5 % of the longest side)."""

_local = threading.local()


def _tools():
    """Per-thread OpenCV objects (SIFT, CLAHE and matchers are not shared across threads)."""
    import cv2

    if not hasattr(_local, "sift"):
        _local.sift = cv2.SIFT_create(nfeatures=MAX_KEYPOINTS, contrastThreshold=CONTRAST)  # type: ignore[attr-defined]
        _local.clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))
        _local.matcher = cv2.BFMatcher(cv2.NORM_L2)
    return cv2, _local.sift, _local.clahe, _local.matcher


@dataclass(frozen=True)
class LesionFeatures:
    """What the ``"lesion"`` method keeps of one image.

    Attributes:
        points: ``(N, 2)`` float32 keypoint positions in the working image, strongest first.
        descriptors: ``(N, 128)`` uint8 RootSIFT descriptors (scaled by 255).
        width: Width of the working image (to mirror the points).
        digest: SHA-256 of the working greyscale image and its shape (identical pixels are a
            pair whatever the keypoints say).
    """

    points: np.ndarray
    descriptors: np.ndarray
    width: int
    digest: str

    def __len__(self) -> int:
        return len(self.points)


def lesion_features(image: Image.Image) -> LesionFeatures:
    """Keypoints and RootSIFT descriptors of an image (see the module docstring).

    Args:
        image: A decoded Pillow image (any mode).

    Returns:
        The :class:`LesionFeatures` (no keypoints on a flat image).

    Examples:
        >>> features = lesion_features(Image.new("RGB", (200, 150), "white"))
        >>> len(features), features.width
        (0, 300)
    """
    cv2, sift, clahe, _ = _tools()
    gray_image = image.convert("L")
    scale = WORK_SIDE / max(gray_image.size)
    size = (max(1, round(gray_image.width * scale)), max(1, round(gray_image.height * scale)))
    gray = np.asarray(gray_image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0), dtype=np.uint8)
    digest = hashlib.sha256(np.asarray(gray.shape, np.int64).tobytes() + gray.tobytes()).hexdigest()
    low, high = np.percentile(gray, (1, 99)) if gray.size else (0, 255)
    if high - low >= 8:  # stretch the grey levels: a darker or paler exposure gives the same keypoints
        gray_eq = np.clip((gray.astype(np.float32) - low) * (255.0 / (high - low)), 0, 255).astype(np.uint8)
    else:
        gray_eq = gray
    keypoints, descriptors = sift.detectAndCompute(clahe.apply(np.ascontiguousarray(gray_eq)), None)
    if descriptors is None or not keypoints:
        return LesionFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8), gray.shape[1], digest)
    order = np.argsort([-k.response for k in keypoints], kind="stable")[:MAX_KEYPOINTS]
    points = np.array([k.pt for k in keypoints], dtype=np.float32)[order]
    root = np.sqrt(descriptors[order] / (descriptors[order].sum(axis=1, keepdims=True) + 1e-7))  # RootSIFT
    return LesionFeatures(
        np.ascontiguousarray(points), np.clip(root * 255 + 0.5, 0, 255).astype(np.uint8), gray.shape[1], digest
    )


_MIRROR = np.arange(128).reshape(4, 4, 8)[::-1, :, (8 - np.arange(8)) % 8].reshape(128)


def mirror_descriptors(descriptors: np.ndarray) -> np.ndarray:
    """The SIFT descriptors of the same keypoints in the image mirrored left to right.

    A SIFT descriptor is 4 x 4 cells of 8 orientation bins in the keypoint's own frame; in the
    mirror image that frame's rows come in reverse order and every orientation is negated
    (measured with OpenCV: the permuted descriptors match the mirror image's own).

    Args:
        descriptors: ``(N, 128)`` descriptors.

    Returns:
        ``(N, 128)``, the same dtype.

    Examples:
        >>> d = np.arange(128, dtype=np.uint8)[None]
        >>> bool((mirror_descriptors(mirror_descriptors(d)) == d).all())
        True
    """
    return np.ascontiguousarray(descriptors[:, _MIRROR])


def inlier_score(inliers: np.ndarray | int) -> np.ndarray:
    """The pair score in ``[0, 1)`` of a RANSAC inlier count: ``n / (n + INLIER_HALF)``.

    Args:
        inliers: Inlier counts.

    Returns:
        float32 scores (0.5 at :data:`INLIER_HALF` inliers).
    """
    count = np.maximum(np.asarray(inliers, dtype=np.float32), 0)
    return (count / (count + INLIER_HALF)).astype(np.float32)


# ---------------------------------------------------------------------------------- candidates
class _Vocabulary:
    """A two-level vocabulary tree (k-means of k-means, faiss): ``coarse * fine`` visual words,
    each descriptor assigned with ``coarse + fine`` distance computations instead of one per word."""

    def __init__(self, descriptors: np.ndarray, coarse: int, fine: int, seed: int) -> None:
        import faiss

        rng = np.random.default_rng(seed)
        coarse = max(1, min(coarse, len(descriptors) // 40))
        sample = descriptors[rng.choice(len(descriptors), min(len(descriptors), coarse * fine * 4), replace=False)]
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        top = faiss.Kmeans(
            128, coarse, niter=10, seed=seed, verbose=False, max_points_per_centroid=256, min_points_per_centroid=1
        )
        top.train(sample)
        self.coarse = top.index
        self.fine = fine
        cells = self.coarse.search(sample, 1)[1][:, 0]
        self.leaves: list = []
        for cell in range(coarse):
            members = sample[cells == cell]
            index = faiss.IndexFlatL2(128)
            if len(members) >= 2 * fine:
                km = faiss.Kmeans(
                    128, fine, niter=8, seed=seed, verbose=False, max_points_per_centroid=64, min_points_per_centroid=1
                )
                km.train(np.ascontiguousarray(members))
                index.add(np.ascontiguousarray(km.centroids, dtype=np.float32))
            elif len(members):
                index.add(np.ascontiguousarray(members[: max(1, len(members) // 2)]))
            else:
                index.add(np.zeros((1, 128), np.float32))
            self.leaves.append(index)

    @property
    def size(self) -> int:
        """Number of word ids (some may be unused)."""
        return len(self.leaves) * self.fine

    def words(self, descriptors: np.ndarray) -> np.ndarray:
        """The word id of each descriptor."""
        data = np.ascontiguousarray(descriptors, dtype=np.float32)
        cells = self.coarse.search(data, 1)[1][:, 0]
        out = np.zeros(len(data), dtype=np.int64)
        for cell in np.unique(cells).tolist():
            rows = np.flatnonzero(cells == cell)
            out[rows] = cell * self.fine + self.leaves[cell].search(data[rows], 1)[1][:, 0]
        return out


def _histograms(words: np.ndarray, owner: np.ndarray, n: int, vocabulary: int, idf: np.ndarray | None):
    """L2-normalised tf-idf rows (square-rooted counts, against bursts of one repeated word)."""
    import scipy.sparse as sp

    counts = sp.csr_matrix((np.ones(len(words), np.float32), (owner, words)), shape=(n, vocabulary))
    counts.sum_duplicates()
    counts.data = np.sqrt(counts.data)
    if idf is None:
        df = np.bincount(counts.indices, minlength=vocabulary)
        idf = np.log((n + 1) / (df + 1)).astype(np.float32)
    weighted = counts.multiply(idf[None, :]).tocsr()
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel()) + 1e-9
    return sp.diags((1 / norms).astype(np.float32)) @ weighted, idf


def visual_word_candidates(
    features: Sequence[LesionFeatures],
    *,
    k: int = 20,
    words: int = 16384,
    seed: int = 0,
    cross: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each image's ``k`` most similar images by tf-idf visual words, mirror images included.

    Args:
        features: One :class:`LesionFeatures` per image.
        k: Candidates per image.
        words: Size of the vocabulary (a tree of ``words / 64`` cells of 64 words; fewer
            when there are few descriptors).
        seed: Seed of the k-means.
        cross: With ``cross=c``, only pairs of one image below ``c`` and one from ``c`` on.

    Returns:
        ``(i, j, similarity, parity)``: unique pairs ``i < j``, the larger of the two
        similarities, and how the pair was found: 0 by the image, 1 by its mirror image, 2 both.
    """
    import scipy.sparse as sp

    n = len(features)
    empty = np.zeros(0, np.int64)
    counts = np.array([len(f) for f in features], dtype=np.int64)
    if n < 2 or counts.sum() == 0:
        return empty, empty, np.zeros(0, np.float32), np.zeros(0, np.int8)
    descriptors = np.concatenate([f.descriptors for f in features]).astype(np.float32)
    owner = np.repeat(np.arange(n), counts)
    fine = 64
    tree = _Vocabulary(descriptors, max(1, words // fine), fine, seed)
    vocabulary = tree.size
    words_of = tree.words(descriptors)
    mirrored_words = tree.words(mirror_descriptors(descriptors))
    plain, idf = _histograms(words_of, owner, n, vocabulary, None)
    mirror, _ = _histograms(mirrored_words, owner, n, vocabulary, idf)
    found: dict[tuple[int, int], tuple[float, int]] = {}  # (best similarity, parities: 1 plain, 2 mirror)
    rows_per_block = 1024
    for start in range(0, n, rows_per_block):
        stop = min(n, start + rows_per_block)
        for is_mirror, queries in ((False, plain[start:stop]), (True, mirror[start:stop])):
            block = sp.csr_matrix(queries @ plain.T)
            for row in range(stop - start):
                query = start + row
                cols = block.indices[block.indptr[row] : block.indptr[row + 1]]
                sims = block.data[block.indptr[row] : block.indptr[row + 1]]
                keep = cols != query
                if cross is not None:
                    keep &= (cols >= cross) if query < cross else (cols < cross)
                cols, sims = cols[keep], sims[keep]
                if len(cols) > k:
                    top = np.argpartition(-sims, k)[:k]
                    cols, sims = cols[top], sims[top]
                for col, sim in zip(cols.tolist(), sims.tolist(), strict=True):
                    key = (min(query, col), max(query, col))
                    best, parities = found.get(key, (sim, 0))
                    found[key] = (max(best, sim), parities | (2 if is_mirror else 1))
    keys = sorted(found)
    i = np.array([a for a, _ in keys], dtype=np.int64)
    j = np.array([b for _, b in keys], dtype=np.int64)
    sim = np.array([found[key][0] for key in keys], dtype=np.float32)
    parity = np.array([found[key][1] - 1 for key in keys], dtype=np.int8)
    return i, j, sim, parity


# ---------------------------------------------------------------------------------- verification
def _inliers(a: LesionFeatures, b: LesionFeatures, mirrored: bool) -> int:
    """RANSAC inliers of a plausible similarity transform from ``b`` (mirrored or not) to ``a``."""
    cv2, _, _, matcher = _tools()
    if len(a) < 3 or len(b) < 3:
        return 0
    des_b = mirror_descriptors(b.descriptors) if mirrored else b.descriptors
    pts_b = b.points.copy()
    if mirrored:
        pts_b[:, 0] = b.width - 1 - pts_b[:, 0]
    matches = matcher.knnMatch(a.descriptors.astype(np.float32), des_b.astype(np.float32), k=2)
    good = [m[0] for m in matches if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    if len(good) < 3:
        return 0
    src = pts_b[[m.trainIdx for m in good]]
    dst = a.points[[m.queryIdx for m in good]]
    transform, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=2000, confidence=0.995
    )
    if transform is None or inliers is None:
        return 0
    scale = float(np.hypot(transform[0, 0], transform[1, 0]))
    if not 1 / MAX_SCALE <= scale <= MAX_SCALE:
        return 0
    return int(inliers.sum())


def match_pair(a: LesionFeatures, b: LesionFeatures, *, mirrored: bool | None = None) -> int:
    """RANSAC inliers between two images' keypoints (identical pixels: a large count).

    Args:
        a: Features of the first image.
        b: Features of the second.
        mirrored: Match against ``b``'s mirror image (True), not (False) or the better of both
            (``None``).

    Returns:
        The inlier count of the better parity.
    """
    if a.digest == b.digest:
        return max(len(a), 1000)
    if mirrored is not None:
        return _inliers(a, b, mirrored)
    return max(_inliers(a, b, False), _inliers(a, b, True))


def match_pairs(
    features: Sequence[LesionFeatures],
    i: np.ndarray,
    j: np.ndarray,
    *,
    mirrored: np.ndarray | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """:func:`match_pair` of every pair ``(i[k], j[k])``, in ``workers`` threads (OpenCV
    releases the GIL while it matches).

    Args:
        features: One :class:`LesionFeatures` per image.
        i: First indices.
        j: Second indices.
        mirrored: Per pair, the parity to match in: 0 the second image, 1 its mirror image, 2
            both (the better counts), as :func:`visual_word_candidates` found it; ``None``: both.
        workers: Threads.
        progress: Called with the number of pairs done after each chunk.

    Returns:
        ``(len(i),)`` int64 inlier counts.
    """
    out = np.zeros(len(i), dtype=np.int64)
    chunks = [np.arange(s, min(len(i), s + 256)) for s in range(0, len(i), 256)]

    def work(chunk: np.ndarray) -> int:
        for k in chunk.tolist():
            parity = None if mirrored is None or mirrored[k] == 2 else bool(mirrored[k])
            out[k] = match_pair(features[int(i[k])], features[int(j[k])], mirrored=parity)
        return len(chunk)

    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            done = work(chunk)
            if progress is not None:
                progress(done)
        return out
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done in pool.map(work, chunks):
            if progress is not None:
                progress(done)
    return out
