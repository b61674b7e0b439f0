"""``Deduplicator``: near-duplicate detection that is right on real dermoscopy, and scales.

Methods and thresholds:

==============  ==========================================  =========================  =======
method          signature                                   threshold (valid range)    default
==============  ==========================================  =========================  =======
``"verified"``  candidates by kNN over window thumbnails    min aligned-content        0.5
                in 8 orientations, each confirmed by ORB    score, ``(0, 1]``
                keypoints + RANSAC and a tile-wise
                comparison of the aligned images (the
                default: offline, and right on real data)
``"cnn"``       L2-normalised pooled CNN features (the      min cosine similarity,     0.95
                report's approach; EfficientNet-Lite0 with  ``(0, 1]``
                installed weights, or any registry
                backbone)
``"phash"``     64-bit DCT perceptual hash                  max Hamming distance,      8
                                                            ``0..64``
``"dhash"``     64-bit difference hash                      max Hamming distance,      4
                                                            ``0..64``
``"exact"``     SHA-256 of the decoded pixels (byte-        none (identical pixels)    --
                identical files found first, cheaply)
``"lesion"``    SIFT keypoints; candidates by visual words  min keypoint-match         0.5
                (both mirror parities), each confirmed by   score, ``(0, 1)``
                RANSAC inliers: the same lesion
                photographed again, copies included
==============  ==========================================  =========================  =======

``"verified"`` is the default because on the real HAM10000 images the hashes and the CNN pair
thousands of *different* lesions (a dark blob on smooth skin looks alike to any global
signature) and miss cropped, shifted or rotated copies; verification by alignment separates
them (the measurements are on the Benchmarks page of the documentation). Its search is in
:mod:`hamkit.dedup.scenes`.

Each method is a small estimator behind one interface (:mod:`hamkit.dedup.methods`) that owns
its settings (``VerifiedMethod(candidates=20)``, ``CnnMethod(backbone="resnet18")``): the
Deduplicator asks it for the signatures, the pairs and the threshold, and does the rest the same
way for every method. The search never builds an N x N matrix (:mod:`hamkit.dedup.search`); groups are
connected components with their weakest link reported, or, with ``group_mode="representative"``,
groups whose every member matches the representative (:mod:`hamkit.dedup.groups`).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from hamkit.data.splits import read_audit_sets
from hamkit.dedup.decisions import Decisions, apply_decisions, read_decisions
from hamkit.dedup.groups import choose_kept, duplicate_groups
from hamkit.dedup.inputs import resolve_images
from hamkit.dedup.keep import KEEP_POLICIES, keep_ranking
from hamkit.dedup.methods import (
    METHODS,
    CnnMethod,
    DedupMethod,
    VerifiedMethod,
    default_cache_dir,
    get_method,
    make_method,
)
from hamkit.dedup.pairs import Pairs
from hamkit.dedup.result import AuditResult, CrossResult, DedupResult, jsonable_settings
from hamkit.dedup.scenes import VerifiedCandidates
from hamkit.dedup.thresholds import Calibration, calibrate_result
from hamkit.errors import DataError, HamkitError

__all__ = ["Deduplicator", "METHODS", "DEFAULT_THRESHOLDS", "default_cache_dir"]

DEFAULT_THRESHOLDS: dict[str, float | int | None] = {name: cls.default_threshold for name, cls in METHODS.items()}
"""The default threshold of each built-in method (:attr:`DedupMethod.default_threshold`)."""


class Deduplicator(BaseEstimator):
    """Find exact and near-duplicate images so that no lesion leaks between splits.

    A scikit-learn style estimator: every argument after ``method`` is keyword-only, the
    constructor stores them unchanged, and :meth:`find`, :meth:`find_cross` and :meth:`audit`
    check them, so ``get_params`` / ``set_params`` and :func:`sklearn.base.clone` work. The
    method owns its own settings; ``set_params(method__name=value)`` reaches them, as in a
    scikit-learn ``Pipeline`` (a method given by name becomes an instance with its defaults).

    Args:
        method: A method name, ``"verified"`` (the default), ``"cnn"``, ``"phash"``, ``"dhash"``,
            ``"exact"`` or ``"lesion"`` (see the module docstring) or any other in
            :data:`~hamkit.dedup.methods.METHODS`, or a method instance with its settings, e.g.
            ``CnnMethod(backbone="resnet18")``, ``VerifiedMethod(candidates=20)`` or
            ``LesionMethod(candidates=20)``.
        threshold: Minimum aligned-content score (verified), minimum cosine similarity (cnn)
            or maximum Hamming distance (hashes); ``None`` = the method's default. Not used by
            ``"exact"``. :meth:`calibrate` suggests one from lesion ids.
        num_workers: Decoding workers (``None``: the method's default; for ``"cnn"`` up to 4,
            leaving a core free for the model; for the others one per CPU, up to 8, since
            decoding is all their work: the Benchmarks page measures both).
        cache_dir: Cache folder for CNN embeddings and perceptual hashes (``None``:
            :func:`default_cache_dir`; ``False``: no cache). Entries are keyed by file identity
            (path, size, modification time) and setting, so a changed file is recomputed.
        group_mode: ``"connected"`` or ``"representative"`` (every member must match the
            representative directly: guards against chaining).
        keep: Which member of a group to keep: ``"first"`` (by sorted path), ``"largest"``
            (resolution, then file size) or ``"prefer"`` (members listed in ``prefer`` first).
        prefer: Image ids or paths to keep first with ``keep="prefer"`` (e.g. the train split).
        progress: Show progress bars.

    Attributes:
        method_: The method in use: ``method`` itself when it is an instance, else a new
            instance of the named method (kept, with what it caches, until ``method`` changes),
            set by :meth:`find`, :meth:`find_cross` and :meth:`audit`.
        threshold_: The threshold in use (the method's default when ``threshold`` is ``None``),
            set by :meth:`find`, :meth:`find_cross` and :meth:`audit`.

    Examples:
        >>> from sklearn.base import clone
        >>> dedup = Deduplicator("phash", threshold=6)
        >>> clone(dedup).get_params()["threshold"], dedup.set_params(threshold=3).threshold
        (6, 3)
        >>> Deduplicator("verified").set_params(method__candidates=20).method
        VerifiedMethod(candidates=20)
        >>> Deduplicator(method="cnn", threshold=1.5).find([])  # checked when it runs
        Traceback (most recent call last):
        ...
        hamkit.errors.HamkitError: threshold for method 'cnn' is a cosine similarity in (0, 1], got 1.5
    """

    def __init__(
        self,
        method: str | DedupMethod = "verified",
        *,
        threshold: float | None = None,
        num_workers: int | None = None,
        cache_dir: str | os.PathLike[str] | bool | None = None,
        group_mode: str = "connected",
        keep: str = "first",
        prefer: Collection[str | os.PathLike[str]] | None = None,
        progress: bool = True,
    ) -> None:
        self.method = method
        self.threshold = threshold
        self.num_workers = num_workers
        self.cache_dir = cache_dir
        self.group_mode = group_mode
        self.keep = keep
        self.prefer = prefer
        self.progress = progress

    def set_params(self, **params: Any) -> Deduplicator:
        """Set parameters, the method's too (``method__candidates=20``).

        A method given by name becomes an instance of that method with its default settings
        before its own parameters are set.

        Returns:
            This Deduplicator.
        """
        if "method" in params:
            self.method = params.pop("method")
        if any(key.startswith("method__") for key in params) and isinstance(self.method, str):
            self.method = get_method(self.method)
        super().set_params(**params)
        return self

    # ------------------------------------------------------------------ settings
    def _method(self) -> DedupMethod:
        """The method instance (see ``method_``), made again only when ``method`` changes."""
        current: DedupMethod | None = self.__dict__.get("method_")
        if isinstance(self.method, DedupMethod):
            self.method_ = self.method
        elif current is None or self.__dict__.get("_method_name") != self.method:
            self.method_ = make_method(self.method)
            self._method_name = self.method
        return self.method_

    def _checked(self) -> DedupMethod:
        """Check the settings; set ``method_`` and ``threshold_``; return the method."""
        method = self._method()
        if self.keep not in KEEP_POLICIES:
            raise HamkitError(f"unknown keep policy {self.keep!r}; choose one of {', '.join(KEEP_POLICIES)}")
        if self.keep == "prefer" and not self.prefer:
            raise HamkitError("keep='prefer' needs prefer= (image ids or paths to keep first)")
        if self.group_mode not in ("connected", "representative"):
            raise HamkitError(f"group_mode must be 'connected' or 'representative', got {self.group_mode!r}")
        method.check()
        self.threshold_ = method.check_threshold(self.threshold)
        return method

    def _local_only(self, what: str) -> DedupMethod:
        """:meth:`_checked`, refusing a method set to run on disk or Ray (only :meth:`find` does);
        ``backend="auto"`` runs here as ``"local"``."""
        method = self._checked()
        if getattr(method, "backend", "local") not in ("local", "auto"):
            raise HamkitError(
                f"{what} runs in this process only; backend={method.backend!r} runs find: "
                "set the method's backend='local' for it"
            )
        return method

    def _settings(self, backend: str | None = None) -> dict[str, Any]:
        """The parameters by name, the method as its name and its settings as
        ``method_settings``, as JSON values (recorded in the results), with ``backend_used``:
        the backend the search ran on (``backend``: what ``backend="auto"`` chose) for a method
        that has one."""
        method = self._method()
        settings = jsonable_settings({**self.get_params(deep=False), "method": method.name})
        settings["method_settings"] = jsonable_settings(method.get_params(deep=False))
        if backend is not None:
            settings["backend_used"] = backend
        return settings

    @staticmethod
    def _backend(method: DedupMethod, images: int) -> str | None:
        """The backend ``method`` runs :meth:`find` on for ``images`` images (what
        ``backend="auto"`` chooses: :meth:`VerifiedMethod.backend_for`), ``None`` for a method
        without one."""
        return method.backend_for(images) if isinstance(method, VerifiedMethod) else None

    def _workers(self) -> int:
        """Decoding processes: ``num_workers``, or the method's default."""
        return self._method().workers(self)

    # ------------------------------------------------------------------ signatures
    def embed(self, images: Any) -> np.ndarray:
        """CNN embeddings of images (the report's ``.npy``): ``(N, D)`` float32, L2-normalised.

        Rows of unreadable images are zero (see :meth:`find` for the list of skipped files).
        Embeddings are cached on disk by file identity and backbone, so a second or resumed run
        does not recompute them.

        Args:
            images: A folder, a text file of paths, a list of paths, or a SkinDataset.

        Returns:
            The embeddings, in input order.

        Raises:
            HamkitError: The method is not ``"cnn"`` (a :class:`~hamkit.dedup.methods.CnnMethod`).
        """
        method = self._checked()
        if not isinstance(method, CnnMethod):
            raise HamkitError(f"embed needs the 'cnn' method, not {method.name!r}: use Deduplicator('cnn', ...)")
        paths = resolve_images(images)
        return method.signatures(self, paths)[0]

    # ------------------------------------------------------------------ search
    def _self_pairs(
        self, method: DedupMethod, signatures: np.ndarray, valid: np.ndarray
    ) -> tuple[Pairs, VerifiedCandidates | None]:
        if len(valid) < 2:
            return Pairs.empty(method.metric), None
        pairs, found = method.self_pairs(self, signatures[valid], self.threshold_)
        if found is not None:
            found = VerifiedCandidates(valid[found.i], valid[found.j], found.score, found.inliers, found.similarity)
        return Pairs(valid[pairs.i], valid[pairs.j], pairs.score, pairs.metric, pairs.exact), found

    def find(self, images: Any, *, decisions: Decisions | str | os.PathLike[str] | None = None) -> DedupResult | None:
        """Find the duplicates among images.

        Args:
            images: A folder (recursive), a text file of paths, a list of paths, or a SkinDataset.
            decisions: A person's decisions on pairs (:class:`~hamkit.dedup.decisions.Decisions`
                or a decisions CSV, ``image_a,image_b,decision``): a pair decided ``different``
                never groups, one decided ``same`` always does (images matched by file stem).

        With the ``"verified"`` method's ``backend="auto"`` (the default), a collection of more
        than :data:`~hamkit.dedup.methods.verified.AUTO_DISK_ABOVE` images runs on the disk stages
        (the scenes on disk: memory bounded), a smaller one in memory; the result is the same, and
        its ``settings["backend_used"]`` says which ran.

        Returns:
            The :class:`~hamkit.dedup.result.DedupResult` (``None`` on ranks other than 0 under
            torchrun, which only help with the embeddings).

        Raises:
            HamkitError: An unknown method, keep policy, or a threshold out of range.
            DataError: No images, or none readable.
        """
        method = self._checked()
        if decisions is not None and not isinstance(decisions, Decisions):
            decisions = read_decisions(decisions)
        started = time.perf_counter()
        paths = resolve_images(images)
        backend = self._backend(method, len(paths))
        if backend not in (None, "local"):
            return self._staged(method, paths, started, decisions, backend=backend)
        signatures, skipped = method.signatures(self, paths)
        if int(os.environ.get("RANK", "0")) != 0:
            return None
        valid = np.array([i for i in range(len(paths)) if i not in skipped], dtype=np.int64)
        if len(valid) == 0:
            raise DataError(
                f"none of the {len(paths)} image(s) could be read; first reason: {paths[0]}: {skipped.get(0, '?')}"
            )
        pairs, candidates = self._self_pairs(method, signatures, valid)
        return self._result(method, paths, skipped, pairs, candidates, started, decisions, backend=backend)

    def _result(
        self,
        method: DedupMethod,
        paths: list[Path],
        skipped: dict[int, str],
        pairs: Pairs,
        candidates: VerifiedCandidates | None,
        started: float,
        decisions: Decisions | None = None,
        *,
        backend: str | None = None,
    ) -> DedupResult:
        """Groups, kept and removed images of the pairs found (a person's ``decisions`` applied
        first): one function for every way of finding them (``backend``: the one the search ran
        on, recorded in the settings)."""
        if decisions is not None:
            pairs = apply_decisions(decisions, paths, pairs)
        rank = keep_ranking(paths, pairs, self.keep, self.prefer)
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
            method=method.name,
            threshold=self.threshold_,
            settings=self._settings(backend),
            seconds=time.perf_counter() - started,
            candidates=candidates,
        )

    # ------------------------------------------------------------------ shards
    def _verified(self, what: str) -> VerifiedMethod:
        method = self._checked()
        if not isinstance(method, VerifiedMethod):
            raise HamkitError(
                f"{what} runs the 'verified' method only, not {method.name!r}: use Deduplicator('verified')"
            )
        return method

    def find_shard(
        self,
        images: Any,
        out: str | os.PathLike[str],
        shard: int,
        shards: int,
        *,
        wait: float | None = None,
    ) -> Path:
        """Run shard ``shard`` of ``shards`` of :meth:`find` (``method="verified"``) into ``out``.

        Every shard is given the same ``images`` and ``out`` (a folder all of them can reach):
        shard ``I`` decodes its block of the images, then (once every shard has) searches its
        share of the candidates among all images, then verifies its share of the candidate
        pairs (:mod:`hamkit.dedup.shards`). Each stage leaves a completion marker: a shard that
        died is run again alone and goes on from its last finished stage (and batch). Join the
        shards with :meth:`merge`.

        Args:
            images: What :meth:`find` takes.
            out: The run's folder, shared by its shards.
            shard: This shard, ``0 <= shard < shards``.
            shards: Number of shards.
            wait: Seconds to wait for the other shards between stages (``None``: as long as it
                takes; ``0``: raise :class:`~hamkit.dedup.shards.ShardNotReady` at once).

        Returns:
            The shard's folder.

        Raises:
            HamkitError: Not the verified method, a bad shard number, or shards of ``out`` run
                with other images or settings.
        """
        from hamkit._cpu import available_cpus
        from hamkit.dedup.shards import run_shard

        method = self._verified("find_shard")
        if not (isinstance(shard, int) and isinstance(shards, int) and 0 <= shard < shards):
            raise HamkitError(f"shard must be in 0 .. shards - 1, got shard {shard} of {shards}")
        return run_shard(
            resolve_images(images),
            out,
            shard,
            shards,
            candidates=method.candidates,
            min_inliers=method.min_inliers,
            workers=self._workers(),
            threads=max(1, min(8, available_cpus())),
            progress=self.progress,
            wait=wait,
            batch_size=method.batch_size,
        )

    def merge(
        self,
        folders: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        decisions: Decisions | str | os.PathLike[str] | None = None,
    ) -> DedupResult:
        """Join the shards of a :meth:`find_shard` run into the result :meth:`find` gives.

        The candidates, their scores, the pairs, groups and kept/removed images are the single
        process's; the threshold, ``keep`` and ``group_mode`` are this Deduplicator's (the shards
        keep every candidate's score, so the threshold may differ from the shards').

        Args:
            folders: The run's folder (or its shard folders).
            decisions: A person's decisions on pairs, as for :meth:`find`.

        Returns:
            The :class:`~hamkit.dedup.result.DedupResult`.

        Raises:
            HamkitError: Not the verified method, or other candidates / min_inliers than the shards'.
            DataError: A shard missing or unfinished.
        """
        from hamkit.dedup.shards import merge_shards

        method = self._verified("merge")
        if decisions is not None and not isinstance(decisions, Decisions):
            decisions = read_decisions(decisions)
        started = time.perf_counter()
        given = [folders] if isinstance(folders, (str, os.PathLike)) else list(folders)
        manifest, paths, skipped, found = merge_shards(given)
        for name in ("candidates", "min_inliers"):
            if manifest[name] != getattr(method, name):
                raise HamkitError(
                    f"the shards were run with {name}={manifest[name]}, this Deduplicator has "
                    f"{getattr(method, name)}: merge with the shards' settings"
                )
        return self._verified_result(method, paths, skipped, found, started, decisions)

    def _verified_result(
        self,
        method: DedupMethod,
        paths: list[Path],
        skipped: dict[int, str],
        found: VerifiedCandidates,
        started: float,
        decisions: Decisions | None = None,
        *,
        backend: str | None = None,
    ) -> DedupResult:
        if len(paths) == len(skipped):
            raise DataError(
                f"none of the {len(paths)} image(s) could be read; first reason: {next(iter(skipped.values()), '?')}"
            )
        keep = method.passes(found.score, self.threshold_)
        pairs = Pairs(found.i[keep], found.j[keep], found.score[keep], "aligned", True)
        return self._result(method, paths, skipped, pairs, found, started, decisions, backend=backend)

    def _staged(
        self,
        method: DedupMethod,
        paths: list[Path],
        started: float,
        decisions: Decisions | None = None,
        *,
        backend: str,
    ) -> DedupResult:
        """:meth:`find` through the stages of :mod:`hamkit.dedup.shards`, with the scenes on disk:
        in this process (``backend="disk"``, or ``"auto"`` on a large collection) or as Ray tasks
        (``backend="ray"``)."""
        import shutil
        import tempfile

        from hamkit._cpu import available_cpus
        from hamkit.dedup.shards import run_local, run_on_ray

        assert isinstance(method, VerifiedMethod)
        root = tempfile.mkdtemp(prefix="hamkit-shards-", dir=os.environ.get("HAMKIT_SHARDS_DIR"))
        settings = {"candidates": method.candidates, "min_inliers": method.min_inliers, "batch_size": method.batch_size}
        try:
            if backend == "ray":
                _, paths, skipped, found = run_on_ray(paths, root, **settings)
            else:
                _, paths, skipped, found = run_local(
                    paths,
                    root,
                    workers=self._workers(),
                    threads=max(1, min(8, available_cpus())),
                    progress=self.progress,
                    **settings,
                )
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return self._verified_result(method, paths, skipped, found, started, decisions, backend=backend)

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
            thresholds: Thresholds to tabulate (default: the method's
                :meth:`~hamkit.dedup.methods.DedupMethod.calibration_thresholds`).

        Returns:
            The :class:`~hamkit.dedup.thresholds.Calibration`: ``summary()``, ``plot(path)``,
            ``to_csv(path)``.

        Raises:
            DataError: No lesion ids in ``labels`` for any image of a pair.
        """
        result = images if isinstance(images, DedupResult) else self.find(images)
        if result is None:  # pragma: no cover - torchrun ranks other than 0
            raise HamkitError("calibrate runs on rank 0 only")
        if thresholds is None:
            thresholds = get_method(result.method).calibration_thresholds(result.threshold)
        return calibrate_result(result, labels, thresholds)

    def find_cross(self, a: Any, b: Any) -> CrossResult | None:
        """Only the duplicate pairs that cross two sets (e.g. train vs test).

        Args:
            a: The first set (folder, list of paths, list file, SkinDataset).
            b: The second set.

        Returns:
            The :class:`~hamkit.dedup.result.CrossResult` (``None`` on non-zero torchrun ranks).

        Raises:
            HamkitError: An unknown method, keep policy, or a threshold out of range.
            DataError: Every file of the second set is also in the first (the same folder twice,
                say): each would only pair with itself; or no image of one set could be read
                (nothing would be compared). Unreadable images of a set otherwise readable are
                skipped and listed in the result's ``skipped``.

        Warns:
            UserWarning: The sets share some files (one image checked against the folder that
                holds it, say): those are left out of the second set, so that no file is
                reported as its own duplicate.
        """
        method = self._local_only("find_cross")
        paths_a, paths_b = resolve_images(a), resolve_images(b)
        real_a = {os.path.realpath(p) for p in paths_a}
        shared = [p for p in paths_b if os.path.realpath(p) in real_a]
        if shared and len(shared) == len(paths_b):
            raise DataError(
                f"every file of the second set ({len(paths_b)}, e.g. {shared[0]}) is also in the first, and each "
                "would only pair with itself; give two different sets of images (to search one set, leave out the "
                "second)"
            )
        if shared:
            warnings.warn(
                f"the two sets share {len(shared)} file(s) (e.g. {shared[0]}): left out of the second set, so that "
                "no file is reported as its own duplicate",
                UserWarning,
                stacklevel=2,
            )
            paths_b = [p for p in paths_b if os.path.realpath(p) not in real_a]
        signatures, skipped = method.signatures(self, paths_a + paths_b)
        if int(os.environ.get("RANK", "0")) != 0:
            return None
        n_a = len(paths_a)
        for which, start, paths in (("first", 0, paths_a), ("second", n_a, paths_b)):
            if paths and all(start + i in skipped for i in range(len(paths))):
                reason = " ".join(skipped[start].split())
                raise DataError(
                    f"none of the {len(paths)} image(s) of the {which} set could be read (e.g. {paths[0]}: {reason}), "
                    "so nothing was compared; check the files and run again"
                )
        return self._cross(method, paths_a, paths_b, signatures[:n_a], signatures[n_a:], skipped)

    def _cross(
        self,
        method: DedupMethod,
        paths_a: list[Path],
        paths_b: list[Path],
        sig_a: np.ndarray,
        sig_b: np.ndarray,
        skipped: dict[int, str],
    ) -> CrossResult:
        ok_a = np.array([i for i in range(len(paths_a)) if i not in skipped], dtype=np.int64)
        ok_b = np.array([j for j in range(len(paths_b)) if j + len(paths_a) not in skipped], dtype=np.int64)
        if len(ok_a) == 0 or len(ok_b) == 0:
            pairs = Pairs.empty(method.metric)
        else:
            pairs = method.cross_pairs(self, sig_a[ok_a], sig_b[ok_b], self.threshold_)
        pairs = Pairs(ok_a[pairs.i], ok_b[pairs.j], pairs.score, pairs.metric, pairs.exact)
        everything = paths_a + paths_b
        return CrossResult(paths_a, paths_b, pairs, {everything[i]: r for i, r in skipped.items()})

    def audit(self, split_csv: str | os.PathLike[str], root: str | os.PathLike[str]) -> AuditResult:
        """Near-duplicate pairs across the splits of a split CSV.

        A folds CSV (``hamkit split --folds K``) is audited fold against fold, and each fold
        against its held-out test split (:func:`~hamkit.data.splits.read_audit_sets`): every fold
        is validated on once, so a pair across any two folds leaks.

        Every pair of splits is searched for pairs again, because a search between two splits can
        find pairs that the search over all images did not propose. With ``method="verified"``,
        an audit after :meth:`find` over the same images (or after an earlier audit) on this
        Deduplicator decodes nothing again, runs only the thumbnail kNN per pair of splits and
        aligns only the candidates not verified before; every pair verified before counts across
        the splits directly, whether or not the search between them proposes it again.

        Args:
            split_csv: A CSV with ``image_id`` and ``split`` columns (``hamkit split`` writes one),
                or a folds CSV (with a ``fold`` column).
            root: Folder holding the images (searched recursively).

        Returns:
            The :class:`~hamkit.dedup.result.AuditResult`; ``result.leaks`` is 0 for a clean split.

        Raises:
            HamkitError: An unknown method, keep policy, or a threshold out of range.
            DataError: Unreadable split CSV, or none of its images under ``root``.
        """
        from hamkit.data.images import find_images

        method = self._local_only("audit")
        names, assignment = read_audit_sets(split_csv)
        found = find_images(root)
        missing = sorted(i for i in assignment if i not in found)
        by_split = {name: [found[i] for i, s in assignment.items() if s == name and i in found] for name in names}
        every = [p for name in names for p in by_split[name]]
        if not every:
            raise DataError(f"{root}: none of the images of {split_csv} were found there")
        signatures, skipped = method.signatures(self, every)
        offsets = np.cumsum([0] + [len(by_split[n]) for n in names])
        crossings: dict[str, CrossResult] = {}
        for x, name_a in enumerate(names):
            for y in range(x + 1, len(names)):
                name_b = names[y]
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
                    method, by_split[name_a], by_split[name_b], signatures[sa], signatures[sb], local_skip
                )
        return AuditResult(crossings, missing)
