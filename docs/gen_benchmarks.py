"""Write the tables of the benchmark pages that come from results files, so page and file agree.

Each generated block sits between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->`` in
docs/benchmarks.md (or another page of :data:`PAGES`) and is rendered from ``benchmarks/results/``:

* ``full_run_cpu``: ``full_run_cpu.json`` (``benchmarks/full_run.py``: ``hamkit run`` on the
  10,015 HAM10000 images with the ``cpu`` preset);
* ``full_run_cpu_lesion_crop``: ``full_run_cpu_lesion_crop.json`` (the same, with the classifier on
  lesion-centred crops);
* ``cpu_preset_sizing``: ``cpu_preset_sizing.jsonl`` (``benchmarks/cpu_preset.py`` rows);
* ``pretrained_offline``: ``pretrained_offline.json`` (``benchmarks/pretrained_offline.py``);
* ``evaluation_real``: ``evaluation_real.json`` (``benchmarks/evaluation_real.py``: operating
  points and subgroups of the full run's classifier on its test split);
* ``operating_points``: ``operating_points.json`` (``benchmarks/operating_points.py``: melanoma
  sensitivity targets on the full run's classifier);
* ``cross_audit``: ``cross_audit.json`` (``benchmarks/cross_audit.py``: the cross-data-set audit
  of an ISIC-2019-like folder built from the 10,015 HAM10000 images);
* ``same_lesion``: ``same_lesion.json`` (``benchmarks/same_lesion.py``: same-lesion pairs,
  planted copies and pairs across lesions per dedup method on HAM10000 images);
* ``dedup_scale`` (in docs/benchmarks_dedup.md): ``dedup_scale.json`` and ``dedup_scale_extra.json``
  (``benchmarks/dedup_scale.py``);
* ``dedup_scale_real`` (in docs/benchmarks_dedup.md): the ``real`` entry of ``dedup_scale_extra.json``
  (``benchmarks/dedup_scale.py --real``: one process against ``--backend ray`` on real images);
* ``dedup_scale_whole`` (in docs/benchmarks_dedup.md): the ``whole`` entry of ``dedup_scale_extra.json``
  (``benchmarks/dedup_scale.py --whole``: a whole ``hamkit dedup`` with the default settings).
* ``dedup_scale_limited`` (in docs/benchmarks_dedup.md): the ``whole_limited`` entry of the same file
  (``--whole N --memory-limit MIB``: the same command in a memory cgroup with a hard limit).

    python docs/gen_benchmarks.py           # rewrite the blocks
    python docs/gen_benchmarks.py --check   # exit status 1 if a block is out of date

tests/docs/test_docs.py checks that the page is what this script writes.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "benchmarks.md"
PAGES = (
    PAGE,
    ROOT / "docs" / "benchmarks_dedup.md",
    ROOT / "docs" / "benchmarks_dedup_search.md",
    ROOT / "docs" / "benchmarks_segmenter.md",
)
RESULTS = ROOT / "benchmarks" / "results"


def _num(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(value: Any, interval: Any) -> str:
    if not interval or interval[0] is None:
        return _num(value)
    return f"{_num(value)} [{_num(interval[0])}-{_num(interval[1])}]"


def _command(text: str) -> str:
    """The command as a reader would type it: the data folder by its name, the output folder ``run``."""
    text = re.sub(r"\S*/(ham10000-200px|ham10000-sample)\b", r"\1", text)
    text = re.sub(r"\S*/(benchmarks/\w+\.py)", r"\1", text)
    text = re.sub(r"\S*/(benchmarks/results/\w+\.json)", r"\1", text)
    if " --note " in text:  # the note is printed beside the table instead
        words = shlex.split(text)
        at = words.index("--note")
        text = shlex.join(words[:at] + words[at + 2 :])
    text = re.sub(r"--crop-masks (?!truth\b)\S+", "--crop-masks SEGMENTER", text)  # a saved segmenter's folder
    text = re.sub(r"--run \S+", "--run run", text)
    text = re.sub(r"--work \S+", "--work work", text)
    return re.sub(r"--out \S+", "--out run", text)


def _provenance(row: dict[str, Any]) -> str:
    return (
        f"Measured {row['date'][:10]} on {row['machine']}, torch {row['torch']}, hamkit commit "
        f"`{row['commit'][:12]}`; command: `{_command(row.get('hamkit_command') or row['command'])}`."
    )


def full_run_cpu(name: str = "full_run_cpu.json") -> str:
    """The whole ``hamkit run`` with the cpu preset: steps, memory, both models' test metrics."""
    row = json.loads((RESULTS / name).read_text())
    steps = {k: v for k, v in (row["step_seconds"] or {}).items() if k != "total"}
    lines = [_provenance(row), "", "| step | seconds |", "|---|---|"]
    lines += [f"| {name} | {seconds:.0f} |" for name, seconds in steps.items()]
    lines.append(f"| **whole run (wall clock)** | **{row['wall_s']:.0f} = {row['wall_s'] / 60:.1f} min** |")
    lines += [
        "",
        f"Peak memory (summed PSS of the process and its workers, sampled every second by the script, "
        f"{row['memory_samples']} samples): **{row['peak_pss_gib']:.2f} GiB**. "
        + (
            "Decoded images and masks the run added to hamkit's cache: "
            f"{row['decode_cache_bytes_added'] / 2**20:,.0f} MiB. "
            if row.get("decode_cache_bytes_added")
            else ""
        )
        + "Starting weights: "
        + "; ".join(f"{k}: {v}" for k, v in (row.get("initial_weights") or {}).items())
        + ".",
        "",
        f"Test split: {row['test_images']} images of {row['test_lesions']} lesions; 95 % intervals "
        "resample lesions (1,000 resamples).",
        "",
        "| classifier on the test split | accuracy | balanced accuracy | macro F1 | melanoma sensitivity |",
        "|---|---|---|---|---|",
    ]
    names = ("accuracy", "balanced_accuracy", "macro_f1", "melanoma_sensitivity")
    for label, key in (
        ("raw argmax of the network", "classifier_argmax"),
        ("the saved model's decision", "classifier_rule"),
    ):
        cells = " | ".join(_ci(row[key][n], row[f"{key}_intervals"][n]) for n in names)
        lines.append(f"| {label} | {cells} |")
    calibration = row.get("classifier_calibration") or {}
    decision = row.get("classifier_decision") or {}
    lines += [
        "",
        f"Macro ROC AUC {_num(row.get('macro_roc_auc'))}. Decision rule: {decision.get('rule', 'n/a')} "
        f"(alpha = {_num(decision.get('alpha'), 2)}). "
        f"Temperature: fitted {_num(calibration.get('temperature_fitted'), 2)}, "
        f"applied: {calibration.get('temperature_applied')}; test ECE {_num(calibration.get('ece_before'))} before, "
        f"{_num(calibration.get('ece_after'))} after.",
    ]
    warnings = row.get("classifier_warnings") or []
    if warnings:
        lines += ["", "The report's warnings:", ""] + [f"- {w}" for w in warnings]
    seg = row.get("segmenter") or {}
    intervals = seg.get("intervals") or {}
    lines += [
        "",
        "| segmenter on the test split | value |",
        "|---|---|",
        f"| mean Dice (at each image's own size) | {_ci(seg.get('mean_dice'), intervals.get('mean_dice'))} |",
        "| ISIC 2018 thresholded Jaccard | "
        + _ci(seg.get("thresholded_jaccard"), intervals.get("thresholded_jaccard"))
        + " |",
    ]
    rerun = row.get("rerun")
    if rerun:
        statuses = ", ".join(f"{step} {status}" for step, status in rerun["steps"].items())
        lines += ["", f"The same command again, right after: {rerun['wall_s']:.0f} s wall clock; steps: {statuses}."]
    return "\n".join(lines)


def _rate(row: dict[str, Any]) -> str:
    """The learning rate, and the first layer's share of it where the rates rise by layer."""
    scale = row.get("input_lr_scale", 1.0)
    return f"{row['lr']:g}" if scale >= 1 else f"{row['lr']:g} at the head, {scale:g}x at the input"


def _input(row: dict[str, Any]) -> str:
    """What the network saw: whole images, or lesion-centred crops around which masks."""
    source = row.get("crop_masks")
    if not source:
        return "whole image"
    masks = "the true masks" if source == "truth" else "a segmenter's masks"
    return f"lesion crop ({row['crop_margin']:g}x), {masks}"


def cpu_preset_sizing() -> str:
    """One line per sizing run of ``benchmarks/cpu_preset.py``."""
    rows = [json.loads(line) for line in (RESULTS / "cpu_preset_sizing.jsonl").read_text().splitlines() if line]
    lines = [
        "| task | network | weights | input | size | epochs | lr | augment | balance | warm-up | weight average | "
        "frozen | random state | quiet s/epoch | best epoch | test |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        # a row run beside other jobs on one thread says so in its note: its seconds are not a cost
        quiet = "shared" if row.get("note") else f"{min(h['time'] for h in row['history']):.0f}"
        balance = row.get("class_balance", "sampler") if row["task"] == "classifier" else "n/a"
        if row["task"] == "classifier":
            test = (
                f"raw BA {_num(row['balanced_accuracy'])}, F1 {_num(row['macro_f1'])}, mel. sens. "
                f"{_num(row['melanoma_sensitivity'])}, AUC {_num(row['macro_auc'])}; rule BA "
                f"{_num(row['tuned_balanced_accuracy'])}, mel. sens. {_num(row['tuned_melanoma_sensitivity'])}"
            )
            if "rule_balanced_accuracy" in row:  # the decision hamkit run saves: the rule and the operating point
                test += (
                    f"; saved decision BA {_num(row['rule_balanced_accuracy'])}, F1 {_num(row['rule_macro_f1'])}, "
                    f"mel. sens. {_num(row['rule_melanoma_sensitivity'])}"
                )
        else:
            test = f"Dice {_num(row['mean_dice'])}, thresholded Jaccard {_num(row['thresholded_jaccard'])}"
        weights = "ImageNet (installed)" if row["pretrained"] else "random"
        average = f"EMA {row['ema_decay']:g}" if row.get("ema_decay") else "off"
        frozen = f"{row['freeze']:g} of the layers" if row.get("freeze") else "none"
        lines.append(
            f"| {row['task']} | `{row['backbone']}` | {weights} | {_input(row)} | {row['image_size']} | "
            f"{row['epochs']} | {_rate(row)} | {row['augment']} | {balance} | {row['warmup_epochs']:g} | "
            f"{average} | {frozen} | "
            f"{row.get('random_state', 0)} | {quiet} | {row['best_epoch']} | {test} |"
        )
    dates = sorted({row["date"][:10] for row in rows})
    lines += [
        "",
        f"Rows from `benchmarks/results/cpu_preset_sizing.jsonl` ({', '.join(dates)}; each row names its command).",
    ]
    return "\n".join(lines)


def pretrained_offline() -> str:
    """Random against installed ImageNet weights, same recipe."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from pretrained_offline import table  # type: ignore[import-not-found]

    data = json.loads((RESULTS / "pretrained_offline.json").read_text())
    return table(data["rows"]) + "\n\n" + _provenance(data["rows"][-1])


def same_lesion() -> str:
    """Same-lesion pairs, copies and pairs across lesions per dedup method (``same_lesion.json``)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from same_lesion import table  # type: ignore[import-not-found]

    data = json.loads((RESULTS / "same_lesion.json").read_text())
    return table(data) + "\n\n" + _provenance({**data, "torch": data.get("torch", "n/a")})


_POINTS = (
    ("auc", "AUC"),
    ("partial_auc", "partial AUC above 80 % sensitivity (max 0.2)"),
    ("sensitivity_at_specificity_0.80", "sensitivity at specificity 0.80"),
    ("sensitivity_at_specificity_0.90", "sensitivity at specificity 0.90"),
    ("specificity_at_sensitivity_0.90", "specificity at sensitivity 0.90"),
)
_NAMES = {
    "mel": "Melanoma",
    "nv": "Melanocytic nevus",
    "bcc": "Basal cell carcinoma",
    "akiec": "Actinic keratosis / intraepithelial carcinoma",
    "bkl": "Benign keratosis-like lesion",
    "df": "Dermatofibroma",
    "vasc": "Vascular lesion",
}


def evaluation_real() -> str:
    """At a glance, operating points and subgroups of the full run's classifier on its test split."""
    row = json.loads((RESULTS / "evaluation_real.json").read_text())
    saved, target = row["saved"], row["at_target"]
    lines = [
        _provenance(row),
        f"Operating point: `{row['operating_point_command']}`.",
        "",
        f"Test split: {saved['n_samples']} images of {saved['test_lesions']} lesions; 95 % intervals resample "
        "lesions (1,000 resamples).",
        "",
        "| decision | balanced accuracy | melanoma sensitivity | melanoma specificity |",
        "|---|---|---|---|",
    ]
    for label, found in (
        ("the saved model's (rule chosen on val, no operating point set)", saved),
        ("melanoma sensitivity 0.90 set on val (`--operating-point mel:sensitivity=0.90`)", target),
    ):
        glance = found["at_a_glance"]
        ci = glance["intervals"]
        cells = " | ".join(
            _ci(glance[k], ci.get(k)) for k in ("balanced_accuracy", "melanoma_sensitivity", "melanoma_specificity")
        )
        lines.append(f"| {label} | {cells} |")
    lines += [
        "",
        "| class (one against the rest) | test images | " + " | ".join(label for _, label in _POINTS) + " |",
        "|---|---|" + "---|" * len(_POINTS),
    ]
    for code, entry in saved["operating_points"].items():
        values, ci = entry["values"], entry["intervals"]
        cells = " | ".join(_ci(values.get(k), ci.get(k)) for k, _ in _POINTS)
        lines.append(f"| {_NAMES.get(code, code)} ({code}) | {entry['n_positive']} | {cells} |")
    subgroups = saved["subgroups"]
    lines += [
        "",
        f"Subgroups (the saved decision). *Italics*: fewer than {subgroups['min_lesions']} lesions in the cell, "
        "too few to read (shown, not hidden); a melanoma sensitivity marked † rests on fewer than "
        f"{subgroups['min_lesions']} melanoma lesions. Age in bands; `unknown`: the metadata leaves it empty.",
    ]
    for column, table in subgroups["tables"].items():
        lines += [
            "",
            f"| {column} | images | lesions | melanoma lesions | balanced accuracy | melanoma sensitivity | "
            "melanoma specificity |",
            "|---|---|---|---|---|---|---|",
        ]
        for cell in table["rows"]:
            values, ci = cell["values"], cell["intervals"]
            mel = _ci(values.get("melanoma_sensitivity"), ci.get("melanoma_sensitivity"))
            mel += " †" if "melanoma_sensitivity" in cell["small_metrics"] else ""
            name = f"*{cell['value']}*" if cell["small"] else cell["value"]
            lines.append(
                f"| {name} | {cell['n']} | {cell['lesions']} | {cell['melanoma_lesions']} | "
                f"{_ci(values.get('balanced_accuracy'), ci.get('balanced_accuracy'))} | {mel} | "
                f"{_ci(values.get('melanoma_specificity'), ci.get('melanoma_specificity'))} |"
            )
    lines.append("")
    for metric, gap in subgroups["largest_gap"].items():
        lines.append(
            f"- Largest gap in {metric.replace('_', ' ')}: by {gap['column']}, {_num(gap['low']['score'])} "
            f"({gap['low']['value']}, {gap['low']['lesions']} lesions) against {_num(gap['high']['score'])} "
            f"({gap['high']['value']}, {gap['high']['lesions']} lesions)."
        )
    data = row["card_licence"]["data"]
    if data.startswith("unknown"):
        data += (
            " (this model was saved before hamkit recorded the data a model was trained on; a model saved now "
            "records it, CC BY-NC-SA 4.0 for HAM10000)"
        )
    lines += [
        "",
        f"`hamkit evaluate` took {row['evaluate_seconds']:.0f} s on the CPU ({row['timing_note']}). "
        f"The model card's licences: training data: {data}; starting weights: {row['card_licence']['weights']}.",
    ]
    if row.get("note"):
        lines += ["", row["note"]]
    return "\n".join(lines)


def operating_points() -> str:
    """Melanoma sensitivity targets set on validation, scored on test (one network)."""
    data = json.loads((RESULTS / "operating_points.json").read_text())
    lines = [
        "| melanoma sensitivity set on val | reached on val | test balanced accuracy | test macro F1 | "
        "test melanoma sensitivity | test melanoma specificity |",
        "|---|---|---|---|---|---|",
    ]
    for row in data["rows"]:
        target = row["mel_sensitivity_target_on_val"]
        test, ci = row["test"], row["test_intervals"]
        lines.append(
            f"| {'none (the rule alone)' if target is None else f'{target:.2f}'} | "
            f"{_num(row['val_mel_sensitivity'])} | "
            + " | ".join(_ci(test[k], ci.get(k)) for k in ("balanced_accuracy", "macro_f1", "melanoma_sensitivity"))
            + f" | {_num(row['test_melanoma_specificity'])} |"
        )
    lines += [
        "",
        f"Test split: {data['test_images']:,} images of {data['test_lesions']:,} lesions; 95 % intervals resample "
        "lesions. " + (data.get("note") or ""),
        "",
        _provenance(data),
    ]
    return "\n".join(lines)


def cross_audit() -> str:
    """The cross-data-set audit of an ISIC-2019-like folder built from HAM10000, against what was built."""
    row = json.loads((RESULTS / "cross_audit.json").read_text())
    check = row["check"]
    lines = [
        "| criterion | images built for it | found | missed | found but not built for it |",
        "|---|---|---|---|---|",
    ]
    for criterion in ("same_id", "identical_bytes", "identical_pixels", "verified", "any"):
        c = check[criterion]
        lines.append(f"| {criterion} | {c['expected']:,} | {c['found']:,} | {c['n_missed']} | {c['n_extra']} |")
    ways = ", ".join(f"{way.replace('_', ' ')} {n:,}" for way, n in row["ways"].items())
    sources = "yes" if not check["verified_source_missed"]["n"] else "no"
    lines += [
        "",
        f"{row['ham_images']:,} HAM10000 images against a folder of {row['new_folder_images']:,} ({ways}); "
        f"every copy's own source among its verified pairs: {sources}. "
        f"Audit wall time {row['audit_s']:.0f} s on {row['cpus']} cores ({row['note']}; load average "
        f"{row['load_before']:.1f} before, {row['load_after']:.1f} after). Its CPU time, {row['audit_cpu_s']:.0f} s "
        f"(all processes), bounds the wall time on {row['cpus']} otherwise idle cores between "
        f"{row['audit_cpu_s_per_core']:.0f} s (every part in parallel) and {row['audit_cpu_s']:.0f} s (none).",
        "",
        _provenance(row),
    ]
    return "\n".join(lines)


def _mib(value: Any) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


MILLION = 1_000_000
CLUSTER_NODES, CLUSTER_CORES = 16, 16


def dedup_scale() -> str:
    """``benchmarks/dedup_scale.py``: one process, shards and local Ray per size; 1M estimated; a cluster projected."""
    if not (RESULTS / "dedup_scale.json").exists():
        return "No results file yet: run `python benchmarks/dedup_scale.py`."
    data = json.loads((RESULTS / "dedup_scale.json").read_text())
    extra_file = RESULTS / "dedup_scale_extra.json"
    extra = json.loads(extra_file.read_text()) if extra_file.exists() else {}
    rows = sorted(data["rows"], key=lambda r: (r["images"], ["single", "disk", "shards", "ray"].index(r["mode"])))
    lines = [
        "| images | mode | wall s | decode s | search s | verify s | merge s | peak MiB (largest process) "
        "| pairs | planted recall | pairs.csv = one process |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        stages = row.get("stages") or {}
        cell = {name: _num((stages.get(name) or {}).get("seconds"), 1) for name in ("signatures", "search", "verify")}
        same = {True: "yes", False: "**no**", None: "(reference)"}[row.get("same_pairs_csv_as_single")]
        same = "(reference)" if row["mode"] == "single" else same
        lines.append(
            f"| {row['images']:,} | {row['mode']} | {row['seconds']:.1f} | {cell['signatures']} | {cell['search']} | "
            f"{cell['verify']} | {_num(row.get('merge_seconds'), 1)} | {_mib(row.get('peak_rss_mib'))} | "
            f"{row['pairs']:,} | {row['planted_recall']:.3f} | {same} |"
        )
    shards = [r for r in rows if r["mode"] == "shards" and r.get("stages")]
    notes = []
    by = {(r["images"], r["mode"]): r for r in rows}
    for (n, mode), row in sorted(by.items()):
        if mode != "single" and (n, "single") in by:
            ratio = row["seconds"] / by[(n, "single")]["seconds"]
            notes.append(f"{mode} / one process at {n:,} images: {ratio:.2f}x the wall time.")
    notes.append(
        "Peak memory is that of the largest single process (for ray, of the processes the driver waited for; the "
        "shards' own peaks per stage are in their completion markers)."
    )
    if shards:
        largest = shards[-1]
        n, stages = largest["images"], largest["stages"]
        scale = MILLION / n
        per_stage = {name: stages[name]["seconds"] * scale for name in stages}
        searched_rows = sorted(
            extra.get("search_memory_disk") or extra.get("search_memory", []), key=lambda r: r["images"]
        )
        growth = "linearly"
        if len(searched_rows) >= 2:  # the search grows faster than linearly (the IVF index): its measured exponent
            import math

            a, b = searched_rows[-2], searched_rows[-1]
            power = math.log(b["stage_seconds"] / a["stage_seconds"]) / math.log(b["images"] / a["images"])
            per_stage["search"] = b["stage_seconds"] * (MILLION / b["images"]) ** power
            growth = f"linearly, the search as N^{power:.2f} (measured from {a['images']:,} to {b['images']:,})"
        total = sum(per_stage.values()) + (largest.get("merge_seconds") or 0) * scale
        notes.append(
            f"**1,000,000 images, estimated** (not measured: the machine's time did not allow it) from the "
            f"{n:,}-image shard run, each stage's time scaled {growth}: decode {per_stage['signatures']:,.0f} s, "
            f"search {per_stage['search']:,.0f} s, verify {per_stage['verify']:,.0f} s, about "
            f"{total / 3600:.1f} h on these 2 cores."
        )
        ratio = (extra.get("decode_ratio") or {}).get("ratio")
        if ratio:
            cores = CLUSTER_NODES * CLUSTER_CORES
            decode = per_stage["signatures"] * ratio * 2 / cores
            rest = per_stage["search"] * 2 / cores + per_stage["verify"] * 2 / cores
            notes.append(
                f"**Projected: one million 600 x 450 originals on {CLUSTER_NODES} nodes of {CLUSTER_CORES} cores** "
                f"({cores} shards): decoding an original into a scene took {ratio:g}x a 200 x 150 copy "
                f"({extra['decode_ratio']['original_ms']} against {extra['decode_ratio']['small_ms']} ms, "
                f"{extra['decode_ratio']['images']} HAM10000 images); verification works at 200 px either way. "
                f"Decode about {decode / 60:,.0f} min, search and verify about {rest / 60:,.0f} min: about "
                f"{(decode + rest) / 60:,.0f} min of wall time, if the {cores} shards scale linearly and the shared "
                "file system keeps up. That is a lower bound: each shard also builds the window index over all "
                "images (IVF training and adding every window), a part of the search that more shards do not "
                "shorten."
            )
    notes += _search_memory_notes(extra)
    dates = sorted({r["date"][:10] for r in rows})
    notes.append(
        f"Rows from `benchmarks/results/dedup_scale.json` ({', '.join(dates)}; command "
        f"`{_command(rows[-1]['command'])}`, hamkit commit `{rows[-1]['commit'][:12]}`, {rows[-1]['machine']}). "
        "The machine was shared with other jobs (load average "
        f"{min(r['load_average'] for r in rows):.0f}-{max(r['load_average'] for r in rows):.0f} on 2 cores): "
        "wall times are upper bounds."
    )
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes)


def _load_average(row: dict[str, Any]) -> str:
    """The load the run saw, and what it means for its times."""
    load = row.get("load_average")
    if not load:
        return ""
    cores = re.search(r"(\d+) cores", row["machine"])
    n = int(cores.group(1)) if cores else 0
    text = f" 1-minute load average {load[0]:.1f} before, {load[-1]:.1f} after, on {n} cores"
    # other jobs ran beside it: a load before it started, or after it more than its own n busy cores make
    if max(load[0], load[-1] - n) > 0.75 * n:
        return text + ": the machine was shared, so times are upper bounds and rates lower bounds."
    return text + "."


def _verbatim(name: str, *, fence: bool = True) -> str:
    """A script's printed output as saved by ``benchmarks/_shared.recorded`` (``--results FILE``)."""
    row = json.loads((RESULTS / f"{name}.json").read_text())
    command = _command(row["command"])
    body = re.sub(r"\S*/(ham10000-200px|ham10000-sample)\b", r"\1", row["output"])  # the data by its name
    if fence:
        text = f"```text\n$ {command}\n{body}\n```"
    else:  # Markdown: its comment lines as code, its headings one level below the page's section
        lines = [
            f"`{line[2:]}`" if line.startswith("# ") else "#" + line if line.startswith("#") else line
            for line in body.splitlines()
        ]
        text = f"`$ {command}`\n\n" + "\n".join(lines)
    return f"{text}\n\n{_provenance(row)}{_load_average(row)}"


def _rows(name: str) -> Any:
    return json.loads((RESULTS / f"{name}.json").read_text())["rows"]


def heap() -> str:
    """``benchmarks/bench_heap.py``: keypoint decoding with the workers' freed heap kept against the heap as it was."""
    return _verbatim("heap")


def fold_batch_norms() -> str:
    """``benchmarks/bench_fold.py``: CPU embeddings with batch norm folded against the network as it is."""
    return _verbatim("fold_batch_norms")


def freeze_step() -> str:
    """``benchmarks/bench_freeze.py``: a training step with the first layers frozen against all training."""
    return _verbatim("freeze_step")


def channels_last() -> str:
    """``benchmarks/bench_channels_last.py``: training step img/s, NCHW against channels-last."""
    return _verbatim("channels_last")


def decode_cache() -> str:
    """``benchmarks/bench_cache.py``: images/s of an epoch with and without the decode cache."""
    rows = {r["mode"]: r for r in _rows("decode_cache")}
    draft = rows["decode every epoch (JPEG draft)"]["images_per_s"]
    plain = rows["decode every epoch (no draft)"]["images_per_s"]
    zero = next(r for name, r in rows.items() if name.startswith("cached epoch (0 workers"))
    some = next(r for name, r in rows.items() if name.startswith("cached epoch (") and r is not zero)
    faster = "faster" if zero["images_per_s"] > some["images_per_s"] else "slower"
    record = json.loads((RESULTS / "decode_cache.json").read_text())
    rough = (
        " The rows ran one after the other while other jobs used the machine, so their ratios are rough: the "
        "decoding rows, which need the CPU most, lose the most."
        if max(record["load_average"]) > 1.5
        else ""
    )
    return (
        _verbatim("decode_cache")
        + f"\n\nA cached epoch read {zero['vs_decode']:.1f}x the images/s of decoding every JPEG, and on these "
        f"cores it was {faster} without worker processes ({zero['images_per_s']:.0f} against "
        f"{some['images_per_s']:.0f} images/s; a memory-map read costs less than handing a batch over from a "
        f"worker), so hamkit uses no workers for cached datasets by default. JPEG draft mode alone gave "
        f"{draft / plain:.2f}x at this size." + rough
    )


def hash_cache() -> str:
    """``benchmarks/bench_hash_cache.py``: a rescan with the hash cache against decoding again."""
    rows = {r["call"]: r for r in _rows("hash_cache")}
    none, empty, full = (rows[k]["seconds"] for k in ("no cache", "empty cache (first run)", "filled cache (next run)"))
    return (
        _verbatim("hash_cache", fence=False)
        + f"\n\nIn this run the first call with the cache (which also writes it) took {empty:.1f} s against "
        f"{none:.1f} s without it, and a rescan of the unchanged files {full:.2f} s."
    )


def segmenter_overhead() -> str:
    """``benchmarks/bench_segmenter.py``: what ``LesionSegmenter.predict`` adds to a plain loop."""
    rows = _rows("segmenter_overhead")
    sentences = []
    for bare, full in zip(rows["without_network"], rows["with_network"], strict=True):
        added = 1000 / bare["hamkit_cpu"] - 1000 / bare["plain_cpu"]
        share = 100 * added / (1000 / full["plain_cpu"])
        sentences.append(
            f"{bare['name']}: {added:+.2f} ms per image, {share:+.1f} % of the plain loop's "
            f"{1000 / full['plain_cpu']:.0f} ms per image with the network (median CPU-time overhead with the "
            f"network {full['overhead']:+.1f} %, rounds from {full['paired_min']:+.1f} % to "
            f"{full['paired_max']:+.1f} %)"
        )
    return _verbatim("segmenter_overhead") + "\n\nWhat `predict` adds, from the table: " + "; ".join(sentences) + "."


def lesion_verify_threads() -> str:
    """``benchmarks/lesion_verify_threads.py``: the lesion verification with the BLAS threads limited."""
    return _verbatim("lesion_verify_threads")


def verify_cost() -> str:
    """``benchmarks/bench_verify.py``: the two-stage verification against a full keypoint match."""
    row = _rows("verify")
    per_image = row["two_stage_ms"] * row["candidates"] / row["images"]
    return (
        _verbatim("verify") + f"\n\nOne candidate pair costs {row['two_stage_ms']:.2f} ms on average "
        f"({row['two_stage_rejected_ms']:.2f} ms "
        f"for the pairs rejected, almost all: the quick match of the 200 strongest keypoints stops them), against "
        f"{row['full_match_ms']:.2f} ms for a full cross-checked match of every keypoint: the two stages are "
        f"{row['full_match_ms'] / row['two_stage_ms']:.1f}x faster. At the {row['candidates'] / row['images']:.1f} "
        f"candidates per image of this slice that is {per_image:.0f} ms of one core per image, about "
        f"{per_image * MILLION / 1000 / 3600 / 2:.1f} hours for a million images on 2 cores, on top of decoding "
        "(estimated, linear)."
    )


def phash_ceiling() -> str:
    """``benchmarks/phash_ceiling.py``: CPU ms per image of JPEG decoding and of both PHashes."""
    return _verbatim("phash_ceiling")


def dedup_quality() -> str:
    """``benchmarks/dedup_quality.py``: precision and recall per method and threshold, printed as Markdown."""
    return _verbatim("dedup_quality", fence=False)


def engine_overhead() -> str:
    """``benchmarks/bench_classifier.py``: ``LesionClassifier`` against a plain PyTorch loop."""
    return _verbatim("engine_overhead")


def report_recipe_synthetic() -> str:
    """``benchmarks/report_recipe.py`` on the synthetic data."""
    return _verbatim("report_recipe_synthetic")


def report_recipe_sample() -> str:
    """``benchmarks/report_recipe.py`` on the 75 sample images."""
    return _verbatim("report_recipe_sample")


_FAMILIES = ("exact", "photometric", "geometric")


def _copies_table(data: dict[str, Any], default: str) -> list[str]:
    """The rows of a ``benchmarks/dedup_real.py`` results file, the ``default`` setting in bold."""
    lines = [
        f"{data['images']:,} images + {data['planted']} planted copies ({data['per_kind']} per kind).",
        "",
        "| setting | pairs across lesions | pairs within a lesion | copies found: exact / photometric / geometric "
        "| largest group | removed | seconds | peak MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in data["rows"]:
        name = row["setting"]
        recall = " / ".join(f"{row['recall'].get(f, 0):.2f}" for f in _FAMILIES)
        cells = f"{row['across']:,} | {row['within']:,} | {recall} | {row['largest']:,} | {row['removed']:,}"
        if name == default:
            name, cells = f"**{name} (default)**", "**" + cells.replace(" | ", "** | **") + "**"
        lines.append(f"| {name} | {cells} | {row['seconds']:.0f} | {row['peak_mib']:,.0f} |")
    return lines


def _missed_by_kind(data: dict[str, Any], setting: str) -> str:
    row = next(r for r in data["rows"] if r["setting"] == setting)
    missed = {k: v for k, v in row["found_by_kind"].items() if v[0] < v[1]}
    return ", ".join(f"{k} {v[1] - v[0]} of {v[1]}" for k, v in missed.items()) or "none"


def dedup_real() -> str:
    """``benchmarks/dedup_real.py``: every method on the 10,015 HAM10000 images with planted copies."""
    data = json.loads((RESULTS / "dedup_real.json").read_text())
    lines = _copies_table(data, "verified @ 0.5")
    hashes = {r["setting"]: r for r in data["rows"] if r["setting"] in ("phash 8", "phash 2")}
    if len(hashes) == 2:
        loose, strict = hashes["phash 8"], hashes["phash 2"]
        lines += [
            "",
            f"PHash at its default (8) pairs {loose['across']:,} images of different lesions, chained into a group of "
            f"{loose['largest']:,} images, and misses {1 - loose['recall']['geometric']:.0%} of the geometric copies; "
            f"at 2 it pairs {strict['across']:,} different lesions but finds "
            f"{strict['recall']['geometric']:.0%} of the "
            f"geometric copies and {strict['within']:,} within-lesion pairs (against {loose['within']:,} at 8).",
        ]
    lines += [
        "",
        f"At the default, copies missed by kind: {_missed_by_kind(data, 'verified @ 0.5')}.",
        "",
        _provenance({**data, "torch": data.get("torch", "n/a")}) + _load_average(data),
    ]
    return "\n".join(lines)


def dedup_real_cnn() -> str:
    """``benchmarks/dedup_real.py``: the ``cnn`` method with the installed Lite0 weights, swept."""
    from hamkit.backbones.defaults import EMBEDDING_THRESHOLD

    data = json.loads((RESULTS / "dedup_real_cnn.json").read_text())
    default = f"cnn Lite0 (installed ImageNet weights) @ {EMBEDDING_THRESHOLD:g}"
    lines = _copies_table(data, default)
    lines += [
        "",
        f"At the default, copies missed by kind: {_missed_by_kind(data, default)}.",
        "",
        _provenance(data) + _load_average(data),
    ]
    return "\n".join(lines)


def _search_memory_notes(extra: dict[str, Any]) -> list[str]:
    """The search stage's memory with the window index in memory (before) and on disk, and the
    stages after decoding at each size measured (``dedup_scale.py --search-memory`` / ``--stages``)."""
    notes = []
    before = sorted(extra.get("search_memory", []), key=lambda r: r["images"])
    after = sorted(extra.get("search_memory_disk", []), key=lambda r: r["images"])
    if before or after:
        table = [
            "| images | window index | search stage s | peak anonymous MiB | peak file-backed MiB | peak RSS MiB "
            "| partners = index in memory |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in before:
            table.append(
                f"| {r['images']:,} | in memory (before) | {r['stage_seconds']:.1f} | n/a | n/a | "
                f"{_mib(r['peak_rss_mib'])} | (reference) |"
            )
        for r in after:
            if "stage_seconds_memory" in r:
                table.append(
                    f"| {r['images']:,} | in memory (same run) | {r['stage_seconds_memory']:.1f} | "
                    f"{_mib(r.get('peak_anon_mib_memory'))} | {_mib(r.get('peak_file_mib_memory'))} | "
                    f"{_mib(r['peak_rss_mib_memory'])} | (reference) |"
                )
            same = {True: "yes", False: "**no**", None: "not compared"}[r.get("same_partners_as_memory")]
            table.append(
                f"| {r['images']:,} | on disk | {r['stage_seconds']:.1f} | {_mib(r.get('peak_anon_mib'))} | "
                f"{_mib(r.get('peak_file_mib'))} | {_mib(r['peak_rss_mib'])} | {same} |"
            )
        text = (
            "**The search stage alone** (the one stage that holds something of every image: the window index, "
            "18 windows of 64 floats, 4,608 bytes per image), shard 0 of 2 on random thumbnails with no decoding "
            "(`python benchmarks/dedup_scale.py --search-memory N [--index memory|both]`, "
            "`benchmarks/results/dedup_scale_extra.json`). *Anonymous* memory is the process's own heap "
            "(`RssAnon`, what the kernel cannot drop); *file-backed* is the pages of memory-mapped files it has "
            "touched (`RssFile`: the index file, and the code of the libraries it loaded), page cache that the "
            "kernel reclaims when memory runs short; both are sampled from `/proc` every 0.1 s. *Peak RSS* is the "
            "process's own peak of the two together (`VmHWM`); in the rows *before*, it is the `ru_maxrss` of the "
            "stage's completion marker, which also counts the benchmark's own memory at the moment it started "
            "the process (an upper bound). With the index on disk (a faiss IVF index whose "
            "inverted lists are a memory-mapped file in the shard's folder, built a block of 8,192 images at a "
            "time) the partners are the same arrays as with the index in memory:\n\n" + "\n".join(table)
        )
        if len(after) >= 2:
            small, large = after[0], after[-1]
            slope = (large["peak_anon_mib"] - small["peak_anon_mib"]) / (large["images"] - small["images"])
            at_million = large["peak_anon_mib"] + slope * (MILLION - large["images"])
            grew = large["peak_anon_mib"] / small["peak_anon_mib"]
            text += (
                f"\n\nWith the index on disk, the anonymous peak grew {grew:.2f}x "
                f"from {small['images']:,} to {large['images']:,} images ({large['images'] / small['images']:.0f}x the "
                f"images), {slope * 1024:.2f} KiB per image: about {at_million / 1024:.2f} GiB at 1,000,000 images "
                f"(estimated, not measured: that slope carried on from {large['images']:,}; it is the query chunks' "
                "partners, the image list and the IVF training sample, which grows with the square root of the "
                "collection). The index file itself is 4.5 KiB per image on disk (about 4.3 GiB at 1,000,000); the "
                "search touches most of it, so its pages count in the RSS as page cache, not in the anonymous memory."
            )
            if before:
                old = before[-1]
                text += (
                    f" Before, with the index in memory, the stage's peak RSS at {old['images']:,} images was "
                    f"{_mib(old['peak_rss_mib'])} MiB."
                )
        notes.append(text)
    staged = sorted(extra.get("stages", []), key=lambda r: r["images"])
    if staged:
        table = [
            "| images | stage | s | peak anonymous MiB | peak file-backed MiB | peak RSS MiB |",
            "|---|---|---|---|---|---|",
        ]
        for r in staged:
            for stage in ("search", "verify", "merge"):
                m = r[stage]
                table.append(
                    f"| {r['images']:,} | {stage} | {m['seconds']:.1f} | {_mib(m['peak_anon_mib'])} | "
                    f"{_mib(m['peak_file_mib'])} | {_mib(m['peak_rss_mib'])} |"
                )
        largest = staged[-1]
        worst = max(("search", "verify", "merge"), key=lambda stage: largest[stage]["peak_rss_mib"])
        text = (
            "**The stages after decoding at full size** (`python benchmarks/dedup_scale.py --stages N`): one shard "
            "over all N images, each stage in a fresh process, on random thumbnails whose scenes are empty (no "
            "pixels, no keypoints, so each candidate is rejected at once): what the stages hold because of the "
            "collection's size (the window index, the candidate pairs, the image list and digests), not a batch's "
            "real scenes (bounded by the batch: 4,096 candidate pairs). The merge is `hamkit dedup --merge`, the "
            "command with its libraries loaded (torch: the file-backed pages are mostly their code):\n\n"
            + "\n".join(table)
            + f"\n\nAt {largest['images']:,} images ({largest['candidate_pairs']:,} candidate pairs) the largest "
            f"stage peak is the {worst}'s, {_mib(largest[worst]['peak_rss_mib'])} MiB RSS "
            f"({_mib(largest[worst]['peak_anon_mib'])} MiB anonymous). `hamkit dedup --backend disk` runs these "
            "stages one after the other in one process, after the decoding, which holds one batch of images per "
            "worker and writes each scene to disk as it goes"
            + (
                " (a whole `hamkit dedup`, decoding and verifying real scenes, is measured below)."
                if any(r["images"] == largest["images"] for r in extra.get("whole", []))
                else "; a whole `hamkit dedup` at this size was not run (the machine's time did not allow decoding "
                "and verifying 100,000 images), so its peak is known per stage only."
            )
        )
        if len(staged) >= 2:
            small = staged[0]
            grew = {
                stage: (largest[stage]["peak_anon_mib"] - small[stage]["peak_anon_mib"])
                / (largest["images"] - small["images"])
                for stage in ("search", "verify", "merge")
            }
            top = max(grew, key=lambda stage: largest[stage]["peak_anon_mib"] + grew[stage] * MILLION)
            at_million = largest[top]["peak_anon_mib"] + grew[top] * (MILLION - largest["images"])
            text += (
                f" From {small['images']:,} to {largest['images']:,} images the stages' anonymous peaks grew by "
                + ", ".join(f"{stage} {grew[stage] * 1024:.2f} KiB" for stage in grew)
                + f" per image; carried on to 1,000,000 images (estimated, not measured), the largest would be the "
                f"{top}'s, about {at_million / 1024:.1f} GiB, "
                f"{at_million / largest[top]['peak_anon_mib']:.1f}x its {largest['images']:,}-image peak for 10x the "
                "images: less than linear growth, though not flat (the merge holds every candidate pair, about ten "
                "per image, and the image list)."
            )
        notes.append(text)
    measured = before[-1:] + after + staged
    if measured:
        loads = [r["load_average"] for r in measured]
        notes.append(
            "Search-stage and stage rows: "
            + "; ".join(
                sorted({f"{r['date'][:10]}, commit `{r['commit'][:12]}`, `{_command(r['command'])}`" for r in measured})
            )
            + f". The machine was shared with other jobs (load average {min(loads):.0f}-{max(loads):.0f} on 2 "
            "cores): times are upper bounds; memory does not depend on the load."
        )
    return notes


def dedup_scale_whole() -> str:
    """``benchmarks/dedup_scale.py --whole``: a whole ``hamkit dedup`` with the default settings."""
    extra_file = RESULTS / "dedup_scale_extra.json"
    rows = sorted((json.loads(extra_file.read_text()) if extra_file.exists() else {}).get("whole", []), key=_images)
    if not rows:
        return "No results yet: run `python benchmarks/dedup_scale.py --whole N`."
    lines = [
        "| images | backend chosen | wall s | peak PSS MiB (all processes) | peak RSS MiB (sum) | peak MiB (largest "
        "process) | processes | candidate pairs | pairs | planted recall |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['images']:,} | {r['backend_used']} | {r['seconds']:.1f} | {_mib(r['peak_pss_mib'])} | "
            f"{_mib(r['peak_rss_mib'])} | {_mib(r['peak_hwm_mib'])} | {r['max_processes']} | "
            f"{r['candidate_pairs']:,} | {r['pairs']:,} | {r['planted_recall']:.3f} |"
        )
    notes = [
        "`hamkit dedup IMAGES --out OUT --no-review`, nothing else given (so `--backend auto`), in a fresh process, "
        "on the synthetic collection above. Its memory is sampled from `/proc` every 0.2 s over the command and "
        "every process below it (its decoding workers): *PSS* adds up each process's proportional set size (a page "
        "that several processes share, such as the libraries' code and what the workers inherited from the command, "
        "split among them), *RSS (sum)* adds up their resident sizes (such a page counted once per process: an upper "
        "bound), and the largest process's peak is its own `VmHWM`. Both include the pages of memory-mapped files "
        "(the window index, the thumbnails), page cache the kernel reclaims when memory runs short."
    ]
    largest = rows[-1]
    notes.append(
        f"At {largest['images']:,} images the default ran on `{largest['backend_used']}` and peaked at "
        f"{largest['peak_pss_mib'] / 1024:.2f} GiB PSS ({largest['peak_rss_mib'] / 1024:.2f} GiB RSS summed over "
        f"its processes; {largest['peak_hwm_mib'] / 1024:.2f} GiB in its largest process)."
    )
    if len(rows) >= 2:
        small = rows[0]
        slope = (largest["peak_pss_mib"] - small["peak_pss_mib"]) / (largest["images"] - small["images"])
        at_million = largest["peak_pss_mib"] + slope * (MILLION - largest["images"])
        notes[-1] += (
            f" From {small['images']:,} to {largest['images']:,} images ({largest['images'] / small['images']:.0f}x "
            f"the images) the PSS peak grew {largest['peak_pss_mib'] / small['peak_pss_mib']:.2f}x, "
            f"{slope * 1024:.2f} KiB per image; that slope carried on to 1,000,000 images gives about "
            f"{at_million / 1024:.1f} GiB ({at_million / largest['peak_pss_mib']:.1f}x the "
            f"{largest['images']:,}-image peak for {MILLION / largest['images']:.0f}x the images: estimated, not "
            "measured)."
        )
    for r in rows:
        if r.get("paused_seconds"):
            notes.append(
                f"The {r['images']:,}-image run was stopped for {r['paused_seconds']:,.0f} s (`--pause`: the command "
                "and its workers held by `SIGSTOP`, their memory kept, while the machine had to be left quiet for "
                f"another measurement); its wall time leaves that out ({r['wall_seconds']:,.0f} s with it)."
            )
    notes.append(_whole_rows_note(rows, "`benchmarks/results/dedup_scale_extra.json`"))
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes)


def _whole_rows_note(rows: list[dict[str, Any]], where: str) -> str:
    """Where the rows of whole ``hamkit dedup`` runs come from, and the machine's load around them."""
    loads = [x for r in rows for x in r["load_average"]]
    runs = sorted({f"{r['date'][:10]}, commit `{r['commit'][:12]}`, `{_command(r['command'])}`" for r in rows})
    return (
        f"Rows from {where} ("
        + "; ".join(runs)
        + f"). The machine was shared with other jobs (1-minute load average {min(loads):.1f}-{max(loads):.1f} on 2 "
        "cores, before and after each run): wall times are upper bounds; memory does not depend on the load."
    )


def _images(row: dict[str, Any]) -> int:
    return int(row["images"])


def dedup_scale_limited() -> str:
    """``benchmarks/dedup_scale.py --whole N --memory-limit MIB``: the whole command in a memory cgroup."""
    extra = json.loads((RESULTS / "dedup_scale_extra.json").read_text())
    rows = sorted(extra.get("whole_limited", []), key=_images)
    if not rows:
        return "No results yet: run `python benchmarks/dedup_scale.py --whole N --memory-limit MIB` (as root)."
    free = {r["images"]: r for r in extra.get("whole", [])}
    lines = [
        "| images | memory limit MiB | OOM kills | cgroup peak MiB | anonymous peak MiB (each page once) | "
        "summed RssAnon MiB | wall s | candidate pairs | pairs | planted recall | same as without the limit |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        other = free.get(r["images"])
        same = (
            "not run"
            if other is None
            else "yes (same counts)"
            if (other["candidate_pairs"], other["pairs"], other["planted_recall"])
            == (r["candidate_pairs"], r["pairs"], r["planted_recall"])
            else "no"
        )
        lines.append(
            f"| {r['images']:,} | {r['memory_limit_mib']:,} | {r['oom_kills']} | {_mib(r['cgroup_peak_mib'])} | "
            f"{_mib(r['peak_cgroup_anon_mib'])} | {_mib(r['peak_anon_mib'])} | {r['seconds']:.1f} | "
            f"{r['candidate_pairs']:,} | {r['pairs']:,} | {r['planted_recall']:.3f} | {same} |"
        )
    notes = [
        "The same command in a Linux memory cgroup with a hard limit and no swap (`--memory-limit MIB`): every page "
        "the command and its workers use is charged to it once, the page cache of the files they read and map "
        "included, and the kernel must reclaim pages, or kill the command, to stay under the limit: a row is "
        "written only when the command finished. *Anonymous "
        "peak* is the cgroup's anonymous memory (`memory.stat`), sampled every 0.2 s: what the kernel cannot drop "
        "without swap, each page counted once, also the pages a decoding worker shares with the command it was "
        "forked from (the summed `RssAnon` beside it counts those once per process). *Same as without the limit* "
        "compares the candidate pairs, pairs and planted recall with the unlimited run of the table above."
    ]
    if len(rows) >= 2:
        small, large = rows[0], rows[-1]
        slope = (large["peak_cgroup_anon_mib"] - small["peak_cgroup_anon_mib"]) / (large["images"] - small["images"])
        at_million = large["peak_cgroup_anon_mib"] + slope * (MILLION - large["images"])
        notes.append(
            f"From {small['images']:,} to {large['images']:,} images ({large['images'] / small['images']:.0f}x) "
            f"the anonymous peak grew {large['peak_cgroup_anon_mib'] / small['peak_cgroup_anon_mib']:.2f}x, "
            f"{slope * 1024:.2f} KiB per image; carried on to 1,000,000 images that slope gives about "
            f"{at_million / 1024:.1f} GiB ({at_million / large['peak_cgroup_anon_mib']:.1f}x the "
            f"{large['images']:,}-image peak for {MILLION / large['images']:.0f}x the images: estimated, not "
            "measured). The file pages (the JPEGs read, the memory-mapped window index of 4.5 KiB per image, the "
            "libraries' code) come on top while memory is free and are given back when it is not, as the limited "
            "runs show."
        )
    notes.append(_whole_rows_note(rows, "`benchmarks/results/dedup_scale_extra.json`, entry `whole_limited`"))
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes)


def dedup_scale_real() -> str:
    """``benchmarks/dedup_scale.py --real``: one process against ``--backend ray`` on real images."""
    extra_file = RESULTS / "dedup_scale_extra.json"
    real = (json.loads(extra_file.read_text()) if extra_file.exists() else {}).get("real")
    if not real:
        return "No results yet: run `python benchmarks/dedup_scale.py --real FOLDER`."
    by = {r["mode"]: r for r in real["rows"]}
    lines = [
        "| mode | wall s | peak MiB | pairs | pairs.csv = one process |",
        "|---|---|---|---|---|",
        f"| one process | {by['single']['seconds']:.1f} | {_mib(by['single']['peak_rss_mib'])} | "
        f"{by['single']['pairs']:,} | (reference) |",
        f"| `--backend ray`, local Ray of 2 CPUs | {by['ray']['seconds']:.1f} | {_mib(by['ray']['peak_rss_mib'])} | "
        f"{by['ray']['pairs']:,} | {'yes' if real['same_pairs_csv'] else '**no**'} |",
    ]
    loads = [x for r in real["rows"] for x in r["load_average"]]
    return "\n".join(lines) + (
        f"\n\n{real['images']:,} images; Ray took {real['ray_over_single']:.2f}x the one process's wall time. "
        "Peak memory is the largest process the benchmark waited for (for ray, the driver: its workers are not "
        f"counted). Measured {real['date'][:10]} with `{_command(real['command'])}`, hamkit commit "
        f"`{real['commit'][:12]}`, {real['machine']}; 1-minute load average {min(loads):.1f}-{max(loads):.1f} on 2 "
        "cores: the machine was shared with other jobs, so the wall times are upper bounds and their ratio is one "
        "measurement."
    )


BLOCKS: dict[str, Callable[[], str]] = {
    "channels_last": channels_last,
    "freeze_step": freeze_step,
    "fold_batch_norms": fold_batch_norms,
    "heap": heap,
    "decode_cache": decode_cache,
    "hash_cache": hash_cache,
    "segmenter_overhead": segmenter_overhead,
    "verify_cost": verify_cost,
    "phash_ceiling": phash_ceiling,
    "dedup_quality": dedup_quality,
    "dedup_real": dedup_real,
    "dedup_real_cnn": dedup_real_cnn,
    "engine_overhead": engine_overhead,
    "report_recipe_synthetic": report_recipe_synthetic,
    "report_recipe_sample": report_recipe_sample,
    "full_run_cpu": full_run_cpu,
    "full_run_cpu_lesion_crop": lambda: full_run_cpu("full_run_cpu_lesion_crop.json"),
    "same_lesion": same_lesion,
    "lesion_verify_threads": lesion_verify_threads,
    "cpu_preset_sizing": cpu_preset_sizing,
    "pretrained_offline": pretrained_offline,
    "evaluation_real": evaluation_real,
    "cross_audit": cross_audit,
    "operating_points": operating_points,
    "dedup_scale": dedup_scale,
    "dedup_scale_real": dedup_scale_real,
    "dedup_scale_whole": dedup_scale_whole,
    "dedup_scale_limited": dedup_scale_limited,
}


def render(text: str) -> str:
    """``text`` with every generated block rewritten from its results file."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"<!-- generated: {name} -->\n{BLOCKS[name]()}\n<!-- end: {name} -->"

    return re.sub(r"<!-- generated: (\w+) -->.*?<!-- end: \1 -->", fill, text, flags=re.S)


def main(argv: list[str]) -> int:
    stale = 0
    for page in PAGES:
        text = page.read_text()
        expected = render(text)
        if "--check" in argv:
            if expected != text:
                print(f"docs/{page.name} is out of date: run `python docs/gen_benchmarks.py`")
                stale = 1
            continue
        page.write_text(expected)
        print(f"wrote {page}")
    return stale


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
