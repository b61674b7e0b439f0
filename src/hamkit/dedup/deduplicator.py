"""``Deduplicator``: near-duplicate detection that is right on real dermoscopy, and scales.

Methods and thresholds:

==============  ==========================================  =========================  =======
method          signature                                   threshold (valid range)    default
==============  ==========================================  =========================  =======
``"verified"``  candidates by kNN over window thumbnails    min aligned-content        0.5
                in 8 orientations, each confirmed by ORB    score, ``[-1, 1]``
                keypoints + RANSAC and a tile-wise
                comparison of the aligned images (the
                default: offline, and right on real data)
``"cnn"``       L2-normalised pooled CNN features (the      min cosine similarity,     0.93
                seed's approach; any registry backbone)     ``(0, 1]``
``"phash"``     64-bit DCT perceptual hash                  max Hamming distance,      8
                                                            ``0..64``
``"dhash"``     64-bit difference hash                      max Hamming distance,      4
                                                            ``0..64``
``"exact"``     SHA-256 of the decoded pixels (byte-        none (identical pixels)    --
                identical files found first, cheaply)
==============  ==========================================  =========================  =======

``"verified"`` is the default because on the real HAM10000 images the hashes and the CNN pair
thousands of *different* lesions (a dark blob on smooth skin looks alike to any global
signature) and miss cropped, shifted or rotated copies; verification by alignment separates
them (the measurements are on the Benchmarks page of the documentation). Its search is in
:mod:`hamkit.dedup.scenes`.

The search never builds an N x N matrix (:mod:`hamkit.dedup.search`); groups are connected
components with their weakest link reported, or, with ``group_mode="representative"``, groups
whose every member matches the representative (:mod:`hamkit.dedup.groups`).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hamkit._cpu import available_cpus, loader_workers
from hamkit.data.images import image_size_of
from hamkit.data.splits import SPLIT_NAMES, read_split_csv
from hamkit.dedup.calibration import Calibration, calibrate_scores
from hamkit.dedup.groups import choose_kept, duplicate_groups, keep_priority
from hamkit.dedup.hashing import HASH_SIZES, dhash, phash
from hamkit.dedup.inputs import DecodeJob, decode_all, resolve_images
from hamkit.dedup.pairs import Metric, equal_value_pairs
from hamkit.dedup.result import AuditResult, CrossResult, DedupResult
from hamkit.dedup.scenes import VerifiedCandidates, verified_pairs
from hamkit.dedup.search import (
    IvfConfig,
    Pairs,
    cosine_cross_pairs,
    cosine_pairs,
    hamming_cross_pairs,
    hamming_pairs,
)
from hamkit.errors import DataError, HamkitError

__all__ = ["Deduplicator", "METHODS", "DEFAULT_THRESHOLDS", "default_cache_dir"]

METHODS: tuple[str, ...] = ("verified", "cnn", "phash", "dhash", "exact")
DEFAULT_THRESHOLDS: dict[str, float | int | None] = {
    "verified": 0.5,
    "cnn": 0.93,
    "phash": 8,
    "dhash": 4,
    "exact": None,
}
KEEP_POLICIES = ("first", "largest", "prefer")


_HASH_CACHE_VERSION = 1  # bump when the hashes of the same file change (decoding or hashing code)


def default_cache_dir() -> Path:
    """``$HAMKIT_CACHE`` or ``~/.cache/hamkit``: where embeddings and hashes are cached by default."""
    return Path(os.environ.get("HAMKIT_CACHE", Path.home() / ".cache" / "hamkit")).expanduser()


class Deduplicator:
    """Find exact and near-duplicate images so that no lesion leaks between splits.

    Args:
        method: ``"verified"`` (the default), ``"cnn"``, ``"phash"``, ``"dhash"`` or ``"exact"``
            (see the module docstring).
        backbone: Registry name of the CNN (``"cnn"`` only); plugins and ``timm:`` names work.
        threshold: Minimum aligned-content score (verified), minimum cosine similarity (cnn)
            or maximum Hamming distance (hashes); ``None`` = the method's default. Not used by
            ``"exact"``. :meth:`calibrate` suggests one from lesion ids.
        image_size: CNN input size.
        batch_size: Images per batch.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        pretrained: Use the backbone's upstream pretrained weights. Needed for ``"cnn"``: with
            random weights unrelated images have cosine similarities above 0.999, so any useful
            threshold groups everything (a warning says so).
        weights: Local weights file for the backbone instead.
        num_workers: Decoding workers (``None``: for ``"cnn"`` up to 4, leaving a core free
            for the model; for the hash methods one per CPU, up to 8, since decoding is all
            their work: PHash at 735 images/s on 2 cores, against 396 with 1 decoding process,
            ``docs/benchmarks_dedup.md``).
        cache_dir: Cache folder for CNN embeddings and perceptual hashes (``None``:
            :func:`default_cache_dir`; ``False``: no cache). Entries are keyed by file identity
            (path, size, modification time) and setting, so a changed file is recomputed.
        group_mode: ``"connected"`` or ``"representative"`` (every member must match the
            representative directly: guards against chaining).
        keep: Which member of a group to keep: ``"first"`` (by sorted path), ``"largest"``
            (resolution, then file size) or ``"prefer"`` (members listed in ``prefer`` first).
        prefer: Image ids or paths to keep first with ``keep="prefer"`` (e.g. the train split).
        search_backend: ``"auto"`` (exact below
            :data:`~hamkit.dedup.search.FAISS_APPROX_MIN_N` embeddings), ``"numpy"`` (always
            exact), ``"faiss"``, ``"faiss-ivf"`` or ``"faiss-hnsw"`` (approximate: see
            :mod:`hamkit.dedup.search`). Only the ``"cnn"`` method uses it.
        ivf: Settings of the IVF index when the search uses it
            (:class:`~hamkit.dedup.faiss_search.IvfConfig`; ``None``: its defaults, 16 probes).
            ``IvfConfig(nprobe=32)`` misses fewer pairs and takes about twice as long.
        progress: Show progress bars.
        candidates: ``"verified"`` only: candidate partners proposed per image before
            verification (more finds more heavily altered copies, and costs verification time).
        min_inliers: ``"verified"`` only: RANSAC inliers an alignment needs before its content
            is compared.

    Raises:
        HamkitError: An unknown method, keep policy, or a threshold out of range.

    Examples:
        >>> Deduplicator().method, Deduplicator().threshold_
        ('verified', 0.5)
        >>> Deduplicator(method="phash").threshold_
        8
        >>> Deduplicator(method="cnn", threshold=1.5)
        Traceback (most recent call last):
        ...
        hamkit.errors.HamkitError: threshold for method 'cnn' is a cosine similarity in (0, 1], got 1.5
    """

    def __init__(
        self,
        method: str = "verified",
        backbone: str = "mobilenet_v2",
        threshold: float | None = None,
        image_size: int = 224,
        batch_size: int = 64,
        device: str = "auto",
        pretrained: bool = True,
        weights: str | os.PathLike[str] | None = None,
        *,
        num_workers: int | None = None,
        cache_dir: str | os.PathLike[str] | bool | None = None,
        group_mode: str = "connected",
        keep: str = "first",
        prefer: Collection[str | os.PathLike[str]] | None = None,
        search_backend: str = "auto",
        ivf: IvfConfig | None = None,
        progress: bool = True,
        candidates: int = 10,
        min_inliers: int = 15,
    ) -> None:
        self.method = method
        self.backbone = backbone
        self.threshold = threshold
        self.image_size = image_size
        self.batch_size = batch_size
        self.device = device
        self.pretrained = pretrained
        self.weights = weights
        self.num_workers = num_workers
        self.cache_dir = cache_dir
        self.group_mode = group_mode
        self.keep = keep
        self.prefer = prefer
        self.search_backend = search_backend
        self.ivf = ivf
        self.progress = progress
        self.candidates = candidates
        self.min_inliers = min_inliers
        self.threshold_ = self._validated_threshold()
        self._model: Any = None

    # ------------------------------------------------------------------ settings
    def _validated_threshold(self) -> float | int | None:
        if self.method not in METHODS:
            raise HamkitError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.keep not in KEEP_POLICIES:
            raise HamkitError(f"unknown keep policy {self.keep!r}; choose one of {', '.join(KEEP_POLICIES)}")
        if self.keep == "prefer" and not self.prefer:
            raise HamkitError("keep='prefer' needs prefer= (image ids or paths to keep first)")
        if self.group_mode not in ("connected", "representative"):
            raise HamkitError(f"group_mode must be 'connected' or 'representative', got {self.group_mode!r}")
        if self.batch_size < 1:
            raise HamkitError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.ivf is not None and not isinstance(self.ivf, IvfConfig):
            raise HamkitError(f"ivf must be a hamkit.dedup.search.IvfConfig or None, got {type(self.ivf).__name__}")
        if isinstance(self.candidates, bool) or not isinstance(self.candidates, int) or self.candidates < 1:
            raise HamkitError(f"candidates must be a positive integer, got {self.candidates!r}")
        if isinstance(self.min_inliers, bool) or not isinstance(self.min_inliers, int) or self.min_inliers < 4:
            raise HamkitError(f"min_inliers must be an integer of at least 4, got {self.min_inliers!r}")
        threshold = DEFAULT_THRESHOLDS[self.method] if self.threshold is None else self.threshold
        if self.method == "verified":
            if isinstance(threshold, bool) or not -1 <= float(threshold) <= 1:  # type: ignore[arg-type]
                raise HamkitError(
                    f"threshold for method 'verified' is an aligned-content score in [-1, 1], got {threshold}"
                )
            return float(threshold)  # type: ignore[arg-type]
        if self.method == "cnn":
            if not 0 < float(threshold) <= 1:  # type: ignore[arg-type]
                raise HamkitError(f"threshold for method 'cnn' is a cosine similarity in (0, 1], got {threshold}")
            return float(threshold)  # type: ignore[arg-type]
        if self.method in ("phash", "dhash"):
            if isinstance(threshold, bool) or not float(threshold).is_integer() or not 0 <= threshold <= 64:  # type: ignore[operator,arg-type]
                raise HamkitError(
                    f"threshold for method {self.method!r} is a Hamming distance, an integer in 0..64, got {threshold}"
                )
            return int(threshold)  # type: ignore[arg-type]
        if self.threshold is not None:
            raise HamkitError("method 'exact' takes no threshold (it matches identical pixels)")
        return None

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments (scikit-learn convention)."""
        names = (
            "method",
            "backbone",
            "threshold",
            "image_size",
            "batch_size",
            "device",
            "pretrained",
            "weights",
            "num_workers",
            "cache_dir",
            "group_mode",
            "keep",
            "prefer",
            "search_backend",
            "ivf",
            "progress",
            "candidates",
            "min_inliers",
        )
        return {name: getattr(self, name) for name in names}

    def _workers(self) -> int:
        if self.num_workers is not None:
            return self.num_workers
        if self.method == "cnn":  # the model runs in this process: leave it a core
            return loader_workers()
        # hashing and scenes: decoding is all the work, and this process only collects the results
        return max(1, min(8, available_cpus()))

    # ------------------------------------------------------------------ signatures
    def _network(self) -> tuple[Any, Any]:
        from hamkit.registry import create_backbone, get_backbone

        spec = get_backbone(self.backbone)
        if self._model is None:
            if not self.pretrained and self.weights is None:
                warnings.warn(
                    f"Deduplicator('cnn', backbone={self.backbone!r}) has random weights (pretrained=False, no "
                    "weights file): unrelated images then look alike (cosine > 0.999) and the threshold cannot "
                    "separate them. Use pretrained=True, weights='file', or a hash method.",
                    UserWarning,
                    stacklevel=3,
                )
            import torch

            with torch.random.fork_rng():  # random weights (pretrained=False) are the same in every process
                torch.manual_seed(0)
                self._model = create_backbone(
                    self.backbone, task="classification", pretrained=self.pretrained, weights=self.weights
                )
        return self._model, spec

    def embed(self, images: Any) -> np.ndarray:
        """CNN embeddings of images (the seed's ``.npy``): ``(N, D)`` float32, L2-normalised.

        Rows of unreadable images are zero (see :meth:`find` for the list of skipped files).
        Embeddings are cached on disk by file identity and backbone, so a second or resumed run
        does not recompute them.

        Args:
            images: A folder, a text file of paths, a list of paths, or a SkinDataset.

        Returns:
            The embeddings, in input order.
        """
        paths = resolve_images(images)
        return self._embeddings(paths)[0]

    def _cache_root(self, kind: str) -> Path | None:
        """The cache folder of ``kind`` ("embeddings" or "hashes"), or None without a cache."""
        if self.cache_dir is False:
            return None
        if self.cache_dir in (None, True):
            return default_cache_dir() / kind
        return Path(self.cache_dir)  # type: ignore[arg-type]

    def _embeddings(self, paths: list[Path]) -> tuple[np.ndarray, dict[int, str]]:
        from hamkit.dedup.embeddings import EmbeddingCache, embed_paths

        model, spec = self._network()
        cache = None
        root = self._cache_root("embeddings")
        if root is not None:
            weights_id = (str(Path(self.weights).resolve()), os.path.getmtime(self.weights)) if self.weights else None
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
            paths,
            model,
            image_size=self.image_size,
            mean=spec.mean,
            std=spec.std,
            batch_size=self.batch_size,
            num_workers=self._workers(),
            device=self.device,
            cache=cache,
            progress=self.progress,
        )

    def _hashes(self, paths: list[Path]) -> tuple[np.ndarray, dict[int, str]]:
        """Perceptual hashes; those of unchanged files come from the disk cache (like embeddings)."""
        from hamkit.dedup.embeddings import EmbeddingCache

        size = HASH_SIZES[self.method]
        root = self._cache_root("hashes")
        cache = (
            None
            if root is None
            else EmbeddingCache(root, {"hash": self.method, "size": size, "cache_version": _HASH_CACHE_VERSION})
        )
        keys = [EmbeddingCache.key(p) if p.exists() else "" for p in paths]
        known = cache.load() if cache is not None else {}
        out = np.zeros(len(paths), dtype=np.uint64)
        for index, key in enumerate(keys):
            if key in known:
                out[index] = known[key]
        todo = [i for i, key in enumerate(keys) if key not in known]
        skipped: dict[int, str] = {}
        function = phash if self.method == "phash" else dhash
        new_keys: list[str] = []
        new_hashes: list[np.ndarray] = []
        batches = (
            decode_all(
                DecodeJob([paths[i] for i in todo], "gray", size),
                batch_size=max(self.batch_size, 256),
                num_workers=self._workers(),
                progress=self.progress,
                desc=self.method,
            )
            if todo
            else ()
        )
        for local, values, bad in batches:
            skipped.update({todo[i]: reason for i, reason in bad.items()})
            if values:
                indices = [todo[i] for i in local]
                hashes = function(np.stack(values))
                out[indices] = hashes
                new_keys += [keys[i] for i in indices]
                new_hashes.append(hashes)
        if cache is not None and new_keys:
            cache.add(new_keys, np.concatenate(new_hashes))
        return out, skipped

    def _pixel_hashes(self, paths: list[Path]) -> tuple[np.ndarray, dict[int, str]]:
        """Pixel digests; byte-identical files are decoded once."""
        skipped: dict[int, str] = {}
        byte_digest = np.empty(len(paths), dtype=object)
        for indices, values, bad in decode_all(
            DecodeJob(paths, "bytes"), batch_size=256, num_workers=self._workers(), progress=self.progress, desc="bytes"
        ):
            skipped.update(bad)
            byte_digest[indices] = values
        readable = np.array([i for i in range(len(paths)) if i not in skipped], dtype=np.int64)
        _, first, inverse = np.unique(byte_digest[readable].astype(str), return_index=True, return_inverse=True)
        unique = readable[first]
        pixel_of_unique = np.empty(len(unique), dtype=object)
        for indices, values, bad in decode_all(
            DecodeJob([paths[i] for i in unique], "pixels"),
            batch_size=64,
            num_workers=self._workers(),
            progress=self.progress,
            desc="pixels",
        ):
            skipped.update({int(unique[i]): reason for i, reason in bad.items()})
            pixel_of_unique[indices] = values
        representative = unique[inverse]  # byte-identical copies share their representative's fate
        for index, rep in zip(readable.tolist(), representative.tolist(), strict=True):
            if rep in skipped:
                skipped[index] = skipped[rep]
        digest = np.full(len(paths), "", dtype=object)
        digest[readable] = pixel_of_unique[inverse]
        for i in skipped:
            digest[i] = ""
        return digest, skipped

    def _scenes(self, paths: list[Path]) -> tuple[np.ndarray, dict[int, str]]:
        """A :class:`~hamkit.dedup.scenes.Scene` per readable image (``None`` for the others).

        Scenes are kept in memory for the life of this Deduplicator, keyed by path, size and
        modification time, so that an ``audit`` repeated after a re-split decodes nothing again.
        """
        memo: dict[tuple[str, int, int], Any] = self.__dict__.setdefault("_scene_memo", {})
        scenes = np.empty(len(paths), dtype=object)
        keys: list[tuple[str, int, int] | None] = []
        for path in paths:
            try:
                info = os.stat(path)
                keys.append((str(path), info.st_size, info.st_mtime_ns))
            except OSError:
                keys.append(None)
        todo = [i for i, key in enumerate(keys) if key is None or key not in memo]
        for i, key in enumerate(keys):
            if key is not None and key in memo:
                scenes[i] = memo[key]
        skipped: dict[int, str] = {}
        if todo:
            for indices, values, bad in decode_all(
                DecodeJob([paths[i] for i in todo], "scene"),
                batch_size=32,
                num_workers=self._workers(),
                progress=self.progress,
                desc="decode",
            ):
                skipped.update({todo[i]: reason for i, reason in bad.items()})
                for index, scene in zip(indices, values, strict=True):
                    scenes[todo[index]] = scene
                    if keys[todo[index]] is not None:
                        memo[keys[todo[index]]] = scene  # type: ignore[index]
        return scenes, skipped

    def _verified(self, scenes: Sequence[Any], cross: int | None = None) -> VerifiedCandidates:
        return verified_pairs(
            list(scenes),
            k=self.candidates,
            min_inliers=self.min_inliers,
            workers=max(1, min(8, available_cpus())),
            progress=self.progress,
            cross=cross,
        )

    def _signatures(self, paths: list[Path]) -> tuple[np.ndarray, dict[int, str]]:
        if self.method == "verified":
            return self._scenes(paths)
        if self.method == "cnn":
            return self._embeddings(paths)
        if self.method == "exact":
            return self._pixel_hashes(paths)
        return self._hashes(paths)

    # ------------------------------------------------------------------ search
    def _metric(self) -> Metric:
        if self.method == "verified":
            return "aligned"
        return "hamming" if self.method in ("phash", "dhash") else "cosine"

    def _self_pairs(self, signatures: np.ndarray, valid: np.ndarray) -> tuple[Pairs, VerifiedCandidates | None]:
        if len(valid) < 2:
            return Pairs.empty(self._metric()), None
        sub = signatures[valid]
        if self.method == "verified":
            found = self._verified(sub)
            found = VerifiedCandidates(valid[found.i], valid[found.j], found.score, found.inliers, found.similarity)
            keep = found.score >= float(self.threshold_)  # type: ignore[arg-type]
            return Pairs(found.i[keep], found.j[keep], found.score[keep], "aligned", True), found
        if self.method == "cnn":
            pairs = cosine_pairs(
                sub,
                float(self.threshold_),
                backend=self.search_backend,  # type: ignore[arg-type]
                ivf=self.ivf,
                progress=self.progress,
            )
        elif self.method == "exact":
            pairs = equal_value_pairs(sub, sub, self_search=True)
        else:
            pairs = hamming_pairs(sub, int(self.threshold_), progress=self.progress)  # type: ignore[arg-type]
        return Pairs(valid[pairs.i], valid[pairs.j], pairs.score, pairs.metric, pairs.exact), None

    def _cross_pairs(self, sig_a: np.ndarray, sig_b: np.ndarray) -> Pairs:
        if len(sig_a) == 0 or len(sig_b) == 0:
            return Pairs.empty(self._metric())
        if self.method == "verified":
            found = self._verified(list(sig_a) + list(sig_b), cross=len(sig_a))
            keep = found.score >= float(self.threshold_)  # type: ignore[arg-type]
            return Pairs(found.i[keep], found.j[keep], found.score[keep], "aligned", True)
        if self.method == "cnn":
            return cosine_cross_pairs(
                sig_a,
                sig_b,
                float(self.threshold_),  # type: ignore[arg-type]
                backend=self.search_backend,
                ivf=self.ivf,
                progress=self.progress,
            )
        if self.method == "exact":
            return equal_value_pairs(sig_a, sig_b, self_search=False)
        return hamming_cross_pairs(sig_a, sig_b, int(self.threshold_), progress=self.progress)  # type: ignore[arg-type]

    def find(self, images: Any) -> DedupResult | None:
        """Find the duplicates among images.

        Args:
            images: A folder (recursive), a text file of paths, a list of paths, or a SkinDataset.

        Returns:
            The :class:`~hamkit.dedup.result.DedupResult` (``None`` on ranks other than 0 under
            torchrun, which only help with the embeddings).

        Raises:
            DataError: No images, or none readable.
        """
        self._validated_threshold()
        started = time.perf_counter()
        paths = resolve_images(images)
        signatures, skipped = self._signatures(paths)
        if int(os.environ.get("RANK", "0")) != 0:
            return None
        valid = np.array([i for i in range(len(paths)) if i not in skipped], dtype=np.int64)
        if len(valid) == 0:
            raise DataError(
                f"none of the {len(paths)} image(s) could be read; first reason: {paths[0]}: {skipped.get(0, '?')}"
            )
        pairs, candidates = self._self_pairs(signatures, valid)
        rank = self._keep_priority(paths, pairs)
        groups = duplicate_groups(len(paths), pairs, mode=self.group_mode, priority=rank)  # type: ignore[arg-type]
        kept, removed = choose_kept(groups, n=len(paths), policy="first", paths=[f"{r:012d}" for r in rank])
        kept = np.setdiff1d(kept, np.fromiter(skipped, dtype=np.int64, count=len(skipped)))
        return DedupResult(
            paths=paths,
            pairs=pairs,
            groups=groups,
            kept=kept,
            removed=removed,
            skipped=skipped,
            method=self.method,
            threshold=self.threshold_,
            settings=_jsonable(self.get_params()),
            seconds=time.perf_counter() - started,
            candidates=candidates,
        )

    def calibrate(
        self,
        images: Any,
        labels: str | os.PathLike[str] | Mapping[str, str | None],
        thresholds: Sequence[float] | None = None,
    ) -> Calibration:
        """Pairs within and across lesions per threshold, and the threshold that lesion ids suggest.

        Args:
            images: What :meth:`find` takes, or a :class:`~hamkit.dedup.result.DedupResult`
                already found (with ``method="verified"`` it holds every candidate and its
                score, so thresholds below the one in use are tabulated too).
            labels: A metadata CSV with ``image_id`` and ``lesion_id`` columns (HAM10000's),
                or ``{image_id: lesion_id}``. Images are matched by file stem.
            thresholds: Thresholds to tabulate (default: 0.05 steps; whole numbers for hashes).

        Returns:
            The :class:`~hamkit.dedup.calibration.Calibration`: ``summary()``, ``plot(path)``,
            ``to_csv(path)``.

        Raises:
            DataError: No lesion ids in ``labels`` for any image of a pair.
        """
        result = images if isinstance(images, DedupResult) else self.find(images)
        if result is None:  # pragma: no cover - torchrun ranks other than 0
            raise HamkitError("calibrate runs on rank 0 only")
        lesions = _lesion_ids(labels)
        if result.candidates is not None:
            i, j, scores = result.candidates.i, result.candidates.j, result.candidates.score
        else:
            i, j, scores = result.pairs.i, result.pairs.j, result.pairs.score
        stems = [p.stem for p in result.paths]
        lesion_i = np.array([lesions.get(stems[a]) for a in i.tolist()], dtype=object)
        lesion_j = np.array([lesions.get(stems[b]) for b in j.tolist()], dtype=object)
        known = np.array([a is not None and b is not None for a, b in zip(lesion_i, lesion_j, strict=True)], bool)
        if len(i) and not known.any():
            raise DataError(
                "calibrate: none of the images of the pairs has a lesion id in the labels "
                "(images are matched to image_id by file name without extension)"
            )
        if thresholds is None and not result.pairs.higher_is_better:
            thresholds = list(range(0, int(result.threshold or 0) + 1))
        if thresholds is None and result.method == "verified":
            thresholds = np.round(np.arange(0.1, 1.0001, 0.05), 2).tolist()
        calibration = calibrate_scores(
            scores[known],
            lesion_i[known] == lesion_j[known],
            thresholds=thresholds,
            higher_is_better=result.pairs.higher_is_better,
            current=None if result.threshold is None else float(result.threshold),
        )
        calibration.unlabelled = int((~known).sum())
        return calibration

    def _keep_priority(self, paths: list[Path], pairs: Pairs) -> np.ndarray:
        n = len(paths)
        if self.keep == "first":
            return keep_priority(n, policy="first", paths=paths)
        if self.keep == "prefer":
            wanted = {str(p) for p in self.prefer or ()} | {Path(p).stem for p in self.prefer or ()}
            preferred = np.array([str(p) in wanted or p.stem in wanted for p in paths], dtype=bool)
            return keep_priority(n, policy="prefer", paths=paths, preferred=preferred)
        members = np.unique(np.concatenate([pairs.i, pairs.j])) if len(pairs) else np.zeros(0, np.int64)
        resolutions = np.zeros((n, 2), dtype=np.int64)
        sizes = np.zeros(n, dtype=np.int64)
        for m in members.tolist():  # only group members need their size read (header only)
            resolutions[m] = image_size_of(paths[m])
            sizes[m] = paths[m].stat().st_size
        return keep_priority(n, policy="largest", paths=paths, resolutions=resolutions, file_sizes=sizes)

    def find_cross(self, a: Any, b: Any) -> CrossResult | None:
        """Only the duplicate pairs that cross two sets (e.g. train vs test).

        Args:
            a: The first set (folder, list of paths, list file, SkinDataset).
            b: The second set.

        Returns:
            The :class:`~hamkit.dedup.result.CrossResult` (``None`` on non-zero torchrun ranks).
        """
        self._validated_threshold()
        paths_a, paths_b = resolve_images(a), resolve_images(b)
        signatures, skipped = self._signatures(paths_a + paths_b)
        if int(os.environ.get("RANK", "0")) != 0:
            return None
        return self._cross(paths_a, paths_b, signatures[: len(paths_a)], signatures[len(paths_a) :], skipped)

    def _cross(
        self, paths_a: list[Path], paths_b: list[Path], sig_a: np.ndarray, sig_b: np.ndarray, skipped: dict[int, str]
    ) -> CrossResult:
        ok_a = np.array([i for i in range(len(paths_a)) if i not in skipped], dtype=np.int64)
        ok_b = np.array([j for j in range(len(paths_b)) if j + len(paths_a) not in skipped], dtype=np.int64)
        pairs = self._cross_pairs(sig_a[ok_a], sig_b[ok_b])
        pairs = Pairs(ok_a[pairs.i], ok_b[pairs.j], pairs.score, pairs.metric, pairs.exact)
        everything = paths_a + paths_b
        return CrossResult(paths_a, paths_b, pairs, {everything[i]: r for i, r in skipped.items()})

    def audit(self, split_csv: str | os.PathLike[str], root: str | os.PathLike[str]) -> AuditResult:
        """Near-duplicate pairs across the splits of a split CSV.

        Args:
            split_csv: A CSV with ``image_id`` and ``split`` columns (``hamkit split`` writes one).
            root: Folder holding the images (searched recursively).

        Returns:
            The :class:`~hamkit.dedup.result.AuditResult`; ``result.leaks`` is 0 for a clean split.

        Raises:
            DataError: Unreadable split CSV, or none of its images under ``root``.
        """
        from hamkit.data.images import find_images

        self._validated_threshold()
        assignment = read_split_csv(split_csv)
        found = find_images(root)
        missing = sorted(i for i in assignment if i not in found)
        by_split = {name: [found[i] for i, s in assignment.items() if s == name and i in found] for name in SPLIT_NAMES}
        every = [p for name in SPLIT_NAMES for p in by_split[name]]
        if not every:
            raise DataError(f"{root}: none of the images of {split_csv} were found there")
        signatures, skipped = self._signatures(every)
        offsets = np.cumsum([0] + [len(by_split[n]) for n in SPLIT_NAMES])
        crossings: dict[str, CrossResult] = {}
        for x, name_a in enumerate(SPLIT_NAMES):
            for y in range(x + 1, len(SPLIT_NAMES)):
                name_b = SPLIT_NAMES[y]
                sa, sb = slice(offsets[x], offsets[x + 1]), slice(offsets[y], offsets[y + 1])
                local_skip = {i - offsets[x]: r for i, r in skipped.items() if offsets[x] <= i < offsets[x + 1]}
                local_skip.update(
                    {
                        i - offsets[y] + len(by_split[name_a]): r
                        for i, r in skipped.items()
                        if offsets[y] <= i < offsets[y + 1]
                    }
                )
                crossings[f"{name_a}-{name_b}"] = self._cross(
                    by_split[name_a], by_split[name_b], signatures[sa], signatures[sb], local_skip
                )
        return AuditResult(crossings, missing)

    def __repr__(self) -> str:
        return f"Deduplicator(method={self.method!r}, backbone={self.backbone!r}, threshold={self.threshold_!r})"


def _lesion_ids(labels: str | os.PathLike[str] | Mapping[str, str | None]) -> dict[str, str | None]:
    if isinstance(labels, Mapping):
        return dict(labels)
    from hamkit.data.metadata import read_metadata

    return {r.image_id: r.lesion_id for r in read_metadata(labels)}


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[key] = value
        elif isinstance(value, (list, tuple, set, frozenset)) and not isinstance(value, str):
            out[key] = sorted(map(str, value)) if isinstance(value, (set, frozenset)) else [str(v) for v in value]
        else:
            out[key] = str(value)
    return out
