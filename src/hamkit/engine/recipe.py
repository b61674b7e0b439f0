"""The training recipe: every setting of one training run, in one public, clonable object.

:class:`TrainConfig` is what both estimators take as ``recipe=`` (the one door for what is
learnt: ``fit`` takes only the run options, :data:`RUN_OPTIONS`), what the
:class:`~hamkit.engine.trainer.Trainer` runs, and what a saved model's ``config.json`` records
under ``"recipe"``. It follows scikit-learn's parameter protocol, so a grid search reaches into
it: ``{"recipe__lr": [1e-3, 1e-4]}``.

The names and allowed values of its settings, and the rules that check them, live in
:mod:`hamkit.engine.settings`. This module imports neither torch nor any model library.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sklearn.base import BaseEstimator

from hamkit.engine.settings import CHECKED, DEFAULTS, check
from hamkit.errors import HamkitError

__all__ = ["TrainConfig", "RUN_OPTIONS", "recipe_with"]

#: Fields that say how a run is carried out rather than what is learnt; not recorded in
#: ``config.json`` and not part of the recipe a model was trained with.
RUN_OPTIONS = ("num_workers", "progress", "out_dir", "resume", "device")


@dataclass
class TrainConfig(BaseEstimator):
    """The settings of one training run (the defaults are :data:`hamkit.engine.settings.DEFAULTS`).

    Attributes:
        epochs: Number of epochs.
        batch_size: Images per batch (per process under torchrun).
        lr: Learning rate.
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"`` (momentum 0.9, Nesterov).
        weight_decay: Weight decay.
        scheduler: ``"cosine"`` (to zero over the run), ``"step"`` (x0.1 at 1/3 and 2/3) or ``"none"``.
        warmup_epochs: Epochs (a fraction is allowed) of linear learning-rate warm-up before the
            schedule; ``0``: none. With a warm-up the rate changes after every batch (see
            :mod:`hamkit.engine.schedule`).
        grad_clip: Clip the gradient norm to this value, or ``None``.
        ema_decay: Keep an exponential moving average of the weights (decay per batch, e.g.
            ``0.998``; the first batches use a smaller decay, ``(1 + t) / (10 + t)``, so the
            average forgets the starting weights), validate it, and return it as the model;
            ``0``: off. Smooths the epoch-to-epoch noise of a short fine-tuning run.
        freeze: Share of the network's layers, counted from the input (each convolution,
            normalisation and linear layer is one), that keep their starting weights: they get no
            gradient, their batch-norm statistics stay as loaded, and the backward pass stops
            before them, so a step costs less (on a CPU, ``0.3`` of EfficientNet-Lite0, its stem
            and first three stages, cut a step at 128 px to 0.55 of its time; ``benchmarks/bench_freeze.py``). Meant for
            pretrained networks, whose first layers already see edges and colours; ``0``: every
            layer trains.
        input_lr_scale: The learning rate of the layer nearest the input, as a share of ``lr``; the
            rates of the layers after it (counted as for ``freeze``) rise geometrically to ``lr``
            at the head (discriminative fine-tuning rates: the pretrained first layers move
            little, the new head fast). The schedule scales every rate alike. ``1``: one rate
            for every layer.
        monitor: Validation metric that picks the best checkpoint (e.g. ``"balanced_accuracy"``,
            ``"dice"``, ``"loss"``); ``None``: the estimator's own default (balanced accuracy
            for the classifier, Dice or Dice with balanced accuracy for the segmenter; the
            validation loss for a bare :class:`~hamkit.engine.trainer.Trainer`). Without
            validation data the last epoch is kept.
        early_stopping: Stop after this many epochs without improvement, or ``None``.
        class_balance: ``"sampler"`` (every class drawn equally often, with replacement),
            ``"sqrt"`` (each class drawn in proportion to the square root of its size: rare
            classes more often than their share, without repeating their few images as often as
            ``"sampler"`` does), ``"loss"`` (class-weighted cross-entropy) or ``"none"``. The segmenter balances only
            when it has a diagnosis head.
        augment: Training augmentation: ``"none"``, ``"flips"`` (flips and 90-degree turns),
            ``"light"``, ``"strong"``, ``True`` (the same as ``"flips"``), ``False`` (none) or a
            torchvision v2 transform; see :mod:`hamkit.data.augment`. Applies to
            ``SkinDataset`` inputs.
        random_state: Fixes everything random (data order, augmentation, head initialisation).
        amp: Mixed precision: ``"auto"`` (on CUDA only), ``True`` or ``False``.
        channels_last: Use the channels-last memory format (``"auto"``: on CUDA, and on CPU for
            networks with depthwise convolutions, where it trains faster).
        num_workers: DataLoader workers (``None``: up to 4, leaving a core free).
        progress: Show progress: tqdm bars when stderr is a terminal, otherwise one line per
            epoch. A string also names the stage in it (e.g. ``"[4/6] classifier"``).
        out_dir: Where to write ``last/``, ``best/``, ``history.csv`` and ``history.json``
            (``None``: keep everything in memory).
        resume: Continue from ``out_dir/last`` when it exists.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``...

    Examples:
        >>> recipe = TrainConfig(epochs=3, lr=1e-3)
        >>> recipe.set_params(lr=3e-4).lr
        0.0003
        >>> sorted(recipe.as_recorded())[:3]
        ['amp', 'augment', 'batch_size']
    """

    epochs: int = DEFAULTS["epochs"]
    batch_size: int = DEFAULTS["batch_size"]
    lr: float = DEFAULTS["lr"]
    optimizer: str = DEFAULTS["optimizer"]
    weight_decay: float = DEFAULTS["weight_decay"]
    scheduler: str = DEFAULTS["scheduler"]
    warmup_epochs: float = DEFAULTS["warmup_epochs"]
    grad_clip: float | None = DEFAULTS["grad_clip"]
    ema_decay: float = DEFAULTS["ema_decay"]
    freeze: float = DEFAULTS["freeze"]
    input_lr_scale: float = DEFAULTS["input_lr_scale"]
    monitor: str | None = DEFAULTS["monitor"]
    early_stopping: int | None = DEFAULTS["early_stopping"]
    class_balance: str = DEFAULTS["class_balance"]
    augment: bool | str | Callable[..., Any] = DEFAULTS["augment"]
    random_state: int = DEFAULTS["random_state"]
    amp: bool | str = DEFAULTS["amp"]
    channels_last: bool | str = DEFAULTS["channels_last"]
    num_workers: int | None = DEFAULTS["num_workers"]
    progress: bool | str = DEFAULTS["progress"]
    out_dir: str | os.PathLike[str] | None = DEFAULTS["out_dir"]
    resume: bool = DEFAULTS["resume"]
    device: str = DEFAULTS["device"]

    # dataclass equality and repr instead of BaseEstimator's
    __hash__ = None  # type: ignore[assignment]

    def validate(self) -> None:
        """Check the settings (:func:`hamkit.engine.settings.check`, the rules ``hamkit run`` checks
        too), raising :class:`~hamkit.errors.HamkitError` with the fix."""
        for name in CHECKED:
            problem = check(name, getattr(self, name), epochs=self.epochs)
            if problem:
                raise HamkitError(problem)
        if self.resume and self.out_dir is None:
            raise HamkitError("resume=True needs out_dir= (the folder of the interrupted run)")

    @property
    def monitor_mode(self) -> str:
        """``"min"`` for losses, ``"max"`` for every other metric."""
        return "min" if (self.monitor or "").endswith("loss") else "max"

    def as_recorded(self) -> dict[str, Any]:
        """The recipe as JSON values, without the run options (workers, progress, folders,
        device): what a saved model's ``config.json`` records. A custom transform is recorded
        as ``"custom: <its repr>"``."""
        recorded: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            if item.name in RUN_OPTIONS:
                continue
            value = getattr(self, item.name)
            plain = value is None or isinstance(value, (bool, int, float, str))
            recorded[item.name] = value if plain else f"custom: {value!r}"
        return recorded


def recipe_with(base: TrainConfig | None, overrides: Mapping[str, Any], *, defaults: TrainConfig) -> TrainConfig:
    """``base`` (or ``defaults`` when ``None``) with some run options (:data:`RUN_OPTIONS`) replaced.

    A ``fit`` call may say how it runs (workers, progress, folders, resuming), never what is learnt:
    the recipe has one door, the estimator's ``recipe`` parameter (``recipe=TrainConfig(...)`` or
    ``set_params(recipe__lr=...)``), so ``clone``, a grid search and a saved model all see the
    settings a model was trained with.

    Args:
        base: The estimator's ``recipe`` parameter.
        overrides: Run options of one ``fit`` call.
        defaults: The estimator's default recipe.

    Raises:
        HamkitError: An override that is a recipe setting (with the fix), or no field at all.
    """
    names = {item.name for item in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise HamkitError(
            f"unknown training option(s) {', '.join(unknown)}; fit takes the run options "
            f"{', '.join(RUN_OPTIONS)}, and the recipe's settings are {', '.join(sorted(names - set(RUN_OPTIONS)))}"
        )
    settings = sorted(set(overrides) - set(RUN_OPTIONS))
    if settings:
        example = settings[0]
        raise HamkitError(
            f"{', '.join(settings)} {'is a setting' if len(settings) == 1 else 'are settings'} of the training "
            f"recipe, not of one fit: give the estimator recipe=TrainConfig({example}=...) or call "
            f"set_params(recipe__{example}=...) before fit"
        )
    return dataclasses.replace(base if base is not None else defaults, **overrides)
