"""``LesionClassifier``: 7-class diagnosis by transfer learning, scikit-learn style.

The constructor only stores settings; :meth:`LesionClassifier.fit` builds the network (any
registry backbone + a linear head) and trains it with the shared engine. Class imbalance is
handled in constant memory, by a class-weighted sampler (the default) or a class-weighted loss,
never by copying images; the best epoch is chosen by validation balanced accuracy, the ISIC 2018
Task 3 metric.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from hamkit._version import __version__
from hamkit.data.dataset import SkinDataset
from hamkit.engine.device import amp_dtype, autocast, resolve_device
from hamkit.engine.estimator import Estimator
from hamkit.engine.inputs import prepare_inputs, unpack_batch
from hamkit.engine.trainer import TrainConfig, Trainer, TrainResult
from hamkit.errors import DataError, HamkitError
from hamkit.metrics import ClassificationReport, classification_report

__all__ = ["LesionClassifier", "ClassifierNetwork", "CLASS_BALANCE_MODES", "dataset_labels", "balance_weights"]

CLASS_BALANCE_MODES = ("sampler", "loss", None)
VALIDATION_METRICS = ("balanced_accuracy", "accuracy", "macro_f1", "melanoma_sensitivity", "loss")
_KIND = "LesionClassifier"


class ClassifierNetwork(nn.Module):
    """A registry backbone (pooled features) followed by dropout and a linear head.

    Args:
        backbone: A module mapping ``(N, 3, H, W)`` to ``(N, feature_dim)``.
        feature_dim: Its output width.
        num_classes: Number of classes.
        dropout: Dropout before the head.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, num_classes)``."""
        return self.head(self.dropout(self.backbone(images)))


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """The class index of every item of a dataset.

    Uses a ``labels`` or ``targets`` attribute when there is one (``SkinDataset``, torchvision
    ``ImageFolder``), otherwise reads every item once.
    """
    for name in ("labels", "targets"):
        values = getattr(dataset, name, None)
        if values is not None:
            return np.asarray(values, dtype=np.int64)
    return np.array(
        [int(unpack_batch(dataset[i])["label"]) for i in range(len(dataset))],  # type: ignore[arg-type]
        dtype=np.int64,
    )


def balance_weights(labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-frequency weights for class balancing.

    Args:
        labels: Class index per training sample.
        num_classes: Number of classes.

    Returns:
        ``(per_sample, per_class)``: sampling weight per sample (``1 / count`` of its class, so
        every class is drawn equally often) and loss weight per class (``n / (K * count)``,
        mean 1 over the ``K`` classes present; 0 for absent classes).

    Examples:
        >>> per_sample, per_class = balance_weights(np.array([0, 0, 0, 1]), 2)
        >>> per_sample.tolist(), per_class.tolist()
        ([0.3333333333333333, 0.3333333333333333, 0.3333333333333333, 1.0], [0.6666666666666666, 2.0])
    """
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    per_class = np.zeros(num_classes)
    per_class[present] = labels.size / (present.sum() * counts[present])
    per_sample = 1.0 / counts[labels]
    return per_sample, per_class


class _ClassificationTask:
    """The classifier's loss and validation for the :class:`~hamkit.engine.trainer.Trainer`."""

    def __init__(
        self, criterion: nn.Module, classes: Sequence[str], config: dict[str, Any], channels_last: bool
    ) -> None:
        self.criterion = criterion
        self.classes = list(classes)
        self.config = config
        self.channels_last = channels_last

    def _images(self, batch: dict[str, Any], device: torch.device) -> torch.Tensor:
        images = batch["image"].to(device, non_blocking=True)
        if self.channels_last and device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        batch = unpack_batch(batch)
        labels = batch["label"].to(device, non_blocking=True)
        logits = model(self._images(batch, device))
        return self.criterion(logits.float(), labels), int(labels.shape[0])

    def validate(
        self, model: nn.Module, loader: DataLoader, device: torch.device, dtype: torch.dtype | None
    ) -> dict[str, float]:
        logits, labels = _collect_logits(model, loader, device, dtype, self.channels_last, with_labels=True)
        loss = float(nn.functional.cross_entropy(logits, torch.from_numpy(labels)))
        report = classification_report(labels, logits.argmax(1).numpy(), classes=self.classes)
        return {
            "loss": loss,
            "accuracy": report.accuracy,
            "balanced_accuracy": report.balanced_accuracy,
            "macro_f1": report.macro["f1"],
            "melanoma_sensitivity": report.melanoma_sensitivity,
        }

    def checkpoint_config(self) -> dict[str, Any]:
        return self.config


@torch.inference_mode()
def _collect_logits(
    model: nn.Module,
    loader: Iterable[Any],
    device: torch.device,
    dtype: torch.dtype | None,
    channels_last: bool,
    *,
    with_labels: bool = False,
    tta: bool = False,
) -> tuple[torch.Tensor, np.ndarray]:
    """Float32 CPU logits (and labels) of every item, in loader order."""
    outputs, labels = [], []
    for raw in loader:
        batch = unpack_batch(raw)
        images = batch["image"].to(device, non_blocking=True)
        if channels_last and device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            logits = model(images).float()
            if tta:  # average probabilities over the flips, returned as log-probabilities
                probs = (
                    logits.softmax(1)
                    + model(images.flip(3)).float().softmax(1)
                    + model(images.flip(2)).float().softmax(1)
                )
                logits = (probs / 3).log()
        outputs.append(logits.cpu())
        if with_labels:
            if "label" not in batch:
                raise DataError("the data has no labels to evaluate against")
            labels.append(batch["label"].cpu())
    label_array = torch.cat(labels).numpy() if labels else np.zeros(0, dtype=np.int64)
    return torch.cat(outputs), label_array


class LesionClassifier(Estimator):
    """Skin-lesion diagnosis by transfer learning (scikit-learn style estimator).

    Args:
        backbone: A registry name: a built-in (``resnet50``, ``mobilenet_v2``...), any timm model
            as ``timm:<name>``, or a plugin's name.
        num_classes: Number of classes (7 for HAM10000, in :data:`hamkit.classes.CLASS_CODES` order).
        image_size: Square input size in pixels.
        pretrained: Start from the backbone's upstream pretrained weights (needs network access
            once; see :func:`hamkit.create_backbone`).
        weights: A local weights file for the backbone instead (``.safetensors``/``.pt``/``.pth``).
        dropout: Dropout before the linear head.
        classes: Class names (default: the HAM10000 codes when ``num_classes`` is 7).
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``...

    Attributes:
        network_: The fitted :class:`ClassifierNetwork` (after ``fit`` or ``load``).
        history_: Per-epoch history of the last ``fit``.
        best_epoch_: The epoch whose weights were kept.

    Examples:
        >>> clf = LesionClassifier("mobilenet_v3_small", image_size=64, pretrained=False)
        >>> clf.get_params()["backbone"]
        'mobilenet_v3_small'
    """

    _KIND = _KIND
    _PARAMS = ("backbone", "num_classes", "image_size", "pretrained", "weights", "dropout", "classes", "device")

    def __init__(
        self,
        backbone: str = "resnet50",
        num_classes: int = 7,
        image_size: int = 384,
        pretrained: bool = True,
        weights: str | os.PathLike[str] | None = None,
        *,
        dropout: float = 0.2,
        classes: Sequence[str] | None = None,
        device: str = "auto",
    ) -> None:
        self.backbone = backbone
        self.num_classes = num_classes
        self.image_size = image_size
        self.pretrained = pretrained
        self.weights = weights
        self.dropout = dropout
        self.classes = classes
        self.device = device

    # ------------------------------------------------------------------ helpers
    def _config(self) -> dict[str, Any]:
        mean, std = self.normalisation()
        config = {
            "kind": _KIND,
            "hamkit_version": __version__,
            "backbone": self.backbone,
            "num_classes": self.num_classes,
            "classes": self.classes_,
            "image_size": self.image_size,
            "mean": list(mean),
            "std": list(std),
            "dropout": self.dropout,
        }
        if hasattr(self, "class_prior_"):
            config["class_prior"] = [float(x) for x in self.class_prior_]
        if hasattr(self, "temperature_"):
            config["temperature"] = float(self.temperature_)
            config["prior_alpha"] = float(getattr(self, "prior_alpha_", 0.0))
            config["class_offsets"] = [float(x) for x in self.class_offsets_]
        return config

    def _build(self, *, pretrained: bool, weights: Any) -> ClassifierNetwork:
        from hamkit.registry import create_backbone

        if self.num_classes < 2:
            raise HamkitError(f"num_classes must be at least 2, got {self.num_classes}")
        if len(self.classes_) != self.num_classes:
            raise HamkitError(f"{len(self.classes_)} class names for num_classes={self.num_classes}")
        body = create_backbone(self.backbone, task="classification", pretrained=pretrained, weights=weights)
        return ClassifierNetwork(body, int(body.feature_dim), self.num_classes, self.dropout)

    def _as_dataset(
        self, data: Any, *, split: str, split_csv: Any, augment: bool, cache: Any, on_missing: str = "error"
    ) -> Dataset:
        mean, std = self.normalisation()
        if isinstance(data, SkinDataset):
            return data.with_options(
                image_size=self.image_size,
                mean=mean,
                std=std,
                augment=augment,
                with_masks=False,
                **({"cache": cache} if cache is not None else {}),
            )
        if isinstance(data, (str, os.PathLike)):
            if split_csv is None:
                raise DataError(
                    f"{data}: a data root needs split_csv= (from `hamkit split`) to know the {split} "
                    "images; or pass a SkinDataset"
                )
            return SkinDataset.from_folder(
                data,
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
        raise DataError(
            f"cannot train on a {type(data).__name__}; pass a SkinDataset, a data root with "
            "split_csv=, or a torch Dataset"
        )

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        train: Any,
        val: Any = None,
        *,
        split_csv: str | os.PathLike[str] | None = None,
        epochs: int = 10,
        batch_size: int = 32,
        lr: float = 1e-4,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        class_balance: str | None = "sampler",
        scheduler: str = "cosine",
        monitor: str = "balanced_accuracy",
        early_stopping: int | None = None,
        grad_clip: float | None = None,
        augment: bool = True,
        num_workers: int | None = None,
        cache: Any = None,
        out_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
        seed: int = 0,
        progress: bool | str = True,
        amp: bool | str = "auto",
        on_missing: str = "error",
    ) -> LesionClassifier:
        """Train the classifier; on return it holds the weights of the best validation epoch.

        Args:
            train: A ``SkinDataset``, a data root (with ``split_csv``; its ``train`` rows are
                used), or a torch ``Dataset`` yielding ``(image, label)`` / dicts.
            val: Validation data of the same kinds; with a root and ``split_csv`` and no ``val``,
                the ``val`` rows are used.
            split_csv: A split CSV written by ``hamkit split``.
            epochs: Number of epochs.
            batch_size: Batch size.
            lr: Learning rate.
            optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"``.
            weight_decay: Weight decay.
            class_balance: ``"sampler"`` (default: every class drawn equally often, with
                replacement), ``"loss"`` (class-weighted cross-entropy) or ``None``.
            scheduler: ``"cosine"``, ``"step"`` or ``"none"``.
            monitor: Validation metric picking the best epoch (``balanced_accuracy``,
                ``accuracy``, ``macro_f1``, ``loss``, ``melanoma_sensitivity``).
            early_stopping: Patience in epochs, or ``None``.
            grad_clip: Gradient-norm clipping, or ``None``.
            augment: Random flips and 90-degree rotations of training images (SkinDataset only).
            num_workers: DataLoader workers (``None``: automatic).
            cache: A decode cache (or folder) for ``SkinDataset`` inputs.
            out_dir: Folder for checkpoints (``best/``, ``last/``) and history; ``None`` keeps
                them in memory.
            resume: Continue an interrupted run from ``out_dir/last``.
            seed: Seed of the run.
            progress: Show progress (bars on a terminal, else a line per epoch; a string names the
                stage in it).
            amp: Mixed precision (``"auto"``: on CUDA).
            on_missing: For a data root: ``"error"`` (default) when an image of the split has no
                file, ``"skip"`` to leave it out (listed in ``skipped_``).

        Returns:
            ``self``.

        Raises:
            DataError: Unusable data (empty split, labels outside ``num_classes``...).
            TrainingError: The loss became NaN/inf.
            HamkitError: Bad settings or an unknown backbone.
        """
        if monitor not in VALIDATION_METRICS:
            raise HamkitError(
                f"monitor={monitor!r} is not a validation metric; choose one of {', '.join(VALIDATION_METRICS)}"
            )
        if class_balance not in CLASS_BALANCE_MODES:
            raise HamkitError(f"class_balance must be 'sampler', 'loss' or None, got {class_balance!r}")
        train_data = self._as_dataset(
            train, split="train", split_csv=split_csv, augment=augment, cache=cache, on_missing=on_missing
        )
        if val is None and isinstance(train, (str, os.PathLike)) and split_csv is not None:
            val = train
        val_data = (
            self._as_dataset(val, split="val", split_csv=split_csv, augment=False, cache=cache, on_missing=on_missing)
            if val is not None
            else None
        )
        labels = dataset_labels(train_data)
        if labels.size == 0:
            raise DataError("the training split is empty")
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise DataError(
                f"the training data has labels {sorted(set(labels.tolist()))} but num_classes="
                f"{self.num_classes}; set num_classes to match the data"
            )
        per_sample, per_class = balance_weights(labels, self.num_classes)
        for name in ("temperature_", "class_offsets_", "prior_alpha_"):  # a new fit is not calibrated
            self.__dict__.pop(name, None)
        self.class_prior_ = np.bincount(labels, minlength=self.num_classes) / labels.size
        criterion = nn.CrossEntropyLoss(
            weight=torch.tensor(per_class, dtype=torch.float32) if class_balance == "loss" else None
        )
        config = TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            weight_decay=weight_decay,
            scheduler=scheduler,
            grad_clip=grad_clip,
            monitor=monitor,
            early_stopping=early_stopping,
            num_workers=num_workers,
            seed=seed,
            amp=amp,
            progress=progress,
            out_dir=out_dir,
            resume=resume,
            device=self.device,
        )
        trainer = Trainer(config)
        torch.manual_seed(seed)  # the head's initialisation is part of the seeded run
        network = self._build(pretrained=self.pretrained, weights=self.weights)
        device = resolve_device(self.device)
        criterion.to(device)
        task = _ClassificationTask(criterion, self.classes_, self._config(), channels_last=True)
        result: TrainResult = trainer.fit(
            network, task, train_data, val_data, sample_weights=per_sample if class_balance == "sampler" else None
        )
        self.network_ = network.eval()
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.stopped_early_ = result.stopped_early
        self.skipped_ = {**getattr(train_data, "skipped", {}), **getattr(val_data, "skipped", {})}
        return self

    # ------------------------------------------------------------------ inference
    def predict_proba(
        self, images: Any, *, batch_size: int = 64, tta: bool = False, num_workers: int = 0
    ) -> np.ndarray:
        """Class probabilities ``(N, num_classes)``.

        Args:
            images: Paths, a folder, PIL images, uint8 arrays, a preprocessed float tensor, or a
                dataset (see :mod:`hamkit.engine.inputs`).
            batch_size: Inference batch size.
            tta: Average over the image and its horizontal and vertical flips.
            num_workers: DataLoader workers for decoding.

        Returns:
            Probabilities, rows summing to 1, in input order.
        """
        logits, _ = self._logits(images, batch_size=batch_size, tta=tta, num_workers=num_workers)
        return self._proba(logits)

    def _proba(self, logits: torch.Tensor) -> np.ndarray:
        return (logits / float(getattr(self, "temperature_", 1.0))).softmax(1).numpy()

    def predict(self, images: Any, **kwargs: Any) -> np.ndarray:
        """Predicted class indices: :meth:`decide` on :meth:`predict_proba`.

        Before :meth:`calibrate` this is the argmax of the probabilities; after it, the
        decision rule chosen on validation data.
        """
        return self.decide(self.predict_proba(images, **kwargs))

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Class decisions from probabilities returned by :meth:`predict_proba`.

        ``argmax(log(proba) + class_offsets_)``; without :meth:`calibrate` the offsets are 0 and
        this is the plain argmax.
        """
        scores = np.log(np.clip(np.asarray(proba, dtype=np.float64), 1e-12, None))
        offsets = getattr(self, "class_offsets_", None)
        return (scores + offsets if offsets is not None else scores).argmax(1)

    def calibrate(
        self,
        data: Any,
        *,
        split_csv: str | os.PathLike[str] | None = None,
        split: str = "val",
        decision: str = "tuned",
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> LesionClassifier:
        """Fit temperature scaling and the decision rule on labelled held-out data (validation).

        Temperature scaling divides the logits by one scalar ``T`` (fitted by NLL), so that
        :meth:`predict_proba` gives calibrated confidences; it never changes the ranking. The
        decision rule (``decision="tuned"``) adds ``alpha * log(training class frequency)`` to
        the log-probabilities before the argmax, with ``alpha`` in ``[-1, 1]`` chosen to maximise
        the mean of balanced accuracy and macro F1 on this data: a balanced sampler lifts the
        recall of rare classes and pays in their precision, and ``alpha`` buys some of it back.
        ``decision="argmax"`` keeps the plain argmax.

        Args:
            data: Labelled data as for :meth:`evaluate` (never the test split).
            split_csv: Split CSV for a data root.
            split: Which split of ``split_csv`` (default ``"val"``).
            decision: ``"tuned"`` or ``"argmax"``.
            batch_size: Inference batch size.
            num_workers: DataLoader workers.

        Returns:
            ``self``, with ``temperature_``, ``prior_alpha_`` and ``class_offsets_`` set; they
            are saved with the model.
        """
        from hamkit.calibration import fit_prior_offsets, fit_temperature

        if decision not in ("tuned", "argmax"):
            raise HamkitError(f"decision must be 'tuned' or 'argmax', got {decision!r}")
        dataset = self._as_dataset(data, split=split, split_csv=split_csv, augment=False, cache=None)
        logits, labels = self._logits(
            dataset, batch_size=batch_size, tta=False, num_workers=num_workers, with_labels=True
        )
        self._check_labels(labels)
        scores = logits.numpy().astype(np.float64)
        self.temperature_ = fit_temperature(scores, labels)
        log_proba = np.log(np.clip(self._proba(logits), 1e-12, None))
        prior = getattr(self, "class_prior_", None)
        if decision == "tuned" and prior is not None:
            self.prior_alpha_, self.class_offsets_ = fit_prior_offsets(log_proba, labels, prior)
        else:
            self.prior_alpha_, self.class_offsets_ = 0.0, np.zeros(self.num_classes)
        return self

    def _check_labels(self, labels: np.ndarray) -> None:
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise DataError(
                "needs labelled data with class indices 0.."
                f"{self.num_classes - 1}; got labels {sorted(set(labels.tolist()))[:8]}"
            )

    def _logits(
        self, images: Any, *, batch_size: int, tta: bool, num_workers: int, with_labels: bool = False
    ) -> tuple[torch.Tensor, np.ndarray]:
        network = self._check_fitted()
        mean, std = self.normalisation()
        inputs = prepare_inputs(images, image_size=self.image_size, mean=mean, std=std)
        device = resolve_device(self.device)
        network.to(device).eval()
        loader: Any
        if isinstance(inputs.dataset, TensorDataset):  # already in memory: slice, do not re-stack
            tensors = inputs.dataset.tensors
            images = tensors[0]
            loader = [
                {
                    "image": images[i : i + batch_size],
                    **({"label": tensors[1][i : i + batch_size]} if len(tensors) > 1 else {}),
                }
                for i in range(0, len(images), batch_size)
            ]
        else:
            loader = DataLoader(
                inputs.dataset,
                batch_size=batch_size,
                shuffle=False,
                num_workers=num_workers,
                pin_memory=device.type == "cuda",
            )
        return _collect_logits(
            network, loader, device, amp_dtype(device), channels_last=True, with_labels=with_labels, tta=tta
        )

    def evaluate(
        self,
        data: Any,
        *,
        split_csv: str | os.PathLike[str] | None = None,
        split: str = "test",
        batch_size: int = 64,
        tta: bool = False,
        num_workers: int = 0,
    ) -> ClassificationReport:
        """Score the classifier on labelled data.

        Args:
            data: A labelled ``SkinDataset``, a data root with ``split_csv`` (``split`` rows are
                used), or a torch ``Dataset`` yielding labels.
            split_csv: Split CSV for a data root.
            split: Which split of ``split_csv`` to use.
            batch_size: Inference batch size.
            tta: Flip test-time augmentation.
            num_workers: DataLoader workers.

        Returns:
            The :class:`~hamkit.metrics.ClassificationReport`.
        """
        dataset = self._as_dataset(data, split=split, split_csv=split_csv, augment=False, cache=None)
        logits, labels = self._logits(
            dataset, batch_size=batch_size, tta=tta, num_workers=num_workers, with_labels=True
        )
        self._check_labels(labels)
        proba = self._proba(logits)
        return classification_report(labels, self.decide(proba), proba, classes=self.classes_)

    # ------------------------------------------------------------------ persistence
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
        model = cls(
            config["backbone"],
            config["num_classes"],
            config["image_size"],
            pretrained=False,
            dropout=config.get("dropout", 0.0),
            classes=config["classes"],
            device=device,
        )
        restored = model._restore(path, state, f"{config['backbone']} classifier with {config['num_classes']} classes")
        if "class_prior" in config:
            restored.class_prior_ = np.asarray(config["class_prior"], dtype=np.float64)
        if "temperature" in config:
            restored.temperature_ = float(config["temperature"])
            restored.prior_alpha_ = float(config.get("prior_alpha", 0.0))
            restored.class_offsets_ = np.asarray(config.get("class_offsets", [0.0] * model.num_classes))
        return restored
