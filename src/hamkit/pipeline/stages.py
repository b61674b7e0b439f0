"""The steps of ``hamkit run`` after the data step; each skips itself when nothing changed."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hamkit._io import atomic_write_text, csv_text
from hamkit.data.cache import file_identity, shared_decode_cache
from hamkit.data.metadata import ImageRecord, classes_of
from hamkit.errors import DataError, HamkitError
from hamkit.pipeline.fingerprints import StepState, files_fingerprint, fingerprint

if TYPE_CHECKING:
    from hamkit.data.dataset import SkinDataset
    from hamkit.engine.recipe import TrainConfig

__all__ = ["STAGES", "RunContext"]


@dataclass
class RunContext:
    """What the stages share: settings, the data found once, and what earlier stages produced.

    The data step finds the images, reads the labels and matches the masks once; every later step
    takes its images from here (:meth:`dataset`), never from the folder again, so a labels file or
    a masks folder outside the data folder reaches every step, and all steps see the same images.
    """

    out: Path
    settings: dict[str, Any]
    root: Path
    masks: Path | None
    records: list[ImageRecord]
    present: dict[str, Path]
    data_key: str
    result: Any  # PipelineResult
    label: str = ""  # the running step, e.g. "[6/7] classifier"
    labels_file: Path | None = None
    mask_files: dict[str, Path] = field(default_factory=dict)
    _split: tuple[Any, dict[str, str]] | None = field(default=None, repr=False)

    def split_of(self) -> dict[str, str]:
        """``{image_id: split}`` of the run's ``split.csv``, read once per version of the file (the
        audit step may write a new split)."""
        from hamkit.data.splits import read_split_csv

        identity = file_identity(self.split_csv)
        if self._split is None or self._split[0] != identity:
            self._split = (identity, read_split_csv(self.split_csv))
        return self._split[1]

    def dataset(self, split: str, *, masks: bool = False) -> SkinDataset:
        """The run's images of one split as a :class:`~hamkit.data.dataset.SkinDataset` (in the
        labels file's order), from the records, image files and masks the data step found.

        The estimators set the image size and normalisation of their network on it (and the run's
        :attr:`decode_cache`, given to them): a dataset made here decodes nothing by itself.

        Raises:
            DataError: The split has no images, or (``masks=True``) the run has no masks.
        """
        from hamkit.data.dataset import Sample, SkinDataset

        if masks and not self.mask_files:
            raise DataError("this run has no masks (data.masks) for the segmenter")
        assignment = self.split_of()
        classes = classes_of(self.records)
        index = {name: i for i, name in enumerate(classes)}
        samples = [
            Sample(
                r.image_id,
                self.present[r.image_id],
                index[r.dx],
                r.group,
                self.mask_files.get(r.image_id) if masks else None,
            )
            for r in self.records
            if assignment.get(r.image_id) == split
        ]
        if not samples:
            raise DataError(f"{self.split_csv}: no images in split {split!r}")
        data = SkinDataset(samples, with_masks=masks, classes=classes)
        data.root = self.root
        data.label_file = self.labels_file
        return data

    def classifier_dataset(self, split: str) -> SkinDataset:
        """:meth:`dataset` as the classifier takes it: with ``classifier.lesion_crop``, each image's
        lesion-centred crop (:func:`lesion_crops_of`); else the whole images."""
        data = self.dataset(split)
        crops = lesion_crops_of(self)
        return data if crops is None else data.with_crops([crops[i] for i in data.image_ids])

    @property
    def split_csv(self) -> Path:
        return self.out / "split.csv"

    @property
    def decode_cache(self) -> Path:
        """The decode cache of the training and evaluation steps: ``decoded/`` under hamkit's cache
        folder (:func:`hamkit._cache.cache_root`), shared by every run. Its entries are keyed by the
        image size and the identity (resolved path, size, modification time) of every file, so runs
        over other folders or sizes never share an entry, a changed file gets a new one, and a run in
        a new folder over the same data decodes nothing again. Entries are written to temporary files
        and renamed, so two runs building one entry at once cannot leave it half-written."""
        return shared_decode_cache()

    @property
    def progress(self) -> bool:
        """Progress bars: asked for, and stderr is a terminal (logs get one line per step and epoch)."""
        return bool(self.settings["run"]["progress"]) and sys.stderr.isatty()

    @property
    def training_progress(self) -> bool | str:
        """What the estimators' ``fit(progress=...)`` gets: the step's label, or ``False``."""
        return (self.label or True) if self.settings["run"]["progress"] else False

    @property
    def workers(self) -> int | None:
        value = self.settings["run"]["num_workers"]
        return None if value < 0 else int(value)

    def key(self, *parts: Any) -> str:
        return fingerprint(self.data_key, *parts)

    def mark(self, step: str, status: str) -> None:
        self.result.steps[step] = status


def _deduplicators(ctx: RunContext) -> list[Any]:
    """The configured Deduplicators, made once per run: the dedup and audit steps share them, so
    the audit (repeated after each re-split) reuses the images the dedup step decoded and, for
    ``verified``, its candidate search and verifications (a round aligns only new candidates)."""
    made: list[Any] | None = ctx.__dict__.get("_deduplicators")
    if made is None:
        made = ctx.__dict__["_deduplicators"] = _make_deduplicators(ctx)
    return made


def _make_deduplicators(ctx: RunContext) -> list[Any]:
    """One Deduplicator per name in ``dedup.methods``, each method built from the registry with
    the ``[dedup]`` settings it declares (:attr:`~hamkit.dedup.methods.DedupMethod.run_threshold`,
    :attr:`~hamkit.dedup.methods.DedupMethod.run_settings`) and the run's device."""
    from hamkit.dedup.deduplicator import Deduplicator
    from hamkit.dedup.methods import get_method

    section = ctx.settings["dedup"]
    made = []
    for name in section["methods"]:
        method = get_method(name)
        values = {param: section[key] for key, param in method.run_settings.items()}
        if "device" in method.get_params(deep=False):
            values["device"] = ctx.settings["run"]["device"]
        method.set_params(**values)
        made.append(
            Deduplicator(
                method,
                threshold=section[method.run_threshold] if method.run_threshold else None,
                num_workers=ctx.workers,
                progress=ctx.progress,
                cache_dir=ctx.out / "cache" / "embeddings",
            )
        )
    return made


def dedup_stage(ctx: RunContext) -> None:
    """Exact and near duplicates over all images; each method's groups are saved and merged."""
    from hamkit.dedup.review import contact_sheet, review_html

    folder = ctx.out / "dedup"
    state = StepState(ctx.out, "dedup", ctx.key(ctx.settings["dedup"]))
    labels_file = folder / "merged_groups.json"
    if state.done(labels_file):
        ctx.mark("dedup", "skipped")
    else:
        state.start(folder)
        paths = [ctx.present[r.image_id] for r in ctx.records]
        merged: dict[str, dict[str, str | None]] = {}
        counts = {}
        lesions = {r.image_id: r.lesion_id for r in ctx.records if r.lesion_id}
        diagnoses = {r.image_id: r.dx for r in ctx.records if r.dx}
        for dedup in _deduplicators(ctx):
            found = dedup.find(paths)
            out = folder / found.method
            found.save(out)
            contact_sheet(found, out / "review.png", max_pairs=12, thumb=128)
            review_html(found, out / "review.html", lesions=lesions, diagnoses=diagnoses)
            merged[found.method] = {p.stem: label for p, label in zip(found.paths, found.group_labels(), strict=True)}
            counts[found.method] = {**found.counts, "threshold": found.threshold, "summary": found.summary()}
            # the labels the run has: diagnoses that differ within a pair, pairs across lesion ids, calibration
            found.save_conflicts(out / "conflicts.csv", diagnoses)
            counts[found.method]["label_conflicts"] = len(found.conflicts(diagnoses))
            if lesions:
                found.save_suspects(out / "suspect_lesion_ids.csv", lesions, diagnoses)
                counts[found.method]["suspect_lesion_ids"] = len(found.suspect_lesion_ids(lesions))
                if len(found.pairs) or found.candidates is not None:
                    calibration = dedup.calibrate(found, lesions)
                    calibration.to_csv(out / "calibration.csv")
                    calibration.plot(out / "calibration.png")
                    counts[found.method]["calibration"] = {
                        "suggested_threshold": calibration.suggested,
                        "reason": calibration.reason,
                    }
        atomic_write_text(labels_file, json.dumps(merged))
        state.finish(counts=counts)
        ctx.mark("dedup", "ran")
    ctx.result.summary["dedup"] = state.info().get("counts", {})


def _dedup_labels(ctx: RunContext) -> list[list[str | None]]:
    merged = json.loads((ctx.out / "dedup" / "merged_groups.json").read_text())
    labels = [[labels.get(r.image_id) for r in ctx.records] for labels in merged.values()]
    fixes = _audit_fixes(ctx)
    if fixes:
        labels.append(_pair_groups([r.image_id for r in ctx.records], fixes))
    return labels


def _audit_fixes_file(ctx: RunContext) -> Path:
    return ctx.out / "audit" / "added_pairs.json"


def _audit_fixes(ctx: RunContext) -> list[list[str]]:
    """Pairs that an earlier audit found across the splits (``[[image_id, image_id], ...]``)."""
    file = _audit_fixes_file(ctx)
    return json.loads(file.read_text()) if file.is_file() else []


def _pair_groups(image_ids: list[str], pairs: list[list[str]]) -> list[str | None]:
    """One group label per image joining the images of ``pairs`` (connected components, as
    :func:`hamkit.data.splits.merge_groups` finds them); ``None`` for images in no pair."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    index = {image_id: k for k, image_id in enumerate(image_ids)}
    touched = {index[i] for pair in pairs for i in pair if i in index}
    edges = np.array([(index[a], index[b]) for a, b in pairs if a in index and b in index], dtype=np.int64)
    edges = edges.reshape(-1, 2)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(image_ids),) * 2)
    _, labels = connected_components(graph, directed=False)
    return [f"audit:{labels[k]}" if k in touched else None for k in range(len(image_ids))]


def _split_key(ctx: RunContext) -> str:
    dedup_key = files_fingerprint([ctx.out / "dedup" / "merged_groups.json"])
    return ctx.key(ctx.settings["split"], dedup_key, _audit_fixes(ctx))


def _make_split(ctx: RunContext) -> Any:
    from hamkit.data.splits import split_dataset

    section = ctx.settings["split"]
    return split_dataset(
        ctx.records,
        section["fractions"],
        random_state=section["random_state"],
        extra_groups=_dedup_labels(ctx),
        hold_out_source=section["hold_out_source"] or None,
    )


def split_stage(ctx: RunContext) -> None:
    """Train/val/test grouped by lesion AND duplicate group, stratified by class."""
    state = StepState(ctx.out, "split", _split_key(ctx))
    split = _make_split(ctx)
    if state.done(ctx.split_csv):
        ctx.mark("split", "skipped")
    else:
        state.start(ctx.split_csv)
        split.save(ctx.split_csv)
        state.finish()
        ctx.mark("split", "ran")
    _split_summary(ctx, split)


def _split_summary(ctx: RunContext, split: Any) -> None:
    ctx.result.summary["split"] = split.summary()
    ctx.result.summary["split_table"] = split.format_table()


AUDIT_ROUNDS = 3
"""Times the audit may add the pairs it finds to the groups and redo the split before it gives up."""


def _audit_once(ctx: RunContext) -> tuple[dict[str, dict[str, int]], list[list[str]], list[Any]]:
    leaks, crossing, audits = {}, [], []
    for dedup in _deduplicators(ctx):
        audit = dedup.audit(ctx.split_csv, ctx.root)
        name = dedup.method_.name
        audit.save(ctx.out / "audit" / name)
        leaks[name] = {k: len(v.pairs) for k, v in audit.crossings.items()}
        for cross in audit.crossings.values():
            crossing += [
                [cross.paths_a[i].stem, cross.paths_b[j].stem]
                for i, j in zip(cross.pairs.i, cross.pairs.j, strict=True)
            ]
        audits.append((name, audit))
    return leaks, crossing, audits


def audit_stage(ctx: RunContext) -> None:
    """Search every pair of splits again for duplicates.

    A search between two splits can find pairs that the search over all images did not propose
    (each image proposes only its nearest candidates). Such pairs join the duplicate groups, the
    split is redone and audited again, up to :data:`AUDIT_ROUNDS` times; a pair that still
    crosses then stops the run.
    """
    state = StepState(ctx.out, "audit", ctx.key(ctx.settings["dedup"], files_fingerprint([ctx.split_csv])))
    if state.done(ctx.out / "audit"):
        ctx.__dict__.pop("_deduplicators", None)
        ctx.mark("audit", "skipped")
    else:
        state.start()  # keeps added_pairs.json: pairs found before stay grouped
        added = _audit_fixes(ctx)
        rounds = 0
        while True:
            leaks, crossing, audits = _audit_once(ctx)
            if not crossing:
                break
            rounds += 1
            if rounds > AUDIT_ROUNDS:
                method, audit = next((m, a) for m, a in audits if a.leaks)
                raise HamkitError(
                    f"leakage: {audit.leaks} {method} duplicate pair(s) still cross the splits of {ctx.split_csv} "
                    f"after {AUDIT_ROUNDS} re-splits ({audit.summary().splitlines()[-1]}); see "
                    f"{ctx.out / 'audit' / method / 'audit.csv'}"
                )
            added += crossing
            atomic_write_text(_audit_fixes_file(ctx), json.dumps(added))
            split = _make_split(ctx)  # with the new pairs as groups
            split.save(ctx.split_csv)
            StepState(ctx.out, "split", _split_key(ctx)).finish()
            _split_summary(ctx, split)
        ctx.__dict__.pop("_deduplicators", None)  # free the decoded images before training
        final = StepState(ctx.out, "audit", ctx.key(ctx.settings["dedup"], files_fingerprint([ctx.split_csv])))
        final.finish(leaks=leaks, added_pairs=len(added), resplits=rounds)
        ctx.mark("audit", "ran")
    info = StepState(ctx.out, "audit", ctx.key(ctx.settings["dedup"], files_fingerprint([ctx.split_csv]))).info()
    ctx.result.summary["audit"] = info.get("leaks", {})
    ctx.result.summary["audit_added_pairs"] = info.get("added_pairs", 0)


def lesion_crops_of(ctx: RunContext) -> dict[str, tuple[float, float, float, float]] | None:
    """With ``classifier.lesion_crop``: the crop of every image of the split, placed by the masks of
    the run's segmenter (:func:`hamkit.data.crops.lesion_crops`), computed once per run and written
    to ``classifier/lesion_crops.csv``; ``None`` for whole images."""
    margin = ctx.settings["classifier"]["lesion_crop"]
    if not margin:
        return None
    made: dict[str, tuple[float, float, float, float]] | None = ctx.__dict__.get("_lesion_crops")
    if made is not None:
        return made
    from hamkit.data.crops import lesion_crops
    from hamkit.segment import LesionSegmenter

    model = _segmenter_model(ctx)
    if model is None:
        raise HamkitError(
            f"classifier.lesion_crop = {margin!r} needs the run's segmenter, which has no model in "
            f"{ctx.out / 'segmenter'}; set segmenter.enabled = true, or classifier.lesion_crop = 0"
        )
    segmenter = LesionSegmenter.load(model, device=ctx.settings["run"]["device"])
    made = {}
    for split in ("train", "val", "test"):
        data = ctx.dataset(split).with_options(cache=ctx.decode_cache)
        masks = segmenter.segment(data, batch_size=64, num_workers=ctx.workers or 0).masks
        crops = lesion_crops(masks, margin=margin).tolist()
        made.update({image_id: (c[0], c[1], c[2], c[3]) for image_id, c in zip(data.image_ids, crops, strict=True)})
    rows = ([image_id, *(f"{v:.6f}" for v in crop)] for image_id, crop in made.items())
    folder = ctx.out / "classifier"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "lesion_crops.csv", csv_text(["image_id", "left", "top", "right", "bottom"], rows))
    ctx.__dict__["_lesion_crops"] = made
    return made


def _segmenter_model(ctx: RunContext) -> Path | None:
    """The run's saved segmenter (``segmenter/model``), if its step finished."""
    model = ctx.out / "segmenter" / "model"
    return model if (model / "model.safetensors").is_file() else None


def _train_state(ctx: RunContext, name: str, section: dict[str, Any], *depends: Path) -> tuple[StepState, Path, bool]:
    folder = ctx.out / name
    # offline_backbone is not a setting of the network trained: backbone already names the one used
    used = {key: value for key, value in section.items() if key != "offline_backbone"}
    state = StepState(ctx.out, name, ctx.key(used, files_fingerprint([ctx.split_csv, *depends])))
    resume = state.started_with_same_key() and (folder / "last").is_dir()
    if not resume and folder.exists() and not state.done(folder / "model"):
        shutil.rmtree(folder)  # a run with other settings: start over
    return state, folder, resume


def _prune_checkpoints(folder: Path) -> None:
    """A finished step needs neither ``last/`` (for resuming) nor ``best/`` (``model/`` holds the same weights)."""
    for name in ("last", "best"):
        shutil.rmtree(folder / name, ignore_errors=True)


def classifier_stage(ctx: RunContext) -> None:
    """Train the classifier (resuming an interrupted run) and evaluate it on the test split."""
    from hamkit.classify import LesionClassifier
    from hamkit.figures.curves import plot_history
    from hamkit.pipeline.scoring import evaluate_classifier

    section = ctx.settings["classifier"]
    if not section["enabled"]:
        ctx.mark("classifier", "disabled")
        return
    segmenter = _segmenter_model(ctx) if section["lesion_crop"] else None
    depends = [segmenter / "model.safetensors"] if segmenter is not None else []
    state, folder, resume = _train_state(ctx, "classifier", section, *depends)
    ctx.result.summary["run"]["classifier_input"] = (
        f"the square crop around each lesion, {section['lesion_crop']:g} times its longer side, placed by the "
        "run's segmenter (classifier/lesion_crops.csv)"
        if section["lesion_crop"]
        else "whole images"
    )
    if state.done(folder / "model", folder / "test_report.json"):
        ctx.mark("classifier", "skipped")
    else:
        state.start()
        model = LesionClassifier(
            section["backbone"],
            image_size=section["image_size"],
            pretrained=section["pretrained"],
            recipe=_recipe(ctx, "classifier", section),
            lesion_crop=section["lesion_crop"],
            device=ctx.settings["run"]["device"],
        )
        model.fit(
            ctx.classifier_dataset("train"),
            ctx.classifier_dataset("val"),
            split_csv=ctx.split_csv,
            cache=ctx.decode_cache,
            out_dir=folder,
            resume=resume,
        )
        evaluate_classifier(ctx, model, folder)  # calibrates on val first
        model.save(folder / "model")
        plot_history(
            model.history_,
            folder / "training_curves.png",
            title=f"Classifier ({section['backbone']})",
            best_epoch=model.best_epoch_,
        )
        _prune_checkpoints(folder)
        state.finish(best_epoch=model.best_epoch_)
        ctx.mark("classifier", "resumed" if resume else "ran")
    ctx.result.summary["classifier"] = json.loads((folder / "test_report.json").read_text())


def _recipe(ctx: RunContext, kind: str, section: dict[str, Any]) -> TrainConfig:
    """The training recipe of a ``[classifier]`` or ``[segmenter]`` section: every training key the
    section holds (:data:`hamkit.engine.settings.RUN_SECTION_KEYS`), so none is left out."""
    from hamkit.engine.recipe import TrainConfig
    from hamkit.engine.settings import RUN_SECTION_KEYS

    return TrainConfig(
        **{key: section[key] for key in RUN_SECTION_KEYS[kind]},
        monitor=None,
        num_workers=ctx.workers,
        progress=ctx.training_progress,
    )


def segmenter_stage(ctx: RunContext) -> None:
    """Train the segmenter (multi-task when configured) and evaluate it on the test split."""
    from hamkit.figures.curves import plot_history
    from hamkit.pipeline.scoring import evaluate_segmenter
    from hamkit.segment import LesionSegmenter

    section = ctx.settings["segmenter"]
    if not section["enabled"] or ctx.masks is None:
        ctx.mark("segmenter", "disabled" if not section["enabled"] else "no masks")
        return
    state, folder, resume = _train_state(ctx, "segmenter", section)
    if state.done(folder / "model", folder / "test_report.json", folder / "test_evaluation.json"):
        ctx.mark("segmenter", "skipped")
    else:
        state.start()
        model = LesionSegmenter(
            section["backbone"],
            image_size=section["image_size"],
            pretrained=section["pretrained"],
            classify=section["classify"],
            recipe=_recipe(ctx, "segmenter", section),
            device=ctx.settings["run"]["device"],
        )
        model.fit(
            ctx.dataset("train", masks=True),
            ctx.dataset("val", masks=True),
            split_csv=ctx.split_csv,
            cache=ctx.decode_cache,
            out_dir=folder,
            resume=resume,
        )
        report = model.evaluate(ctx.dataset("test", masks=True))
        report.save(folder / "test_report.json")
        report.save_csv(folder / "per_image.csv")
        extra = evaluate_segmenter(ctx, model, folder, report)
        model.save(folder / "model")  # with the test numbers of evaluate_segmenter in its model card
        atomic_write_text(folder / "test_evaluation.json", json.dumps(extra, indent=2) + "\n")
        plot_history(
            model.history_,
            folder / "training_curves.png",
            title=f"Segmenter ({section['backbone']})",
            best_epoch=model.best_epoch_,
        )
        if report.classification is not None:
            report.classification.plot_confusion_matrix(
                folder / "confusion_matrix.png", title="Segmenter head: confusion matrix"
            )
        _prune_checkpoints(folder)
        state.finish(best_epoch=model.best_epoch_)
        ctx.mark("segmenter", "resumed" if resume else "ran")
    ctx.result.summary["segmenter"] = json.loads((folder / "test_report.json").read_text())
    extra_file = folder / "test_evaluation.json"
    if extra_file.is_file():
        ctx.result.summary["segmenter"].update(json.loads(extra_file.read_text()))


def report_stage(ctx: RunContext) -> None:
    """The self-contained HTML report and its PNGs."""
    from hamkit.pipeline.report import write_report

    numbers = {k: v for k, v in ctx.result.summary.items() if k != "run"}
    settings = {k: v for k, v in ctx.settings.items() if k != "run"}  # progress bars do not change the report
    state = StepState(ctx.out, "report", ctx.key(settings, json.dumps(numbers, sort_keys=True, default=str)))
    if state.done(ctx.out / "report.html", ctx.out / "summary.json"):
        ctx.mark("report", "skipped")  # nothing changed: the report (and its timings) describe the run that made it
        return
    state.start()
    write_report(ctx)
    ctx.mark("report", "ran")
    state.finish()


STAGES: list[tuple[str, Callable[[RunContext], None]]] = [
    ("dedup", dedup_stage),
    ("split", split_stage),
    ("audit", audit_stage),
    ("segmenter", segmenter_stage),  # before the classifier: its masks place the classifier's lesion crops
    ("classifier", classifier_stage),
    ("report", report_stage),
]
