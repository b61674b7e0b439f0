"""Where a classifier looked: Grad-CAM maps (captum's ``LayerGradCam``) and the gallery of its costliest mistakes.

captum is optional (``pip install 'hamkit[explain]'``); without it the gallery shows the images
alone, with a line saying how to get the maps.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hamkit.data.images import Crop

__all__ = ["CAPTUM_MISSING", "class_activation_maps", "costliest_mistakes_figure", "last_spatial_layer"]

CAPTUM_MISSING = "no class activation maps: captum is not installed (pip install 'hamkit[explain]')"


def last_spatial_layer(network: nn.Module, example: torch.Tensor) -> nn.Module:
    """The last module (in the order a forward pass runs them) with a ``(N, C, h, w)`` output, ``h, w > 1``:
    the layer Grad-CAM reads, whatever the backbone."""
    found: list[nn.Module] = []

    def hook(module: nn.Module, _: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor) and output.ndim == 4 and min(output.shape[2:]) > 1:
            found.append(module)

    handles = [m.register_forward_hook(hook) for m in network.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            network(example)
    finally:
        for handle in handles:
            handle.remove()
    if not found:
        raise ValueError("the network has no layer with a spatial output")
    return found[-1]


def class_activation_maps(network: nn.Module, images: torch.Tensor, targets: Sequence[int]) -> np.ndarray:
    """Grad-CAM (captum's ``LayerGradCam`` on :func:`last_spatial_layer`) of ``targets``, upsampled to the input.

    Args:
        network: The classifier's network (in eval mode).
        images: ``(N, 3, H, W)`` preprocessed images.
        targets: The class to explain for each image.

    Returns:
        ``(N, H, W)`` maps, each scaled to ``[0, 1]``.

    Raises:
        ImportError: captum is not installed.
    """
    from captum.attr import LayerAttribution, LayerGradCam

    network = network.eval()
    layer = last_spatial_layer(network, images[:1])
    cam = LayerGradCam(network, layer)
    maps = cam.attribute(images, target=[int(t) for t in targets], relu_attributions=True)
    maps = LayerAttribution.interpolate(maps, tuple(images.shape[2:]), interpolate_mode="bilinear")
    array = maps.detach().float().cpu().numpy()[:, 0]
    peak = array.reshape(len(array), -1).max(axis=1)[:, None, None]
    return np.where(peak > 0, array / np.maximum(peak, 1e-12), 0.0)


def costliest_mistakes_figure(
    model: Any,
    paths: Sequence[str | os.PathLike[str]],
    image_ids: Sequence[str],
    chosen: Sequence[int],
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    path: str | os.PathLike[str],
    *,
    crops: Sequence[Crop | None] | None = None,
) -> tuple[Path, str | None]:
    """The gallery of the mistakes ``chosen`` (indices, e.g. :func:`hamkit.metrics.clinical.costliest_mistakes`).

    ``crops`` (aligned with ``paths``): the region of each image the classifier saw (a classifier
    of lesion-centred crops); the gallery and its maps show that region.

    Returns:
        ``(png, note)``: ``note`` says why there are no maps (captum missing), else ``None``.
    """
    from hamkit.engine.inputs import prepare_inputs, unpack_batch
    from hamkit.figures.mistakes import plot_mistake_gallery
    from hamkit.metrics.clinical import full_name

    classes = list(model.classes_)
    mean, std = model.normalisation()
    picked = [str(paths[i]) for i in chosen]
    images, maps, note = [], None, None
    if picked:
        source: Any = picked
        if crops is not None:
            from hamkit.data.dataset import SkinDataset

            source = SkinDataset.from_paths(picked).with_crops([crops[i] for i in chosen])
        inputs = prepare_inputs(source, image_size=model.image_size, mean=mean, std=std)
        batch = torch.stack([unpack_batch(inputs.dataset[i])["image"] for i in range(len(picked))])
        shown = batch * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
        images = [(np.clip(x.permute(1, 2, 0).numpy(), 0, 1) * 255).astype(np.uint8) for x in shown]
        try:
            network = model._check_fitted()
            device = next(network.parameters()).device
            maps = list(class_activation_maps(network, batch.to(device), [int(y_pred[i]) for i in chosen]))
        except ImportError:
            note = CAPTUM_MISSING
    titles = [
        f"{image_ids[i]}\ntrue {full_name(classes[int(y_true[i])])}\ncalled {full_name(classes[int(y_pred[i])])}\n"
        f"p called {proba[i, int(y_pred[i])]:.2f}, p true {proba[i, int(y_true[i])]:.2f}"
        for i in chosen
    ]
    return plot_mistake_gallery(images, maps, titles, path, note=note), note
