"""Same lesion, another photograph: local features, candidates by descriptor votes, RANSAC verification.

The ``"lesion"`` method (:class:`~hamkit.dedup.methods.lesion.LesionMethod`) is built from
these plain functions, which work offline on the CPU with OpenCV and faiss only:

1. :func:`lesion_features`: each image at :data:`WORK_SIDE` px on its longest side, contrast
   equalised (CLAHE), its strongest SIFT keypoints with RootSIFT descriptors. SIFT is free in
   OpenCV, invariant to rotation and scale and, once equalised, tolerant of another exposure and
   white balance: what a second photograph of the same lesion changes.
2. :func:`vote_candidates`: each image's strongest descriptors, and its mirror image's
   (:func:`mirror_descriptors`: a mirrored image's descriptors are the original's with their
   cells and orientations permuted, so no second extraction is needed), look up their nearest
   descriptors among every image's (a faiss index) and vote for the images they belong to; each
   image's ``k`` partners with the most votes are its candidates (as landmark retrieval does,
   without quantising descriptors into visual words).
   Candidates can come from a CNN too: :func:`lesion_crop` cuts a colour-normalised
   (:func:`colour_normalised`) square around the lesion (:func:`lesion_box`),
   :func:`lesion_embeddings` embeds it with ImageNet weights, averaged over its turns and mirror
   images, and :func:`embedding_candidates` gives each image its nearest images once the
   embeddings are :func:`whitened` (the share of HAM10000's same-lesion pairs among the
   candidates is in the benchmarks' same-lesion table).
3. :func:`match_pairs`: every candidate pair is matched keypoint to keypoint (Lowe's ratio
   test; the partners of one image in one matrix product) and a similarity transform is
   fitted, in both mirror parities: each match proposes a transform from its keypoints' sizes
   and orientations, and the best proposals are refitted by least squares on the matches they
   explain (:func:`_consensus`: exhaustive and deterministic, no random sampling). The score is
   :func:`inlier_score` of the inliers of a plausible transform (scale within
   :data:`MAX_SCALE`), weighted by how far they spread (:func:`spread_weight`). Two different
   naevi on smooth skin have no geometric consensus of distinctive local structure; two
   photographs of one lesion have, whatever the framing, zoom, rotation and lighting.
   :func:`verify_candidates` does this in two stages: every candidate with the strongest
   :data:`SCREEN_KEYPOINTS` keypoints of each image, then the few with inliers again with all
   :data:`MAX_KEYPOINTS`.

Nothing is learnt from labels: the descriptor index and the whitening are fitted on the images'
own descriptors and embeddings, without lesion ids, so they can be fitted on any data set (the
threshold can be calibrated with labels).

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
from typing import Any

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits

__all__ = [
    "INLIER_HALF",
    "LesionFeatures",
    "MAX_SCALE",
    "CROP_SIDE",
    "WORK_SIDE",
    "colour_normalised",
    "embedding_candidates",
    "inlier_score",
    "lesion_box",
    "lesion_crop",
    "lesion_embeddings",
    "lesion_features",
    "match_pair",
    "match_pairs",
    "mirror_descriptors",
    "verify_candidates",
    "vote_candidates",
    "spread_weight",
    "whitened",
]

WORK_SIDE = 200
"""Longest side (px) of the image the keypoints are found on (larger images are reduced; SIFT
looks at twice this size itself). Measured on HAM10000's same-lesion pairs (see
``benchmarks/same_lesion.py``), 200 px with 400 keypoints verifies more of them than 300 px
with 200, at fewer pairs of different lesions and in less time."""

MAX_KEYPOINTS = 400
"""Keypoints kept per image (the strongest, strongest first)."""

VOTE_KEYPOINTS = 100
"""The strongest keypoints of each image whose descriptors vote for candidate partners
(:func:`vote_candidates`)."""

VOTE_NEIGHBOURS = 5
"""Nearest descriptors of other images each descriptor votes for."""

SCREEN_KEYPOINTS = 100
"""The strongest keypoints that :func:`verify_candidates` first matches every candidate with."""

RECHECK = 1.0
"""Weighted inliers of that first match from which a candidate is matched again with every
keypoint (almost every pair of different lesions has none)."""

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
"""Inlier distance in working-image pixels (1.5 % of the longest side)."""

LOOSE = 3.0
"""A one-point hypothesis counts the matches within this many times :data:`RANSAC_PX`
(a keypoint's orientation and size are rough; the least-squares refit is then exact)."""

HYPOTHESES = 2
"""One-point hypotheses refitted per pair (those with the most loose matches)."""

SPREAD = 0.0817 * WORK_SIDE  # 24.5 px when the keypoints were found at 300 px, scaled with the side
"""Inliers count in full when they spread over an area: their weight is
``min(1, sqrt(det(cov)) / SPREAD**2)`` of their positions' covariance in the first image
(working pixels). Inliers along one line or in one small patch (a ruler's ticks, a hair, a
bubble's rim) are what two different lesions share; a lesion's own structure is spread out."""

CROP_SIDE = 80
"""Side (px) of the lesion-centred crop that the CNN embeds."""

CROP_MARGIN = 0.25
"""Margin around the detected lesion, as a share of its longer side, on each side."""

WHITEN_DIMS = 512
"""Principal axes of the embeddings kept by :func:`whitened` (fewer where there are fewer images)."""

_local = threading.local()


def _tools():
    """Per-thread OpenCV objects (SIFT and CLAHE are not shared across threads)."""
    import cv2

    if not hasattr(_local, "sift"):
        _local.sift = cv2.SIFT_create(nfeatures=MAX_KEYPOINTS, contrastThreshold=CONTRAST)  # type: ignore[attr-defined]
        _local.clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))
    return cv2, _local.sift, _local.clahe


@dataclass(frozen=True)
class LesionFeatures:
    """What the ``"lesion"`` method keeps of one image.

    Attributes:
        points: ``(N, 2)`` float32 keypoint positions in the working image, strongest first.
        descriptors: ``(N, 128)`` uint8 RootSIFT descriptors (scaled by 255).
        width: Width of the working image (to mirror the points).
        digest: SHA-256 of the working greyscale image and its shape (identical pixels are a
            pair whatever the keypoints say).
        crop: The colour-normalised, lesion-centred ``(CROP_SIDE, CROP_SIDE, 3)`` uint8 crop
            (:func:`lesion_crop`) until it is embedded, then ``None``.
        embedding: Its L2-normalised CNN embedding (:func:`lesion_embeddings`), once computed.
        frames: ``(N, 2)`` float32 size (px) and orientation (degrees) of each keypoint.
        box: The lesion's box ``(x0, y0, x1, y1)`` in the working image (:func:`lesion_box`
            without its margin).
    """

    points: np.ndarray
    descriptors: np.ndarray
    width: int
    digest: str
    crop: np.ndarray | None = None
    embedding: np.ndarray | None = None
    frames: np.ndarray | None = None
    box: tuple[int, int, int, int] | None = None

    def __len__(self) -> int:
        return len(self.points)


def lesion_features(image: Image.Image, *, crop: bool = False) -> LesionFeatures:
    """Keypoints and RootSIFT descriptors of an image (see the module docstring).

    Args:
        image: A decoded Pillow image (any mode).
        crop: Keep the image's :func:`lesion_crop` too (for :func:`lesion_embeddings`).

    Returns:
        The :class:`LesionFeatures` (no keypoints on a flat image).

    Examples:
        >>> features = lesion_features(Image.new("RGB", (200, 150), "white"))
        >>> len(features), features.width
        (0, 200)
    """
    cv2, sift, clahe = _tools()
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
    rgb = colour_normalised(np.asarray(image.convert("RGB")))
    x0, y0, x1, y1 = lesion_box(rgb, margin=0.0)
    box_scale = gray.shape[1] / max(1, rgb.shape[1])
    box = (round(x0 * box_scale), round(y0 * box_scale), round(x1 * box_scale), round(y1 * box_scale))
    thumbnail = _crop_of(rgb) if crop else None
    if descriptors is None or not keypoints:
        return LesionFeatures(
            np.zeros((0, 2), np.float32),
            np.zeros((0, 128), np.uint8),
            gray.shape[1],
            digest,
            thumbnail,
            frames=np.zeros((0, 2), np.float32),
            box=box,
        )
    order = np.argsort([-k.response for k in keypoints], kind="stable")[:MAX_KEYPOINTS]
    points = np.array([k.pt for k in keypoints], dtype=np.float32)[order]
    frames = np.array([(k.size, k.angle) for k in keypoints], dtype=np.float32)[order]
    root = np.sqrt(descriptors[order] / (descriptors[order].sum(axis=1, keepdims=True) + 1e-7))  # RootSIFT
    return LesionFeatures(
        np.ascontiguousarray(points),
        np.clip(root * 255 + 0.5, 0, 255).astype(np.uint8),
        gray.shape[1],
        digest,
        thumbnail,
        frames=np.ascontiguousarray(frames),
        box=box,
    )


def colour_normalised(rgb: np.ndarray, power: int = 6) -> np.ndarray:
    """Shades-of-grey colour constancy: each channel scaled so that its ``power``-mean is the
    same, which removes most of a camera's or a lamp's colour cast (grey world is ``power=1``).

    Args:
        rgb: ``(H, W, 3)`` uint8 image.
        power: Minkowski norm of the estimate.

    Returns:
        ``(H, W, 3)`` uint8.

    Examples:
        >>> cast = np.dstack([np.full((4, 4), v, np.uint8) for v in (200, 100, 50)])
        >>> colour_normalised(cast)[0, 0].tolist()
        [116, 116, 116]
    """
    pixels = rgb.astype(np.float32) + 1.0
    norm = np.power(np.mean(np.power(pixels / 255.0, power), axis=(0, 1)), 1.0 / power) * 255.0
    return np.clip(pixels * (norm.mean() / np.maximum(norm, 1e-3)) - 1.0, 0, 255).astype(np.uint8)


def lesion_box(rgb: np.ndarray, *, margin: float = CROP_MARGIN) -> tuple[int, int, int, int]:
    """The box ``(x0, y0, x1, y1)`` around the lesion: the largest dark region (Otsu's threshold
    on the blurred greyscale) whose centre is not near the border (dark vignette corners are),
    squared and widened by ``margin`` of its side on each side; the whole image when no region
    covers 1 % of it.

    Args:
        rgb: ``(H, W, 3)`` uint8 image.
        margin: Widening on each side, as a share of the region's longer side.

    Returns:
        Pixel bounds, clipped to the image.

    Examples:
        >>> image = np.full((100, 120, 3), 200, np.uint8)
        >>> image[40:60, 50:70] = 60
        >>> lesion_box(image)
        (45, 35, 75, 65)
    """
    import cv2

    height, width = rgb.shape[:2]
    grey = cv2.GaussianBlur(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY), (5, 5), 0)
    _, mask = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    count, _, stats, centres = cv2.connectedComponentsWithStats(mask, connectivity=8)
    best, area = 0, 0
    for component in range(1, count):
        cx, cy = centres[component]
        central = 0.1 * width < cx < 0.9 * width and 0.1 * height < cy < 0.9 * height
        if central and stats[component, cv2.CC_STAT_AREA] > area:
            best, area = component, int(stats[component, cv2.CC_STAT_AREA])
    if best == 0 or area < 0.01 * height * width:
        return 0, 0, width, height
    x, y, w, h = (int(v) for v in stats[best, :4])
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    return (
        max(0, int(cx - side / 2)),
        max(0, int(cy - side / 2)),
        min(width, int(cx + side / 2)),
        min(height, int(cy + side / 2)),
    )


def lesion_crop(image: Image.Image, side: int = CROP_SIDE) -> np.ndarray:
    """The colour-normalised image cropped to its :func:`lesion_box`, resized to ``side`` square.

    Args:
        image: A decoded Pillow image.
        side: Output side (px).

    Returns:
        ``(side, side, 3)`` uint8 RGB.
    """
    return _crop_of(colour_normalised(np.asarray(image.convert("RGB"))), side)


def _crop_of(rgb: np.ndarray, side: int = CROP_SIDE) -> np.ndarray:
    """:func:`lesion_crop` of an image already colour-normalised."""
    import cv2

    x0, y0, x1, y1 = lesion_box(rgb)
    return cv2.resize(np.ascontiguousarray(rgb[y0:y1, x0:x1]), (side, side), interpolation=cv2.INTER_AREA)


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
def _index_lists(count: int) -> int:
    """Inverted lists of the descriptor index for ``count`` descriptors: about twice its square
    root (about 2,000 for HAM10000's million), at least 39 training descriptors each."""
    return int(max(1, min(2 * round(np.sqrt(count)), count // 39)))


def _top_per_row(scores: Any, k: int, rows_per_block: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` largest entries of each row of the sparse matrix ``scores`` (ties by column), as
    ``(rows, cols, values)``; a block of rows at a time, to bound the memory."""
    found = []
    for start in range(0, scores.shape[0], rows_per_block):
        block = scores[start : start + rows_per_block].tocsr()
        rows = np.repeat(np.arange(block.shape[0], dtype=np.int64), np.diff(block.indptr))
        order = np.lexsort((block.indices, -block.data, rows))
        rank = np.arange(len(order)) - block.indptr[rows[order]]
        keep = order[rank < k]
        found.append((rows[keep] + start, block.indices[keep].astype(np.int64), block.data[keep]))
    return tuple(np.concatenate(part) for part in zip(*found))  # type: ignore[return-value]


def _votes(
    index: Any,
    n: int,
    descriptors: np.ndarray,
    owner: np.ndarray,
    side: np.ndarray | None,
    found: int,
    mirror: bool,
    step: int,
) -> Any:
    """The symmetric sparse ``(n, n)`` matrix of the votes that the ``n`` images give and receive
    in one parity (see :func:`vote_candidates`), ``step`` query descriptors at a time."""
    import scipy.sparse as sp

    parts: list[Any] = []  # partial sums, each at least twice the size of the next (a binary counter)
    for start in range(0, len(descriptors), step):
        block = descriptors[start : start + step]
        query = mirror_descriptors(block) if mirror else block
        similarity, nearest = index.search(np.ascontiguousarray(query, dtype=np.float32), found)
        them = owner[np.maximum(nearest, 0)]
        me = owner[start : start + len(block), None]
        valid = (nearest >= 0) & (them != me)
        if side is not None:
            valid &= side[np.maximum(nearest, 0)] != side[start : start + len(block), None]
        # a query whose searched lists hold too few descriptors (a tiny set) has no last one to compare with
        reference = np.where(nearest[:, -1:] >= 0, similarity[:, -1:], 0)
        vote = (similarity - reference) / 65025.0  # descriptors are scaled by 255
        valid &= vote > 0
        rows = np.broadcast_to(me, nearest.shape)[valid]
        parts.append(sp.csr_matrix((vote[valid].astype(np.float32), (rows, them[valid])), shape=(n, n)))
        while len(parts) > 1 and parts[-1].nnz * 2 > parts[-2].nnz:  # each vote is added O(log blocks) times
            newest = parts.pop()
            parts[-1] = parts[-1] + newest
    given = sum(parts[1:], parts[0]) if parts else sp.csr_matrix((n, n), dtype=np.float32)
    return (given + given.T).tocsr()


def vote_candidates(
    features: Sequence[LesionFeatures],
    *,
    k: int = 10,
    keypoints: int = VOTE_KEYPOINTS,
    neighbours: int = VOTE_NEIGHBOURS,
    cross: int | None = None,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each image's ``k`` partners with the most descriptor votes: every one of its ``keypoints``
    strongest descriptors, and of its mirror image's (:func:`mirror_descriptors`), looks up its
    ``neighbours`` nearest descriptors among every image's (faiss: an inverted-file index of the
    uint8 descriptors as they are, three lists searched per query) and votes for their images, as
    much as the neighbour is more similar than the last one found (a soft form of Lowe's ratio
    test: a descriptor shared by many images votes little). An image's votes for another, given
    and received, add up, once for the image and once for its mirror image; the larger parity is
    the pair's score.

    Unlike a vocabulary of visual words, nothing is quantised away: a second photograph of one
    lesion keeps the same nearest descriptors even where a word boundary would separate them.

    Args:
        features: One :class:`LesionFeatures` per image.
        k: Partners per image (a pair is kept when it is among either image's ``k``).
        keypoints: The strongest descriptors of each image that vote and are voted for.
        neighbours: Nearest descriptors each one votes for.
        cross: With ``cross=c``, only pairs of one image below ``c`` and one from ``c`` on.
        random_state: Random state of the index's k-means (and of the descriptors it is trained on).

    Returns:
        ``(i, j, votes, parity)``: unique pairs ``i < j`` (sorted), their votes, and the parity
        they were found in (0 as photographed, 1 one image mirrored).

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> base = Image.fromarray(rng.integers(0, 255, (60, 80, 3), np.uint8)).resize((160, 120))
        >>> other = Image.fromarray(rng.integers(0, 255, (60, 80, 3), np.uint8)).resize((160, 120))
        >>> images = [base, other, base.rotate(10), base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
        >>> i, j, votes, parity = vote_candidates([lesion_features(im) for im in images], k=2)
        >>> [(a, b, p) for a, b, p in zip(i.tolist(), j.tolist(), parity.tolist()) if a == 0]
        [(0, 1, 1), (0, 2, 0), (0, 3, 1)]
        >>> bool(votes[(i == 0) & (j == 1)][0] < votes[(i == 0) & (j == 2)][0] / 2)  # the other image
        True
    """
    import faiss

    n = len(features)
    counts = np.array([min(len(f), keypoints) for f in features], dtype=np.int64)
    empty = np.zeros(0, np.int64)
    total = int(counts.sum())
    if n < 2 or k < 1 or total < 2:
        return empty, empty, np.zeros(0, np.float32), np.zeros(0, np.int8)
    descriptors = np.concatenate([f.descriptors[:keypoints] for f in features])  # uint8
    owner = np.repeat(np.arange(n, dtype=np.int32), counts)
    lists = _index_lists(total)
    exact = faiss.ScalarQuantizer.QT_8bit_direct  # the uint8 descriptors as they are
    index: Any
    if lists < 2:  # too few descriptors to cluster: search them all
        index = faiss.IndexScalarQuantizer(128, exact, faiss.METRIC_INNER_PRODUCT)
    else:
        rng = np.random.default_rng(random_state)
        training = descriptors[np.sort(rng.choice(total, min(total, 50 * lists), replace=False))]
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(128), 128, lists, exact, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = random_state
        index.train(np.ascontiguousarray(training, dtype=np.float32))
        index.nprobe = min(3, lists)
    step = 1 << 17  # descriptors per block (as float32, 64 MiB)
    for s in range(0, total, step):
        index.add(np.ascontiguousarray(descriptors[s : s + step], dtype=np.float32))
    found = min(neighbours + 1, total)
    side = None if cross is None else owner >= cross
    plain, mirrored = (_votes(index, n, descriptors, owner, side, found, mirror, step) for mirror in (False, True))
    # no image votes for itself: the diagonal is empty
    i, j, votes = _best_per_pair(*_top_per_row(plain.maximum(mirrored).tocsr(), k))
    if not len(i):
        return empty, empty, np.zeros(0, np.float32), np.zeros(0, np.int8)
    parity = (np.asarray(mirrored[i, j]).ravel() > np.asarray(plain[i, j]).ravel()).astype(np.int8)
    return i, j, votes, parity


def lesion_embeddings(
    crops: np.ndarray,
    model: Any,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    views: int = 8,
    batch_size: int = 64,
) -> np.ndarray:
    """CNN embeddings of lesion crops, averaged over ``views`` turns and mirror images.

    A second photograph of a lesion is turned and mirrored at random; the average of a crop's
    embeddings over the eight turns and mirror images of a square (``views=8``; 2: the crop and
    its mirror image; 1: the crop) does not depend on that.

    Args:
        crops: ``(N, S, S, 3)`` uint8 crops (:func:`lesion_crop`).
        model: A classification backbone returning pooled features ``(N, D)``.
        mean: Per-channel input mean (RGB in ``[0, 1]``).
        std: Per-channel input standard deviation.
        views: 1, 2, 4 or 8 views (turns by 90 degrees, each with its mirror image).
        batch_size: Crops per forward pass.

    Returns:
        ``(N, D)`` float32 pooled features, averaged over the views (:func:`embedding_candidates`
        centres and normalises them on the images searched).
    """
    import torch

    if views not in (1, 2, 4, 8):
        raise ValueError(f"views must be 1, 2, 4 or 8, got {views}")
    if len(crops) == 0:
        return np.zeros((0, 0), np.float32)
    shift = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    scale = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    rows = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(crops), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(crops[start : start + batch_size]))
            x = (batch.permute(0, 3, 1, 2).float() / 255.0 - shift) / scale
            turned = []
            for turn in range(max(1, views // 2)):
                view = torch.rot90(x, turn, (2, 3))
                turned.append(view)
                if views > 1:
                    turned.append(torch.flip(view, (3,)))
            features = model(torch.cat(turned).contiguous(memory_format=torch.channels_last)).float().flatten(1)
            rows.append(features.reshape(len(turned), len(x), -1).mean(0).numpy())
    return np.concatenate(rows).astype(np.float32)


def whitened(embeddings: np.ndarray, dims: int = WHITEN_DIMS) -> np.ndarray:
    """Embeddings centred on their mean, projected on their ``dims`` principal axes, each axis
    scaled to unit variance, and L2-normalised: what every dermoscopic image shares (skin, the
    dermatoscope's disc) no longer dominates the similarity, and rarer, distinctive directions
    count as much as common ones. Fitted on the embeddings given, without labels.

    Args:
        embeddings: ``(N, D)`` rows.
        dims: Principal axes kept (fewer when ``N / 2`` or ``D`` is smaller).

    Returns:
        ``(N, min(dims, (N - 1) // 2, D))`` float32 rows of unit length (``(N, 0)`` for fewer than
        3 rows).

    Examples:
        >>> rows = whitened(np.random.default_rng(0).normal(size=(50, 8)), dims=4)
        >>> rows.shape, bool(np.allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-5))
        ((50, 4), True)
    """
    data = np.asarray(embeddings, dtype=np.float64)
    # at most half as many axes as rows: N points whitened in N - 1 axes are all equally far apart
    count = min(dims, (len(data) - 1) // 2, data.shape[1] if data.ndim == 2 else 0)
    if count < 1:
        return np.zeros((len(data), 0), np.float32)
    data = data - data.mean(axis=0, keepdims=True)
    values, vectors = np.linalg.eigh(data.T @ data / len(data))
    top = np.argsort(values)[::-1][:count]
    scale = 1.0 / np.sqrt(np.maximum(values[top], values[top[0]] * 1e-6) + 1e-12)
    projected = (data @ vectors[:, top]) * scale
    projected /= np.linalg.norm(projected, axis=1, keepdims=True) + 1e-12
    return np.ascontiguousarray(projected, dtype=np.float32)


def embedding_candidates(
    embeddings: np.ndarray, *, k: int = 10, cross: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each image's ``k`` nearest images by cosine similarity of :func:`lesion_embeddings` (faiss,
    exact), once :func:`whitened` on the images searched.

    Args:
        embeddings: ``(N, D)`` embeddings.
        k: Neighbours per image.
        cross: With ``cross=c``, only pairs of one image below ``c`` and one from ``c`` on.

    Returns:
        ``(i, j, similarity)``: unique pairs ``i < j`` and their cosine similarity.

    Examples:
        >>> e = np.eye(4, dtype=np.float32)[[0, 0, 1, 1]]
        >>> i, j, similarity = embedding_candidates(e, k=1)
        >>> i.tolist(), j.tolist(), similarity.round(3).tolist()
        ([0, 2], [1, 3], [1.0, 1.0])
    """
    import faiss

    n = len(embeddings)
    empty = np.zeros(0, np.int64)
    if n < 2 or k < 1 or embeddings.shape[1] == 0:
        return empty, empty, np.zeros(0, np.float32)
    data = whitened(embeddings)
    if cross is None:
        index = faiss.IndexFlatIP(data.shape[1])
        index.add(data)
        sims, neighbours = index.search(data, min(n, k + 1))
        queries = np.repeat(np.arange(n), neighbours.shape[1])
        found = [(queries, neighbours.ravel(), sims.ravel())]
    else:
        found = []
        for queries_at, base_at in ((slice(0, cross), slice(cross, n)), (slice(cross, n), slice(0, cross))):
            query, base = data[queries_at], data[base_at]
            if not len(query) or not len(base):
                continue
            index = faiss.IndexFlatIP(data.shape[1])
            index.add(base)
            sims, neighbours = index.search(query, min(len(base), k))
            queries = np.repeat(np.arange(len(query)) + (queries_at.start or 0), neighbours.shape[1])
            found.append((queries, neighbours.ravel() + (base_at.start or 0), sims.ravel()))
    a = np.concatenate([f[0] for f in found])
    b = np.concatenate([f[1] for f in found])
    sim = np.concatenate([f[2] for f in found]).astype(np.float32)
    keep = (b >= 0) & (a != b)
    return _best_per_pair(a[keep], b[keep], sim[keep])


def _best_per_pair(a: np.ndarray, b: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs found from either side as unique ``(i, j, score)`` with ``i < j``, sorted, each with
    its larger score."""
    i, j = np.minimum(a, b), np.maximum(a, b)
    order = np.lexsort((-score, j, i))
    i, j, score = i[order], j[order], score[order]
    first = np.ones(len(i), bool)
    first[1:] = (i[1:] != i[:-1]) | (j[1:] != j[:-1])
    return i[first].astype(np.int64), j[first].astype(np.int64), score[first]


# ---------------------------------------------------------------------------------- verification
def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """The least-squares similarity ``dst ~ s R src + t`` as a 2x3 matrix (``None``: degenerate)."""
    count = len(src)
    mean_src, mean_dst = src.sum(0) / count, dst.sum(0) / count
    a, b = src - mean_src, dst - mean_dst
    variance = float(np.einsum("ij,ij->", a, a))
    if variance < 1e-9:
        return None
    za, zb = a[:, 0] + 1j * a[:, 1], b[:, 0] + 1j * b[:, 1]
    c = complex((np.conj(za) * zb).sum() / variance)
    transform = np.array([[c.real, -c.imag, 0.0], [c.imag, c.real, 0.0]])
    transform[:, 2] = mean_dst - transform[:, :2] @ mean_src
    return transform


def _consensus(
    pa: np.ndarray, fa: np.ndarray, pb: np.ndarray, fb: np.ndarray
) -> tuple[int, np.ndarray | None, np.ndarray | None]:
    """Inliers of the best plausible similarity transform from points ``pb`` to ``pa``.

    Every match proposes a transform from its two keypoints' sizes and orientations (one-point
    hypotheses, so the search is exhaustive and deterministic, not random); the
    :data:`HYPOTHESES` with the most matches within ``LOOSE * RANSAC_PX`` are refitted by
    least squares on those matches, then on their matches within :data:`RANSAC_PX`, and the
    best count within ``RANSAC_PX`` of a transform whose scale is within :data:`MAX_SCALE` wins.

    Returns:
        ``(inliers, transform, inlier mask)``; ``(0, None, None)`` with fewer than 3 matches.
    """
    if len(pa) < 3:
        return 0, None, None
    scale = fa[:, 0] / np.maximum(fb[:, 0], 1e-3)
    angle = np.deg2rad(fa[:, 1] - fb[:, 1])
    c, d = scale * np.cos(angle), scale * np.sin(angle)
    tx = pa[:, 0] - (c * pb[:, 0] - d * pb[:, 1])
    ty = pa[:, 1] - (d * pb[:, 0] + c * pb[:, 1])
    dx = c[:, None] * pb[None, :, 0] - d[:, None] * pb[None, :, 1] + tx[:, None] - pa[None, :, 0]
    dy = d[:, None] * pb[None, :, 0] + c[:, None] * pb[None, :, 1] + ty[:, None] - pa[None, :, 1]
    near = dx * dx + dy * dy < (LOOSE * RANSAC_PX) ** 2
    counts = near.sum(1)
    best, best_transform, best_mask = 0, None, None
    for k in np.argsort(-counts, kind="stable")[:HYPOTHESES].tolist():
        if counts[k] < 3:
            break
        mask = near[k]
        transform = None
        for _ in range(2):
            transform = _similarity(pb[mask], pa[mask])
            if transform is None:
                break
            residual = pb @ transform[:, :2].T + transform[:, 2] - pa
            mask = (residual * residual).sum(1) < RANSAC_PX**2
            if mask.sum() < 3:
                break
        if transform is None:
            continue
        if not 1 / MAX_SCALE <= float(np.hypot(transform[0, 0], transform[1, 0])) <= MAX_SCALE:
            continue
        if int(mask.sum()) > best:
            best, best_transform, best_mask = int(mask.sum()), transform, mask
    return best, best_transform, best_mask


def spread_weight(points: np.ndarray) -> float:
    """The weight of a set of inliers by how far they spread (see :data:`SPREAD`).

    Args:
        points: ``(N, 2)`` inlier positions.

    Returns:
        A weight in ``[0, 1]`` (0 for fewer than 3 points).

    Examples:
        >>> line = np.stack([np.arange(20.0), np.zeros(20)], axis=1)
        >>> spread_weight(line), spread_weight(np.random.default_rng(0).uniform(0, 200, (20, 2)))
        (0.0, 1.0)
    """
    if len(points) < 3:
        return 0.0
    centred = points - points.mean(axis=0)
    covariance = centred.T @ centred / len(points)
    area = float(np.sqrt(max(0.0, np.linalg.det(covariance))))
    return min(1.0, area / SPREAD**2)


def _matches_of(
    a: LesionFeatures, partners: Sequence[tuple[LesionFeatures, bool]], limit: int | None = None
) -> list[tuple[int, float]]:
    """Inliers between ``a`` and each ``(b, mirrored)`` of ``partners``, and those inliers
    weighted by their :func:`spread_weight`: the descriptors of all partners are compared with
    ``a``'s in one matrix product, Lowe's ratio test per partner. ``limit``: only the strongest
    keypoints of each image (all: ``None``)."""
    out = [(0, 0.0)] * len(partners)
    stop = limit if limit is not None else max([len(a)] + [len(b) for b, _ in partners])
    valid_partners = [p for p, (b, _) in enumerate(partners) if min(len(b), stop) >= 3 and b.frames is not None]
    if min(len(a), stop) < 3 or a.frames is None or not valid_partners:
        return out
    query = a.descriptors[:stop].astype(np.float32)
    sizes = [min(len(partners[p][0]), stop) for p in valid_partners]
    side = max(sizes)
    base = np.zeros((len(valid_partners), side, 128), np.float32)
    norms = np.full((len(valid_partners), side), np.inf, np.float32)  # no keypoint: never the nearest
    for row, (p, size) in enumerate(zip(valid_partners, sizes, strict=True)):
        b, mirrored = partners[p]
        base[row, :size] = mirror_descriptors(b.descriptors[:size]) if mirrored else b.descriptors[:size]
        norms[row, :size] = (base[row, :size] * base[row, :size]).sum(1)
    # squared distances less the query's own norm (added back to the two nearest only)
    distance = ((-2 * query) @ base.reshape(-1, 128).T).reshape(len(query), len(valid_partners), side)
    distance += norms[None]
    nearest = distance.argmin(axis=2)
    own = (query * query).sum(1)[:, None]
    first = np.take_along_axis(distance, nearest[:, :, None], 2)[:, :, 0] + own
    np.put_along_axis(distance, nearest[:, :, None], np.inf, 2)
    good = np.maximum(first, 0) < RATIO**2 * np.maximum(distance.min(axis=2) + own, 0)
    for row, p in enumerate(valid_partners):
        b, mirrored = partners[p]
        rows = np.flatnonzero(good[:, row])
        if len(rows) < 3:
            continue
        cols = nearest[rows, row]
        pb = b.points[cols].astype(np.float64)
        fb = b.frames[cols].astype(np.float64)  # type: ignore[index]
        if mirrored:
            pb[:, 0] = b.width - 1 - pb[:, 0]
            fb[:, 1] = 180.0 - fb[:, 1]
        pa = a.points[rows].astype(np.float64)
        count, _, mask = _consensus(pa, a.frames[rows].astype(np.float64), pb, fb)
        if count:
            out[p] = (count, count * spread_weight(pa[mask]))
    return out


def match_pair(a: LesionFeatures, b: LesionFeatures, *, mirrored: bool | None = None) -> int:
    """Inliers of a similarity transform between two images' keypoints (identical pixels: a
    large count), in the parity whose inliers weighted by :func:`spread_weight` are more.

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
    parities = (False, True) if mirrored is None else (mirrored,)
    return max(_matches_of(a, [(b, parity) for parity in parities]), key=lambda found: found[1])[0]


def match_pairs(
    features: Sequence[LesionFeatures],
    i: np.ndarray,
    j: np.ndarray,
    *,
    mirrored: np.ndarray | None = None,
    keypoints: int | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`match_pair` of every pair ``(i[k], j[k])``: the pairs of one first image are
    matched together (one matrix product), in ``workers`` threads (numpy releases the GIL
    while it multiplies).

    Args:
        features: One :class:`LesionFeatures` per image.
        i: First indices.
        j: Second indices.
        mirrored: Per pair, the parity to match in: 0 the second image, 1 its mirror image, 2
            both (the better counts), as :func:`vote_candidates` found it; ``None``: both.
        keypoints: Match only the strongest this many keypoints of each image (``None``: all).
        workers: Threads.
        progress: Called with the number of pairs done after each chunk.

    Returns:
        ``(len(i),)`` int64 inlier counts and ``(len(i),)`` float64 inliers weighted by their
        :func:`spread_weight`, each of the parity whose weighted inliers are more (identical
        pixels: a large count, weight 1).
    """
    out = np.zeros(len(i), dtype=np.int64)
    weighted = np.zeros(len(i), dtype=np.float64)
    if not len(i):
        return out, weighted
    order = np.argsort(np.asarray(i), kind="stable")
    firsts = np.asarray(i)[order]
    bounds = np.flatnonzero(np.r_[True, firsts[1:] != firsts[:-1], True])
    groups = [order[bounds[g] : bounds[g + 1]] for g in range(len(bounds) - 1)]
    chunks: list[list[np.ndarray]] = []
    for group in groups:  # about 256 pairs per chunk
        if not chunks or sum(len(g) for g in chunks[-1]) >= 256:
            chunks.append([])
        chunks[-1].append(group)

    def work(chunk: list[np.ndarray]) -> int:
        for group in chunk:
            a = features[int(i[group[0]])]
            partners: list[tuple[LesionFeatures, bool]] = []
            owners: list[int] = []
            for k in group.tolist():
                b = features[int(j[k])]
                if a.digest == b.digest:
                    out[k] = weighted[k] = max(len(a), 1000)
                    continue
                parity = 2 if mirrored is None else int(mirrored[k])
                for flag in (False, True) if parity == 2 else (bool(parity),):
                    partners.append((b, flag))
                    owners.append(k)
            for k, (count, value) in zip(owners, _matches_of(a, partners, keypoints), strict=True):
                if value > weighted[k] or (value == weighted[k] and count > out[k]):
                    out[k], weighted[k] = count, value
        return sum(len(g) for g in chunk)

    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            done = work(chunk)
            if progress is not None:
                progress(done)
        return out, weighted
    # the threads already fill the cores: a BLAS that also splits each product over its own threads
    # only makes them wait for each other (benchmarks/lesion_verify_threads.py)
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=workers) as pool:
        for done in pool.map(work, chunks):
            if progress is not None:
                progress(done)
    return out, weighted


def verify_candidates(
    features: Sequence[LesionFeatures],
    i: np.ndarray,
    j: np.ndarray,
    *,
    mirrored: np.ndarray | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    rechecking: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`match_pairs` in two stages: every pair with the :data:`SCREEN_KEYPOINTS` strongest
    keypoints of each image, then the pairs with at least :data:`RECHECK` weighted inliers again
    with all of them. Most candidates are two different lesions, and the first match, a sixteenth
    of the descriptors' comparisons (100 x 100 against 400 x 400), stops them; a second
    photograph of one lesion shares fewer strong keypoints than a copy does, and the second match
    finds the rest.

    Args:
        features: One :class:`LesionFeatures` per image.
        i: First indices.
        j: Second indices.
        mirrored: Per pair, the parity to match in (as in :func:`match_pairs`).
        workers: Threads.
        progress: Called with the number of pairs done after each chunk, in both stages.
        rechecking: Called once with the number of pairs the second stage matches again, before
            it starts (a progress bar's total grows by it).

    Returns:
        As :func:`match_pairs`: inliers and weighted inliers per pair, of the second stage where
        it ran.
    """
    inliers, weighted = match_pairs(
        features, i, j, mirrored=mirrored, keypoints=SCREEN_KEYPOINTS, workers=workers, progress=progress
    )
    again = np.flatnonzero(weighted >= RECHECK)
    if len(again):
        if rechecking is not None:
            rechecking(len(again))
        inliers[again], weighted[again] = match_pairs(
            features,
            np.asarray(i)[again],
            np.asarray(j)[again],
            mirrored=None if mirrored is None else np.asarray(mirrored)[again],
            workers=workers,
            progress=progress,
        )
    return inliers, weighted
