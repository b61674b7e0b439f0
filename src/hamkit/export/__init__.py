"""Export a fitted classifier or segmenter to ONNX, with its preprocessing and a parity check.

:func:`export_onnx` writes ``model.onnx`` (the network alone: normalised ``NCHW`` float32 images
in, logits out, any batch size) and ``model.preprocessing.json`` beside it (input size,
normalisation, class names, what each output means, and the classifier's calibration), so that
ONNX Runtime or any other ONNX runtime reproduces ``predict`` without hamkit. It then runs
ONNX Runtime on random inputs of two batch sizes and compares with PyTorch.

Needs the ``onnx`` extra: ``pip install "hamkit[onnx]"`` (onnx, onnxruntime, onnxscript).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import inspect
import json
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hamkit._io import atomic_path, atomic_write_text, disk_full
from hamkit.errors import HamkitError
from hamkit.export.preprocessing import INPUT_NAME, preprocessing, preprocessing_path
from hamkit.model_card import write_model_card

__all__ = ["ExportResult", "export_onnx", "preprocessing_path"]

_CLASSIFIER, _SEGMENTER = "LesionClassifier", "LesionSegmenter"
# the exporter behind opset 18 and later; older opsets go through the TorchScript exporter
_FIRST_DYNAMO_OPSET = 18


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote and how closely ONNX Runtime matches PyTorch.

    Attributes:
        path: The ONNX file.
        preprocessing_path: The JSON file beside it (``<stem>.preprocessing.json``).
        kind: ``"LesionClassifier"`` or ``"LesionSegmenter"``.
        outputs: Output names, in the graph's order (``logits``; or ``mask_logits`` and, with the
            diagnosis head, ``class_logits``).
        opset: The ONNX opset of the file.
        exporter: ``"dynamo"`` (``torch.export``) or ``"torchscript"`` (the older tracer).
        seconds: Time the export took (without the check).
        max_abs_diff: Largest absolute difference between ONNX Runtime and PyTorch per output,
            over all checked batches; empty when the check was skipped.
        checked_batch_sizes: The batch sizes that were compared.
        atol: The tolerance the differences were held to.
        card_path: The model card beside it (``<stem>.MODEL_CARD.md``, with ``<stem>.model_card.json``).
        licence: The terms the export inherits: the licence of the training data and of the
            starting weights, as the model card gives them.
    """

    path: Path
    preprocessing_path: Path
    kind: str
    outputs: tuple[str, ...]
    opset: int
    exporter: str
    seconds: float
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    checked_batch_sizes: tuple[int, ...] = ()
    atol: float = 1e-4
    card_path: Path | None = None
    licence: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (paths as strings)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(path=str(self.path), preprocessing_path=str(self.preprocessing_path))
        values.update(card_path=str(self.card_path) if self.card_path else None)
        values.update(outputs=list(self.outputs), checked_batch_sizes=list(self.checked_batch_sizes))
        return {**values, "seconds": round(self.seconds, 3), "max_abs_diff": dict(self.max_abs_diff)}

    def summary(self) -> str:
        """One line: what was written and the parity of each output."""
        head = (
            f"wrote {self.path} and {self.preprocessing_path.name} "
            f"({self.kind}, opset {self.opset}, {self.exporter} exporter, {self.seconds:.1f} s)"
        )
        if not self.max_abs_diff:
            return f"{head}; not checked against PyTorch"
        sizes = " and ".join(str(size) for size in self.checked_batch_sizes)
        diffs = ", ".join(f"{name} {value:.1e}" for name, value in self.max_abs_diff.items())
        return f"{head}; max abs difference to PyTorch at batch {sizes}: {diffs} (atol {self.atol:g})"

    def licence_line(self) -> str:
        """One line: the licence the export inherits from its data and starting weights, and its model card."""
        card = f" (model card: {self.card_path.name})" if self.card_path else ""
        return f"inherited licence{card}: {self.licence or 'not recorded'}"


def _require(*modules: str) -> None:
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise HamkitError(
            f"ONNX export needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed; "
            'pip install "hamkit[onnx]"'
        )


def _load_model(model_or_dir: Any) -> Any:
    """A fitted estimator, or the one a saved model folder holds (chosen by its config's ``kind``)."""
    from hamkit.classify import LesionClassifier
    from hamkit.segment import LesionSegmenter

    if isinstance(model_or_dir, (LesionClassifier, LesionSegmenter)):
        model_or_dir._check_fitted()
        return model_or_dir
    if not isinstance(model_or_dir, (str, os.PathLike)):
        raise HamkitError(
            f"cannot export a {type(model_or_dir).__name__}; pass a fitted LesionClassifier or LesionSegmenter, "
            "or a folder written by its save()"
        )
    folder = Path(model_or_dir)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise HamkitError(
            f"{folder}: not a saved hamkit model (no config.json); pass a folder written by "
            "LesionClassifier.save() or LesionSegmenter.save(), e.g. RUN_DIR/model"
        )
    try:
        kind = json.loads(config_path.read_text(encoding="utf-8")).get("kind")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
        raise HamkitError(f"{config_path}: not a valid hamkit config ({err}); save the model again") from err
    if kind == _CLASSIFIER:
        return LesionClassifier.load(folder, device="cpu")
    if kind == _SEGMENTER:
        return LesionSegmenter.load(folder, device="cpu")
    raise HamkitError(
        f"{folder}: a {kind or 'unknown'} model, which cannot be exported; export a LesionClassifier or "
        "LesionSegmenter folder"
    )


class _NamedOutputs(nn.Module):
    """The network with its outputs as a flat tuple of tensors (the segmenter's absent head dropped)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.network(image)
        return tuple(o for o in out if o is not None) if isinstance(out, (tuple, list)) else (out,)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Hide the exporters' own chatter: TorchScript's deprecation and tracer warnings."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def _export_dynamo(module: nn.Module, example: torch.Tensor, target: Path, names: list[str], opset: int | None) -> None:
    program = torch.onnx.export(
        module,
        (example,),
        None,
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=names,
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        opset_version=opset,
        verbose=False,
    )
    assert program is not None
    program.save(str(target), external_data=False)  # one self-contained file (every hamkit model is < 2 GB)


def _export_torchscript(
    module: nn.Module, example: torch.Tensor, target: Path, names: list[str], opset: int | None
) -> None:
    axes = {name: {0: "batch"} for name in [INPUT_NAME, *names]}
    # torch 2.5 and later take dynamo=; from 2.9 on it defaults to True
    kwargs: dict[str, Any] = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    torch.onnx.export(
        module,
        (example,),
        str(target),
        input_names=[INPUT_NAME],
        output_names=names,
        dynamic_axes=axes,
        opset_version=opset,
        do_constant_folding=True,
        **kwargs,
    )


def _export(
    module: nn.Module, example: torch.Tensor, tmp: Path, names: list[str], opset: int | None, target: Path
) -> str:
    """Write the ONNX file ``tmp`` (renamed to ``target`` later); return the exporter used.

    The exporter: ``torch.export`` (``dynamo=True``), the default and maintained path since torch
    2.9 (the TorchScript exporter is deprecated there). It traces torchvision, timm and smp
    networks alike (checked: MobileNetV3, ResNet, EfficientNet, DeepLabV3, smp Unet / Linknet /
    DeepLabV3+, with and without the diagnosis head), with the batch dimension symbolic. It
    writes opset 18 and later only (asked for less, it silently keeps 18), so an older opset goes
    through the TorchScript exporter, as does a network that ``torch.export`` cannot trace (a
    warning says so; the parity check then shows whether the trace holds).
    """
    with _quiet_exporter():
        if opset is None or opset >= _FIRST_DYNAMO_OPSET:
            try:
                _export_dynamo(module, example, tmp, names, opset)
                return "dynamo"
            except Exception as err:  # noqa: BLE001 - torch.export fails in many ways on unusual code
                full = disk_full(err, target)
                if full is not None:  # not a network torch.export cannot trace: say what it is
                    raise full from err
                dynamo_error = _first_line(err)
            warnings.warn(
                f"torch.export could not trace the network ({dynamo_error}); exported it with the TorchScript "
                "exporter instead",
                stacklevel=3,
            )
        try:
            _export_torchscript(module, example, tmp, names, opset)
        except Exception as err:  # noqa: BLE001 - report any exporter failure in one line
            full = disk_full(err, target)
            if full is not None:
                raise full from err
            raise HamkitError(f"{target}: ONNX export failed ({_first_line(err)})") from err
    return "torchscript"


def _parity(
    module: nn.Module, onnx_file: Path, names: list[str], size: int, batch_sizes: tuple[int, ...], random_state: int
) -> dict[str, float]:
    """Max abs difference per output between ONNX Runtime and PyTorch on random normalised images."""
    import onnxruntime as ort

    from hamkit._cpu import available_cpus

    options = ort.SessionOptions()
    options.intra_op_num_threads = available_cpus()
    options.log_severity_level = 3  # errors only
    try:
        session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise HamkitError(f"ONNX Runtime cannot load the exported model ({_first_line(err)})") from err
    generator = torch.Generator().manual_seed(random_state)
    worst = dict.fromkeys(names, 0.0)
    for batch in batch_sizes:
        images = torch.randn(batch, 3, size, size, generator=generator)
        with torch.inference_mode():
            expected = module(images)
        got = session.run(names, {INPUT_NAME: images.numpy()})
        for name, reference, value in zip(names, expected, got, strict=True):
            if tuple(value.shape) != tuple(reference.shape):
                raise HamkitError(
                    f"ONNX output {name!r} has shape {tuple(value.shape)} for a batch of {batch}, "
                    f"PyTorch {tuple(reference.shape)}"
                )
            worst[name] = max(worst[name], float(np.abs(value - reference.numpy()).max()))
    return worst


def _newest_opset() -> int | None:
    """The newest ONNX opset this installation can export: the lower of torch's exporter limit and
    the installed ``onnx`` package's, of those installed (``None`` where neither is known).

    Examples:
        >>> newest = _newest_opset()
        >>> newest is None or newest >= 18
        True
    """
    limits: list[int] = []
    with contextlib.suppress(ImportError, AttributeError):
        from torch.onnx import _constants

        limits.append(int(_constants.ONNX_MAX_OPSET))
    with contextlib.suppress(ImportError, AttributeError):
        import onnx.defs

        limits.append(int(onnx.defs.onnx_opset_version()))
    return min(limits) if limits else None


def export_onnx(
    model_or_dir: Any,
    path: str | os.PathLike[str],
    *,
    opset: int | None = None,
    check: bool = True,
    atol: float = 1e-4,
    batch_size: int = 2,
    random_state: int = 0,
) -> ExportResult:
    """Export a classifier's or segmenter's network to ONNX, with its preprocessing description.

    The ONNX model takes ``image``: a float32 ``(batch, 3, image_size, image_size)`` tensor of
    RGB images resized to the model's ``image_size``, scaled to 0..1 and normalised with its mean
    and std, any batch size. A classifier's output is ``logits``; a segmenter's ``mask_logits``
    and, with the diagnosis head, ``class_logits``. ``<stem>.preprocessing.json`` beside it holds
    the input size, mean, std, class names, what each output means and, for a calibrated
    classifier, the temperature and class offsets of ``predict``. Both files are written
    atomically; with ``check=True`` the ONNX file is only written once it matches PyTorch.

    Args:
        model_or_dir: A fitted :class:`~hamkit.LesionClassifier` or :class:`~hamkit.LesionSegmenter`,
            or a folder written by their ``save`` (e.g. a run's ``model/``).
        path: The ONNX file to write, e.g. ``"model.onnx"``.
        opset: ONNX opset (default: the exporter's, 18 or later; below 18 uses the TorchScript
            exporter, for older runtimes).
        check: Run ONNX Runtime on random inputs of two batch sizes (1 and ``batch_size + 1``)
            and compare with PyTorch.
        atol: Largest absolute difference allowed per output.
        batch_size: Batch size of the example input the network is traced with (at least 2, so
            that the batch dimension stays symbolic).
        random_state: Random state of the random inputs.

    Returns:
        The :class:`ExportResult`, with the max abs difference per output.

    Raises:
        HamkitError: ``path`` is a folder, onnx / onnxruntime / onnxscript are not installed, the
            model is not fitted or the folder is not a saved model, the export fails, or ONNX Runtime differs from
            PyTorch by more than ``atol`` (nothing is written then).

    Examples:
        >>> from hamkit.export import export_onnx
        >>> result = export_onnx("run/classifier/model", "classifier.onnx")  # doctest: +SKIP
        >>> result.max_abs_diff  # doctest: +SKIP
        {'logits': 3.7e-09}
    """
    if batch_size < 2:
        raise HamkitError(
            f"batch_size must be at least 2 (a batch of 1 would fix the batch dimension), got {batch_size}"
        )
    if not atol > 0:
        raise HamkitError(f"atol must be above 0, got {atol}")
    if opset is not None and opset < 7:
        raise HamkitError(f"opset must be 7 or later, got {opset}")
    newest = _newest_opset()
    if opset is not None and newest is not None and opset > newest:
        raise HamkitError(
            f"opset {opset} is newer than the installed exporter and onnx can write (up to {newest}); "
            f"pick opset {newest} or lower"
        )
    target = Path(path)
    if target.is_dir():  # found now, not by the rename after the whole export
        raise HamkitError(f"{target} is a folder; give the ONNX file to write, e.g. {target / 'model.onnx'}")
    model = _load_model(model_or_dir)
    _require("onnx", "onnxscript", *(("onnxruntime",) if check else ()))
    import onnx

    size = int(model.image_size)
    # a CPU float32 copy in eval mode and the default memory format: the caller's model is left as it was
    network = copy.deepcopy(model._check_fitted()).to("cpu", torch.float32, memory_format=torch.contiguous_format)
    module = _NamedOutputs(network.eval()).eval()
    example = torch.randn(batch_size, 3, size, size, generator=torch.Generator().manual_seed(random_state))
    with torch.inference_mode():
        count = len(module(example))
    names = ["logits"] if type(model).__name__ == _CLASSIFIER else ["mask_logits", "class_logits"][:count]
    batch_sizes = (1, batch_size + 1)
    with atomic_path(target) as tmp:
        start = time.perf_counter()
        exporter = _export(module, example, tmp, names, opset, target)
        seconds = time.perf_counter() - start
        written = onnx.load(str(tmp), load_external_data=False)
        actual = next((o.version for o in written.opset_import if o.domain in ("", "ai.onnx")), 0)
        if opset is not None and actual != opset:
            raise HamkitError(f"{target}: the exporter wrote opset {actual}, not {opset}; pick opset {actual}")
        differences: dict[str, float] = {}
        if check:
            differences = _parity(module, tmp, names, size, batch_sizes, random_state + 1)
            failing = {name: value for name, value in differences.items() if not value <= atol}
            if failing:
                worst = ", ".join(f"{name} by {value:.2e}" for name, value in failing.items())
                raise HamkitError(
                    f"{target}: ONNX Runtime differs from PyTorch ({worst}, above atol {atol:g}); nothing was "
                    "written; raise atol or pass check=False to keep the file anyway"
                )
        info = preprocessing(model, names, target.name, actual)
        side = atomic_write_text(preprocessing_path(target), json.dumps(info, indent=2) + "\n")
        card_path, card_json = write_model_card(
            target.parent,
            model._config(),
            export={"file": target.name, "opset": actual, "exporter": exporter, "preprocessing": side.name},
            prefix=f"{target.stem}.",
        )
    licences = json.loads(card_json.read_text())["licence"]
    return ExportResult(
        path=target,
        preprocessing_path=side,
        kind=type(model).__name__,
        outputs=tuple(names),
        opset=actual,
        exporter=exporter,
        seconds=seconds,
        max_abs_diff=differences,
        checked_batch_sizes=batch_sizes if check else (),
        atol=atol,
        card_path=card_path,
        licence=f"data: {licences['data']}; starting weights: {licences['weights']}",
    )
