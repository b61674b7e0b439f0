"""Never a flag silently ignored: no prefix matching, no option kept from two values, and every mode
of every command refuses, in one line and before any work, the flags it cannot use."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from hamkit.cli.main import build_parser, main


def _parsers(parser: argparse.ArgumentParser, name: str = "hamkit"):
    """Every parser of the tree: the top one, each command's and each sub-command's."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_no_parser_matches_prefixes() -> None:
    found = dict(_parsers(build_parser()))
    assert {"hamkit", "hamkit dedup", "hamkit train classifier", "hamkit train segmenter"} <= set(found)
    assert [name for name, parser in found.items() if parser.allow_abbrev] == []


@pytest.mark.parametrize(
    ("argv", "refused"),
    [
        (["train", "classifier", "--data", "d", "--split", "s.csv", "--out", "o"], "--split-csv"),
        (["train", "segmenter", "--data", "d", "--split-csv", "s.csv", "--out", "o", "--epoch", "2"], "--epoch"),
        (["dedup", "imgs", "--out", "o", "--thr", "3"], "--thr"),
        (["evaluate", "m", "--data", "d", "--split-c", "s.csv"], "--split-c"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_an_abbreviated_flag_is_refused(argv: list[str], refused: str, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and refused in err.splitlines()[-1]


def test_an_option_given_twice_with_two_values_is_refused(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["dedup", "new", "--against", "old", "--against", "older", "--out", "o"])
    last = capsys.readouterr().err.splitlines()[-1]
    assert stop.value.code == 2 and "--against" in last and "given twice ('old' and 'older')" in last
    args = build_parser().parse_args(["dedup", "new", "--against", "old", "--against", "old", "--out", "o"])
    assert args.against == "old"  # the same value twice changes nothing


@pytest.fixture()
def models(tmp_path: Path) -> dict[str, str]:
    """Folders that read as a saved classifier and a saved segmenter (config.json only: every
    refusal comes before the model is loaded)."""
    found = {}
    for kind in ("LesionClassifier", "LesionSegmenter"):
        folder = tmp_path / kind
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"kind": kind}))
        found[kind] = str(folder)
    return found


# (command line, the flags the error must name, the mode it must name): one row per mode that
# cannot use a flag the command accepts
MODES = [
    ("dedup --merge RUN --out OUT --workers 2", ["--workers"], "--merge"),
    ("dedup --merge RUN --out OUT --batch-size 8 --workers 0", ["--workers", "--batch-size"], "--merge"),
    ("dedup IMAGES --shard 0/2 --out OUT --threshold 0.5", ["--threshold"], "--shard"),
    ("dedup IMAGES --backend ray --out OUT --workers 2", ["--workers"], "--backend ray"),
    ("dedup IMAGES --out OUT --embedding-cache CACHE", ["--embedding-cache"], "--method verified"),
    ("dedup IMAGES --out OUT --method exact --embedding-cache CACHE", ["--embedding-cache"], "--method exact"),
    ("dedup IMAGES --out OUT --method phash --backbone resnet18", ["--backbone"], "--method phash"),
    ("dedup IMAGES --out OUT --method cnn --search-backend numpy --ivf-nprobe 4", ["--ivf-nprobe"], "numpy"),
    ("audit SPLIT --data A --method cnn --search-backend faiss-hnsw --ivf-nprobe 4", ["--ivf-nprobe"], "hnsw"),
    ("dedup IMAGES --against OLD --out OUT --keep first", ["--keep"], "--against"),
    ("dedup IMAGES --shard 0/2 --out OUT --no-review", ["--no-review"], "hamkit dedup --merge"),
    ("audit --data A --data B --fold 1", ["--fold"], "several --data sets"),
    ("audit SPLIT --data A --test B", ["--test"], "several --data sets"),
    ("export CLASSIFIER --out m.onnx --no-check --atol 0.1", ["--atol"], "--no-check"),
    ("evaluate SEGMENTER --data D --split-csv S --tta", ["--tta"], "a segmenter"),
    ("evaluate CLASSIFIER --data D --split-csv S --masks M", ["--masks"], "a classifier"),
    ("evaluate CLASSIFIER --data D --split val", ["--split"], "no --split-csv"),
    ("evaluate CLASSIFIER --data D --predictions p.csv --by sex", ["--predictions", "--by"], "no --split-csv"),
    ("calibrate CLASSIFIER --data D --split-csv S --out OUT --decision argmax --protect mel", ["--protect"], "argmax"),
    (
        "calibrate CLASSIFIER --data D --split-csv S --out OUT --decision argmax --min-recall mel=0.9",
        ["--min-recall"],
        "argmax",
    ),
    ("run --data D --print-config --out OUT --json", ["--out", "--json"], "--print-config"),
    ("run --data D --print-config --quiet", ["--quiet"], "--print-config"),
    ("split LABELS --out s.csv --test 0.2", ["--test"], "--folds"),
    ("split LABELS --out s.csv --folds 3 --fractions 0.5 0.25 0.25", ["--fractions"], "--folds"),
    ("train classifier --data D --split-csv S --out OUT --cross-validate --resume", ["--resume"], "--cross-validate"),
    ("train classifier --data D --split-csv S --out OUT --cross-validate --fold 1", ["--fold"], "--cross-validate"),
]


@pytest.mark.parametrize(("line", "flags", "mode"), MODES, ids=[row[0] for row in MODES])
def test_every_mode_refuses_the_flags_it_cannot_use(
    line: str, flags: list[str], mode: str, models: dict[str, str], tmp_path: Path, capsys
) -> None:
    names = {"CLASSIFIER": models["LesionClassifier"], "SEGMENTER": models["LesionSegmenter"]}
    argv = [names.get(word, word) for word in line.split()]
    argv = [str(tmp_path / word) if word in ("OUT", "CACHE") else word for word in argv]
    status = main(argv)
    err = capsys.readouterr().err
    assert status in (1, 2), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert all(flag in err for flag in flags) and mode in err, err
    assert not (tmp_path / "OUT").exists()  # refused before any work


def test_dedup_merge_with_workers_writes_nothing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "results"
    status = main(["dedup", "--merge", str(tmp_path / "run"), "--out", str(out), "--workers", "4"])
    err = capsys.readouterr().err
    assert status == 2
    assert err == (
        "hamkit dedup: error: --workers does nothing with --merge (it joins finished shards: no image decoded); "
        "drop it\n"
    )
    assert not out.exists()


def test_a_flag_given_with_its_default_value_still_counts_as_given(tmp_path: Path, capsys) -> None:
    # --keep first is the default: typed with --against, it is still refused rather than ignored
    status = main(["dedup", "a", "--against", "b", "--out", str(tmp_path / "o"), "--keep", "first"])
    assert status == 2 and "--keep" in capsys.readouterr().err
