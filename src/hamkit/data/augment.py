"""Training augmentation: named choices built on ``torchvision.transforms.v2``.

:func:`build_augmentation` turns a choice into a transform that :class:`~hamkit.data.dataset.SkinDataset`
applies to each training item after decoding and resizing, to the image and its mask together:

* ``"none"``: nothing.
* ``"flips"`` (the default, what ``True`` means): random horizontal and vertical flips and a
  random number of 90-degree turns. Exact pixel moves: no interpolation, no colour change.
* ``"light"``: the flips and turns, then a small affine warp (rotation up to 15 degrees, scale
  0.9-1.1, shift up to 5 %) and mild brightness and contrast changes (up to 10 %).
* ``"strong"``: the flips and turns, a random crop of 60-100 % of the image resized back to full
  size, an affine warp (rotation up to 20 degrees, scale 0.9-1.1, shift up to 5 %) and colour
  jitter (brightness, contrast and saturation up to 20 %, hue up to 0.02).

Masks are warped with nearest-neighbour interpolation and stay 0/1. Any torchvision v2 transform
(or another callable with the same calling convention) can be passed instead of a name; see
:func:`build_augmentation`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from hamkit.errors import HamkitError

__all__ = ["AUGMENTATIONS", "DEFAULT_AUGMENTATION", "FlipsAndTurns", "build_augmentation", "apply_augmentation"]

AUGMENTATIONS: tuple[str, ...] = ("none", "flips", "light", "strong")
"""The named augmentation choices."""

DEFAULT_AUGMENTATION: str = "flips"
"""The choice that ``augment=True`` stands for."""


def _is_pure_tensor(inpt: Any) -> bool:
    return type(inpt) is torch.Tensor


class FlipsAndTurns(v2.Transform):
    """Random horizontal and vertical flips (each with probability 1/2) and 0-3 quarter turns.

    The same draw moves every image and mask of one call. Pixels are only permuted, so a mask
    stays binary and colours are unchanged.
    """

    _transformed_types = (tv_tensors.Image, tv_tensors.Mask, tv_tensors.Video, _is_pure_tensor)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """Draw the flips and the number of quarter turns (torch's global generator)."""
        flips = torch.randint(0, 2, (2,)).tolist()
        turns = int(torch.randint(0, 4, (1,)))
        return {"dims": [d for d, flip in zip((-1, -2), flips, strict=True) if flip], "turns": turns}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Flip and turn one image or mask (``(..., H, W)``)."""
        out = inpt.as_subclass(torch.Tensor)
        if params["dims"]:
            out = out.flip(params["dims"])
        if params["turns"]:
            out = out.rot90(params["turns"], (-2, -1))
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out

    # torchvision < 0.21 calls the private names
    _get_params = make_params
    _transform = transform


def build_augmentation(choice: bool | str | Callable[..., Any] | None, *, image_size: int) -> Callable[..., Any]:
    """The training transform for ``choice``.

    The choices, each applied to the image and its mask together (masks by nearest neighbour):

    * ``"none"``: nothing.
    * ``"flips"``: random horizontal and vertical flips and 0-3 quarter turns (no interpolation,
      no colour change).
    * ``"light"``: the flips and turns, then a small affine warp (rotation up to 15 degrees,
      scale 0.9-1.1, shift up to 5 %) and brightness and contrast changes of up to 10 %.
    * ``"strong"``: the flips and turns, a random crop of 60-100 % of the image resized back, an
      affine warp (up to 20 degrees, scale 0.9-1.1, shift up to 5 %) and colour jitter
      (brightness, contrast and saturation up to 20 %, hue up to 0.02).

    Args:
        choice: One of the names above; ``True`` for the default (``"flips"``); ``False`` or
            ``None`` for ``"none"``; or a callable, returned as it is. A callable receives a
            ``tv_tensors.Image`` (``uint8``,
            ``(3, S, S)``) and, when the dataset has masks, a ``tv_tensors.Mask`` (``uint8``,
            ``(1, S, S)``, 0/1) as a second argument, and returns the same kinds (a float image
            in 0..1 is accepted too); any torchvision v2 transform does this.
        image_size: The side of the square images (the output size of ``"strong"``'s crop).

    Returns:
        The transform; ``v2.Identity()`` for ``"none"``.

    Raises:
        HamkitError: An unknown name, or a value that is neither a name, a bool nor a callable.

    Examples:
        >>> import torch
        >>> from torchvision import tv_tensors
        >>> t = build_augmentation("light", image_size=32)
        >>> image = tv_tensors.Image(torch.zeros(3, 32, 32, dtype=torch.uint8))
        >>> mask = tv_tensors.Mask(torch.zeros(1, 32, 32, dtype=torch.uint8))
        >>> [tuple(x.shape) for x in t(image, mask)]
        [(3, 32, 32), (1, 32, 32)]
    """
    if choice is True:
        choice = DEFAULT_AUGMENTATION
    elif choice is False or choice is None:
        choice = "none"
    if not isinstance(choice, str):
        if callable(choice):
            return choice
        raise HamkitError(
            f"augment must be one of {', '.join(AUGMENTATIONS)}, True, False or a torchvision v2 transform; "
            f"got a {type(choice).__name__}"
        )
    if choice not in AUGMENTATIONS:
        raise HamkitError(
            f"unknown augment {choice!r}; choose one of {', '.join(AUGMENTATIONS)} "
            "(True means flips, False none), or pass a torchvision v2 transform"
        )
    if choice == "none":
        return v2.Identity()
    if choice == "flips":
        return FlipsAndTurns()
    bilinear = v2.InterpolationMode.BILINEAR
    if choice == "light":
        return v2.Compose(
            [
                FlipsAndTurns(),
                v2.RandomAffine(degrees=15, translate=(0.05, 0.05), scale=(0.9, 1.1), interpolation=bilinear),
                v2.ColorJitter(brightness=0.1, contrast=0.1),
            ]
        )
    return v2.Compose(
        [
            FlipsAndTurns(),
            v2.RandomResizedCrop(int(image_size), scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
            v2.RandomAffine(degrees=20, translate=(0.05, 0.05), scale=(0.9, 1.1), interpolation=bilinear),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02),
        ]
    )


def apply_augmentation(
    transform: Callable[..., Any], image: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply ``transform`` to one item and return plain tensors.

    Args:
        transform: From :func:`build_augmentation`.
        image: ``(3, S, S)`` ``uint8``.
        mask: ``(1, S, S)`` 0/1 ``uint8``, or ``None``.

    Returns:
        The image as ``float32`` in 0..1 and the mask as ``float32`` 0/1 (or ``None``), same sizes.

    Raises:
        HamkitError: The transform returned something other than an image (and mask) of the
            input's size.
    """
    size = tuple(image.shape[-2:])
    # one image is too small for intra-op threads: with 2 threads on 2 busy cores "strong" took 380 ms an
    # image without this switch, 74 ms with it (8-14 ms on one thread); the model keeps its threads
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        if mask is None:
            out: Any = (transform(tv_tensors.Image(image)), None)
        else:
            out = transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
    finally:
        if threads > 1:
            torch.set_num_threads(threads)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise HamkitError("an augment transform must return (image, mask) when called with an image and a mask")
    out_image, out_mask = out
    if not isinstance(out_image, torch.Tensor) or tuple(out_image.shape) != (3, *size):
        shape = tuple(out_image.shape) if isinstance(out_image, torch.Tensor) else type(out_image).__name__
        raise HamkitError(f"an augment transform must return a (3, {size[0]}, {size[1]}) image, got {shape}")
    out_image = out_image.as_subclass(torch.Tensor)
    if out_image.dtype == torch.uint8:
        out_image = out_image.float().div_(255.0)
    elif not out_image.is_floating_point():
        raise HamkitError(f"an augment transform must return a uint8 or float image, got {out_image.dtype}")
    if out_mask is not None:
        if not isinstance(out_mask, torch.Tensor) or tuple(out_mask.shape[-2:]) != size:
            raise HamkitError(f"an augment transform must return a mask of the image's size {size}")
        out_mask = (out_mask.as_subclass(torch.Tensor).reshape(1, *size).float() >= 0.5).float()
    return out_image, out_mask
