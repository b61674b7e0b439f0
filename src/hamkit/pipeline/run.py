"""``run_pipeline``: data -> dedup -> leakage-free split -> audit -> classifier -> segmenter -> report.

Each step records a fingerprint of its inputs and settings under ``OUT/.hamkit/steps``; running
the same command again skips the steps whose fingerprint has not changed, and an interrupted
training continues from its last checkpoint.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import shlex
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hamkit._cpu import available_cpus
from hamkit._io import atomic_write_text
from hamkit.data.dataset import find_label_file, find_mask_dir
from hamkit.data.images import find_images, image_size_of
from hamkit.data.metadata import read_labels
from hamkit.errors import DataError, HamkitError
from hamkit.ham10000.layout import METADATA_CSV
from hamkit.pipeline.config import Settings, default_preset, load_config, to_toml
from hamkit.pipeline.fingerprints import StepState, files_fingerprint, fingerprint
from hamkit.pipeline.stages import STAGES, RunContext
from hamkit.pipeline.validate import check_masks, check_settings

__all__ = ["PipelineResult", "run_pipeline"]

RESOLUTION_SAMPLE = 16
"""Images whose pixel size is read (header only, spread over the data) to say what a run measured on."""


@dataclass
class PipelineResult:
    """What :func:`run_pipeline` produced.

    Attributes:
        out_dir: The run folder.
        report: The self-contained HTML report.
        steps: ``{step: "ran" | "skipped" | "resumed" | "disabled"}``.
        seconds: ``{step: wall seconds}``.
        summary: The numbers shown in the report.
    """

    out_dir: Path
    report: Path
    steps: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def _data_step(
    out: Path, config: dict[str, Any], data: str | os.PathLike[str] | None, result: PipelineResult
) -> tuple[Path, Path, Path | None]:
    section = config["data"]
    root_text = str(data) if data is not None else section["root"]
    if root_text:
        root = Path(root_text)
        if not root.is_dir():
            raise DataError(f"{root}: data folder not found")
        result.steps["data"] = "given"
    else:
        from hamkit.synthetic import make_synthetic

        root = out / "data"
        state = StepState(out, "data", fingerprint(section))
        if state.done(root / METADATA_CSV):
            result.steps["data"] = "skipped"
        else:
            state.start(root)
            width, height = section["synthetic_image_size"]
            make_synthetic(
                root,
                n_lesions=section["synthetic_lesions"],
                random_state=section["random_state"],
                image_size=(width, height),
                overwrite=True,
            )
            state.finish()
            result.steps["data"] = "ran"
    labels = Path(section["labels"]) if section["labels"] else find_label_file(root)
    if labels is None:
        raise DataError(f"{root}: no HAM10000_metadata.csv (or ISIC ground truth) found; set data.labels")
    masks = Path(section["masks"]) if section["masks"] else find_mask_dir(root)
    return root, labels, masks


def _record_data(settings: dict[str, Any], root: Path, labels: Path, masks: Path | None, synthetic: bool) -> None:
    """Write the data the run uses into its settings, so that ``OUT/config.toml`` repeats the run.

    A given folder is recorded with absolute paths (root, labels file, masks folder or ``""`` when
    it has none); the synthetic data keeps ``root = ""``: the same settings generate it again.
    """
    if synthetic:
        return
    section = settings["data"]
    section["root"] = str(root.resolve())
    section["labels"] = str(labels.resolve())
    section["masks"] = str(masks.resolve()) if masks is not None else ""


def _config_comments(preset: str | None, synthetic: bool, replaced: dict[str, _Replaced] | None = None) -> list[str]:
    """The comment lines at the top of ``OUT/config.toml``: what wrote it and how to repeat the run."""
    lines = [
        f"written by `{_command_line() or 'run_pipeline'}` (preset {preset or 'custom'}); every setting is "
        "written out, so",
        "`hamkit run --config this-file.toml --out NEW_FOLDER` repeats the run, and stops if a data path is gone",
    ]
    for name, what in (replaced or {}).items():
        lines.append(
            f"{name}.backbone: {what.backbone} was asked for, but its pretrained weights could not be had "
            f"({what.reason}); this run used {name}.offline_backbone"
        )
    if synthetic:
        lines.append(
            '[data] root = "": the synthetic data set, generated again from synthetic_lesions, '
            "synthetic_image_size and random_state"
        )
    return lines


def _resolution(paths: Sequence[Path], sample: int = RESOLUTION_SAMPLE) -> dict[str, Any]:
    """The pixel sizes of up to ``sample`` images spread evenly over ``paths`` (headers only).

    Returns:
        ``{"sampled": n, "sizes": {"600x450": count, ...}}``, most common size first; an
        unreadable image is left out (the steps that decode it say so).
    """
    step = max(1, len(paths) // max(1, sample))
    sizes: Counter[str] = Counter()
    for path in list(paths)[::step][:sample]:
        try:
            width, height = image_size_of(path)
        except DataError:
            continue
        sizes[f"{width}x{height}"] += 1
    return {"sampled": sum(sizes.values()), "sizes": dict(sizes.most_common())}


def _data_description(images: int, resolution: dict[str, Any], root: Path, synthetic: bool) -> str:
    """One line naming the images a run's numbers were measured on: count, pixel size, source."""
    sizes, sampled = resolution["sizes"], resolution["sampled"]
    if len(sizes) == 1:
        pixels = f"{next(iter(sizes))} px"
    elif sizes:
        pixels = "mixed sizes (" + ", ".join(f"{size} px: {n}" for size, n in sizes.items()) + f" of {sampled} read)"
    else:
        pixels = "unreadable size"
    if synthetic:
        return (
            f"synthetic data: {images} generated images of {pixels} (hamkit's synthetic set, not dermoscopic "
            "photographs); its scores say nothing about real lesions"
        )
    read = f"the size of {sampled} of them read" if len(sizes) == 1 else ""
    return f"{images} images of {pixels}{f' ({read})' if read else ''} from {root}"


def _crops_need_masks(settings: dict[str, Any], masks: Path | None, root: Path) -> None:
    """A classifier of lesion crops needs the run's segmenter, and the segmenter needs masks: a crop
    on data without masks is an error that names the fix, before the first step."""
    section = settings["classifier"]
    if masks is not None or not section["enabled"] or not section["lesion_crop"]:
        return
    source = settings.source("classifier", "lesion_crop") if isinstance(settings, Settings) else "your settings"
    raise HamkitError(
        f"classifier.lesion_crop = {section['lesion_crop']!r} ({source}) needs the run's segmenter to place the "
        f"crops, and {root} has no lesion masks to train it: set data.masks to the masks folder, or "
        "classifier.lesion_crop = 0 (--set classifier.lesion_crop=0)"
    )


@dataclass(frozen=True)
class _Replaced:
    """A network that starts from its ``offline_backbone``: the backbone asked for and why."""

    backbone: str
    reason: str


_TASKS = {"classifier": "classification", "segmenter": "segmentation"}
"""The task of each network section of the settings."""


def _settle_backbones(settings: dict[str, Any]) -> dict[str, _Replaced]:
    """Make sure each network's pretrained weights can be had before the first step.

    Weights installed with hamkit are ready; others are taken from the local download cache or
    downloaded into it now (:func:`~hamkit.backbones.registry.missing_pretrained`). Where they
    cannot be had, the section's ``offline_backbone`` (installed weights) takes the backbone's
    place in ``settings``; without one, the run stops here, naming the fixes.

    Returns:
        ``{section: what it replaced}`` for the networks that start from their offline backbone.

    Raises:
        WeightsError: Weights that cannot be had, and no ``offline_backbone``.
    """
    from hamkit.backbones.registry import missing_pretrained

    _dedup_weights(settings)
    replaced: dict[str, _Replaced] = {}
    for name in ("classifier", "segmenter"):
        section = settings[name]
        if not (section["enabled"] and section["pretrained"]):
            continue
        reason = missing_pretrained(section["backbone"], pretrained=section["pretrained"])
        if reason is None:
            continue
        if not section["offline_backbone"]:
            fix, task = "offline_backbone", _TASKS[name]
            raise _unavailable(settings, name, "backbone", reason, fix, task, " to use it instead")
        replaced[name] = _Replaced(section["backbone"], reason)
        section["backbone"] = section["offline_backbone"]
    return replaced


def _dedup_weights(settings: dict[str, Any]) -> None:
    """The pretrained weights of the dedup step's networks (the ``cnn`` method's backbone), ready
    before the first step or a one-line error naming the settings that fix it."""
    from hamkit.backbones.registry import missing_pretrained
    from hamkit.dedup.methods import METHODS

    section = settings["dedup"]
    if not section["pretrained"]:
        return
    keys = {
        key for name in section["methods"] for key, param in METHODS[name].run_settings.items() if param == "backbone"
    }
    for key in sorted(keys):
        reason = missing_pretrained(section[key])
        if reason is not None:
            raise _unavailable(settings, "dedup", key, reason, key, "classification", "")


def _unavailable(
    settings: dict[str, Any], section: str, key: str, reason: str, fix: str, task: str, purpose: str
) -> Exception:
    """The one-line error for ``section.key``'s pretrained weights that cannot be had: why, and
    the settings that fix it (``section.fix`` = a backbone with installed weights, or no weights)."""
    from hamkit.errors import WeightsError
    from hamkit.pipeline.validate import installed_text, where_set

    return WeightsError(
        f"{where_set(settings, section, key)} = {settings[section][key]!r}: its pretrained weights cannot be had "
        f"({reason}); set {section}.{fix} to a backbone whose weights are installed ({installed_text(task)})"
        f"{purpose}, or {section}.pretrained = false"
    )


def _say(settings: dict[str, Any], text: str) -> None:
    if settings["run"]["progress"]:
        print(text, file=sys.stderr, flush=True)


def _seconds_when_run(out: Path, result: PipelineResult) -> dict[str, float]:
    """Seconds of every step the last time it actually ran (a skipped step keeps its old time)."""
    file = out / ".hamkit" / "seconds.json"
    try:
        seconds = json.loads(file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        seconds = {}
    for step, status in result.steps.items():
        if status in ("ran", "resumed") and step in result.seconds:
            seconds[step] = result.seconds[step]
    atomic_write_text(file, json.dumps(seconds))
    return seconds


def _command_line() -> str:
    """The command as typed: ``hamkit ...`` for the CLI (also under ``python -m hamkit``)."""
    if not sys.argv or not sys.argv[0]:
        return ""
    program = Path(sys.argv[0]).name
    if program in ("__main__.py", "hamkit"):
        program = "hamkit"
    return shlex.join([program, *sys.argv[1:]])


def _run_info(
    settings: dict[str, Any], preset: str | None, replaced: dict[str, _Replaced] | None = None
) -> dict[str, Any]:
    import torch

    from hamkit.backbones.registry import describe_initial_weights
    from hamkit.engine.device import resolve_device
    from hamkit.pipeline.report import versions

    device = resolve_device(settings["run"]["device"])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {
        "started": datetime.now(UTC).astimezone().isoformat(timespec="seconds"),
        "command": _command_line(),
        "preset": preset or "custom",
        "device": f"{device.type} ({name}, {available_cpus()} CPUs, {torch.get_num_threads()} torch threads)",
        "versions": versions(),
        "pretrained": {
            name: bool(settings[name]["pretrained"])
            for name in ("classifier", "segmenter")
            if settings[name]["enabled"]
        },
        "initial_weights": {
            name: f"{settings[name]['backbone']}: "
            + describe_initial_weights(settings[name]["backbone"], pretrained=settings[name]["pretrained"])
            + _instead(replaced, name)
            for name in ("classifier", "segmenter")
            if settings[name]["enabled"]
        },
    }


def _instead(replaced: dict[str, _Replaced] | None, name: str) -> str:
    what = (replaced or {}).get(name)
    return f", instead of {what.backbone}, whose pretrained weights could not be had ({what.reason})" if what else ""


def run_pipeline(
    out_dir: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | None = None,
    config: dict[str, Any] | str | os.PathLike[str] | None = None,
    preset: str | None = None,
    progress: bool | None = None,
) -> PipelineResult:
    """Run the whole job and write its report.

    Args:
        out_dir: The run folder (created; rerunning with the same folder resumes).
        data: A HAM10000-layout folder; ``None`` = ``config["data"]["root"]``, and when that is
            empty too, the synthetic dataset generated into ``OUT/data``.
        config: Settings (a dict as from :func:`~hamkit.pipeline.config.load_config`, or a TOML
            path); ``None`` = the preset's defaults.
        preset: ``"demo"``, ``"cpu"``, ``"report"`` or ``"gpu"``; its defaults are used when
            ``config`` is not a dict, and its name is recorded in the report. ``None``: ``cpu``
            when there is a data folder, ``demo`` for the synthetic data.
        progress: Override ``run.progress``.

    Returns:
        The :class:`PipelineResult`.

    Raises:
        DataError: Unusable data.
        HamkitError: Leakage found by the audit (some duplicate pair crosses splits), or bad
            settings (all of them checked before the first step).
    """
    if isinstance(config, dict):
        settings = copy.deepcopy(config)  # the run records its data paths in its own copy
    else:
        preset = preset or default_preset(data, None if config is None else load_config(config, "demo"))
        settings = load_config(config, preset)
    if progress is not None:
        settings["run"]["progress"] = progress
    check_settings(settings, data)
    started = time.perf_counter()
    replaced = _settle_backbones(settings)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = PipelineResult(out_dir=out, report=out / "report.html")
    result.summary["run"] = _run_info(settings, preset, replaced)
    result.summary["run"]["offline_backbone_used"] = sorted(replaced)
    for name in replaced:
        _say(settings, f"{name} starts from {result.summary['run']['initial_weights'][name]}")
    total = len(STAGES) + 1
    _say(settings, f"[1/{total}] data")
    clock = time.perf_counter()
    root, labels_csv, masks = _data_step(out, settings, data, result)
    _crops_need_masks(settings, masks, root)
    synthetic = result.steps["data"] != "given"
    _record_data(settings, root, labels_csv, masks, synthetic)
    atomic_write_text(out / "config.toml", to_toml(settings, comments=_config_comments(preset, synthetic, replaced)))
    result.seconds["data"] = time.perf_counter() - clock

    present = find_images(root)
    section = settings["data"]
    records_all = read_labels(labels_csv, label_column=section["label_column"] or None, group_by=section["group_by"])
    records = [r for r in records_all if r.image_id in present]
    if not records:
        raise DataError(f"none of the {len(records_all)} images of {labels_csv} are under {root}")
    mask_files = (
        check_masks(masks, [r.image_id for r in records])
        if masks is not None and settings["segmenter"]["enabled"]
        else {}
    )
    data_key = fingerprint(
        files_fingerprint([present[r.image_id] for r in records]),
        files_fingerprint([labels_csv]),
        *(
            [section["label_column"], section["image_column"], section["group_by"]]
            if section["label_column"] or section["image_column"] or section["group_by"]
            else []
        ),
    )
    resolution = _resolution([present[r.image_id] for r in records])
    result.summary["data"] = {
        "root": str(root),
        "labels": str(labels_csv),
        "masks": str(masks) if masks else None,
        "synthetic": synthetic,
        "description": _data_description(len(records), resolution, root, synthetic),
        "images": len(records),
        "resolution": resolution,
        "lesions": len({r.group for r in records}),
        "listed_but_missing": len(records_all) - len(records),
        "unlabelled_images": len(set(present) - {r.image_id for r in records_all}),
    }
    context = RunContext(
        out=out,
        settings=settings,
        root=root,
        masks=masks,
        records=records,
        present=present,
        data_key=data_key,
        result=result,
        labels_file=labels_csv,
        mask_files=mask_files,
    )
    for number, (name, stage) in enumerate(STAGES, start=2):
        label = f"[{number}/{total}] {name}"
        _say(settings, label)
        context.label = label
        clock = time.perf_counter()
        if name == "report":
            result.summary["run"]["step_seconds"] = _seconds_when_run(out, result)
        stage(context)
        result.seconds[name] = time.perf_counter() - clock
    result.seconds["total"] = time.perf_counter() - started
    if result.steps.get("report") == "skipped":  # every step skipped: keep the summary of the run that made it
        return result
    atomic_write_text(
        out / "summary.json",
        json.dumps(_summary_file(result), indent=1, default=str) + "\n",
    )
    return result


def _summary_file(result: PipelineResult) -> dict[str, Any]:
    """What ``summary.json`` holds: first the data the numbers were measured on (with a banner
    when that is the synthetic set), then steps, seconds and the report's numbers."""
    data = result.summary.get("data", {})
    head: dict[str, Any] = {}
    if data.get("synthetic"):
        head["banner"] = "SYNTHETIC DATA: " + data["description"]
    head["measured_on"] = data.get("description", "")
    return {**head, "steps": result.steps, "seconds": result.seconds, "summary": result.summary}
