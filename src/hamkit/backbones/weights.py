"""Pretrained weights: turning failed downloads into one clear error, and loading local files.

``create_backbone(name, pretrained=True)`` downloads upstream weights (torchvision, timm or
smp); when that fails for a network reason, :func:`download_guard` raises
:class:`~hamkit.errors.WeightsError` with a one-line message that says how to use a local file
instead.

``create_backbone(name, weights="file")`` builds the model without downloading anything and
calls :func:`load_weights`: ``.safetensors`` files are read with ``safetensors.torch.load_file``,
``.pt`` / ``.pth`` files with ``torch.load(..., weights_only=True)`` (a raw state dict, or one
wrapped under ``"state_dict"`` or ``"model"``; a ``"module."`` or ``"_orig_mod."`` prefix is
stripped). The file may be a checkpoint of the upstream model (a torchvision or timm file
downloaded elsewhere, classifier included), the state dict of a hamkit backbone, or that of a
larger model holding the backbone as a submodule (its keys are then found under their prefix,
e.g. ``"backbone."``):

* keys the model does not have (a dropped classifier head) are ignored;
* tensors whose shape differs (a replaced head) are skipped with a warning;
* a file that holds only a segmentation model's **encoder** (e.g. torchvision's
  ``resnet34`` ImageNet file for ``smp:Unet:resnet34``, or smp's own encoder file) is loaded
  into the encoder, with a warning that the rest (decoder, heads) starts from random weights;
* tensors the file lacks otherwise mean it is for another architecture: :class:`WeightsError`.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import socket
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlparse

import torch
from torch import nn

from hamkit.errors import WeightsError

__all__ = [
    "WEIGHT_SUFFIXES",
    "is_download_failure",
    "download_guard",
    "download_error",
    "download_failure_reason",
    "hub_offline_when_unreachable",
    "read_state_dict",
    "load_weights",
]

WEIGHT_SUFFIXES: tuple[str, ...] = (".safetensors", ".pt", ".pth")
"""The weights file extensions :func:`read_state_dict` accepts."""

_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
_HUB_MODULES = ("torch.hub", "huggingface_hub", "timm.models._hub", "urllib", "http.client")
_WRAPPER_KEYS = ("state_dict", "model")
_PREFIXES = ("module.", "_orig_mod.")


def _network_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [URLError, OSError, TimeoutError]
    with contextlib.suppress(ImportError):
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

        errors += [HfHubHTTPError, EntryNotFoundError]
    with contextlib.suppress(ImportError):
        import httpx  # type: ignore[import-not-found,unused-ignore]  # optional

        errors.append(httpx.HTTPError)
    with contextlib.suppress(ImportError):
        import requests

        errors.append(requests.RequestException)
    return tuple(errors)


def _raised_in_hub(err: BaseException, modules: tuple[str, ...] = _HUB_MODULES) -> bool:
    tb = err.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(modules):
            return True
        tb = tb.tb_next
    return False


def is_download_failure(err: BaseException) -> bool:
    """Return whether ``err`` (raised while building a pretrained model) is a failed download.

    Network, HTTP and Hugging Face hub errors count, and a ``RuntimeError`` counts when it was
    raised inside download code (``torch.hub``, ``huggingface_hub``, timm's hub helpers).

    Args:
        err: The exception.

    Returns:
        ``True`` for a download failure.

    Examples:
        >>> is_download_failure(URLError("no route to host")), is_download_failure(KeyError("x"))
        (True, False)
    """
    if isinstance(err, WeightsError):
        return False
    if isinstance(err, _network_errors()):
        return True
    return isinstance(err, RuntimeError) and _raised_in_hub(err)


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def download_failure_reason(err: BaseException, *, offline: bool = False) -> str:
    """Say in one phrase why a download failed.

    Args:
        err: A download failure (:func:`is_download_failure`).
        offline: Whether the block ran with the Hugging Face client switched to offline mode
            (:func:`hub_offline_when_unreachable` yielded ``True``).

    Returns:
        E.g. ``"the Hugging Face Hub cannot be reached from this machine and the weights are not
        in its local cache"``, or the error's own text (at most 200 characters).
    """
    if offline and _raised_in_hub(err, ("huggingface_hub",)):
        return "the Hugging Face Hub cannot be reached from this machine and the weights are not in its local cache"
    return _reason(err)


@contextlib.contextmanager
def hub_offline_when_unreachable() -> Iterator[bool]:
    """Put the Hugging Face client in offline mode for the block when its host does not resolve.

    timm and smp fetch weights through ``huggingface_hub``, which retries with back-off: on a
    machine without network the error comes only after every retry has timed out. When the
    hub's host name does not resolve (and no proxy is configured, which may resolve it instead),
    the client is switched to its offline mode for the block: it answers from its cache at once,
    or fails at once.

    Yields:
        True when offline mode was switched on for the block.

    Examples:
        >>> with hub_offline_when_unreachable() as forced:
        ...     isinstance(forced, bool)
        True
    """
    try:
        from huggingface_hub import constants
    except ImportError:
        yield False
        return
    forced = False
    if not constants.HF_HUB_OFFLINE and not any(os.environ.get(v) for v in _PROXY_VARIABLES):
        try:
            socket.getaddrinfo(urlparse(constants.ENDPOINT).hostname or "huggingface.co", 443)
        except OSError:
            forced = True
    if not forced:
        yield False
        return
    constants.HF_HUB_OFFLINE = True
    try:
        yield True
    finally:
        constants.HF_HUB_OFFLINE = False


@contextlib.contextmanager
def download_guard(name: str) -> Iterator[None]:
    """Turn a failed download inside the block into a one-line :class:`WeightsError`.

    The block also runs under :func:`hub_offline_when_unreachable`, so an offline machine gets
    the error at once instead of after the Hugging Face client's retries.

    Args:
        name: The backbone being built (named in the message).

    Yields:
        Nothing; other exceptions pass through unchanged.

    Raises:
        WeightsError: The block failed to download weights; the cause is chained.

    Examples:
        >>> with download_guard("resnet18"):
        ...     raise URLError("offline")
        Traceback (most recent call last):
        ...
        hamkit.errors.WeightsError: could not download pretrained weights for resnet18 (...); ...
    """
    with hub_offline_when_unreachable() as offline:
        try:
            yield
        except Exception as err:
            if not is_download_failure(err):
                raise
            raise download_error(name, download_failure_reason(err, offline=offline)) from err


def download_error(name: str, reason: str) -> WeightsError:
    """The one-line error for pretrained weights of ``name`` that could not be downloaded.

    Args:
        name: The backbone.
        reason: Why, in one phrase (:func:`download_failure_reason`).

    Returns:
        The :class:`~hamkit.errors.WeightsError`, naming the installed weights and the fixes.
    """
    from hamkit.backbones.offline import offline_backbones

    local = offline_backbones()
    installed = f"; backbones whose weights are installed: {', '.join(local)}" if local else ""
    return WeightsError(
        f"could not download pretrained weights for {name} ({reason}){installed}; "
        f'to use a local file pass weights="path/to/file.safetensors" (or .pt/.pth), '
        "or pass pretrained=False"
    )


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    for key in _WRAPPER_KEYS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(
                f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor; save model.state_dict()"
            )
        for prefix in _PREFIXES:
            key = key.removeprefix(prefix)
        state[str(key)] = value
    return state


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.safetensors``, ``.pt`` or ``.pth`` file.

    Args:
        path: The weights file.

    Returns:
        Tensor name -> tensor (on the CPU), with wrappers and ``"module."`` prefixes removed.

    Raises:
        WeightsError: The file is missing, has another extension, cannot be read, holds
            pickled objects that ``weights_only=True`` refuses, or holds no state dict.

    Examples:
        >>> read_state_dict("missing.pt")
        Traceback (most recent call last):
        ...
        hamkit.errors.WeightsError: weights file missing.pt does not exist
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise WeightsError(
            f"{path}: unknown weights file extension {path.suffix!r}; use one of {', '.join(WEIGHT_SUFFIXES)}"
        )
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return _unwrap(load_file(str(path), device="cpu"), path)
        except WeightsError:
            raise
        except Exception as err:
            raise WeightsError(f"{path}: not a readable safetensors file ({_reason(err)})") from err
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if refused is None:
            detail = re.search(r"WeightsUnpickler error: ([^\n]*(?:\n\n)?[^\n]*)", str(err))
            reason = " ".join(detail.group(1).split()) if detail else _reason(err)
            raise WeightsError(f"{path}: not a readable PyTorch file ({reason})") from err
        raise WeightsError(
            f"{path}: torch.load(weights_only=True) refused it: it pickles {refused.group(1)}, "
            "not only tensors; save model.state_dict() (or convert the file to .safetensors)"
        ) from err
    except Exception as err:
        raise WeightsError(f"{path}: not a readable PyTorch file ({_reason(err)})") from err
    return _unwrap(obj, path)


def _pick_target(module: nn.Module, keys: set[str]) -> nn.Module:
    """Return ``module`` or its ``upstream`` model, whichever shares more keys with the file."""
    upstream = getattr(module, "upstream", None)
    if not isinstance(upstream, nn.Module) or upstream is module:
        return module
    return max((module, upstream), key=lambda m: len(keys & m.state_dict().keys()))


def _nested_under(state: dict[str, torch.Tensor], expected: Mapping[str, Any]) -> str | None:
    """Return the prefix (e.g. ``"backbone."``) under which ``state`` holds every expected key."""
    needed = [k for k in expected if not k.endswith("num_batches_tracked")]
    if not needed:
        return None
    probe = needed[0]
    for key in state:
        prefix = key[: -len(probe)]
        if key.endswith("." + probe) and all(prefix + k in state for k in needed):
            return prefix
    return None


def _few(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def _fit(state: dict[str, torch.Tensor], target: nn.Module) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``state`` re-keyed for ``target`` (found under a prefix if need be) and the keys it lacks."""
    expected = target.state_dict()
    prefix = _nested_under(state, expected) if not expected.keys() <= state.keys() else None
    if prefix:  # e.g. a whole classifier whose backbone is its "backbone." submodule
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    return state, missing


def _encoders(module: nn.Module) -> list[nn.Module]:
    """A segmentation model's encoder (smp ``encoder``, torchvision ``backbone``), and the timm
    model inside a timm-universal encoder."""
    found = []
    for name, child in module.named_modules():
        if name.rsplit(".", 1)[-1] in ("encoder", "backbone"):
            found.append(child)
            inner = getattr(child, "model", None)
            if isinstance(inner, nn.Module):
                found.append(inner)
            break
    return found


def load_weights(module: nn.Module, path: str | os.PathLike[str], *, name: str) -> nn.Module:
    """Load a weights file into a built backbone, tolerating a dropped or replaced head.

    Args:
        module: The backbone ``create_backbone`` built (its upstream model is the target
            when the file uses the upstream key names).
        path: A ``.safetensors``, ``.pt`` or ``.pth`` file.
        name: The backbone name (for messages).

    Returns:
        ``module``, with the weights loaded.

    Raises:
        WeightsError: The file cannot be read (see :func:`read_state_dict`), or it lacks
            tensors the model needs (it is for another architecture).

    Warns:
        UserWarning: Tensors whose shape differs from the model's were skipped, or the file
            held only the encoder of a segmentation model.
    """
    raw = read_state_dict(path)
    target = _pick_target(module, set(raw))
    state, missing = _fit(raw, target)
    if missing:
        for encoder in _encoders(target):
            encoder_state, encoder_missing = _fit(raw, encoder)
            if not encoder_missing:
                warnings.warn(
                    f"weights file {path} holds only the encoder of backbone {name!r}: loaded it "
                    "into the encoder; the rest (decoder, heads) starts from random weights",
                    stacklevel=3,
                )
                target, state, missing = encoder, encoder_state, []
                break
    expected = target.state_dict()
    if missing:
        encoder_too = " (nor does its encoder alone)" if _encoders(target) else ""
        raise WeightsError(
            f"weights file {path} does not fit backbone {name!r}{encoder_too}: it lacks {len(missing)} "
            f"of the model's {len(expected)} tensors ({_few(missing)}); it is probably for another "
            "architecture"
        )
    skipped = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if skipped and len(skipped) == sum(1 for k in expected if k in state):
        raise WeightsError(f"weights file {path}: no tensor has the shape backbone {name!r} needs")
    if skipped:
        detail = [f"{k} {tuple(state[k].shape)}->{tuple(expected[k].shape)}" for k in skipped]
        warnings.warn(
            f"weights file {path}: skipped {len(skipped)} tensor(s) whose shape does not fit "
            f"backbone {name!r} (a replaced head?): {_few(detail, 3)}",
            stacklevel=3,
        )
    dropped = set(skipped)
    keep = {k: v for k, v in state.items() if k in expected and k not in dropped}
    target.load_state_dict(keep, strict=False)
    return module
