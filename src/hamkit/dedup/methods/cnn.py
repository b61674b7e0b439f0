"""The ``"cnn"`` method: L2-normalised pooled CNN features above a cosine similarity.

The default network is EfficientNet-Lite0 with the ImageNet weights installed with hamkit
(:data:`~hamkit.backbones.defaults.EMBEDDING_BACKBONE`): nothing is downloaded. Its default
threshold, 0.95, was measured for that network on the 10,015 HAM10000 images with planted copies
(``benchmarks/dedup_real.py``): at 0.93 it made 544 pairs of images of different lesions, in
groups of up to 171 images; at 0.95 20 such pairs and groups of at most 4. Another backbone has
its own scale of similarities: choose its threshold with ``hamkit dedup --labels`` (the calibration) or a
benchmark; the original recipe's MobileNetV2 used 0.93 (the ``report`` preset of ``hamkit run``).
A global embedding misses many altered copies (crops, shifts, turns); the ``verified`` method
finds them.

Any registry backbone works (plugins and ``timm:`` names too). Embeddings are cached on disk
by file identity and setting (:class:`~hamkit.dedup.embeddings.EmbeddingCache`), the network is
built once per method instance (``network_``), and the pair search is
:func:`~hamkit.dedup.search.cosine_pairs` with the method's ``search_backend``.

Examples:
    >>> from hamkit.dedup.methods import CnnMethod
    >>> CnnMethod().default_threshold, CnnMethod().needs
    (0.95, ('torch', 'weights'))
    >>> CnnMethod(backbone="resnet18", image_size=128)
    CnnMethod(backbone='resnet18', image_size=128)
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
from hamkit.backbones.defaults import EMBEDDING_BACKBONE, EMBEDDING_THRESHOLD
from hamkit.dedup.methods.base import DedupMethod, Shared, Signatures, Threshold, register_method
from hamkit.dedup.pairs import Pairs
from hamkit.dedup.search import IvfConfig, cosine_cross_pairs, cosine_pairs
from hamkit.errors import HamkitError

if TYPE_CHECKING:  # pragma: no cover
    from hamkit.dedup.scenes import VerifiedCandidates

__all__ = ["CnnMethod"]


@register_method
class CnnMethod(DedupMethod):
    """``"cnn"``: cosine similarity of L2-normalised pooled CNN features.

    Args:
        backbone: Registry name of the CNN; plugins and ``timm:`` names work. The default,
            EfficientNet-Lite0, has ImageNet weights installed with hamkit; with another
            backbone, choose the threshold for it (see :mod:`hamkit.dedup.methods.cnn`).
        image_size: CNN input size.
        batch_size: Images per batch.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        pretrained: Use the backbone's pretrained weights (installed with hamkit for the
            default; other backbones download theirs once). Needed: with random weights
            unrelated images have cosine similarities above 0.999, so any useful threshold groups
            everything (a warning says so).
        weights: Local weights file for the backbone instead.
        search_backend: ``"auto"`` (exact below
            :data:`~hamkit.dedup.search.FAISS_APPROX_MIN_N` embeddings), ``"numpy"`` (always
            exact), ``"faiss"``, ``"faiss-ivf"`` or ``"faiss-hnsw"`` (approximate: see
            :mod:`hamkit.dedup.search`).
        ivf: Settings of the IVF index when the search uses it
            (:class:`~hamkit.dedup.faiss_search.IvfConfig`; ``None``: its defaults, 16 probes).

    Attributes:
        network_: The embedding network, built on first use (and again when its settings change).

    Examples:
        >>> CnnMethod().passes(np.array([0.95, 0.9], dtype=np.float32), 0.93).tolist()
        [True, False]
    """

    name = "cnn"
    metric = "cosine"
    higher_is_better = True
    default_threshold = EMBEDDING_THRESHOLD
    threshold_meaning = "min cosine similarity, (0, 1]"
    summary = "L2-normalised pooled CNN features (any registry backbone)"
    needs = ("torch", "weights")
    disk_cache = "embeddings"
    memory_cache = "the network (built on first use)"
    run_threshold = "cnn_threshold"
    run_settings = {"cnn_backbone": "backbone", "pretrained": "pretrained"}

    def __init__(
        self,
        *,
        backbone: str = EMBEDDING_BACKBONE,
        image_size: int = 224,
        batch_size: int = 64,
        device: str = "auto",
        pretrained: bool = True,
        weights: str | os.PathLike[str] | None = None,
        search_backend: str = "auto",
        ivf: IvfConfig | None = None,
    ) -> None:
        self.backbone = backbone
        self.image_size = image_size
        self.batch_size = batch_size
        self.device = device
        self.pretrained = pretrained
        self.weights = weights
        self.search_backend = search_backend
        self.ivf = ivf

    def check(self) -> None:
        """Check ``batch_size``, ``image_size`` and ``ivf``.

        Raises:
            HamkitError: A setting out of range.
        """
        for key in ("batch_size", "image_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise HamkitError(f"{key} must be a positive integer, got {value!r}")
        if self.ivf is not None and not isinstance(self.ivf, IvfConfig):
            raise HamkitError(f"ivf must be a hamkit.dedup.search.IvfConfig or None, got {type(self.ivf).__name__}")

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

    def network(self) -> tuple[Any, Any]:
        """The embedding network and its registry spec, built once per method and setting.

        Warns (``UserWarning``) when the network has random weights: unrelated images then look
        alike and no threshold separates them.
        """
        from hamkit.backbones.registry import create_backbone, get_backbone

        spec = get_backbone(self.backbone)
        key = (self.backbone, self.pretrained, self.weights)
        if self.__dict__.get("network_") is None or self.__dict__.get("_network_key") != key:
            if not self.pretrained and self.weights is None:
                warnings.warn(
                    f"Deduplicator('cnn', backbone={self.backbone!r}) has random weights (pretrained=False, no "
                    "weights file): unrelated images then look alike (cosine > 0.999) and the threshold cannot "
                    "separate them. Use pretrained=True, weights='file', or a hash method.",
                    UserWarning,
                    stacklevel=4,
                )
            import torch

            with torch.random.fork_rng():  # random weights (pretrained=False) are the same in every process
                torch.manual_seed(0)
                self.network_ = create_backbone(
                    self.backbone, task="classification", pretrained=self.pretrained, weights=self.weights
                )
            self._network_key = key
        return self.network_, spec

    def signatures(self, dedup: Shared, paths: Sequence[Path]) -> Signatures:
        """``(N, D)`` float32 L2-normalised embeddings (zero rows for unreadable images)."""
        from hamkit.dedup.embeddings import EmbeddingCache, embed_paths

        model, spec = self.network()
        cache = None
        root = self.cache_folder(dedup, "embeddings")
        if root is not None:
            weights = self.weights
            weights_id = (str(Path(weights).resolve()), os.path.getmtime(weights)) if weights else None
            setting = {
                "backbone": self.backbone,
                "pretrained": self.pretrained,
                "weights": weights_id,
                "image_size": self.image_size,
                "mean": spec.mean,
                "std": spec.std,
            }
            cache = EmbeddingCache(root, setting)
        return embed_paths(
            list(paths),
            model,
            image_size=self.image_size,
            mean=spec.mean,
            std=spec.std,
            batch_size=self.batch_size,
            num_workers=self.workers(dedup),
            device=self.device,
            cache=cache,
            progress=dedup.progress,
        )

    def self_pairs(
        self, dedup: Shared, signatures: np.ndarray, threshold: Threshold
    ) -> tuple[Pairs, VerifiedCandidates | None]:
        """:func:`~hamkit.dedup.search.cosine_pairs` with the method's backend."""
        pairs = cosine_pairs(
            signatures,
            float(threshold),  # type: ignore[arg-type]
            backend=self.search_backend,  # type: ignore[arg-type]
            ivf=self.ivf,
            progress=dedup.progress,
        )
        return pairs, None

    def cross_pairs(self, dedup: Shared, a: np.ndarray, b: np.ndarray, threshold: Threshold) -> Pairs:
        """:func:`~hamkit.dedup.search.cosine_cross_pairs` with the method's backend."""
        return cosine_cross_pairs(
            a,
            b,
            float(threshold),  # type: ignore[arg-type]
            backend=self.search_backend,  # type: ignore[arg-type]
            ivf=self.ivf,
            progress=dedup.progress,
        )
