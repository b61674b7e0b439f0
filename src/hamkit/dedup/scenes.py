"""What the ``"verified"`` method keeps of each image, and the search over a set of them.

A :class:`Scene` is decoded once per image (in the decoding workers): the greyscale image at
:data:`~hamkit.dedup.verify.WORK_SIDE` px on its longest side, its square thumbnail for the
candidate search, ORB keypoints of the image and of its mirror image, and a digest of the
decoded pixels (identical pixels are a duplicate whatever the verifier says, even on an image
with no texture at all). Most of its memory is the keypoints: a few tens of KB per image.

:func:`verified_pairs` runs the two stages, :mod:`hamkit.dedup.candidates` for recall and
:mod:`hamkit.dedup.verify` for precision, and returns every candidate with its score, so that a
threshold can be chosen afterwards (:meth:`hamkit.Deduplicator.calibrate`). Given a
:data:`VerifyMemo`, it verifies no pair twice: a verification depends only on the two images'
decoded pixels (their digests) in the order given, the mirror parity and ``min_inliers``, so a
later search over another set of the same images (an audit across splits after the search over
all images) looks up the candidates already verified and aligns only the new ones. The order
counts: the second image is aligned onto the first, and a borderline pair can pass one way only.
So a verification stands for the other order only when the coarse match rejected it
(:data:`REVERSE_REUSE_BELOW`); any other is aligned the other way round too when a search asks
for that order (the pairs that passed one way only, on the real images, are on the Benchmarks
page of the documentation).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from hamkit.dedup.candidates import THUMB, Candidates, candidate_pairs
from hamkit.dedup.pairs import equal_value_pairs
from hamkit.dedup.verify import _COARSE_MIN, WORK_SIDE, SceneFeatures, scene_features, verify_pairs

__all__ = [
    "REVERSE_REUSE_BELOW",
    "Scene",
    "VerifiedCandidates",
    "VerifyKey",
    "VerifyMemo",
    "verified_pairs",
    "with_identical",
]

VerifyKey = tuple[str, str, bool, bool, int]
"""A verification's key: the two images' digests in the order verified (the second is aligned
onto the first; the other order can score differently), whether the second is mirrored, whether
both parities were tried, and ``min_inliers``."""

VerifyMemo = dict[VerifyKey, tuple[float, int]]
"""Verifications done, ``{key: (score, inliers)}``; :func:`verified_pairs` reads and extends it."""

REVERSE_REUSE_BELOW = _COARSE_MIN
"""A verification rejected with fewer RANSAC inliers than this (by the quick match of the
strongest keypoints, :mod:`hamkit.dedup.verify`) stands for the other order of the pair too."""


def _looked_up(memo: VerifyMemo, key: VerifyKey) -> tuple[float, int] | None:
    """The verification of ``key``, or of the other order when the coarse match rejected that one."""
    found = memo.get(key)
    if found is None:
        other = memo.get((key[1], key[0], key[2], key[3], key[4]))
        if other is not None and other[0] <= 0 and other[1] < REVERSE_REUSE_BELOW:
            found = other
    return found


@dataclass(frozen=True)
class Scene:
    """One image as the ``"verified"`` method sees it.

    Attributes:
        gray: ``(H, W)`` uint8 greyscale, longest side :data:`~hamkit.dedup.verify.WORK_SIDE`.
        thumb: ``(THUMB, THUMB)`` uint8 square thumbnail (aspect ratio not kept), a dark
            vignette at the border filled with the median grey.
        features: ORB keypoints of ``gray``.
        mirror_features: ORB keypoints of ``gray`` mirrored left to right.
        digest: SHA-256 of ``gray`` and its shape (equal for identical files, and for files
            whose decoded pixels are identical at the working size).
    """

    gray: np.ndarray
    thumb: np.ndarray
    features: SceneFeatures
    mirror_features: SceneFeatures
    digest: str

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> Scene:
        """Decode an image file (JPEGs at reduced size) into a :class:`Scene`.

        Raises:
            DataError: The file cannot be decoded (see :func:`hamkit.data.images.open_image`).
        """
        from hamkit.data.images import open_image

        return cls.from_image(open_image(path, (WORK_SIDE, WORK_SIDE)))

    @classmethod
    def from_image(cls, image: Image.Image) -> Scene:
        """A :class:`Scene` of a decoded Pillow image.

        Examples:
            >>> scene = Scene.from_image(Image.new("RGB", (600, 450), "white"))
            >>> scene.gray.shape, scene.thumb.shape
            ((150, 200), (64, 64))
        """
        gray_image = image.convert("L")
        scale = WORK_SIDE / max(gray_image.size)
        size = (max(1, round(gray_image.width * scale)), max(1, round(gray_image.height * scale)))
        gray = np.asarray(gray_image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0), dtype=np.uint8)
        import cv2

        thumb = _without_vignette(cv2.resize(gray, (THUMB, THUMB), interpolation=cv2.INTER_AREA))
        digest = hashlib.sha256(np.asarray(gray.shape, np.int64).tobytes() + gray.tobytes()).hexdigest()
        return cls(gray, thumb, scene_features(gray), scene_features(np.ascontiguousarray(gray[:, ::-1])), digest)


_VIGNETTE_LEVEL = 40  # grey level below which a region touching the border counts as vignette


def _without_vignette(thumb: np.ndarray) -> np.ndarray:
    """The thumbnail with dark regions that touch its border (a dermatoscope's black vignette)
    filled with the median grey of the rest, so that crops and shifts, which move the vignette,
    do not decide which images look alike. A dark lesion inside the image is kept."""
    import cv2

    dark = (thumb < _VIGNETTE_LEVEL).astype(np.uint8)
    if not dark.any():
        return thumb
    _, labels = cv2.connectedComponents(dark, connectivity=8)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    vignette = np.isin(labels, border[border > 0])
    if not vignette.any() or vignette.all():
        return thumb
    out = thumb.copy()
    out[vignette] = np.uint8(np.median(thumb[~vignette]))
    return out


@dataclass(frozen=True)
class VerifiedCandidates:
    """Every candidate pair with its verification.

    Attributes:
        i: First indices (``i < j`` in a self search).
        j: Second indices.
        score: Aligned-content score (1.0 for identical pixels; 0 when the alignment failed).
        inliers: RANSAC inliers of the alignment (-1 for identical pixels, which skip it).
        similarity: Window similarity that made the pair a candidate.
    """

    i: np.ndarray
    j: np.ndarray
    score: np.ndarray
    inliers: np.ndarray
    similarity: np.ndarray

    def __len__(self) -> int:
        return len(self.i)


def with_identical(candidates: Candidates, digests: np.ndarray) -> Candidates:
    """The candidates plus every pair of images with identical pixels (equal ``digests``), which
    pair whatever the window search proposed.

    Args:
        candidates: The window candidates.
        digests: :attr:`Scene.digest` per image (an object array).

    Returns:
        The :class:`~hamkit.dedup.candidates.Candidates`, each pair once (sorted by ``(i, j)``
        when identical pairs were added).
    """
    n = len(digests)
    i, j, similarity, mirrored = candidates.i, candidates.j, candidates.similarity, candidates.mirrored
    ambiguous = candidates.ambiguous if candidates.ambiguous is not None else np.zeros(len(candidates), dtype=bool)
    identical_pairs = equal_value_pairs(digests, digests, self_search=True)
    if len(identical_pairs):
        i = np.concatenate([i, identical_pairs.i])
        j = np.concatenate([j, identical_pairs.j])
        similarity = np.concatenate([similarity, identical_pairs.score])
        mirrored = np.concatenate([mirrored, np.zeros(len(identical_pairs), bool)])
        ambiguous = np.concatenate([ambiguous, np.zeros(len(identical_pairs), bool)])
        _, first = np.unique(i * n + j, return_index=True)  # an identical pair may also be a candidate
        i, j, similarity, mirrored, ambiguous = i[first], j[first], similarity[first], mirrored[first], ambiguous[first]
    return Candidates(i, j, similarity, mirrored, ambiguous)


def verified_pairs(
    scenes: Sequence[Scene],
    *,
    k: int = 10,
    min_inliers: int = 15,
    workers: int = 1,
    progress: bool = False,
    cross: int | None = None,
    memo: VerifyMemo | None = None,
    candidates: Candidates | None = None,
) -> VerifiedCandidates:
    """Candidates by window kNN, each verified by alignment; identical pixels always pair.

    Args:
        scenes: One :class:`Scene` per image.
        k: Candidates per image.
        min_inliers: Minimum RANSAC inliers for a pair to be scored.
        workers: Verification threads.
        progress: Show a progress bar while verifying.
        cross: For a search across two sets, the number of scenes in the first set: only pairs
            with one image on each side are kept (``i`` in the first set, ``j`` in the second,
            indexed from the second set's start).
        memo: Verifications done before (:data:`VerifyMemo`): a candidate found there in the
            same order, or in the other order with fewer than :data:`REVERSE_REUSE_BELOW`
            inliers, is not aligned again; the new verifications are added to it.
        candidates: The window candidates among ``scenes`` when already chosen (e.g. by
            :func:`~hamkit.dedup.candidates.candidates_from_hits` from an earlier search over a
            larger set); ``None``: searched here (:func:`~hamkit.dedup.candidates.candidate_pairs`).

    Returns:
        The :class:`VerifiedCandidates`, sorted by ``(i, j)``.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> scenes = [Scene.from_image(Image.fromarray((rng.random((150, 200)) * 255).astype(np.uint8)))
        ...           for _ in range(3)]
        >>> memo: VerifyMemo = {}
        >>> first = verified_pairs(scenes, k=2, memo=memo)
        >>> len(memo) == len(first)  # every candidate verified once
        True
        >>> again = verified_pairs(scenes[:2], k=2, memo=memo)  # looked up, not aligned again
        >>> len(memo) == len(first)
        True
    """
    n = len(scenes)
    if candidates is None:
        thumbs = np.stack([s.thumb for s in scenes]) if n else np.zeros((0, THUMB, THUMB), np.uint8)
        candidates = candidate_pairs(thumbs, k=k)
    digests = np.array([s.digest for s in scenes], dtype=object)
    found = with_identical(candidates, digests)
    i, j, similarity, mirrored = found.i, found.j, found.similarity, found.mirrored
    ambiguous = found.ambiguous if found.ambiguous is not None else np.zeros(len(found), dtype=bool)
    if cross is not None:
        keep = (i < cross) & (j >= cross)
        i, j, similarity, mirrored, ambiguous = i[keep], j[keep], similarity[keep], mirrored[keep], ambiguous[keep]
    identical = digests[i] == digests[j] if len(i) else np.zeros(0, bool)
    todo = np.flatnonzero(~identical)
    score = np.ones(len(i), np.float32)
    inliers = np.full(len(i), -1, np.int32)
    keys: list[VerifyKey] = []
    if memo is not None and len(todo):
        keys = [
            (digests[i[p]], digests[j[p]], bool(mirrored[p]), bool(ambiguous[p]), min_inliers) for p in todo.tolist()
        ]
        seen = [_looked_up(memo, key) for key in keys]
        for p, hit in zip(todo.tolist(), seen, strict=True):
            if hit is not None:
                score[p], inliers[p] = hit
        fresh = np.array([hit is None for hit in seen], dtype=bool)
        keys = [key for key, new in zip(keys, fresh.tolist(), strict=True) if new]
        todo = todo[fresh]
    if len(todo):
        score[todo], inliers[todo] = verify_pairs(
            [s.gray for s in scenes],
            [s.features for s in scenes],
            [s.mirror_features for s in scenes],
            i[todo],
            j[todo],
            mirrored[todo],
            min_inliers=min_inliers,
            workers=workers,
            progress=progress,
            both=ambiguous[todo],
        )
        if memo is not None:
            memo.update(zip(keys, zip(score[todo].tolist(), inliers[todo].tolist(), strict=True), strict=True))
    order = np.lexsort((j, i))
    result = VerifiedCandidates(i[order], j[order], score[order], inliers[order], similarity[order])
    if cross is not None:
        result = VerifiedCandidates(result.i, result.j - cross, result.score, result.inliers, result.similarity)
    return result
