"""Device choice and automatic mixed precision."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from hamkit.errors import HamkitError

__all__ = ["resolve_device", "amp_dtype", "autocast", "use_channels_last"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` into the best available device: CUDA, then Apple MPS, then CPU.

    Args:
        device: ``"auto"``, or anything ``torch.device`` accepts (``"cpu"``, ``"cuda:1"``).

    Returns:
        The device.

    Raises:
        HamkitError: A CUDA or MPS device was asked for but is not available.

    Examples:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if isinstance(device, torch.device):
        chosen = device
    elif device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    else:
        try:
            chosen = torch.device(device)
        except RuntimeError as err:
            raise HamkitError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'mps'") from err
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise HamkitError(f"device {device!r} asked for, but CUDA is not available; use device='cpu'")
    if chosen.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise HamkitError(f"device {device!r} asked for, but MPS is not available; use device='cpu'")
    return chosen


def amp_dtype(device: torch.device, amp: bool | str = "auto") -> torch.dtype | None:
    """The autocast dtype to use, or ``None`` for full float32.

    ``"auto"`` enables mixed precision on CUDA only: bfloat16 where the GPU supports it,
    float16 (with a gradient scaler) otherwise. CPUs stay in float32 (CPU autocast is rarely
    faster). ``True`` forces it on (bfloat16 on CPU), ``False`` off.
    """
    if amp is False or amp == "off":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp is True or amp == "on":
        return torch.bfloat16
    return None


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` for ``device`` when ``dtype`` is set, a no-op otherwise."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def use_channels_last(model: torch.nn.Module, device: torch.device) -> bool:
    """``channels_last="auto"``: always on CUDA; on CPU only for depthwise-convolution networks
    (MobileNets, EfficientNets), which it speeds up, while plain ResNets gain nothing."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    return any(isinstance(m, torch.nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels for m in model.modules())
