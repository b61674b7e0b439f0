"""Check every setting of ``hamkit run`` before the first step, so a typo costs seconds, not hours.

:func:`check_settings` looks at values only (enums, ranges, backbone names, that the files and
folders named exist) and reports every problem at once, each naming the setting and where it was
set (preset, TOML file or command line). :func:`check_masks` runs once the image list is known:
that the masks folder holds a mask for the images.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hamkit.errors import HamkitError

__all__ = ["check_masks", "check_settings", "installed_text", "where_set"]


def where_set(settings: Any, section: str, key: str) -> str:
    """``"section.key (set in SOURCE)"`` for a message: where a setting's value came from."""
    source = settings.source(section, key) if hasattr(settings, "source") else "default"
    return f"{section}.{key} (set in {source})"


class _Problems:
    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.found: list[str] = []

    def add(self, section: str, key: str, message: str) -> None:
        value = self.settings[section][key]
        self.found.append(f"{where_set(self.settings, section, key)} = {value!r}: {message}")

    def positive_int(self, section: str, key: str, minimum: int = 1) -> None:
        if self.settings[section][key] < minimum:
            self.add(section, key, f"must be at least {minimum}")

    def probability(self, section: str, key: str) -> None:
        value = self.settings[section][key]
        if not (math.isfinite(value) and 0 < value <= 1):
            self.add(section, key, "must be in (0, 1]")


def _check_model(problems: _Problems, section: str, task: str) -> None:
    settings = problems.settings[section]
    if not settings.get("enabled", True):
        return
    from hamkit.engine.settings import check

    problems.positive_int(section, "image_size", 16)
    for key, value in settings.items():  # the training settings: the rules TrainConfig checks
        problem = check(key, value, epochs=settings.get("epochs"))
        if problem:
            problems.add(section, key, problem)
    if settings["batch_size"] == 1:
        problems.add(section, "batch_size", "must be at least 2 (batch normalisation needs two images)")
    if "operating_point" in settings:
        from hamkit.metrics.operating_points import parse_operating_point

        try:
            parse_operating_point(settings["operating_point"])
        except HamkitError as err:
            problems.add(section, "operating_point", str(err))


def _check_lesion_crop(problems: _Problems) -> None:
    """``classifier.lesion_crop``: 0 or at least 1, and a crop needs the run's segmenter to place it."""
    from hamkit.data.crops import check_lesion_crop

    classifier = problems.settings["classifier"]
    value = classifier["lesion_crop"]
    problem = check_lesion_crop(value)
    if problem:
        problems.add("classifier", "lesion_crop", problem)
    elif classifier["enabled"] and value > 0 and not problems.settings["segmenter"]["enabled"]:
        problems.add(
            "classifier",
            "lesion_crop",
            "needs the segmenter, whose masks place the crops (segmenter.enabled = true); "
            "or set classifier.lesion_crop = 0 for whole images",
        )


def _check_backbone(problems: _Problems, section: str, key: str, task: str) -> None:
    from hamkit.backbones.registry import get_backbone
    from hamkit.errors import BackboneNotFoundError, PluginError

    name = problems.settings[section][key]
    try:
        spec = get_backbone(name)
    except (BackboneNotFoundError, PluginError) as err:
        problems.add(section, key, str(err))
        return
    if task not in spec.tasks:
        problems.add(
            section,
            key,
            f"serves {', '.join(spec.tasks)}, not {task}; `hamkit backbones --task {task}` lists the ones that do",
        )


def _check_offline_backbone(problems: _Problems, section: str, task: str) -> None:
    """``offline_backbone``: empty, or a backbone for the task whose pretrained weights are installed."""
    name = problems.settings[section]["offline_backbone"]
    if not name:
        return
    found = len(problems.found)
    _check_backbone(problems, section, "offline_backbone", task)
    if len(problems.found) > found:
        return
    from hamkit.backbones.registry import get_backbone

    if not get_backbone(name).pretrained_offline:
        problems.add(
            section,
            "offline_backbone",
            f"must be a backbone whose pretrained weights are installed (no network needed): {installed_text(task)}"
            '; or "" to stop when the weights of backbone cannot be had',
        )


def installed_text(task: str) -> str:
    """The backbones for ``task`` whose pretrained weights are installed, in words for a message."""
    from hamkit.backbones.offline import offline_backbones

    names = offline_backbones()
    if not names:
        return "none"
    if task == "segmentation":
        encoders = ", ".join(f"tu-{name.removeprefix('timm:')}" for name in names)
        return f"an smp model with encoder {encoders}, e.g. smp:Unet:tu-{names[0].removeprefix('timm:')}"
    return ", ".join(names)


def _check_dedup(problems: _Problems) -> list[Any]:
    """Check ``[dedup]`` against the method registry: the names, and each method's threshold
    setting with the method's own check. Returns the classes of the methods in use."""
    from hamkit.dedup.methods import METHODS, method_names

    names = method_names()
    chosen = problems.settings["dedup"]["methods"]
    if not chosen or any(name not in names for name in chosen):
        problems.add("dedup", "methods", f"must be a non-empty list of {', '.join(names)}")
    checked: set[str] = set()
    for cls in METHODS.values():
        key = cls.run_threshold
        if key is None or key in checked or key not in problems.settings["dedup"]:
            continue
        checked.add(key)
        try:
            cls().check_threshold(problems.settings["dedup"][key])
        except HamkitError as err:
            problems.add("dedup", key, str(err).replace(f"threshold for method {cls.name!r} is", "must be"))
    return [METHODS[name] for name in chosen if name in METHODS]


def check_settings(settings: Any, data: str | os.PathLike[str] | None = None) -> None:
    """Raise one :class:`~hamkit.errors.HamkitError` listing every bad setting.

    Args:
        settings: As from :func:`~hamkit.pipeline.config.load_config`.
        data: The data folder given to the run (overrides ``data.root``).

    Raises:
        HamkitError: One line per problem, each naming the setting, where it was set and the fix.
    """
    problems = _Problems(settings)
    data_section = settings["data"]
    root = Path(data) if data else (Path(data_section["root"]) if data_section["root"] else None)
    if root is not None and not root.is_dir():
        what = "--data" if data else where_set(settings, "data", "root")
        problems.found.append(f"{what}: {root} is not a folder")
    elif data and data_section["root"] and Path(data).resolve() != Path(data_section["root"]).resolve():
        stale = [f"data.{key}" for key in ("labels", "masks") if data_section[key]]
        if stale:  # e.g. a run's own config.toml with another --data: its labels belong to its root
            problems.found.append(
                f"--data {data} replaces {where_set(settings, 'data', 'root')} = {data_section['root']!r}, but "
                f"{' and '.join(stale)} still name that run's files; drop --data to repeat the run, or set "
                f'{" and ".join(stale)} to "" to find them under --data'
            )
    missing_root = root is not None and not root.is_dir()
    for key in ("labels", "masks"):
        value = data_section[key]
        if value and not Path(value).exists():
            if missing_root and root is not None and Path(value).is_relative_to(root):
                continue  # inside the missing folder: one line about the folder says it
            problems.add("data", key, f"{value} does not exist")
    if root is None:
        problems.positive_int("data", "synthetic_lesions", 20)
        size = data_section["synthetic_image_size"]
        if len(size) != 2 or not all(isinstance(v, int) and v >= 32 for v in size):
            problems.add("data", "synthetic_image_size", "must be [width, height], each at least 32")

    methods = _check_dedup(problems)

    columns = data_section["group_by"]
    if not all(isinstance(c, str) and c.strip() for c in columns):
        problems.add("data", "group_by", 'must be a list of column names of the labels file, e.g. ["patient_id"]')
    if settings["split"]["hold_out_source"] and settings["split"]["fractions"][1] <= 0:
        problems.add("split", "fractions", "with hold_out_source the train and val fractions must both be above 0")
    fractions: Sequence[float] = settings["split"]["fractions"]
    if (
        len(fractions) != 3
        or not all(isinstance(f, (int, float)) and math.isfinite(f) and f >= 0 for f in fractions)
        or abs(sum(fractions) - 1) > 1e-6
        or fractions[0] <= 0
        or fractions[2] <= 0
    ):
        problems.add(
            "split", "fractions", "must be [train, val, test], finite, adding up to 1, with train and test above 0"
        )
    _check_model(problems, "classifier", "classification")
    _check_model(problems, "segmenter", "segmentation")
    _check_lesion_crop(problems)
    run = settings["run"]
    if run["num_workers"] < -1:
        problems.add("run", "num_workers", "must be -1 (automatic), 0 or more")
    device = run["device"]
    if device != "auto" and device.split(":")[0] not in ("cpu", "cuda", "mps"):
        problems.add("run", "device", "must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    if problems.found:  # the cheap checks first: they need no torch import
        raise HamkitError(_message(problems.found))
    if settings["classifier"]["enabled"]:
        _check_backbone(problems, "classifier", "backbone", "classification")
        _check_offline_backbone(problems, "classifier", "classification")
    if settings["segmenter"]["enabled"]:
        _check_backbone(problems, "segmenter", "backbone", "segmentation")
        _check_offline_backbone(problems, "segmenter", "segmentation")
    for key in sorted({key for cls in methods for key, param in cls.run_settings.items() if param == "backbone"}):
        _check_backbone(problems, "dedup", key, "classification")
    if device != "auto":
        from hamkit.engine.device import resolve_device

        try:
            resolve_device(device)
        except HamkitError as err:
            problems.add("run", "device", str(err))
    if problems.found:
        raise HamkitError(_message(problems.found))


def _message(found: list[str]) -> str:
    if len(found) == 1:
        return f"bad setting: {found[0]}"
    return f"{len(found)} bad settings:\n  " + "\n  ".join(found)


def check_masks(mask_dir: Path, image_ids: Sequence[str]) -> dict[str, Path]:
    """Check that ``mask_dir`` holds ``<image_id>_segmentation.png`` for every image, and return them.

    Returns:
        ``{image_id: mask file}`` for every image, found once for the whole run.

    Raises:
        HamkitError: Names how many images lack a mask, a few of them, and the fix.
    """
    from hamkit.data.images import find_masks

    if not mask_dir.is_dir():
        raise HamkitError(f"data.masks: {mask_dir} is not a folder")
    match = find_masks(mask_dir, image_ids)
    lacking = match.missing
    if lacking:
        raise HamkitError(
            f"{mask_dir}: {len(lacking)} of {len(image_ids)} images have no mask <image_id>_segmentation.png "
            f"(e.g. {', '.join(lacking[:3])}); point data.masks at the right folder, or set segmenter.enabled = false"
        )
    return dict(match.masks)
