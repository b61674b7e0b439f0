"""The work behind the classifier's inference methods: logits over any input, probabilities, decisions.

Plain functions of a fitted :class:`~hamkit.classify.LesionClassifier` (``model``); the public
methods (``predict_proba``, ``predict``, ``decide``, ``evaluate``, ``score``) are in its class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from hamkit._proc import WorkerInit
from hamkit.classify.task import collect_logits
from hamkit.engine.device import amp_dtype, resolve_device
from hamkit.engine.inputs import prepare_inputs
from hamkit.engine.progress import batch_progress
from hamkit.errors import DataError, HamkitError

__all__ = ["check_labels", "crop_inputs", "decide", "logits", "probabilities"]


def probabilities(model: Any, logits: torch.Tensor) -> np.ndarray:
    """Softmax of ``logits`` at the model's temperature (1 before ``calibrate``)."""
    return (logits / float(getattr(model, "temperature_", 1.0))).softmax(1).numpy()


def decide(proba: np.ndarray, offsets: np.ndarray | None) -> np.ndarray:
    """``argmax(log(proba) + offsets)`` (the plain argmax without offsets).

    Examples:
        >>> decide(np.array([[0.6, 0.4], [0.3, 0.7]]), None).tolist()
        [0, 1]
        >>> decide(np.array([[0.6, 0.4]]), np.array([0.0, 1.0])).tolist()
        [1]
    """
    scores = np.log(np.clip(np.asarray(proba, dtype=np.float64), 1e-12, None))
    return (scores + offsets if offsets is not None else scores).argmax(1)


def check_labels(labels: np.ndarray, num_classes: int) -> None:
    """Raise unless every label is a class index ``0..num_classes - 1``.

    Raises:
        DataError: A label out of range.
    """
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"needs labelled data with class indices 0..{num_classes - 1}; "
            f"got labels {sorted(set(labels.tolist()))[:8]}"
        )


def crop_inputs(model: Any, data: Any, segmenter: Any) -> Any:
    """``data`` as the classifier ``model`` takes it: for a model with ``lesion_crop > 0``, the
    lesion-centred crops around the masks that ``segmenter`` predicts (or the crops a
    ``SkinDataset`` already has); for others ``data`` itself.

    Raises:
        HamkitError: A ``segmenter`` for a model of whole images; a model of crops without a
            segmenter or cropped data, or given data that are not image files (crops are cut
            from the files).
    """
    from hamkit.data.crops import lesion_crops
    from hamkit.data.dataset import SkinDataset

    margin = float(getattr(model, "lesion_crop", 0.0) or 0.0)
    if margin == 0:
        if segmenter is not None:
            raise HamkitError(
                "segmenter= places the lesion-centred crops of a classifier with lesion_crop > 0; "
                "this classifier takes whole images (lesion_crop=0): leave segmenter out"
            )
        return data
    if isinstance(data, SkinDataset) and data.cropped and segmenter is None:
        return data  # the caller's own crops
    if segmenter is None:
        raise HamkitError(
            f"this classifier takes lesion-centred crops (lesion_crop={margin:g}): pass segmenter= (a fitted "
            "LesionSegmenter, whose masks place the crops) or a SkinDataset with crops "
            "(SkinDataset.with_crops); on the command line, --segmenter MODEL"
        )
    if not isinstance(data, SkinDataset):
        raise HamkitError(
            f"lesion-centred crops (lesion_crop={margin:g}) are cut from image files: pass paths, a folder or a "
            f"SkinDataset, not a {type(data).__name__}"
        )
    whole = data.with_crops(None)
    return data.with_crops(lesion_crops(segmenter.predict(whole), margin=margin))


def logits(
    model: Any,
    images: Any,
    *,
    batch_size: int,
    tta: bool,
    num_workers: int,
    with_labels: bool = False,
    progress: bool | str = False,
    segmenter: Any = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """The fitted network's logits over ``images`` (and their labels with ``with_labels``), in input
    order; for a model of lesion-centred crops, over the crops ``segmenter`` places (:func:`crop_inputs`)."""
    network = model._check_fitted()
    mean, std = model.normalisation()
    inputs = prepare_inputs(images, image_size=model.image_size, mean=mean, std=std)
    dataset = crop_inputs(model, inputs.dataset, segmenter)
    device = resolve_device(model.device)
    network.to(device).eval()
    loader: Any
    if isinstance(dataset, TensorDataset):  # already in memory: slice, do not re-stack
        tensors = dataset.tensors
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
            dataset,
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
            worker_init_fn=WorkerInit(),  # the workers die with this process, however it ends
        )
    batches = batch_progress(loader, progress=progress, total=len(loader))
    return collect_logits(network, batches, device, amp_dtype(device), with_labels=with_labels, tta=tta)
