"""The ``"lesion"`` method: the same lesion in another photograph, not only copies.

A second photograph of one lesion, days or months later, has another framing, zoom, rotation,
lighting, hair and bubbles: a global signature (hash, thumbnail, CNN embedding) of the two
differs, and the ``"verified"`` method, built to find copies, misses most of them. This method
finds them by their local structure (:mod:`hamkit.dedup.lesion_match`): SIFT keypoints of each
contrast-equalised image, candidate partners by votes of each image's strongest descriptors (and
of its mirror image's) for the images holding their nearest descriptors, optionally also by the
nearest whitened CNN embeddings of a colour-normalised crop around the lesion (``neighbours``;
the offline ImageNet weights of EfficientNet-Lite0, averaged over ``views`` turns and mirror
images), and each candidate verified by keypoint matching and a RANSAC similarity transform (in
the mirror parity its votes were found in; both for a candidate found by its embedding), first
with each image's strongest keypoints, then with all of them where the first match found any. A
pair's score is :func:`~hamkit.dedup.lesion_match.inlier_score` of the inliers weighted by how
far they spread (:func:`~hamkit.dedup.lesion_match.spread_weight`: inliers along a ruler or a
hair count less): 0.5 at :data:`~hamkit.dedup.lesion_match.INLIER_HALF` well-spread inliers.
Copies are pairs too (they share every keypoint), and identical pixels always pair.

Its settings live on the method (``Deduplicator(LesionMethod(candidates=20))``, ``hamkit dedup
--method lesion --candidates 20``); the Deduplicator's ``threshold`` is the minimum score.
Nothing is learnt from lesion ids and nothing is downloaded: its descriptor index (and the
whitening of the embeddings) is fitted on the images searched; by default no network runs
(with ``neighbours``, the network's weights are ImageNet's, installed with hamkit).

Examples:
    >>> from hamkit.dedup.methods import LesionMethod
    >>> LesionMethod().check_threshold(None), LesionMethod().metric
    (0.5, 'aligned')
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hamkit._cpu import available_cpus
from hamkit.backbones.defaults import EMBEDDING_BACKBONE
from hamkit.dedup.lesion_match import (
    LesionFeatures,
    embedding_candidates,
    inlier_score,
    lesion_embeddings,
    verify_candidates,
    vote_candidates,
)
from hamkit.dedup.methods.base import DedupMethod, Shared, Signatures, Threshold, register_method
from hamkit.dedup.pairs import Pairs, equal_value_pairs
from hamkit.dedup.scenes import VerifiedCandidates
from hamkit.errors import HamkitError

__all__ = ["EMBED_BACKBONE", "LesionMethod", "lesion_candidates"]

EMBED_BACKBONE = EMBEDDING_BACKBONE
"""The network whose embeddings of lesion crops propose candidates: its ImageNet weights are
installed with hamkit, so nothing is downloaded (nothing in them was learnt from HAM10000)."""


def _joined(
    found: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    more_i: np.ndarray,
    more_j: np.ndarray,
    similarity: float,
    parity: int,
    n: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The candidates ``found`` (``i, j, similarity, parity``) and the pairs ``(more_i, more_j)``
    with the given similarity and parity, each pair once (the first found keeps its values)."""
    i, j = np.concatenate([found[0], more_i]), np.concatenate([found[1], more_j])
    sims = np.concatenate([found[2], np.full(len(more_i), similarity, np.float32)])
    parities = np.concatenate([found[3], np.full(len(more_i), parity, np.int8)])
    _, first = np.unique(i * max(n, 1) + j, return_index=True)
    return i[first], j[first], sims[first], parities[first]


def lesion_candidates(
    features: Sequence[LesionFeatures],
    *,
    candidates: int = 10,
    neighbours: int = 0,
    random_state: int = 0,
    workers: int = 1,
    cross: int | None = None,
    progress: bool = False,
) -> VerifiedCandidates:
    """Candidates by descriptor votes (and CNN embeddings), each verified by keypoint matching;
    identical pixels always pair.

    Args:
        features: One :class:`~hamkit.dedup.lesion_match.LesionFeatures` per image.
        candidates: Candidate partners per image by descriptor votes
            (:func:`~hamkit.dedup.lesion_match.vote_candidates`).
        neighbours: Candidate partners per image by the cosine similarity of the features'
            ``embedding`` (:func:`~hamkit.dedup.lesion_match.embedding_candidates`; 0: none, and
            none where an image has no embedding).
        random_state: Random state of the descriptor index's k-means.
        workers: Verification threads.
        cross: For a search across two sets, the number of images in the first set: only pairs
            with one image on each side (``j`` indexed from the second set's start).
        progress: Show a progress bar while verifying.

    Returns:
        Every candidate with its score (:func:`~hamkit.dedup.lesion_match.inlier_score` of the
        inliers weighted by :func:`~hamkit.dedup.lesion_match.spread_weight`; 1.0
        for identical pixels), its inliers (-1 for identical pixels) and its descriptor votes
        (0 for a pair found only by its embedding, 1 for identical pixels found only by their
        digest), sorted by ``(i, j)``.
    """
    from tqdm.auto import tqdm

    n = len(features)
    i, j, similarity, mirrored = vote_candidates(features, k=candidates, cross=cross, random_state=random_state)
    embeddings = [f.embedding for f in features]
    if neighbours and n and all(e is not None for e in embeddings):
        near_i, near_j = embedding_candidates(np.stack(embeddings), k=neighbours, cross=cross)[:2]  # type: ignore[arg-type]
        # found by the embedding, which sees both parities: match in both
        i, j, similarity, mirrored = _joined((i, j, similarity, mirrored), near_i, near_j, 0.0, 2, n)
    digests = np.array([f.digest for f in features], dtype=object)
    same = equal_value_pairs(digests, digests, self_search=True)
    if len(same):
        i, j, similarity, mirrored = _joined((i, j, similarity, mirrored), same.i, same.j, 1.0, 0, n)
    if cross is not None:
        keep = (i < cross) & (j >= cross)
        i, j, similarity, mirrored = i[keep], j[keep], similarity[keep], mirrored[keep]
    identical = digests[i] == digests[j] if len(i) else np.zeros(0, bool)
    inliers = np.full(len(i), -1, np.int64)
    weighted = np.zeros(len(i), np.float64)
    todo = np.flatnonzero(~identical)
    with tqdm(total=len(todo), desc="verify", unit="pair", disable=not progress) as bar:

        def rechecking(count: int) -> None:  # the second stage's pairs join the bar's total
            bar.total += count
            bar.refresh()

        inliers[todo], weighted[todo] = verify_candidates(
            features,
            i[todo],
            j[todo],
            mirrored=mirrored[todo],
            workers=workers,
            progress=bar.update,
            rechecking=rechecking,
        )
    score = np.where(identical, np.float32(1.0), inlier_score(weighted))
    order = np.lexsort((j, i))
    i, j = i[order], j[order]
    if cross is not None:
        j = j - cross
    return VerifiedCandidates(
        i, j, score[order].astype(np.float32), inliers[order].astype(np.int32), similarity[order].astype(np.float32)
    )


@register_method
class LesionMethod(DedupMethod):
    """``"lesion"``: one lesion photographed again, by local features (see the module docstring).

    Args:
        candidates: Candidate partners per image by descriptor votes (more finds more pairs,
            and costs verification time).
        neighbours: Candidate partners per image by the CNN embedding of its lesion crop too
            (0: none, and no network; on HAM10000 the votes hold nearly every pair it finds
            that verification confirms).
        views: Turns and mirror images of each crop its embedding is averaged over (1, 2, 4
            or 8; each costs one forward pass of the network).
        random_state: Random state of the descriptor index's k-means (the same random state
            gives the same result).

    Examples:
        >>> LesionMethod(candidates=30)
        LesionMethod(candidates=30)
        >>> LesionMethod().check_threshold(1.5)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hamkit.errors.HamkitError: threshold for method 'lesion' is a keypoint-match score in (0, 1) ..., got 1.5
    """

    name = "lesion"
    metric = "aligned"
    higher_is_better = True
    default_threshold = 0.5
    threshold_meaning = "min keypoint-match score, (0, 1)"
    summary = (
        "the same lesion photographed again, copies included: SIFT keypoints, candidates by descriptor votes in both "
        "mirror parities, each confirmed by RANSAC inliers (offline)"
    )
    needs = ("faiss", "opencv")  # with neighbours > 0, torch and the installed weights too
    memory_cache = (
        "keypoints (and embeddings, with neighbours), by path, size and modification time; "
        "the network (built on first use)"
    )

    def __init__(
        self,
        *,
        candidates: int = 10,
        neighbours: int = 0,
        views: int = 2,
        random_state: int = 0,
    ) -> None:
        self.candidates = candidates
        self.neighbours = neighbours
        self.views = views
        self.random_state = random_state

    def check(self) -> None:
        """Check ``candidates`` (at least 1), ``neighbours`` (at least 0) and ``views`` (1, 2,
        4 or 8).

        Raises:
            HamkitError: Out of range or not an integer.
        """
        for name, low in (("candidates", 1), ("neighbours", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise HamkitError(f"{name} of method 'lesion' must be an integer of at least {low}, got {value!r}")
        if isinstance(self.views, bool) or self.views not in (1, 2, 4, 8):
            raise HamkitError(f"views of method 'lesion' must be 1, 2, 4 or 8, got {self.views!r}")

    def check_threshold(self, threshold: Threshold) -> Threshold:
        """The threshold as a float in ``(0, 1)`` (the default, 0.5, is 10 RANSAC inliers).

        Raises:
            HamkitError: Outside ``(0, 1)`` (or a bool, or not a number).
        """
        value = self.default_threshold if threshold is None else threshold
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not 0 < number < 1:
            raise HamkitError(
                f"threshold for method 'lesion' is a keypoint-match score in (0, 1) (n / (n + 10) of n RANSAC "
                f"inliers: 0.5 is 10 inliers, 0.6 is 15), got {value}"
            )
        return number

    def calibration_thresholds(self, threshold: Threshold) -> list[float] | None:
        """0.1 to 0.95 in steps of 0.05."""
        return [float(t) for t in np.round(np.arange(0.1, 0.9501, 0.05), 2).tolist()]

    def signatures(self, dedup: Shared, paths: Sequence[Path]) -> Signatures:
        """:class:`~hamkit.dedup.lesion_match.LesionFeatures` per readable image (``None`` for
        the others), with their embeddings when ``neighbours`` > 0, kept in memory for the life
        of the method (``features_``)."""
        self.check()
        embedded = bool(self.neighbours)
        kind = "lesion-crop" if embedded else "lesion"
        setting = (kind, self.views if embedded else None)
        if self.__dict__.get("_memo_setting", setting) != setting:
            self.__dict__.pop("features_", None)  # kept for other settings: decode again
        self._memo_setting = setting
        values, skipped = self._decode_memoised("features_", dedup, paths, kind, batch_size=32, desc="keypoints")
        if embedded:
            self._embed(values)
        return values, skipped

    def _embed(self, values: np.ndarray) -> None:
        """Give every feature of ``values`` without one its embedding for this method's ``views``
        and drop its crop (in place, and in the memo: a repeated search embeds nothing again)."""
        from hamkit.backbones.registry import create_backbone, get_backbone

        todo = [k for k, f in enumerate(values) if f is not None and f.embedding is None and f.crop is not None]
        if not todo:
            return
        if self.__dict__.get("network_") is None:
            import torch

            from hamkit.dedup.embeddings import _fused

            with torch.random.fork_rng():
                network = create_backbone(EMBED_BACKBONE, task="classification", pretrained=True)
            # batch norm folded into the convolutions, channels-last: about 1.5x faster on a CPU
            self.network_ = _fused(network.eval()).to(memory_format=torch.channels_last)
        spec = get_backbone(EMBED_BACKBONE)
        embeddings = np.concatenate(
            [
                lesion_embeddings(
                    np.stack([values[k].crop for k in todo[start : start + 1024]]),
                    self.network_,
                    mean=spec.mean,
                    std=spec.std,
                    views=self.views,
                )
                for start in range(0, len(todo), 1024)
            ]
        )
        memo: dict = self.__dict__.setdefault("features_", {})
        replaced = {}
        for k, embedding in zip(todo, embeddings, strict=True):
            replaced[id(values[k])] = values[k] = dataclasses.replace(values[k], embedding=embedding, crop=None)
        for key, value in memo.items():
            if id(value) in replaced:
                memo[key] = replaced[id(value)]

    def _search(self, dedup: Shared, features: list[Any], cross: int | None = None) -> VerifiedCandidates:
        self.check()
        return lesion_candidates(
            features,
            candidates=self.candidates,
            neighbours=self.neighbours,
            random_state=self.random_state,
            workers=max(1, min(8, available_cpus())),
            cross=cross,
            progress=dedup.progress,
        )

    def self_pairs(
        self, dedup: Shared, signatures: np.ndarray, threshold: Threshold
    ) -> tuple[Pairs, VerifiedCandidates | None]:
        """The candidates whose score passes the threshold, and every candidate."""
        found = self._search(dedup, list(signatures))
        keep = self.passes(found.score, threshold)
        return Pairs(found.i[keep], found.j[keep], found.score[keep], "aligned", True), found

    def cross_pairs(self, dedup: Shared, a: np.ndarray, b: np.ndarray, threshold: Threshold) -> Pairs:
        """The candidates across the two sets whose score passes the threshold."""
        found = self._search(dedup, list(a) + list(b), cross=len(a))
        keep = self.passes(found.score, threshold)
        return Pairs(found.i[keep], found.j[keep], found.score[keep], "aligned", True)
