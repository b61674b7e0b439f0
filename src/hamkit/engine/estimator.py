"""What the estimators share: scikit-learn's parameter protocol, the training recipe, class
names, the backbone's normalisation, the fitted check, and checkpoint saving and checked loading."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, ClassVar

from sklearn.base import BaseEstimator
from torch import nn

from hamkit.classes import CLASS_CODES
from hamkit.engine.checkpoint import load_model_files, save_model_files
from hamkit.engine.recipe import TrainConfig, recipe_with
from hamkit.engine.settings import RENAMED
from hamkit.errors import HamkitError

__all__ = ["Estimator"]


class Estimator(BaseEstimator):
    """Base of :class:`~hamkit.LesionClassifier` and :class:`~hamkit.LesionSegmenter`.

    It inherits scikit-learn's ``BaseEstimator``: the parameters are the keyword arguments of
    the subclass's ``__init__`` (stored unchanged, checked in ``fit``), so ``get_params``,
    ``set_params`` and ``sklearn.base.clone`` work, and a grid search reaches into the recipe
    (``recipe__lr``). Subclasses set ``_KIND`` (written into checkpoints) and
    ``_DEFAULT_RECIPE``, and implement ``_config()`` and ``_build(pretrained=..., weights=...)``.
    """

    _KIND: ClassVar[str] = ""
    _REQUIRED_CONFIG: ClassVar[tuple[str, ...]] = ("backbone", "image_size", "num_classes", "classes")
    _DEFAULT_RECIPE: ClassVar[TrainConfig] = TrainConfig()
    backbone: str
    num_classes: int | None
    classes: Any
    recipe: TrainConfig | None
    device: str

    def set_params(self, **params: Any) -> Estimator:
        """Set parameters, as scikit-learn's ``set_params``; ``recipe__<field>`` reaches into the
        recipe even while ``recipe`` is ``None`` (it starts from the estimator's default recipe),
        and changes a copy, so estimators made with one ``TrainConfig`` never change each other's.

        Examples:
            >>> from hamkit import LesionClassifier
            >>> model = LesionClassifier().set_params(recipe__epochs=3)
            >>> model.recipe.epochs, model.recipe.batch_size
            (3, 32)
        """
        if any(key.startswith("recipe__") for key in params):
            base = params.get("recipe", self.recipe)
            params = {
                **params,
                "recipe": dataclasses.replace(base if isinstance(base, TrainConfig) else self._DEFAULT_RECIPE),
            }
        return super().set_params(**params)

    def _recipe(self, overrides: dict[str, Any]) -> TrainConfig:
        """The recipe of one ``fit``: ``recipe`` (or the estimator's default) with the run options
        ``overrides`` (a recipe setting there is refused with the fix)."""
        if self.recipe is not None and not isinstance(self.recipe, TrainConfig):
            raise HamkitError(f"recipe must be a hamkit.TrainConfig or None, got a {type(self.recipe).__name__}")
        mine = sorted(set(overrides) & set(self.get_params(deep=False)))
        if mine:
            name = type(self).__name__
            raise HamkitError(
                f"{', '.join(mine)} {'is a parameter' if len(mine) == 1 else 'are parameters'} of {name}, not of "
                f"one fit: {name}({mine[0]}=...) or set_params({mine[0]}=...) before fit"
            )
        return recipe_with(self.recipe, {**overrides, "device": self.device}, defaults=self._DEFAULT_RECIPE)

    def _recorded_recipe(self) -> dict[str, Any]:
        """What a saved model records of its training: the recipe and the weights it started from."""
        recipe = getattr(self, "recipe_", None)
        recorded: dict[str, Any] = {"recipe": recipe.as_recorded()} if recipe is not None else {}
        if hasattr(self, "initial_weights_"):
            recorded["initial_weights"] = self.initial_weights_
        for name in ("training_data", "evaluation"):  # what the model card says of its data and test numbers
            if getattr(self, f"{name}_", None):
                recorded[name] = getattr(self, f"{name}_")
        return recorded

    def _record_training_data(self, train: Any, val: Any, split_csv: Any, licence: str | None) -> None:
        """Remember what the model card says of the data of this fit (a new fit has no test numbers yet)."""
        from hamkit.model_card import describe_training_data

        self.training_data_ = describe_training_data(train, val, split_csv=split_csv, licence=licence)
        self.__dict__.pop("evaluation_", None)

    @property
    def classes_(self) -> list[str]:
        """The class names, in index order: those the model was fitted on (taken from the
        training data when neither ``classes`` nor ``num_classes`` is given), else those of the
        parameters (the seven HAM10000 codes by default)."""
        fitted = self.__dict__.get("_fitted_classes")
        if fitted is not None:
            return list(fitted)
        wanted = self._wanted_classes()
        return list(wanted) if wanted is not None else list(CLASS_CODES)

    @property
    def n_classes_(self) -> int:
        """The number of classes (``len(classes_)``)."""
        return len(self.classes_)

    def _wanted_classes(self) -> list[str] | None:
        """The class list the parameters fix, or ``None`` when the data decides.

        Raises:
            HamkitError: ``classes`` and ``num_classes`` disagree, or fewer than two classes.
        """
        if self.classes is not None:
            names = [str(c) for c in self.classes]
            if self.num_classes is not None and len(names) != self.num_classes:
                raise HamkitError(f"{len(names)} class names for num_classes={self.num_classes}")
            if len(set(names)) != len(names):
                raise HamkitError(f"class names must be distinct, got {names}")
        elif self.num_classes is not None:
            if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 2:
                raise HamkitError(f"num_classes must be a whole number of at least 2, got {self.num_classes!r}")
            names = (
                list(CLASS_CODES)
                if self.num_classes == len(CLASS_CODES)
                else [f"class_{i}" for i in range(self.num_classes)]
            )
        else:
            return None
        if len(names) < 2:
            raise HamkitError(f"a classifier needs at least two classes, got {names}")
        return names

    def _fit_classes(self, data_classes: Any) -> list[str]:
        """Fix the class list of this fit: the parameters', else the training data's
        (``data_classes``, e.g. ``SkinDataset.classes``), else the HAM10000 codes."""
        wanted = self._wanted_classes()
        names = wanted if wanted is not None else (list(data_classes) if data_classes else list(CLASS_CODES))
        self._fitted_classes = list(names)
        return self._fitted_classes

    def normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The input normalisation ``(mean, std)`` of the backbone (from its registry spec)."""
        from hamkit.backbones.registry import get_backbone

        spec = get_backbone(self.backbone)
        return tuple(spec.mean), tuple(spec.std)

    def _check_pretrained(self) -> None:
        """Before a fit reads any data: the pretrained weights the network starts from can be had
        (installed, cached, or downloaded now), or the one-line :class:`~hamkit.errors.WeightsError`
        of a failed download, instead of after the decode cache is built."""
        if not self.pretrained or self.weights is not None:
            return
        from hamkit.backbones.registry import missing_pretrained
        from hamkit.backbones.weights import download_error

        reason = missing_pretrained(self.backbone, pretrained=self.pretrained)
        if reason is not None:
            raise download_error(self.backbone, reason)

    def _config(self) -> dict[str, Any]:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def _build(self, *, pretrained: bool | str, weights: Any) -> nn.Module:  # pragma: no cover
        raise NotImplementedError

    def _check_fitted(self) -> Any:
        network = getattr(self, "network_", None)
        if network is None:
            name = type(self).__name__
            raise HamkitError(f"this {name} is not fitted yet: call fit() or {name}.load()")
        return network

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted model as ``path/model.safetensors`` + ``path/config.json``, with its model
        card (``MODEL_CARD.md`` and ``model_card.json``, :mod:`hamkit.model_card`).

        Returns:
            The folder.
        """
        from hamkit.model_card import write_model_card

        config = self._config()
        folder = save_model_files(path, self._check_fitted(), config)
        write_model_card(folder, config)
        return folder

    @classmethod
    def _read_checkpoint(cls, path: str | os.PathLike[str], **expected: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Read a checkpoint folder, checking its kind and any ``expected`` config values."""
        state, config = load_model_files(path)
        kind = config.get("kind", "unknown")
        if kind != cls._KIND:
            raise HamkitError(f"{path}: a {kind} checkpoint, not a {cls._KIND}; load it with {kind}.load()")
        lacking = [key for key in cls._REQUIRED_CONFIG if key not in config]
        if lacking:
            raise HamkitError(
                f"{path}: config.json lacks {', '.join(lacking)}; the folder is damaged or was not "
                f"written by {cls._KIND}.save(); save the model again"
            )
        for name, wanted in expected.items():
            if wanted is not None and config.get(name) != wanted:
                raise HamkitError(f"{path}: checkpoint has {name}={config.get(name)!r}, not {wanted!r}")
        return state, config

    def _restore(
        self, path: str | os.PathLike[str], state: dict[str, Any], description: str, config: dict[str, Any]
    ) -> Any:
        """Build the network without downloads and load ``state`` into it, or say why it does not fit;
        restore what ``config`` records of the training (the weights it started from)."""
        network = self._build(pretrained=False, weights=None)
        try:
            network.load_state_dict(state)
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise HamkitError(
                f"{path}: weights do not fit a {description} ({first}); the checkpoint is of another model"
            ) from err
        self.network_ = network.eval()
        self.history_: list[dict[str, float]] = []
        if isinstance(config.get("initial_weights"), str):
            self.initial_weights_ = config["initial_weights"]
        for name in ("training_data", "evaluation"):
            if isinstance(config.get(name), dict):
                setattr(self, f"{name}_", dict(config[name]))
        return self

    @staticmethod
    def _restored_recipe(config: dict[str, Any]) -> TrainConfig | None:
        """The recipe a checkpoint records, as a :class:`TrainConfig` (``None`` for older models)."""
        recorded = config.get("recipe")
        if not isinstance(recorded, dict):
            return None
        recorded = {RENAMED.get(k, k): v for k, v in recorded.items()}  # older versions' names
        known = {k: v for k, v in recorded.items() if k in TrainConfig().get_params()}
        if isinstance(known.get("augment"), str) and known["augment"].startswith("custom:"):
            known.pop("augment")  # a custom transform, recorded by its repr only
        return TrainConfig(**known)
