"""The preprocessing description written beside an exported ONNX model (``<stem>.preprocessing.json``):
what an ONNX user needs to feed the network and read its outputs as ``predict`` does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from hamkit._version import __version__

__all__ = ["INPUT_NAME", "PREPROCESSING_FORMAT", "preprocessing", "preprocessing_path"]

INPUT_NAME = "image"
PREPROCESSING_FORMAT = "hamkit-onnx-preprocessing"


def preprocessing_path(path: str | os.PathLike[str]) -> Path:
    """The preprocessing file that goes with an ONNX file: ``model.onnx`` -> ``model.preprocessing.json``.

    Examples:
        >>> preprocessing_path("out/model.onnx").name
        'model.preprocessing.json'
    """
    path = Path(path)
    return path.with_name(f"{path.stem}.preprocessing.json")


def preprocessing(model: Any, outputs: list[str], onnx_name: str, opset: int) -> dict[str, Any]:
    """Everything an ONNX user needs to feed the network and read its outputs as ``predict`` does."""
    mean, std = model.normalisation()
    size = int(model.image_size)
    kind = type(model).__name__
    classes = list(model.classes_)
    meaning = {
        "logits": "class scores (N, num_classes), columns in 'classes' order; "
        "probabilities = softmax(logits / temperature)",
        "mask_logits": "lesion score per pixel (N, 1, height, width); probability = sigmoid(mask_logits); "
        "resize the probabilities bilinearly to the original image size, then lesion = probability > threshold",
        "class_logits": "diagnosis head scores (N, num_classes), columns in 'classes' order; "
        "probabilities = softmax(class_logits)",
    }
    shapes = {"logits": ["batch", len(classes)], "mask_logits": ["batch", 1, size, size]}
    shapes["class_logits"] = shapes["logits"]
    info: dict[str, Any] = {
        "format": PREPROCESSING_FORMAT,
        "format_version": 1,
        "hamkit_version": __version__,
        "kind": kind,
        "backbone": model.backbone,
        "onnx_file": onnx_name,
        "opset": opset,
        "input": {
            "name": INPUT_NAME,
            "layout": "NCHW",
            "dtype": "float32",
            "shape": ["batch", 3, size, size],
            "channel_order": "RGB",
            "image_size": size,
            "resize": "whole image to image_size x image_size, bilinear (the aspect ratio is not kept)",
            "scale": "pixel values divided by 255 (0..1)",
            "normalise": "(value - mean) / std, per channel",
        },
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "classes": classes,
        "outputs": {name: {"shape": shapes[name], "meaning": meaning[name]} for name in outputs},
    }
    margin = float(getattr(model, "lesion_crop", 0.0) or 0.0)
    if margin:  # a classifier of lesion-centred crops: the ONNX user must cut the same crop first
        info["input"]["resize"] = (
            f"the square crop around the lesion (hamkit.data.crops.lesion_crops with margin={margin:g}: the "
            f"bounding box of the lesion mask of a segmenter, its longer side times {margin:g}, centred on it and "
            "shifted inside the image), resized to image_size x image_size, bilinear"
        )
        info["input"]["lesion_crop"] = margin
    if kind == "LesionClassifier":
        offsets = getattr(model, "class_offsets_", None)
        info["postprocessing"] = {
            "calibrated": hasattr(model, "temperature_"),
            "temperature": float(getattr(model, "temperature_", 1.0)),
            "prior_alpha": float(getattr(model, "prior_alpha_", 0.0)),
            "class_offsets": [float(x) for x in (offsets if offsets is not None else np.zeros(len(classes)))],
            "predict_proba": "softmax(logits / temperature)",
            "predict": "argmax(log(max(predict_proba, 1e-12)) + class_offsets)",
        }
    else:
        info["postprocessing"] = {
            "threshold": 0.5,
            "mask": "sigmoid(mask_logits) resized to the original size, > threshold",
            **({"predict_diagnosis": "argmax(class_logits)"} if "class_logits" in outputs else {}),
        }
    return info
