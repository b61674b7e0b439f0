"""Checkpoint files: safetensors weights plus JSON, never a pickle of code.

* A **model file** is a folder with ``model.safetensors`` (the weights) and ``config.json``
  (everything needed to rebuild the model: backbone, classes, image size, normalisation, hamkit
  version). The estimators' ``save``/``load`` use it.
* A **training state** (for resuming) adds ``state.pt``: optimiser, scheduler and gradient-scaler
  state, epoch, best score and history. It holds only tensors and plain Python values, and is
  read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from hamkit._io import atomic_path, atomic_write_text
from hamkit.errors import HamkitError

__all__ = [
    "WEIGHTS_NAME",
    "CONFIG_NAME",
    "STATE_NAME",
    "save_model_files",
    "load_model_files",
    "save_training_state",
    "load_training_state",
    "check_resumable",
]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
STATE_NAME = "state.pt"


def _plain_state_dict(module_or_state: torch.nn.Module | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = module_or_state.state_dict() if isinstance(module_or_state, torch.nn.Module) else module_or_state
    # safetensors refuses tensors that share memory; contiguous CPU copies are always accepted
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save_model_files(
    directory: str | os.PathLike[str], model: torch.nn.Module | dict[str, torch.Tensor], config: dict[str, Any]
) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` (atomically, config last).

    Args:
        directory: Target folder (created).
        model: A module or a state dict.
        config: JSON-serialisable description of the model.

    Returns:
        The folder.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(_plain_state_dict(model), str(tmp), metadata={"format": "pt", "producer": "hamkit"})
    atomic_write_text(directory / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return directory


def load_model_files(directory: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a folder written by :func:`save_model_files`.

    Returns:
        ``(state_dict, config)``.

    Raises:
        HamkitError: The folder or one of its files is missing or unreadable.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    weights, config_path = directory / WEIGHTS_NAME, directory / CONFIG_NAME
    if not directory.is_dir():
        raise HamkitError(
            f"{directory}: not a saved hamkit model (expected a folder with {WEIGHTS_NAME} and {CONFIG_NAME})"
        )
    for path in (weights, config_path):
        if not path.is_file():
            raise HamkitError(f"{directory}: {path.name} is missing; is this a folder written by save()?")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise HamkitError(f"{config_path}: not valid JSON ({err})") from err
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise HamkitError(f"{weights}: not a readable safetensors file ({err})") from err
    return state, config


def save_training_state(
    directory: str | os.PathLike[str], model: torch.nn.Module, config: dict[str, Any], state: dict[str, Any]
) -> Path:
    """Write a resumable checkpoint: the model files plus ``state.pt``.

    ``state`` must hold only tensors and plain Python values (it is read back with
    ``weights_only=True``). The state file is written first and the config last, so a folder
    whose ``config.json`` is present is complete.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / STATE_NAME) as tmp:
        torch.save(state, tmp)
    return save_model_files(directory, model, config)


def load_training_state(
    directory: str | os.PathLike[str],
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_training_state`.

    Returns:
        ``(model_state_dict, config, training_state)``.

    Raises:
        HamkitError: A file is missing or the state is not loadable with ``weights_only=True``.
    """
    weights, config = load_model_files(directory)
    path = Path(directory) / STATE_NAME
    if not path.is_file():
        raise HamkitError(f"{path}: missing; the checkpoint cannot be resumed")
    try:
        with warnings.catch_warnings():  # torch warns about the protocol of files it then refuses
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same thing here
        if "Weights only load failed" in str(err) or isinstance(err, pickle.UnpicklingError):
            refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
            what = f" ({refused.group(1)})" if refused else ""
            raise HamkitError(
                f"{path}: refused: it holds Python objects{what}, not only tensors and numbers, and "
                "hamkit never runs code from a file; delete it to start the training over"
            ) from err
        first = " ".join(str(err).split())[:160]
        raise HamkitError(
            f"{path}: not a readable training state ({type(err).__name__}: {first}); delete it to "
            "start the training over"
        ) from err
    return weights, config, state


def check_resumable(out_dir: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to resume a run of another kind of model or another backbone, in one line."""
    for key, what in (
        ("kind", "model"),
        ("backbone", "backbone"),
        ("num_classes", "class count"),
        ("image_size", "image size"),
        ("classify", "diagnosis head"),
    ):
        if key in saved and key in current and saved[key] != current[key]:
            raise HamkitError(
                f"{out_dir}: this folder holds an interrupted run of another {what} "
                f"({key} {saved[key]!r}, not {current[key]!r}); resume it with the same settings, "
                "or use another output folder"
            )
