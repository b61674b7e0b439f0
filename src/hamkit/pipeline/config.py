"""The settings of ``hamkit run``: one TOML file, with presets.

Every setting has a default; a TOML file (read with :mod:`tomllib`) overrides any of them, and
``--preset`` picks a set of defaults:

* ``demo`` (the default for the generated synthetic data): finishes the whole pipeline on it in a
  few minutes on 2 cores: small images, few epochs, no downloads (the EfficientNet-Lite0
  ImageNet weights are installed with hamkit).
* ``cpu`` (the default when a data folder is given): the whole of HAM10000 (10,015 images) on a
  laptop CPU in under half an hour, fine-tuning the installed EfficientNet-Lite0 ImageNet
  weights, with the settings that budget allowed when measured (``benchmarks/cpu_preset.py``
  and ``benchmarks/pretrained_offline.py``; numbers in docs/benchmarks.md).
* ``report``: the original student report's
  settings (MobileNetV2 dedup at cosine 0.93; ResNet-50 classifier at
  384 px, Adam lr 5e-5, 3 epochs, batch 32; DeepLabV3-ResNet50 segmenter, lr 1e-4, 10 epochs,
  batch 4), with pretrained weights.
* ``gpu``: a run sized for a GPU: larger images, more epochs, and EfficientNet-B3 networks with
  ImageNet weights from the Hugging Face Hub (downloaded once, then cached); where those cannot
  be had (offline, nothing cached) the run says so in one line and uses the EfficientNet-Lite2
  weights installed with hamkit instead (``offline_backbone``). Not measured on a GPU yet.

``hamkit run --print-config`` prints the effective settings as TOML.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hamkit.backbones.defaults import EMBEDDING_BACKBONE, EMBEDDING_THRESHOLD
from hamkit.engine.settings import RENAMED, RUN_SECTION_KEYS, defaults_for
from hamkit.errors import HamkitError

__all__ = ["DEFAULTS", "PRESETS", "Settings", "default_preset", "load_config", "parse_set", "to_toml"]


class Settings(dict[str, Any]):
    """The effective settings ``{section: {setting: value}}``, remembering where each value came from.

    ``sources[(section, key)]`` is ``"default"``, ``"preset 'cpu'"``, the TOML file's path or
    ``"command line"``: error messages name it.
    """

    sources: dict[tuple[str, str], str]

    def source(self, section: str, key: str) -> str:
        """Where ``section.key`` was set."""
        return getattr(self, "sources", {}).get((section, key), "default")


def _training(estimator: str) -> dict[str, Any]:
    """The training settings of a ``[classifier]`` / ``[segmenter]`` section with their defaults,
    from :mod:`hamkit.engine.settings`, the one owner of their names, defaults and checks."""
    default = defaults_for(estimator)
    return {key: default[key] for key in RUN_SECTION_KEYS[estimator]}


DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {
        "root": "",  # empty: generate the synthetic dataset into OUT/data
        "labels": "",  # empty: HAM10000_metadata.csv (or ISIC ground truth) under root
        "label_column": "",  # a generic labels file's column of class names; empty: found by name
        "image_column": "",  # a generic labels file's column of image ids or file names; empty: found by name
        "group_by": [],  # more grouping columns of the labels file, e.g. ["patient_id"]
        "masks": "",  # empty: the folder of *_segmentation.png under root, if any
        "synthetic_lesions": 150,
        "synthetic_image_size": [256, 192],
        "random_state": 0,
    },
    "dedup": {
        "methods": ["verified"],  # any of verified, exact, phash, dhash, cnn, lesion; their groups are merged
        "verified_threshold": 0.5,
        "cnn_backbone": EMBEDDING_BACKBONE,
        "cnn_threshold": EMBEDDING_THRESHOLD,  # measured for that network: benchmarks/dedup_real.py
        "hash_threshold": 6,
        "pretrained": True,
    },
    "split": {"fractions": [0.75, 0.125, 0.125], "random_state": 0, "hold_out_source": ""},  # a source: the test split
    "classifier": {
        "enabled": True,
        "backbone": "timm:tf_efficientnet_lite0",
        # used instead of backbone when backbone's pretrained weights can be had neither from hamkit's
        # installed weights, nor the local download cache, nor the network; "": the run stops instead
        "offline_backbone": "",
        "image_size": 64,
        # the training settings, their defaults and checks: hamkit.engine.settings
        **_training("classifier"),
        "pretrained": True,
        # 0: whole images; else the square crop around each lesion, this many times its longer side,
        # placed by the run's segmenter (hamkit.data.crops)
        "lesion_crop": 0.0,
        # the saved decision's operating point, chosen on the validation split: "CLASS:sensitivity=V"
        # or "CLASS:specificity=V" (hamkit calibrate --operating-point), or none
        "operating_point": "none",
    },
    "segmenter": {
        "enabled": True,
        "backbone": "smp:Linknet:tu-tf_efficientnet_lite0",
        "offline_backbone": "",  # as classifier.offline_backbone
        "image_size": 64,
        **_training("segmenter"),
        "classify": True,
        "pretrained": True,
    },
    "run": {"device": "auto", "num_workers": -1, "progress": True},  # -1: automatic
}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "demo": {  # a few minutes on 2 cores with the synthetic data
        "classifier": {"lr": 1e-3},
        # 4 epochs of batch 16 at lr 1e-3 left the segmenter at test Dice 0.11 on the synthetic set;
        # 6 epochs of batch 8 (the default) at lr 3e-3 reach 0.91 (test), still in about a minute
        "segmenter": {"epochs": 6, "lr": 3e-3},
    },
    "cpu": {  # sized with benchmarks/cpu_preset.py on the 10,015 HAM10000 images (docs/benchmarks.md)
        "classifier": {
            "backbone": "timm:tf_efficientnet_lite0",
            # 160 px for 4 epochs was tried (docs/benchmarks.md): its epochs took 300 s, the run over 30 min
            "image_size": 128,
            "epochs": 5,
            "batch_size": 32,
            "lr": 5e-4,
            "optimizer": "adamw",
            "weight_decay": 0.05,
            "warmup_epochs": 1.0,
            "augment": "light",
            # lesion_crop = 1.25 was measured in a whole run (docs/benchmarks.md): not better on its test split
            # melanoma sensitivity first: measured with benchmarks/operating_points.py (docs/benchmarks.md)
            "operating_point": "mel:sensitivity=0.85",
        },
        "segmenter": {
            "backbone": "smp:Linknet:tu-tf_efficientnet_lite0",
            "image_size": 128,
            "epochs": 2,
            "batch_size": 16,
            "lr": 1e-3,
            "warmup_epochs": 0.5,
            "classify": False,
        },
    },
    "report": {
        "dedup": {
            "methods": ["exact", "cnn"],
            "cnn_backbone": "mobilenet_v2",
            "cnn_threshold": 0.93,
            "pretrained": True,
        },
        "classifier": {
            "backbone": "resnet50",
            "image_size": 384,
            "epochs": 3,
            "batch_size": 32,
            "lr": 5e-5,
            "pretrained": True,
        },
        "segmenter": {
            "backbone": "deeplabv3_resnet50",
            "image_size": 256,
            "epochs": 10,
            "batch_size": 4,
            "lr": 1e-4,
            "pretrained": True,
        },
    },
    "gpu": {
        "dedup": {"methods": ["verified"]},
        "classifier": {
            # hub weights when they can be had (downloaded once, then cached), else the installed Lite2
            "backbone": "timm:efficientnet_b3",
            "offline_backbone": "timm:tf_efficientnet_lite2",
            "image_size": 256,
            "epochs": 20,
            "batch_size": 64,
            "lr": 5e-4,
            "optimizer": "adamw",
            "weight_decay": 0.05,
            "warmup_epochs": 1.0,
            "augment": "light",
            "operating_point": "mel:sensitivity=0.85",  # the cpu preset's; not measured on a GPU
        },
        "segmenter": {
            "backbone": "smp:DeepLabV3Plus:tu-efficientnet_b3",
            "offline_backbone": "smp:DeepLabV3Plus:tu-tf_efficientnet_lite2",
            "image_size": 384,
            "epochs": 20,
            "batch_size": 16,
            "lr": 5e-4,
            "optimizer": "adamw",
            "warmup_epochs": 1.0,
        },
    },
}


def _merge(
    base: dict[str, dict[str, Any]],
    override: dict[str, Any],
    source: str,
    sources: dict[tuple[str, str], str] | None = None,
) -> None:
    unknown: list[str] = []  # every typo at once, not one per run
    renamed: list[str] = []
    hints: dict[str, str] = {}
    for section, values in override.items():
        if section not in base:
            unknown.append(f"section [{section}]")
            hints["sections"] = f"sections are {', '.join(base)}"
        elif not isinstance(values, dict):
            raise HamkitError(f"{source}: [{section}] must be a table of settings")
        else:
            for key in values:
                if RENAMED.get(key) in base[section]:
                    renamed.append(f"{section}.{key} was renamed to {section}.{RENAMED[key]}")
                elif key not in base[section]:
                    unknown.append(f"setting {section}.{key}")
                    hints[section] = f"[{section}] has {', '.join(base[section])}"
    if renamed:
        raise HamkitError(f"{source}: {'; '.join(renamed)}; write the new name")
    if unknown:
        raise HamkitError(f"{source}: unknown {', '.join(unknown)}; {'; '.join(hints.values())}")
    for section, values in override.items():
        for key, value in values.items():
            expected = type(base[section][key])
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise HamkitError(f"{source}: {section}.{key} must be a {expected.__name__}, got {value!r}")
            base[section][key] = value
            if sources is not None:
                sources[(section, key)] = source


def parse_set(assignments: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["section.key=value", ...]`` (``hamkit run --set``) as overrides for :func:`load_config`.

    Each value is read as a TOML value (``3``, ``1e-4``, ``true``, ``"text"``, ``[0.8, 0.1, 0.1]``);
    one that is not TOML is taken as a string, so ``--set classifier.optimizer=adamw`` works unquoted.

    Raises:
        HamkitError: An assignment without ``=`` or without a ``section.`` before the key.

    Examples:
        >>> parse_set(["classifier.epochs=3", "classifier.optimizer=adamw", "dedup.methods=['exact']"])
        {'classifier': {'epochs': 3, 'optimizer': 'adamw'}, 'dedup': {'methods': ['exact']}}
    """
    out: dict[str, dict[str, Any]] = {}
    for assignment in assignments:
        name, equals, text = assignment.partition("=")
        section, dot, key = name.strip().partition(".")
        if not equals or not dot or not section or not key:
            raise HamkitError(f"--set {assignment}: write SECTION.KEY=VALUE, e.g. --set classifier.epochs=3")
        try:
            value = tomllib.loads(f"value = {text.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        out.setdefault(section, {})[key] = value
    return out


def default_preset(data: str | os.PathLike[str] | None, config: dict[str, Any] | None = None) -> str:
    """The preset used when none is named: ``cpu`` for real data (``--data`` or ``data.root``),
    ``demo`` for the generated synthetic data."""
    root = (config or {}).get("data", {}).get("root", "")
    return "cpu" if data or root else "demo"


def load_config(
    path: str | os.PathLike[str] | None = None, preset: str = "demo", overrides: dict[str, Any] | None = None
) -> Settings:
    """The effective settings: defaults, then the preset, then the TOML file, then ``overrides``.

    Args:
        path: A TOML file, or ``None``.
        preset: ``"demo"``, ``"cpu"``, ``"report"`` or ``"gpu"``.
        overrides: More settings (same shape as the TOML), e.g. from the command line.

    Returns:
        The :class:`Settings` ``{section: {setting: value}}``.

    Raises:
        HamkitError: An unknown preset, section or setting, a value of the wrong type, or a
            TOML syntax error (with the line).

    Examples:
        >>> load_config(preset="report")["classifier"]["lr"]
        5e-05
    """
    if preset not in PRESETS:
        raise HamkitError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    config = Settings(copy.deepcopy(DEFAULTS))
    config.sources = {}
    _merge(config, PRESETS[preset], f"preset {preset!r}", config.sources)
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise HamkitError(f"{file}: config file not found; `hamkit run --print-config > run.toml` writes one")
        try:
            data = tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as err:
            raise HamkitError(f"{file}: not valid TOML ({err})") from err
        _merge(config, data, str(file), config.sources)
    if overrides:
        _merge(config, overrides, "command line", config.sources)
    return config


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise HamkitError(f"cannot write {value!r} as TOML")


def to_toml(config: dict[str, dict[str, Any]], *, comments: Sequence[str] = ()) -> str:
    """Write settings as TOML text that :func:`load_config` reads back to the same values.

    Args:
        config: The settings ``{section: {setting: value}}``.
        comments: More lines for the comment at the top (without ``#``).

    Examples:
        >>> text = to_toml(load_config(), comments=["the defaults"])
        >>> tomllib.loads(text) == load_config()
        True
        >>> text.splitlines()[1]
        '# the defaults'
    """
    lines = ["# hamkit run settings (hamkit run --config this-file.toml)"]
    lines += [f"# {line}" for line in comments]
    for section, values in config.items():
        lines.append("")
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"
