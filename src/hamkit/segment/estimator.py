"""The :class:`LesionSegmenter` estimator (fit, segment, predict, evaluate, save / load)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from hamkit._io import atomic_write_text
from hamkit._version import __version__
from hamkit.data.dataset import SkinDataset
from hamkit.data.images import image_size_of, read_mask
from hamkit.engine.device import amp_dtype, autocast, resolve_device
from hamkit.engine.estimator import Estimator
from hamkit.engine.fitting import fit_estimator
from hamkit.engine.inputs import prepare_inputs, unpack_batch
from hamkit.engine.recipe import TrainConfig
from hamkit.errors import DataError, HamkitError
from hamkit.postprocess import POSTPROCESS_MODES, postprocess_masks
from hamkit.seg_metrics import (
    SegmentationReport,
    confusion_counts_list,
    report_from_counts,
)
from hamkit.segment.network import SegmentationLoss, SegmentationNetwork
from hamkit.segment.outputs import (
    OriginalSizeMasks,
    SegmentationPrediction,
    resize_to_sizes,
    save_mask,
)
from hamkit.segment.task import CLS_METRICS, SEG_METRICS, SegmentationTask

__all__ = ["LesionSegmenter"]

_KIND = "LesionSegmenter"
INCOMPLETE_NOTE = "INCOMPLETE.txt"


class LesionSegmenter(Estimator):
    """Skin-lesion segmentation (binary masks), optionally multi-task with diagnosis.

    Args:
        backbone: A registry segmentation backbone: ``deeplabv3_resnet50`` (default),
            ``deeplabv3_resnet101``, ``deeplabv3_mobilenet_v3_large``, any
            ``smp:<Arch>:<encoder>`` (e.g. ``smp:DeepLabV3Plus:resnet34``), or a plugin's.
        image_size: Square input size in pixels (default 256; smp models need a multiple of
            their output stride, 32 for most).
        pretrained: Start from the backbone's upstream pretrained weights (needs network
            access once; see :func:`hamkit.create_backbone`).
        weights: A local weights file for the segmentation backbone instead.
        classify: Add the diagnosis head on the pooled deepest encoder features.
        num_classes: Classes of that head (7 for HAM10000).
        dropout: Dropout before the head.
        classes: Class names (default: the HAM10000 codes when ``num_classes`` is 7).
        backbone_kwargs: Extra builder arguments, e.g. ``{"encoder_depth": 3,
            "decoder_channels": [32, 16, 8]}`` for a smaller smp model; saved with the model.
        loss: Segmentation loss, ``"bce+dice"`` (default), ``"bce"`` or ``"dice"``.
        cls_weight: Weight of the head's cross-entropy in the joint loss (``classify=True``).
        recipe: The training recipe (:class:`~hamkit.engine.recipe.TrainConfig`); ``None``: the
            segmenter's defaults (10 epochs, batch 8, Adam at lr 1e-4, cosine schedule, flips
            applied to image and mask alike, best epoch by validation Dice, or with the head by
            the mean of Dice and balanced accuracy). ``fit``'s keyword arguments override
            single fields.
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``...

    Attributes:
        network_: The fitted :class:`SegmentationNetwork` (after ``fit`` or ``load``).
        history_: Per-epoch history of the last ``fit``.
        best_epoch_: The epoch whose weights were kept.
        recipe_: The :class:`~hamkit.engine.recipe.TrainConfig` the model was trained with
            (also recorded in ``config.json``).
        skipped_: Training/validation images left out by ``on_missing="skip"``, with the reason.

    Every argument after ``backbone`` is keyword-only, stored unchanged and checked in
    :meth:`fit`, so :func:`sklearn.base.clone`, ``get_params`` and ``set_params`` work.

    Examples:
        >>> seg = LesionSegmenter("deeplabv3_mobilenet_v3_large", image_size=128, pretrained=False,
        ...                       classify=True)
        >>> seg.get_params()["classify"]
        True
    """

    _KIND = _KIND
    _DEFAULT_RECIPE: ClassVar[TrainConfig] = TrainConfig(batch_size=8, lr=1e-4, monitor=None)

    def __init__(
        self,
        backbone: str = "deeplabv3_resnet50",
        *,
        image_size: int = 256,
        pretrained: bool = True,
        weights: str | os.PathLike[str] | None = None,
        classify: bool = False,
        num_classes: int = 7,
        dropout: float = 0.2,
        classes: Sequence[str] | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        loss: str = "bce+dice",
        cls_weight: float = 1.0,
        recipe: TrainConfig | None = None,
        device: str = "auto",
    ) -> None:
        self.backbone = backbone
        self.image_size = image_size
        self.pretrained = pretrained
        self.weights = weights
        self.classify = classify
        self.num_classes = num_classes
        self.dropout = dropout
        self.classes = classes
        self.backbone_kwargs = backbone_kwargs
        self.loss = loss
        self.cls_weight = cls_weight
        self.recipe = recipe
        self.device = device

    # ------------------------------------------------------------------ helpers
    def _config(self) -> dict[str, Any]:
        mean, std = self.normalisation()
        return {
            "kind": _KIND,
            "hamkit_version": __version__,
            "backbone": self.backbone,
            "backbone_kwargs": dict(self.backbone_kwargs or {}),
            "image_size": self.image_size,
            "mean": list(mean),
            "std": list(std),
            "classify": self.classify,
            "num_classes": self.num_classes,
            "classes": self.classes_,
            "dropout": self.dropout,
            "loss": self.loss,
            "cls_weight": self.cls_weight,
            **self._recorded_recipe(),
        }

    def _build(self, *, pretrained: bool | str, weights: Any) -> SegmentationNetwork:
        from hamkit.registry import create_backbone

        if self.classify:
            if self.num_classes < 2:
                raise HamkitError(f"num_classes must be at least 2, got {self.num_classes}")
            if len(self.classes_) != self.num_classes:
                raise HamkitError(f"{len(self.classes_)} class names for num_classes={self.num_classes}")
        if self.image_size < 8:
            raise HamkitError(f"image_size must be at least 8 pixels, got {self.image_size}")
        body = create_backbone(
            self.backbone,
            task="segmentation",
            pretrained=pretrained,
            weights=weights,
            out_channels=1,
            **(self.backbone_kwargs or {}),
        )
        upstream = getattr(body, "upstream", None)
        stride = getattr(getattr(upstream, "encoder", None), "output_stride", None)
        if (
            getattr(upstream, "requires_divisible_input_shape", False)
            and isinstance(stride, int)
            and self.image_size % stride
        ):
            fitting = (self.image_size // stride + 1) * stride
            raise HamkitError(
                f"backbone {self.backbone!r} needs an image_size divisible by {stride}; "
                f"got {self.image_size}, use e.g. {fitting}"
            )
        return SegmentationNetwork(body, self.num_classes if self.classify else None, self.dropout)

    def _as_dataset(
        self,
        data: Any,
        *,
        split: str,
        split_csv: Any,
        masks: Any,
        on_missing: str,
        mask_threshold: int | None,
        augment: bool,
        cache: Any,
    ) -> Dataset:
        """Turn ``data`` into a dataset with masks at the working size (SkinDataset when possible)."""
        if on_missing not in ("error", "skip"):
            raise DataError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
        mean, std = self.normalisation()
        options: dict[str, Any] = {"image_size": self.image_size, "mean": mean, "std": std, "augment": augment}
        if cache is not None:
            options["cache"] = cache
        if isinstance(data, SkinDataset):
            lacking = [s.image_id for s in data.samples if s.mask_path is None]
            skipped = dict(data.skipped)
            if lacking and on_missing == "error":
                raise DataError(
                    f"{len(lacking)} image(s) have no mask: {', '.join(lacking[:10])}"
                    f"{' ...' if len(lacking) > 10 else ''}; pass on_missing='skip' to leave them out"
                )
            if lacking:
                keep = [i for i, s in enumerate(data.samples) if s.mask_path is not None]
                if not keep:
                    raise DataError("no image of the dataset has a mask")
                skipped.update({i: "mask not found" for i in lacking})
                data = data.subset(keep)
            threshold = mask_threshold if mask_threshold is not None else data.mask_threshold
            dataset = data.with_options(with_masks=True, mask_threshold=threshold, **options)
            dataset.skipped = skipped
            return dataset
        if isinstance(data, (str, os.PathLike)):
            if split_csv is None:
                raise DataError(
                    f"{data}: a data root needs split_csv= (from `hamkit split`) to know the {split} "
                    "images; or pass a SkinDataset"
                )
            return SkinDataset.from_folder(
                data,
                masks=masks if masks is not None else True,
                split_csv=split_csv,
                split=split,
                on_missing=on_missing,
                mask_threshold=mask_threshold,
                **options,
            )
        if isinstance(data, Dataset):
            return data
        raise DataError(
            f"cannot use a {type(data).__name__} as segmentation data; pass a SkinDataset with masks, "
            "a data root with split_csv=, or a torch Dataset yielding (image, label, mask)"
        )

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        train: Any,
        val: Any = None,
        *,
        masks: str | os.PathLike[str] | None = None,
        split_csv: str | os.PathLike[str] | None = None,
        on_missing: str = "error",
        mask_threshold: int | None = None,
        cache: Any = None,
        loss: str | None = None,
        cls_weight: float | None = None,
        **recipe: Any,
    ) -> LesionSegmenter:
        """Train the segmenter; on return it holds the weights of the best validation epoch.

        Args:
            train: A ``SkinDataset`` with masks, a data root (with ``split_csv``; its ``train``
                rows are used), or a torch ``Dataset`` yielding ``(image, label, mask)`` tuples
                or dicts with ``image``, ``label`` and ``mask`` (float ``(1, H, W)``, 0/1).
            val: Validation data of the same kinds; with a root and ``split_csv`` and no ``val``,
                the ``val`` rows are used.
            masks: The masks folder of a data root (default: found under the root).
            split_csv: A split CSV written by ``hamkit split``.
            on_missing: ``"error"`` (default) when an image has no mask (or no file), or
                ``"skip"`` to leave it out (listed in :attr:`skipped_`).
            mask_threshold: Grey level above which a pixel of a non-binary mask is lesion; a
                non-binary mask without it is an error.
            cache: A decode cache (or folder) for ``SkinDataset`` inputs.
            loss: For this fit, instead of the constructor's ``loss``.
            cls_weight: For this fit, instead of the constructor's ``cls_weight``.
            **recipe: Fields of :class:`~hamkit.engine.recipe.TrainConfig` that override
                ``recipe`` for this fit: ``epochs``, ``batch_size``, ``lr``, ``optimizer``,
                ``weight_decay``, ``scheduler``, ``monitor``, ``early_stopping``,
                ``grad_clip``, ``class_balance`` (of the head, ``classify=True`` only; without
                the head images are drawn uniformly), ``augment`` (the same transform for
                image and mask), ``seed``, ``amp``, ``channels_last``, ``num_workers``,
                ``progress``, ``out_dir``, ``resume``. ``monitor`` defaults to ``"dice"``
                (mean per-image Dice at the working resolution); with ``classify=True`` to
                ``"joint_score"``, the mean of Dice and the head's balanced accuracy. Also
                ``iou``, ``jaccard_isic``, ``pixel_accuracy``, ``loss``, ``seg_loss`` and,
                with the head, ``balanced_accuracy``, ``accuracy``, ``macro_f1``,
                ``melanoma_sensitivity``, ``cls_loss``.

        Returns:
            ``self``.

        Raises:
            DataError: Unusable data (no masks, a mask of another size than its image, a
                non-binary mask without ``mask_threshold``, labels outside ``num_classes``...).
            TrainingError: The loss became NaN/inf.
            HamkitError: Bad settings or an unknown backbone.
        """
        settings = self._recipe(recipe)
        if settings.monitor is None:
            settings.monitor = "joint_score" if self.classify else "dice"
        known = SEG_METRICS + (CLS_METRICS if self.classify else ())
        if settings.monitor not in known:
            raise HamkitError(
                f"monitor={settings.monitor!r} is not a validation metric of this model; "
                f"choose one of {', '.join(known)}"
            )
        settings.validate()
        common = {
            "split_csv": split_csv,
            "masks": masks,
            "on_missing": on_missing,
            "mask_threshold": mask_threshold,
            "cache": cache,
        }
        train_data = self._as_dataset(train, split="train", augment=settings.augment, **common)
        if val is None and isinstance(train, (str, os.PathLike)) and split_csv is not None:
            val = train
        val_data = self._as_dataset(val, split="val", augment=False, **common) if val is not None else None
        seg_loss = self.loss if loss is None else loss
        weight = self.cls_weight if cls_weight is None else cls_weight

        def make_task(class_weights: torch.Tensor | None) -> SegmentationTask:
            criterion = SegmentationLoss(seg_loss, weight, class_weights).to(resolve_device(self.device))
            return SegmentationTask(criterion, self.classes_, self._config(), self.classify)

        fit_estimator(self, settings, train_data, val_data, make_task, balance=bool(self.classify))
        return self

    # ------------------------------------------------------------------ inference core
    def _forward(self, loader: DataLoader) -> Iterator[tuple[dict[str, Any], torch.Tensor, torch.Tensor | None]]:
        """Per batch: the batch dict, lesion probabilities ``(N, 1, h, w)`` on the device, CPU class logits."""
        network = self._check_fitted()
        device = resolve_device(self.device)
        first = next(network.parameters(), None)
        if first is not None and (
            first.device.type != device.type or (device.index is not None and first.device.index != device.index)
        ):
            network.to(device)  # moved once, not on every call: .to() walks every parameter
        if network.training:
            network.eval()
        dtype = amp_dtype(device)
        for raw in loader:
            batch = unpack_batch(raw)
            x = batch["image"].to(device, non_blocking=True)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), autocast(device, dtype):
                mask_logits, class_logits = network(x)
                probabilities = mask_logits.float().sigmoid()
            yield batch, probabilities, (class_logits.float().cpu() if class_logits is not None else None)

    def _batches(
        self, images: Any, *, batch_size: int, num_workers: int
    ) -> Iterator[tuple[list[str], list[tuple[int, int]] | None, torch.Tensor, torch.Tensor | None]]:
        """Yield ``(ids, original sizes, lesion probabilities (N, 1, h, w) on the device, class logits)``."""
        self._check_fitted()
        mean, std = self.normalisation()
        inputs = prepare_inputs(images, image_size=self.image_size, mean=mean, std=std)
        loader = DataLoader(
            inputs.dataset,
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            pin_memory=resolve_device(self.device).type == "cuda",
        )
        start = 0
        for _, probabilities, class_logits in self._forward(loader):
            n = int(probabilities.shape[0])
            sizes = inputs.original_sizes[start : start + n] if inputs.original_sizes is not None else None
            yield inputs.image_ids[start : start + n], sizes, probabilities, class_logits
            start += n

    @staticmethod
    def _check_options(threshold: float, postprocess: str | None) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise HamkitError(f"threshold must be a probability within 0..1, got {threshold}")
        if postprocess not in POSTPROCESS_MODES:
            raise HamkitError(
                f"unknown postprocess {postprocess!r}; choose one of None, 'largest', 'fill', 'largest+fill'"
            )

    def _iter_predictions(
        self,
        images: Any,
        *,
        threshold: float,
        postprocess: str | None,
        keep_proba: bool,
        batch_size: int,
        num_workers: int,
    ) -> Iterator[tuple[list[str], list[np.ndarray], list[np.ndarray] | None, torch.Tensor | None]]:
        """Per batch: ids, masks at the original size, probability maps (if kept), class logits."""
        for ids, sizes, probabilities, class_logits in self._batches(
            images, batch_size=batch_size, num_workers=num_workers
        ):
            resized = resize_to_sizes(probabilities, sizes)
            masks = [(p > threshold).cpu().numpy() for p in resized]
            if postprocess is not None:
                masks = postprocess_masks(masks, postprocess)  # type: ignore[assignment]
            maps = [p.cpu().numpy() for p in resized] if keep_proba else None
            yield ids, masks, maps, class_logits

    # ------------------------------------------------------------------ inference API
    def segment(
        self,
        images: Any,
        *,
        threshold: float = 0.5,
        postprocess: str | None = None,
        return_proba: bool = False,
        batch_size: int = 16,
        num_workers: int = 0,
    ) -> SegmentationPrediction:
        """Masks, optionally lesion probabilities, and class probabilities, from one forward pass.

        Args:
            images: Paths, a folder, PIL images, uint8 arrays, a preprocessed float tensor, or a
                dataset (see :mod:`hamkit.engine.inputs`).
            threshold: Lesion probability above which a pixel is lesion.
            postprocess: ``None``, ``"largest"`` (largest connected component), ``"fill"`` (fill
                holes) or ``"largest+fill"``; see :mod:`hamkit.postprocess`.
            return_proba: Also return the lesion probability maps.
            batch_size: Inference batch size.
            num_workers: DataLoader workers for decoding.

        Returns:
            A :class:`SegmentationPrediction`; ``class_proba`` is set when ``classify=True``.

        Raises:
            DataError: No images, or unreadable ones.
            HamkitError: Not fitted, or a bad ``threshold``/``postprocess``.
        """
        self._check_options(threshold, postprocess)
        ids: list[str] = []
        masks: list[np.ndarray] = []
        maps: list[np.ndarray] = []
        logits: list[torch.Tensor] = []
        for batch_ids, batch_masks, batch_maps, class_logits in self._iter_predictions(
            images,
            threshold=threshold,
            postprocess=postprocess,
            keep_proba=return_proba,
            batch_size=batch_size,
            num_workers=num_workers,
        ):
            ids += batch_ids
            masks += batch_masks
            maps += batch_maps or []
            if class_logits is not None:
                logits.append(class_logits)
        class_proba = torch.cat(logits).softmax(1).numpy() if logits else None
        return SegmentationPrediction(ids, masks, maps if return_proba else None, class_proba, self.classes_)

    def predict(
        self,
        images: Any,
        *,
        threshold: float = 0.5,
        postprocess: str | None = None,
        return_proba: bool = False,
        batch_size: int = 16,
        num_workers: int = 0,
    ) -> list[np.ndarray] | tuple[list[np.ndarray], list[np.ndarray]]:
        """Boolean lesion masks, each at its image's original size.

        The lesion probabilities are resized bilinearly from the working size to each image's
        ``(H, W)`` and then thresholded (``mask == probability > threshold`` exactly). Inputs
        without a known original size (a generic ``Dataset``) give masks at the working size;
        a preprocessed tensor gives masks at the tensor's size.

        Args:
            images: Paths, a folder, PIL images, uint8 arrays, a preprocessed float tensor, or a
                dataset (see :mod:`hamkit.engine.inputs`).
            threshold: Lesion probability above which a pixel is lesion.
            postprocess: ``None``, ``"largest"``, ``"fill"`` or ``"largest+fill"``.
            return_proba: Return ``(masks, probability_maps)``; the maps are float32 in 0..1, the
                same sizes, before thresholding and post-processing.
            batch_size: Inference batch size.
            num_workers: DataLoader workers for decoding.

        Returns:
            A list of ``(H, W)`` boolean arrays in input order, or ``(masks, maps)``.

        Raises:
            DataError: No images, or unreadable ones.
            HamkitError: Not fitted, or a bad ``threshold``/``postprocess``.
        """
        result = self.segment(
            images,
            threshold=threshold,
            postprocess=postprocess,
            return_proba=return_proba,
            batch_size=batch_size,
            num_workers=num_workers,
        )
        if return_proba:
            assert result.probabilities is not None
            return result.masks, result.probabilities
        return result.masks

    def predict_proba(self, images: Any, *, batch_size: int = 16, num_workers: int = 0) -> list[np.ndarray]:
        """Lesion probability maps (float32, 0..1), each at its image's original size."""
        return self.predict(images, return_proba=True, batch_size=batch_size, num_workers=num_workers)[1]

    def predict_class_proba(self, images: Any, *, batch_size: int = 16, num_workers: int = 0) -> np.ndarray:
        """Class probabilities ``(N, num_classes)`` of the head (``classify=True`` only).

        Raises:
            HamkitError: The model has no classification head.
        """
        if not self.classify:
            raise HamkitError("this LesionSegmenter has no classification head; train it with classify=True")
        proba = self.segment(images, batch_size=batch_size, num_workers=num_workers).class_proba
        assert proba is not None
        return proba

    def predict_classes(self, images: Any, **kwargs: Any) -> np.ndarray:
        """Predicted class indices of the head (argmax of :meth:`predict_class_proba`)."""
        return self.predict_class_proba(images, **kwargs).argmax(1)

    def write_masks(
        self,
        images: Any,
        out_dir: str | os.PathLike[str],
        *,
        threshold: float = 0.5,
        postprocess: str | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
    ) -> list[Path]:
        """Predict and write ``<image_id>_segmentation.png`` (0/255, original size) per image.

        Masks are written batch by batch as they are predicted (memory stays flat), each file
        atomically, in the HAM10000/ISIC naming that :func:`~hamkit.data.images.find_masks` reads.

        Args:
            images: As for :meth:`predict` (paths or a folder give the file stems as ids).
            out_dir: The folder to write to (created).
            threshold: Lesion probability threshold.
            postprocess: As for :meth:`predict`.
            batch_size: Inference batch size.
            num_workers: DataLoader workers for decoding.

        Returns:
            The written files, in input order.

        Raises:
            DataError: No images, or two images with the same id (they would overwrite each other).
                An image that cannot be read stops the run; the masks written so far stay, and
                ``INCOMPLETE.txt`` in the folder says how many and why (a complete run removes it).
        """
        self._check_options(threshold, postprocess)
        mean, std = self.normalisation()
        ids = prepare_inputs(images, image_size=self.image_size, mean=mean, std=std).image_ids
        duplicates = sorted(i for i, count in Counter(ids).items() if count > 1)
        if duplicates:
            raise DataError(
                f"{len(duplicates)} image id(s) occur twice: {', '.join(duplicates[:10])}; their masks "
                "would overwrite each other; rename the files or predict them separately"
            )
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        marker = folder / INCOMPLETE_NOTE
        try:
            for batch_ids, masks, _, _ in self._iter_predictions(
                images,
                threshold=threshold,
                postprocess=postprocess,
                keep_proba=False,
                batch_size=batch_size,
                num_workers=num_workers,
            ):
                written += [
                    save_mask(m, folder / f"{i}_segmentation.png") for i, m in zip(batch_ids, masks, strict=True)
                ]
        except (HamkitError, OSError) as err:
            atomic_write_text(
                marker,
                f"incomplete: {len(written)} of {len(ids)} masks were written before this "
                f"error stopped the run:\n{err}\n",
            )
            raise type(err)(f"{err} ({len(written)} of {len(ids)} masks written; {marker} says so)") from err
        marker.unlink(missing_ok=True)
        return written

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self,
        data: Any,
        *,
        masks: str | os.PathLike[str] | None = None,
        split_csv: str | os.PathLike[str] | None = None,
        split: str = "test",
        on_missing: str = "error",
        mask_threshold: int | None = None,
        threshold: float = 0.5,
        postprocess: str | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
    ) -> SegmentationReport:
        """Score the segmenter (and its head) on data with masks.

        Predictions are resized to each image's original size and compared with the original
        mask files (read through their palette, size-checked), as ISIC 2018 Task 1 scores. A
        generic torch ``Dataset`` yielding masks is scored at the working size instead
        (``report.resolution == "working"``). Dice and IoU are per image, then averaged; an image
        whose truth and prediction are both empty scores 1.0, one where only one of them is empty
        scores 0.0 (see :mod:`hamkit.seg_metrics`).

        Args:
            data: A ``SkinDataset`` with masks, a data root with ``split_csv`` (``split`` rows),
                or a torch ``Dataset`` yielding ``(image, label, mask)``.
            masks: The masks folder of a data root (default: found under the root).
            split_csv: Split CSV for a data root.
            split: Which split of ``split_csv`` to use.
            on_missing: ``"error"`` or ``"skip"`` images without a mask (listed in
                ``report.skipped``).
            mask_threshold: Grey level above which a pixel of a non-binary mask is lesion.
            threshold: Lesion probability threshold.
            postprocess: As for :meth:`predict`.
            batch_size: Inference batch size.
            num_workers: DataLoader workers (decoding and mask reading).

        Returns:
            The :class:`~hamkit.seg_metrics.SegmentationReport`; with ``classify=True`` it holds
            the head's :class:`~hamkit.metrics.ClassificationReport` (over the images with a
            known label) and the per-image class predictions.

        Raises:
            DataError: No masks, a mask of another size than its image, a non-binary mask
                without ``mask_threshold``, or no images.
        """
        self._check_options(threshold, postprocess)
        dataset = self._as_dataset(
            data,
            split=split,
            split_csv=split_csv,
            masks=masks,
            on_missing=on_missing,
            mask_threshold=mask_threshold,
            augment=False,
            cache=None,
        )
        self._check_fitted()
        pin = resolve_device(self.device).type == "cuda"
        skipped = dict(getattr(dataset, "skipped", {}))
        original = isinstance(dataset, SkinDataset)
        if isinstance(dataset, SkinDataset):
            wrapped: Dataset = OriginalSizeMasks(dataset.with_options(with_masks=False), dataset.mask_threshold)
            loader = DataLoader(
                wrapped,
                batch_size=batch_size,
                shuffle=False,
                num_workers=num_workers,
                collate_fn=OriginalSizeMasks.collate,
                pin_memory=pin,
            )
        else:
            loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=pin)
        ids: list[str] = []
        counts: list[np.ndarray] = []
        labels: list[torch.Tensor] = []
        logits: list[torch.Tensor] = []
        for batch, probabilities, class_logits in self._forward(loader):
            n = int(probabilities.shape[0])
            if original:
                truths = [np.asarray(t, dtype=bool) for t in batch["truth"]]
                sizes: list[tuple[int, int]] | None = [(t.shape[1], t.shape[0]) for t in truths]
            else:
                if "mask" not in batch:
                    raise DataError("the data yields no masks to evaluate against")
                truths = list((batch["mask"].reshape(n, *batch["mask"].shape[-2:]) > 0.5).numpy())
                sizes = None
            predictions = [(p > threshold).cpu().numpy() for p in resize_to_sizes(probabilities, sizes)]
            if postprocess is not None:
                predictions = postprocess_masks(predictions, postprocess)  # type: ignore[assignment]
            batch_ids = (
                [str(i) for i in batch["image_id"]] if "image_id" in batch else [str(len(ids) + i) for i in range(n)]
            )
            counts.append(confusion_counts_list(predictions, truths, batch_ids))
            ids += batch_ids
            if class_logits is not None:
                logits.append(class_logits)
                labels.append(torch.as_tensor(batch.get("label", torch.full((n,), -1))).reshape(-1).cpu())
        if not ids:
            raise DataError("no images to evaluate")
        report = report_from_counts(
            ids,
            np.concatenate(counts),
            threshold=threshold,
            postprocess=postprocess,
            resolution="original" if original else "working",
            classes=self.classes_,
            skipped=skipped,
        )
        if logits:
            proba = torch.cat(logits).softmax(1).numpy()
            report = report.with_classification(
                ids, proba.argmax(1), proba=proba, labels=torch.cat(labels).numpy(), classes=self.classes_
            )
        return report

    def plot_examples(
        self,
        data: Any,
        path: str | os.PathLike[str],
        *,
        n: int = 6,
        masks: Any = None,
        split_csv: Any = None,
        split: str = "test",
        threshold: float = 0.5,
        postprocess: str | None = None,
        image_ids: Sequence[str] | None = None,
        title: str | None = None,
    ) -> Path:
        """Draw input / ground truth / prediction / contour-overlay panels, one row per image.

        The rows are the first ``n`` images of the data, or the images named by ``image_ids``
        (in that order), e.g. the lowest-Dice images of a :class:`SegmentationReport`.

        Args:
            data: A ``SkinDataset`` with masks, or a data root with ``split_csv``.
            path: The PNG to write (atomically).
            n: Number of images (rows).
            masks: The masks folder of a data root.
            split_csv: Split CSV for a data root.
            split: Which split to draw from.
            threshold: Lesion probability threshold.
            postprocess: As for :meth:`predict`.
            image_ids: Draw these images instead of the first ``n``.
            title: Figure title.

        Returns:
            The written path.

        Raises:
            DataError: The data is not a SkinDataset (or root) with masks, or an id of
                ``image_ids`` is not in it.
        """
        from hamkit.data.images import open_image
        from hamkit.report.figures import segmentation_panels

        dataset = self._as_dataset(
            data,
            split=split,
            split_csv=split_csv,
            masks=masks,
            on_missing="error",
            mask_threshold=None,
            augment=False,
            cache=None,
        )
        if not isinstance(dataset, SkinDataset):
            raise DataError("plot_examples needs a SkinDataset with masks (or a data root), to read the originals")
        if image_ids is None:
            chosen = dataset.subset(range(min(n, len(dataset))))
        else:
            position = {image_id: i for i, image_id in enumerate(dataset.image_ids)}
            lacking = [i for i in image_ids if i not in position]
            if lacking:
                raise DataError(f"image(s) not in the {split} data: {', '.join(lacking[:5])}")
            chosen = dataset.subset([position[i] for i in image_ids])
        predicted = self.predict(chosen.with_options(with_masks=False), threshold=threshold, postprocess=postprocess)
        assert isinstance(predicted, list)
        originals = [np.asarray(open_image(s.path)) for s in chosen.samples]
        truths = [
            read_mask(s.mask_path, image_size_of(s.path), chosen.mask_threshold)  # type: ignore[arg-type]
            for s in chosen.samples
        ]
        return segmentation_panels(originals, truths, predicted, path, image_ids=chosen.image_ids, title=title)

    # ------------------------------------------------------------------ persistence
    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, device: str = "auto", backbone: str | None = None
    ) -> LesionSegmenter:
        """Load a segmenter written by :meth:`save` (or a run's ``best/`` folder).

        Args:
            path: The folder.
            device: Where to run it.
            backbone: If given, the checkpoint must be of this backbone.

        Returns:
            A fitted segmenter that predicts exactly what the saved one did.

        Raises:
            HamkitError: Not a segmenter checkpoint (e.g. a ``LesionClassifier``'s), another
                backbone than asked, or weights that do not fit the configured network.
        """
        state, config = cls._read_checkpoint(path, backbone=backbone)
        recipe = cls._restored_recipe(config)
        model = cls(
            config["backbone"],
            image_size=config["image_size"],
            pretrained=False,
            classify=config["classify"],
            num_classes=config["num_classes"],
            dropout=config.get("dropout", 0.0),
            classes=config["classes"],
            backbone_kwargs=config.get("backbone_kwargs") or None,
            loss=config.get("loss", "bce+dice"),
            cls_weight=config.get("cls_weight", 1.0),
            recipe=recipe,
            device=device,
        )
        head = f" with a {config['num_classes']}-class head" if config["classify"] else ""
        restored = model._restore(path, state, f"{config['backbone']} segmenter{head}")
        if recipe is not None:
            restored.recipe_ = recipe
        return restored
