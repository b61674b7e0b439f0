"""CNN embeddings for near-duplicate search, with a resumable disk cache.

The original report's approach: a classification backbone without its head (MobileNetV2 by default)
embeds every image; the features are averaged over the spatial axes and L2-normalised, so
cosine similarity is a dot product. Batched, ``torch.inference_mode``, channels-last, batch norm
folded into the convolutions on a CPU, mixed precision on a GPU; images decoded in DataLoader
workers, JPEGs at reduced size, handed over as one uint8 shared-memory tensor per batch and
normalised in the main process.

The cache stores embeddings per image, keyed by the file's identity (resolved path, size,
modification time) inside a folder per embedding setting (backbone, weights, input size). It is
written in shards as the work goes on, so an interrupted run resumes where it stopped and a
second run computes nothing. Each shard is checked when it is read (a NumPy archive of a key per
row and a numeric row per key, read without ``allow_pickle``); a damaged one (truncated, zero
bytes, overwritten) is removed with one warning line and its rows are computed again.

Under ``torchrun`` each rank embeds its own shard of the images and every rank receives all
embeddings (``all_gather``); the Deduplicator then searches on rank 0.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hamkit._io import atomic_path, atomic_write_text
from hamkit.data.cache import file_identity
from hamkit.dedup.inputs import DecodeJob, decode_all
from hamkit.engine.device import amp_dtype, autocast, resolve_device
from hamkit.engine.distributed import DistributedContext

__all__ = ["EmbeddingCache", "embed_paths"]


class EmbeddingCache:
    """Embeddings on disk, one folder per setting, rows keyed by file identity.

    Args:
        directory: Root folder of the cache.
        setting: Anything that changes the embedding (backbone, weights, size); hashed into
            the folder name.
    """

    def __init__(self, directory: str | os.PathLike[str], setting: dict[str, object]) -> None:
        text = json.dumps(setting, sort_keys=True, default=str)
        self.folder = Path(directory).expanduser() / hashlib.sha256(text.encode()).hexdigest()[:16]
        self.setting = setting
        self._rows: dict[str, np.ndarray] | None = None

    @staticmethod
    def key(path: Path) -> str:
        """The identity key of a file (printable UTF-8: a name that is not valid UTF-8 is
        spelt with ``\\x..`` escapes for its raw bytes)."""
        text = "|".join(map(str, file_identity(path)))
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")

    def load(self) -> dict[str, np.ndarray]:
        """All cached rows of this setting (read once).

        A shard that cannot be read as a cache shard is removed (one warning names the folder
        and the first problem), so that its rows are computed again and written anew.
        """
        if self._rows is None:
            self._rows = {}
            damaged: list[str] = []
            for shard in sorted(self.folder.glob("shard-*.npz")):
                try:
                    keys, rows = _read_shard(shard)
                except _DamagedShard as err:
                    damaged.append(f"{shard.name}: {err}")
                    with contextlib.suppress(OSError):
                        shard.unlink()
                    continue
                self._rows.update(zip(keys, rows, strict=True))
            if damaged:
                warnings.warn(
                    f"{len(damaged)} damaged cache shard(s) in {self.folder} removed (first: {damaged[0]}); "
                    "their entries are computed again",
                    stacklevel=2,
                )
        return self._rows

    def add(self, keys: Sequence[str], embeddings: np.ndarray) -> None:
        """Append a shard (written atomically) and remember its rows."""
        if not keys:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.folder / "setting.json", json.dumps(self.setting, sort_keys=True, default=str))
        name = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:20]
        with atomic_path(self.folder / f"shard-{name}.npz") as tmp:
            with tmp.open("wb") as handle:
                np.savez(handle, keys=np.array(list(keys)), embeddings=embeddings)
        rows = self.load()
        rows.update(zip(keys, embeddings, strict=True))


class _DamagedShard(Exception):
    """A cache shard that cannot be used; the message says why."""


def _read_shard(shard: Path) -> tuple[list[str], np.ndarray]:
    """The keys and rows of one shard, checked: a key per row, keys as text, rows numeric.

    Raises:
        _DamagedShard: Anything else (truncated, empty, not an archive, pickled objects).
    """
    try:
        with shard.open("rb") as handle:  # closed even when NumPy fails half-way
            data = np.load(handle, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise _DamagedShard("not a NumPy archive")
            with data:
                keys, rows = data["keys"], data["embeddings"]
    except _DamagedShard:
        raise
    except Exception as err:  # zero bytes, truncated, garbage, pickles, missing arrays: all damage
        raise _DamagedShard(" ".join(f"{type(err).__name__}: {err}".split())[:200]) from err
    if keys.ndim != 1 or keys.dtype.kind != "U":
        raise _DamagedShard(f"keys are {keys.dtype} of shape {keys.shape}, not text")
    if rows.ndim < 1 or len(rows) != len(keys) or rows.dtype.kind not in "fiu":
        raise _DamagedShard(f"{len(keys)} keys for rows of {rows.dtype} and shape {rows.shape}")
    return keys.tolist(), rows


def _fused(model: torch.nn.Module) -> torch.nn.Module:
    """Fold batch norm into the convolutions for CPU inference (faster for MobileNets and
    EfficientNets; see docs/benchmarks_dedup.md): torch.fx's fusion where it can trace the model,
    then :func:`fold_batch_norms` for what is left (timm's normalisation-and-activation layers,
    the convolutions of TensorFlow's "same" padding). The model unchanged where neither applies."""
    try:
        from torch.fx.experimental.optimization import fuse

        fused = fuse(model)
        fused.feature_dim = getattr(model, "feature_dim", None)  # type: ignore[assignment]
    except Exception:  # noqa: BLE001 - any tracing failure: fold the layers one by one instead
        fused = model
    return fold_batch_norms(fused)


class _AfterNorm(torch.nn.Module):
    """What a normalisation layer does after normalising (timm's ``BatchNormAct2d``: dropout,
    then the activation), once its statistics are folded into the convolution before it."""

    def __init__(self, norm: torch.nn.Module) -> None:
        super().__init__()
        self.drop = getattr(norm, "drop", torch.nn.Identity())
        self.act = getattr(norm, "act", torch.nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(x))


def fold_batch_norms(model: torch.nn.Module, probe_size: int = 64, tolerance: float = 1e-3) -> torch.nn.Module:
    """A copy of an eval-mode ``model`` whose batch norms that directly follow a convolution are
    folded into it (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`), or ``model`` itself when
    there are none or the copy's output differs.

    Which convolution feeds which normalisation is seen, not guessed: one forward pass of a random
    probe records, for every ``BatchNorm2d`` (timm's ``BatchNormAct2d`` included, which then keeps
    its activation), whether its input is the very tensor a ``Conv2d`` just returned. The folded
    copy must give the original's output on the probe (largest difference at most ``tolerance``
    of the output's scale), otherwise the original is returned.

    Args:
        model: A network in eval mode, ``(N, 3, H, W) -> tensor``.
        probe_size: Side of the random probe image.
        tolerance: Allowed largest difference, relative to the largest output value.

    Returns:
        The folded copy, or ``model``.

    Examples:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU()).eval()
        >>> folded = fold_batch_norms(net)
        >>> [type(m).__name__ for m in folded], folded is net
        (['Conv2d', '_AfterNorm', 'ReLU'], False)
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if model.training:
        return model
    names = {module: name for name, module in model.named_modules()}
    last: dict[str, Any] = {}
    pairs: list[tuple[str, str]] = []

    def seen(module: torch.nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if isinstance(module, torch.nn.BatchNorm2d):
            conv = last.get("conv")
            if (
                conv is not None
                and inputs
                and inputs[0] is last.get("output")
                and conv.out_channels == module.num_features
                and module.track_running_stats
                and (type(module) is torch.nn.BatchNorm2d or hasattr(module, "act"))
            ):
                pairs.append((names[conv], names[module]))
            last.clear()
        elif isinstance(module, torch.nn.Conv2d):
            last.update(conv=module, output=output)

    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d))]
    hooks = [m.register_forward_hook(seen) for m in layers]
    probe = torch.randn(2, 3, probe_size, probe_size, generator=torch.Generator().manual_seed(0))
    try:
        with torch.inference_mode():
            reference = model(probe)
    except Exception:  # noqa: BLE001 - a model that cannot take the probe: leave it as it is
        return model
    finally:
        for hook in hooks:
            hook.remove()
    if not pairs or len({conv for conv, _ in pairs}) != len(pairs):  # none, or a convolution used twice
        return model
    folded = copy.deepcopy(model)
    for conv_name, norm_name in pairs:
        conv, norm = folded.get_submodule(conv_name), folded.get_submodule(norm_name)
        assert isinstance(conv, torch.nn.Conv2d) and isinstance(norm, torch.nn.BatchNorm2d)
        for name, replacement in ((conv_name, fuse_conv_bn_eval(conv, norm)), (norm_name, _AfterNorm(norm))):
            parent, _, child = name.rpartition(".")
            setattr(folded.get_submodule(parent), child, replacement)
    with torch.inference_mode():
        output = folded(probe)
    scale = float(reference.abs().max()) or 1.0
    if output.shape != reference.shape or float((output - reference).abs().max()) > tolerance * scale:
        return model
    return folded


def embed_paths(
    paths: Sequence[Path],
    model: torch.nn.Module,
    *,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 64,
    num_workers: int = 0,
    device: str = "auto",
    cache: EmbeddingCache | None = None,
    progress: bool = False,
    flush_every: int = 2048,
) -> tuple[np.ndarray, dict[int, str]]:
    """Embed images with ``model`` (pooled features), L2-normalised float32.

    Args:
        paths: Image files.
        model: A classification backbone (``(N, 3, H, W) -> (N, D)``).
        image_size: Square input size.
        mean: Normalisation mean.
        std: Normalisation std.
        batch_size: Images per forward pass.
        num_workers: Decoding workers.
        device: Where to run the model.
        cache: An :class:`EmbeddingCache`, or ``None``.
        progress: Show a progress bar.
        flush_every: Write the cache every this many new embeddings.

    Returns:
        ``(embeddings, skipped)``: an ``(N, D)`` array (rows of skipped images are zero) and
        ``{index: reason}`` of the images that could not be decoded.
    """
    torch_device = resolve_device(device)
    ctx = DistributedContext.from_env(torch_device)
    try:
        torch_device = ctx.device_for(torch_device)
        dtype = amp_dtype(torch_device)
        model = model.to(torch_device).eval().to(memory_format=torch.channels_last)
        if torch_device.type == "cpu":
            model = _fused(model)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=torch_device).view(1, 3, 1, 1) * 255.0
        std_t = torch.tensor(std, dtype=torch.float32, device=torch_device).view(1, 3, 1, 1) * 255.0
        keys = [EmbeddingCache.key(p) if p.exists() else "" for p in paths]
        known = cache.load() if cache is not None else {}
        todo = [i for i, k in enumerate(keys) if k not in known]
        mine = todo[ctx.rank :: ctx.world_size]
        results: dict[int, np.ndarray] = {}
        skipped: dict[int, str] = {}
        pending_keys: list[str] = []
        pending_rows: list[np.ndarray] = []
        job = DecodeJob([paths[i] for i in mine], "rgb", (image_size, image_size))
        for local, values, bad in decode_all(
            job, batch_size=batch_size, num_workers=num_workers, progress=progress and ctx.is_main, desc="embed"
        ):
            skipped.update({mine[i]: reason for i, reason in bad.items()})
            if len(values) == 0:
                continue
            batch = values.to(torch_device, non_blocking=True).float().sub_(mean_t).div_(std_t)
            batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), autocast(torch_device, dtype):
                features = model(batch).float()
            features = torch.nn.functional.normalize(features.flatten(1), dim=1).cpu().numpy()
            for i, row in zip(local, features, strict=True):
                results[mine[i]] = row
                pending_keys.append(keys[mine[i]])
                pending_rows.append(row)
            if cache is not None and len(pending_keys) >= flush_every and ctx.world_size == 1:
                cache.add(pending_keys, np.stack(pending_rows))
                pending_keys, pending_rows = [], []
        if ctx.enabled:  # every rank gets every rank's results
            gathered: list[tuple[dict[int, np.ndarray], dict[int, str]] | None] = [None] * ctx.world_size
            torch.distributed.all_gather_object(gathered, (results, skipped))
            for part in gathered:
                assert part is not None
                results.update(part[0])
                skipped.update(part[1])
            pending_keys = [keys[i] for i in sorted(results)]
            pending_rows = [results[i] for i in sorted(results)]
        if cache is not None and pending_keys and ctx.is_main:
            cache.add(pending_keys, np.stack(pending_rows))
        dim = (
            next(iter(results.values())).shape[0] if results else (next(iter(known.values())).shape[0] if known else 0)
        )
        out = np.zeros((len(paths), dim), dtype=np.float32)
        for i, key in enumerate(keys):
            if i in results:
                out[i] = results[i]
            elif key in known:
                out[i] = known[key]
        return out, skipped
    finally:
        ctx.close()
