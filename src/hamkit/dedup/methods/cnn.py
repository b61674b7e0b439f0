"""The ``"cnn"`` method: L2-normalised pooled CNN features above a cosine similarity.

Any registry backbone works (plugins and ``timm:`` names too). Embeddings are cached on disk
by file identity and setting (:class:`~hamkit.dedup.embeddings.EmbeddingCache`), the network is
built once per Deduplicator, and the pair search is
:func:`~hamkit.dedup.search.cosine_pairs` with the Deduplicator's ``search_backend``.

Examples:
    >>> from hamkit.dedup.methods import CnnMethod
    >>> CnnMethod().default_threshold, CnnMethod().needs
    (0.93, ('torch', 'weights'))
    >>> CnnMethod().check_threshold(1.5)
    Traceback (most recent call last):
    ...
    hamkit.errors.HamkitError: threshold for method 'cnn' is a cosine similarity in (0, 1], got 1.5
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hamkit._cpu import loader_workers
from hamkit.dedup.methods.base import DedupMethod, Signatures, Threshold, register_method
from hamkit.dedup.pairs import Pairs
from hamkit.dedup.search import cosine_cross_pairs, cosine_pairs
from hamkit.errors import HamkitError

if TYPE_CHECKING:  # pragma: no cover
    from hamkit.dedup.deduplicator import Deduplicator
    from hamkit.dedup.scenes import VerifiedCandidates

__all__ = ["CnnMethod"]


@register_method
class CnnMethod(DedupMethod):
    """``"cnn"``: cosine similarity of CNN embeddings (``backbone``, ``image_size``, weights).

    Examples:
        >>> CnnMethod().passes(np.array([0.95, 0.9], dtype=np.float32), 0.93).tolist()
        [True, False]
    """

    name = "cnn"
    metric = "cosine"
    higher_is_better = True
    default_threshold = 0.93
    threshold_meaning = "min cosine similarity, (0, 1]"
    needs = ("torch", "weights")
    disk_cache = "embeddings"
    memory_cache = "the network (built on first use)"

    def check_threshold(self, threshold: Threshold) -> Threshold:
        """The threshold as a float in ``(0, 1]`` (the default when ``None``).

        Raises:
            HamkitError: Outside ``(0, 1]``.
        """
        value = self.default_threshold if threshold is None else threshold
        if not 0 < float(value) <= 1:
            raise HamkitError(f"threshold for method 'cnn' is a cosine similarity in (0, 1], got {value}")
        return float(value)

    def default_workers(self) -> int:
        """Up to 4 decoding processes, leaving a CPU to the network, which runs in this process."""
        return loader_workers()

    def network(self, dedup: Deduplicator) -> tuple[Any, Any]:
        """The embedding network and its registry spec, built once per Deduplicator and setting.

        Warns (``UserWarning``) when the network has random weights: unrelated images then look
        alike and no threshold separates them.
        """
        from hamkit.registry import create_backbone, get_backbone

        spec = get_backbone(dedup.backbone)
        key = (dedup.backbone, dedup.pretrained, dedup.weights)
        if dedup.__dict__.get("_model") is None or dedup.__dict__.get("_model_key") != key:
            if not dedup.pretrained and dedup.weights is None:
                warnings.warn(
                    f"Deduplicator('cnn', backbone={dedup.backbone!r}) has random weights (pretrained=False, no "
                    "weights file): unrelated images then look alike (cosine > 0.999) and the threshold cannot "
                    "separate them. Use pretrained=True, weights='file', or a hash method.",
                    UserWarning,
                    stacklevel=4,
                )
            import torch

            with torch.random.fork_rng():  # random weights (pretrained=False) are the same in every process
                torch.manual_seed(0)
                dedup._model = create_backbone(
                    dedup.backbone, task="classification", pretrained=dedup.pretrained, weights=dedup.weights
                )
            dedup._model_key = key
        return dedup._model, spec

    def signatures(self, dedup: Deduplicator, paths: Sequence[Path]) -> Signatures:
        """``(N, D)`` float32 L2-normalised embeddings (zero rows for unreadable images)."""
        from hamkit.dedup.embeddings import EmbeddingCache, embed_paths

        model, spec = self.network(dedup)
        cache = None
        root = self.cache_folder(dedup, "embeddings")
        if root is not None:
            weights = dedup.weights
            weights_id = (str(Path(weights).resolve()), os.path.getmtime(weights)) if weights else None
            setting = {
                "backbone": dedup.backbone,
                "pretrained": dedup.pretrained,
                "weights": weights_id,
                "image_size": dedup.image_size,
                "mean": spec.mean,
                "std": spec.std,
            }
            cache = EmbeddingCache(root, setting)
        return embed_paths(
            list(paths),
            model,
            image_size=dedup.image_size,
            mean=spec.mean,
            std=spec.std,
            batch_size=dedup.batch_size,
            num_workers=self.workers(dedup),
            device=dedup.device,
            cache=cache,
            progress=dedup.progress,
        )

    def self_pairs(
        self, dedup: Deduplicator, signatures: np.ndarray, threshold: Threshold
    ) -> tuple[Pairs, VerifiedCandidates | None]:
        """:func:`~hamkit.dedup.search.cosine_pairs` with the Deduplicator's backend."""
        pairs = cosine_pairs(
            signatures,
            float(threshold),  # type: ignore[arg-type]
            backend=dedup.search_backend,  # type: ignore[arg-type]
            ivf=dedup.ivf,
            progress=dedup.progress,
        )
        return pairs, None

    def cross_pairs(self, dedup: Deduplicator, a: np.ndarray, b: np.ndarray, threshold: Threshold) -> Pairs:
        """:func:`~hamkit.dedup.search.cosine_cross_pairs` with the Deduplicator's backend."""
        return cosine_cross_pairs(
            a,
            b,
            float(threshold),  # type: ignore[arg-type]
            backend=dedup.search_backend,  # type: ignore[arg-type]
            ivf=dedup.ivf,
            progress=dedup.progress,
        )
