"""hamkit run end to end with the smallest settings, rerun skipping, and the real sample."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hamkit import HamkitError
from hamkit.cli.main import main
from hamkit.pipeline.config import load_config, to_toml
from hamkit.pipeline.run import run_pipeline

TINY = {
    "data": {"synthetic_lesions": 40, "synthetic_image_size": [128, 96]},
    "classifier": {
        "image_size": 32,
        "epochs": 1,
        "batch_size": 16,
        "operating_point": "mel:sensitivity=0.9",
        "lesion_crop": 1.25,  # on the crops the run's segmenter places
    },
    "segmenter": {"image_size": 32, "epochs": 1, "batch_size": 8},
    "run": {"num_workers": 0, "progress": False, "device": "cpu"},
}


def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(to_toml(load_config(overrides=TINY)))
    return path


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    config = tiny_config(tmp)
    out = tmp / "run"
    assert main(["run", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    return out, config


def test_every_output_is_written(demo_run):
    out, _ = demo_run
    for name in (
        "report.html",
        "config.toml",
        "summary.json",
        "split.csv",
        "figures/class_balance.png",
        "dedup/verified/kept.txt",
        "dedup/verified/pairs.csv",
        "dedup/verified/conflicts.csv",  # the run's labels reach the dedup step
        "dedup/verified/suspect_lesion_ids.csv",
        "dedup/verified/calibration.csv",
        "audit/verified/audit.json",
        "classifier/model/model.safetensors",
        "classifier/test_report.json",
        "classifier/confusion_matrix.png",
        "classifier/training_curves.png",
        "segmenter/model/config.json",
        "segmenter/test_report.json",
        "segmenter/per_image.csv",
        "segmenter/examples.png",
        "classifier/roc_curves.png",
        "classifier/reliability.png",
        "classifier/test_predictions.csv",
        "segmenter/worst_examples.png",
        "segmenter/test_evaluation.json",
        "classifier/lesion_crops.csv",
    ):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["summary"]["audit"]["verified"] == {"train-val": 0, "train-test": 0, "val-test": 0}
    assert set(summary["steps"]) == {"data", "dedup", "split", "audit", "classifier", "segmenter", "report"}
    page = (out / "report.html").read_text()
    for heading in ("Dataset", "Duplicates", "Split", "Classifier", "Segmenter", "Config and versions"):
        assert f"<h2>{heading}</h2>" in page
    assert page.count("data:image/png;base64,") >= 7 and "0 duplicate pairs cross the splits" in page
    assert "torch" in page and "[classifier]" in page
    # the report a researcher can share: run header with the starting weights, intervals, calibration
    for text in (
        "classifier started from</td><td>timm:tf_efficientnet_lite0: ImageNet weights installed with hamkit",
        "seconds per step",
        "95% CI",
        "expected calibration error",
        "decision rule chosen on val",
        "Fewer than 10 test images",
        "lowest-Dice",
    ):
        assert text in page, text
    assert "classifier input</td><td>the square crop around each lesion, 1.25 times its longer side" in page
    crops = (out / "classifier" / "lesion_crops.csv").read_text().splitlines()
    split = (out / "split.csv").read_text().splitlines()
    assert crops[0] == "image_id,left,top,right,bottom" and len(crops) == len(split)
    config = json.loads((out / "classifier" / "model" / "config.json").read_text())
    assert config["lesion_crop"] == 1.25
    clf = summary["summary"]["classifier"]
    low, high = clf["intervals"]["balanced_accuracy"]
    assert low <= clf["balanced_accuracy"] <= high
    assert clf["calibration"]["temperature"] > 0 and "ece_after" in clf["calibration"]
    assert summary["summary"]["run"]["preset"] == "custom" or summary["summary"]["run"]["preset"]
    seg = summary["summary"]["segmenter"]
    assert seg["intervals"]["mean_dice"][0] <= seg["summary"]["mean_dice"] <= seg["intervals"]["mean_dice"][1]


def test_rerun_skips_unchanged_steps_and_redoes_changed_ones(demo_run, tmp_path):
    out, config = demo_run
    result = run_pipeline(out, config=load_config(config))
    assert result.steps == {
        "data": "skipped",
        "dedup": "skipped",
        "split": "skipped",
        "audit": "skipped",
        "classifier": "skipped",
        "segmenter": "skipped",
        "report": "skipped",
    }
    changed = load_config(config, overrides={"classifier": {"epochs": 2}})
    result = run_pipeline(out, config=changed)
    assert result.steps["classifier"] == "ran" and result.steps["segmenter"] == "skipped"
    assert result.steps["report"] == "ran"
    assert len(json.loads((out / "classifier" / "history.json").read_text())) == 2


def test_report_renders_in_a_real_browser(demo_run):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        if os.environ.get("HAMKIT_REQUIRE_BROWSER"):  # CI installs Chromium and must run this test
            pytest.fail("no Chromium installed, and HAMKIT_REQUIRE_BROWSER is set")
        pytest.skip("no Chromium installed")
    out, _ = demo_run
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={out / '.chromium'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            (out / "report.html").resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    marker = dom.split('data-figures-loaded="', 1)[1].split('"', 1)[0]
    loaded, total = map(int, marker.split("/"))
    assert total >= 7 and loaded == total


def test_print_config_and_bad_config(tmp_path, capsys):
    assert main(["run", "--print-config", "--preset", "report"]) == 0
    printed = capsys.readouterr().out
    assert 'backbone = "resnet50"' in printed and "lr = 5e-05" in printed and "cnn_threshold = 0.93" in printed
    (tmp_path / "bad.toml").write_text("[classifier]\nepochz = 3\n")
    assert main(["run", "--config", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "o")]) == 1
    assert "unknown setting classifier.epochz" in capsys.readouterr().err
    with pytest.raises(HamkitError, match="must be a int"):
        load_config(overrides={"classifier": {"epochs": "three"}})


def test_real_sample(shared_sample, tmp_path):
    config = load_config(
        overrides={**TINY, "segmenter": {"image_size": 32, "epochs": 1, "batch_size": 8, "classify": False}}
    )
    result = run_pipeline(tmp_path / "real", data=shared_sample, config=config)
    assert result.summary["data"]["images"] == 75
    assert result.summary["data"]["listed_but_missing"] == 10015 - 75
    assert result.steps["segmenter"] == "ran" and (tmp_path / "real" / "report.html").is_file()


def test_pairs_the_audit_finds_join_the_groups_and_the_split_is_redone(tmp_path, monkeypatch):
    """The search between two splits can find a pair the search over all images did not propose.

    Every audit round reuses the images the dedup step decoded: it decodes none again."""
    import csv

    from hamkit.dedup import inputs as verified  # the verified method decodes through it
    from hamkit.pipeline import stages

    real = stages._audit_once
    injected: list[list[str]] = []
    decoded: list[int] = []
    decoded_in_audits: list[int] = []
    real_decode = verified.decode_all

    def counting_decode(job, **kwargs):
        decoded.append(len(job))
        return real_decode(job, **kwargs)

    monkeypatch.setattr(verified, "decode_all", counting_decode)

    def audit_once(ctx):
        before = sum(decoded)
        leaks, crossing, audits = real(ctx)
        decoded_in_audits.append(sum(decoded) - before)
        if not injected:  # the first audit "finds" a train-test pair
            rows = list(csv.DictReader(ctx.split_csv.open()))
            a = next(r["image_id"] for r in rows if r["split"] == "train")
            b = next(r["image_id"] for r in rows if r["split"] == "test")
            injected.append([a, b])
            crossing = crossing + [[a, b]]
        return leaks, crossing, audits

    monkeypatch.setattr(stages, "_audit_once", audit_once)
    out = tmp_path / "run"
    config = load_config(overrides={**TINY, "classifier": {"enabled": False}, "segmenter": {"enabled": False}})
    result = run_pipeline(out, config=config)
    a, b = injected[0]
    splits = {r["image_id"]: r["split"] for r in csv.DictReader((out / "split.csv").open())}
    assert splits[a] == splits[b]
    assert json.loads((out / "audit" / "added_pairs.json").read_text()) == [[a, b]]
    assert result.summary["audit_added_pairs"] == 1
    assert "joined the duplicate groups" in (out / "report.html").read_text()
    assert sum(decoded) == result.summary["data"]["images"]  # by the dedup step, once
    assert decoded_in_audits == [0, 0]  # two audit rounds (the re-split one included), no decoding
    again = run_pipeline(out, config=config)
    assert again.steps["split"] == "skipped" and again.steps["audit"] == "skipped"


def test_decode_cache_is_shared_by_runs_of_the_same_data(demo_run, tmp_path, monkeypatch):
    """The decoded images live under hamkit's cache folder (``$HAMKIT_CACHE``, a temporary folder
    in the tests), keyed by file identity: a run in a new folder over the same data decodes nothing."""
    import os

    from hamkit.data.cache import DecodeCache

    out, _ = demo_run
    shared = Path(os.environ["HAMKIT_CACHE"]) / "decoded"
    assert list(shared.glob("*.images.npy")) and not (out / "cache" / "decoded").exists()

    def no_decoding(*args, **kwargs):
        raise AssertionError("the decode cache was built again")

    monkeypatch.setattr(DecodeCache, "_build", no_decoding)
    whole = {**TINY["classifier"], "lesion_crop": 0.0}  # without the segmenter, whole images
    config = load_config(overrides={**TINY, "segmenter": {"enabled": False}, "classifier": whole})
    second = run_pipeline(tmp_path / "second", data=out / "data", config=config)
    assert second.steps["classifier"] == "ran" and not (tmp_path / "second" / "cache" / "decoded").exists()


def test_pair_groups_join_connected_images():
    from hamkit.pipeline.stages import _pair_groups

    labels = _pair_groups(["a", "b", "c", "d", "e"], [["a", "b"], ["c", "b"], ["d", "x"]])
    assert labels[0] == labels[1] == labels[2] and labels[3] not in (None, labels[0]) and labels[4] is None


def test_the_report_reads_top_down_and_the_models_carry_their_cards(demo_run):
    out, _ = demo_run
    page = (out / "report.html").read_text()
    assert page.index("Classifier at a glance") < page.index("<h2>Dataset</h2>")  # the summary first
    for text in (
        "Melanoma sensitivity",
        "specificity",
        "partial AUC above 80",
        "<h3>Operating points</h3>",
        "<h3>Subgroups</h3>",
        "Melanoma (mel)",
        "costliest test mistakes",
        "Largest subgroup gap",
    ):
        assert text in page, text
    clf = json.loads((out / "summary.json").read_text())["summary"]["classifier"]
    glance = clf["at_a_glance"]
    assert (
        glance["melanoma_sensitivity_at_specificity_0.80"]
        == clf["operating_points"]["mel"]["values"]["sensitivity_at_specificity_0.80"]
    )
    assert set(clf["subgroups"]["tables"]) == {"sex", "age", "localization", "dx_type"}
    assert (out / "classifier" / "mistakes.png").is_file()
    for name in ("classifier", "segmenter"):
        card = json.loads((out / name / "model" / "model_card.json").read_text())
        assert "synthetic" in card["licence"]["data"] and card["evaluation"]["subgroups"]["tables"], name
        assert (out / name / "model" / "MODEL_CARD.md").is_file()
    seg = json.loads((out / "summary.json").read_text())["summary"]["segmenter"]
    assert seg["subgroups"]["metrics"] == ["mean_dice", "thresholded_jaccard"]


def test_the_runs_operating_point_is_chosen_on_val_and_saved_with_the_model(demo_run):
    out, _ = demo_run
    report = json.loads((out / "classifier" / "test_report.json").read_text())
    assert "operating point sensitivity 0.90 on val" in report["decision"]["rule"]
    saved = json.loads((out / "classifier" / "model" / "config.json").read_text())
    point = saved["calibration"]["operating_point"]
    assert (point["class"], point["measure"], point["target"]) == ("mel", "sensitivity", 0.9)
    assert point["val_sensitivity"] >= 0.9


def test_an_operating_point_for_a_class_the_data_lacks_is_not_applied_and_says_so():
    from types import SimpleNamespace

    from hamkit.pipeline.scoring import _operating_point

    ctx = SimpleNamespace(settings={"classifier": {"operating_point": "mel:sensitivity=0.9"}})
    assert _operating_point(ctx, ["mel", "nv"]) == ({"mel": {"sensitivity": 0.9}}, [])
    target, warnings = _operating_point(ctx, ["melanoma", "other"])
    assert target is None and "no operating point was applied" in warnings[0]
    ctx.settings["classifier"]["operating_point"] = "none"
    assert _operating_point(ctx, ["mel", "nv"]) == (None, [])


def test_the_cli_predicts_the_runs_crops_as_the_run_scored_them(demo_run, tmp_path, capsys):
    """A run's classifier of lesion crops, used from the command line with the run's segmenter,
    gives the probabilities and decisions of the run's own test predictions (one answer)."""
    out, _ = demo_run
    rows = [line.split(",") for line in (out / "classifier" / "test_predictions.csv").read_text().splitlines()[1:7]]
    paths = [str(next((out / "data").rglob(f"{row[0]}.jpg"))) for row in rows]
    model, segmenter = str(out / "classifier" / "model"), str(out / "segmenter" / "model")
    written = tmp_path / "p.csv"
    assert main(["predict", model, *paths, "--segmenter", segmenter, "--out", str(written), "--quiet"]) == 0
    got = {cells[0]: cells for cells in (line.split(",") for line in written.read_text().splitlines()[1:])}
    for row in rows:
        assert got[row[0]][1] == row[3]  # the same decision
        assert [float(x) for x in got[row[0]][2:]] == pytest.approx([float(x) for x in row[4:]], abs=1e-5)
    capsys.readouterr()
    assert main(["predict", model, paths[0], "--quiet"]) == 1
    assert "lesion-centred crops (lesion_crop=1.25): give --segmenter MODEL" in capsys.readouterr().err
