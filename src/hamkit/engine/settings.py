"""The names and allowed values of the training settings, in one place (no torch, no scikit-learn).

:class:`~hamkit.engine.recipe.TrainConfig` validates itself with :func:`check`; the checks of
``hamkit run`` (:mod:`hamkit.pipeline.validate`) run the same :func:`check` on the
``[classifier]`` and ``[segmenter]`` sections; the choices of ``hamkit train``'s flags are the
tuples below. "Off" has one spelling, :data:`OFF` (``"none"``): ``scheduler="none"``,
``class_balance="none"``, ``augment="none"``.

This module imports nothing heavy, so the command line can read it while it builds its parser.

Examples:
    >>> check("optimizer", "adagrad")
    "unknown optimizer 'adagrad'; choose one of adam, adamw, sgd"
    >>> check("warmup_epochs", 3.0, epochs=2)
    'warmup_epochs must be between 0 and epochs (2), got 3.0'
    >>> check("class_balance", "none") is None
    True
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "AUGMENTS",
    "CLASS_BALANCE_MODES",
    "CHECKED",
    "DEFAULTS",
    "ESTIMATOR_DEFAULTS",
    "OFF",
    "OPTIMIZERS",
    "RENAMED",
    "RUN_SECTION_KEYS",
    "SCHEDULERS",
    "check",
    "defaults_for",
]

OFF = "none"
"""The one spelling of "off" for the settings that can be turned off."""

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("cosine", "step", OFF)
CLASS_BALANCE_MODES = ("sampler", "sqrt", "loss", OFF)
AUGMENTS = (OFF, "flips", "light", "strong")
"""Named training augmentations (see :mod:`hamkit.data.augment`)."""

DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 32,
    "lr": 1e-4,
    "optimizer": "adam",
    "weight_decay": 0.0,
    "scheduler": "cosine",
    "warmup_epochs": 0.0,
    "grad_clip": None,
    "ema_decay": 0.0,
    "freeze": 0.0,
    "input_lr_scale": 1.0,
    "monitor": None,
    "early_stopping": None,
    "class_balance": "sampler",
    "augment": "flips",
    "random_state": 0,
    "amp": "auto",
    "channels_last": "auto",
    "num_workers": None,
    "progress": True,
    "out_dir": None,
    "resume": False,
    "device": "auto",
}
"""The default of every training setting: :class:`~hamkit.engine.recipe.TrainConfig`'s fields take
them, and so do ``hamkit train``'s flags and the ``[classifier]`` / ``[segmenter]`` sections of
``hamkit run`` (whose presets then set their own recipes)."""

ESTIMATOR_DEFAULTS: dict[str, dict[str, Any]] = {"classifier": {}, "segmenter": {"batch_size": 8}}
"""What an estimator's default recipe changes of :data:`DEFAULTS` (the segmenter's larger inputs and
masks take a smaller batch)."""

_SECTION_TRAINING = (
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "weight_decay",
    "warmup_epochs",
    "ema_decay",
    "freeze",
    "input_lr_scale",
    "augment",
)
RUN_SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "classifier": (*_SECTION_TRAINING, "class_balance"),
    "segmenter": _SECTION_TRAINING,
}
"""The training settings that ``hamkit run``'s ``[classifier]`` and ``[segmenter]`` sections hold."""

RENAMED: dict[str, str] = {"seed": "random_state"}
"""Old setting names and their new names: a recipe recorded by an older version (a saved model's
``config.json``) is read with the new names, and a TOML file or ``--set`` that still says the old
name is told the new one."""


def defaults_for(estimator: str) -> dict[str, Any]:
    """The default training settings of ``"classifier"`` or ``"segmenter"``.

    Examples:
        >>> defaults_for("segmenter")["batch_size"], defaults_for("classifier")["batch_size"]
        (8, 32)
    """
    return {**DEFAULTS, **ESTIMATOR_DEFAULTS[estimator]}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check(name: str, value: Any, *, epochs: Any = None) -> str | None:
    """What is wrong with ``value`` for the training setting ``name``, or ``None`` when it is fine.

    Args:
        name: A field of :class:`~hamkit.engine.recipe.TrainConfig` (fields without a rule pass).
        value: Its value.
        epochs: The run's epochs (for ``warmup_epochs``).

    Returns:
        A one-line message that names the setting and the allowed values, or ``None``.
    """
    if name == "epochs" and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return f"epochs must be at least 1, got {value}"
    if name == "batch_size" and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return f"batch_size must be at least 1, got {value}"
    if name == "lr" and not (_number(value) and value > 0):
        return f"lr must be positive, got {value}"
    if name == "weight_decay" and not (_number(value) and value >= 0):
        return f"weight_decay must be 0 or positive, got {value}"
    if name == "warmup_epochs" and not (_number(value) and 0 <= value <= (epochs if _number(epochs) else math.inf)):
        return f"warmup_epochs must be between 0 and epochs ({epochs}), got {value}"
    if name == "early_stopping" and value is not None and not (isinstance(value, int) and value >= 1):
        return f"early_stopping must be None or a patience of at least 1 epoch, got {value}"
    if name == "grad_clip" and value is not None and not (_number(value) and value > 0):
        return f"grad_clip must be None or positive, got {value}"
    if name == "ema_decay" and not (_number(value) and 0 <= value < 1):
        return f"ema_decay must be 0 (off) or a decay below 1 (e.g. 0.998), got {value}"
    if name == "freeze" and not (_number(value) and 0 <= value < 1):
        return f"freeze must be 0 (train every layer) or a share of the layers below 1 (e.g. 0.3), got {value}"
    if name == "input_lr_scale" and not (_number(value) and 0 < value <= 1):
        return f"input_lr_scale must be above 0 and at most 1 (1: one rate for every layer; e.g. 0.1), got {value}"
    if name == "num_workers" and value is not None and not (isinstance(value, int) and value >= 0):
        return f"num_workers must be None (automatic) or 0 or more, got {value}"
    if name == "optimizer" and value not in OPTIMIZERS:
        return f"unknown optimizer {value!r}; choose one of {', '.join(OPTIMIZERS)}"
    if name == "scheduler" and value not in SCHEDULERS:
        return f"unknown scheduler {value!r}; choose one of {', '.join(SCHEDULERS)}"
    if name == "class_balance" and value not in CLASS_BALANCE_MODES:
        return f"class_balance must be one of {', '.join(repr(m) for m in CLASS_BALANCE_MODES)}, got {value!r}"
    if name == "augment" and isinstance(value, str) and value not in AUGMENTS:
        return f"unknown augment {value!r}; choose one of {', '.join(AUGMENTS)}"
    return None


CHECKED = (
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "warmup_epochs",
    "early_stopping",
    "grad_clip",
    "ema_decay",
    "freeze",
    "input_lr_scale",
    "num_workers",
    "optimizer",
    "scheduler",
    "class_balance",
    "augment",
)
"""The settings :func:`check` has a rule for."""
