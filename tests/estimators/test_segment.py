"""LesionSegmenter: learning on synthetic data, original-size masks, persistence, bad input, real data.

The models are tiny smp U-Nets without pretrained weights on 32x32 inputs: a 3-stage timm
MobileNetV3-Small-0.5 encoder (282k parameters) with a 16-8-8 decoder for segmentation, and a
3-stage ResNet-18 encoder for the multi-task model. Torch runs single-threaded in this module:
on a busy 2-core machine that is several times faster than two spinning OpenMP threads.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from hamkit.classify import LesionClassifier
from hamkit.data.dataset import Sample, SkinDataset
from hamkit.data.images import find_masks, image_size_of, read_mask
from hamkit.data.metadata import read_labels
from hamkit.data.splits import split_dataset
from hamkit.engine.recipe import TrainConfig
from hamkit.errors import DataError, HamkitError
from hamkit.metrics import segmentation_report
from hamkit.segment import LesionSegmenter, SegmentationLoss, SegmentationNetwork
from hamkit.synthetic import make_synthetic

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = {
    "backbone": "smp:Unet:tu-mobilenetv3_small_050",
    "image_size": 32,
    "pretrained": False,
    "device": "cpu",
    "backbone_kwargs": {"encoder_depth": 3, "decoder_channels": [16, 8, 8]},
}
MULTI = {"backbone": "smp:Unet:resnet18", "classify": True}
FAST = {"num_workers": 0, "progress": False}


def tiny(**changes) -> LesionSegmenter:
    return LesionSegmenter(**{**TINY, **changes})


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, Path]:
    """Synthetic data and a lesion- and duplicate-grouped train/val/test split CSV."""
    ds = make_synthetic(tmp_path_factory.mktemp("synth") / "data", n_lesions=150, image_size=(128, 96), random_state=0)
    records = read_labels(ds.metadata_csv)
    with ds.duplicates_csv.open() as handle:
        copy_of = {row["image_id"]: row["duplicate_of"] for row in csv.DictReader(handle)}
    split = split_dataset(
        records,
        (0.6, 0.15, 0.25),
        random_state=0,
        extra_groups=[[copy_of.get(r.image_id, r.image_id) for r in records]],
    )
    split_csv = ds.root / "split.csv"
    with split_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "split"])
        writer.writerows(zip(split.image_ids, split.assignment, strict=True))
    return ds.root, split_csv


@pytest.fixture(scope="module")
def segmenter(synthetic, tmp_path_factory) -> tuple[LesionSegmenter, Path]:
    """Segmentation only, trained from a data root + split CSV, checkpoints in out_dir."""
    root, split_csv = synthetic
    out_dir = tmp_path_factory.mktemp("run")
    model = (
        tiny()
        .set_params(recipe__epochs=5, recipe__batch_size=16, recipe__lr=3e-3)
        .fit(root, split_csv=split_csv, out_dir=out_dir, **FAST)
    )
    return model, out_dir


@pytest.fixture(scope="module")
def multitask(synthetic) -> LesionSegmenter:
    root, split_csv = synthetic
    return (
        tiny(**MULTI)
        .set_params(recipe__epochs=8, recipe__batch_size=16, recipe__lr=3e-3)
        .fit(root, split_csv=split_csv, **FAST)
    )


def held_out(root: Path, split_csv: Path, split: str = "test") -> SkinDataset:
    return SkinDataset.from_folder(root, masks=True, split_csv=split_csv, split=split, image_size=32)


def baselines(dataset: SkinDataset) -> tuple[float, float]:
    """Mean Dice of predicting no lesion anywhere, and lesion everywhere, at the original size."""
    truths = [read_mask(s.mask_path, image_size_of(s.path)) for s in dataset.samples]
    nothing = segmentation_report(truths, [np.zeros_like(t) for t in truths]).mean_dice
    everything = segmentation_report(truths, [np.ones_like(t) for t in truths]).mean_dice
    return nothing, everything


# ---------------------------------------------------------------------------- learning
def test_segmenter_learns_beyond_trivial_baselines(segmenter, synthetic):
    model, _ = segmenter
    test = held_out(*synthetic)
    report = model.evaluate(test)
    nothing, everything = baselines(test)
    assert report.n_images == len(test) >= 15 and report.resolution == "original"
    assert report.mean_dice > max(nothing, everything) + 0.25, (report.mean_dice, nothing, everything)
    assert report.mean_dice > 0.6 and report.mean_iou < report.mean_dice
    assert 0 <= report.thresholded_jaccard <= report.mean_iou
    assert report.mean_pixel_accuracy > 0.85
    assert report.classification is None and report.predicted is None
    history = model.history_
    assert len(history) == 5 and {"val_dice", "val_iou", "val_jaccard_isic", "val_loss"} <= set(history[0])
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    best = max(range(5), key=lambda i: history[i]["val_dice"]) + 1
    assert model.best_epoch_ == best  # the kept weights are the best validation Dice


def test_multitask_learns_masks_and_classes(multitask, synthetic):
    test = held_out(*synthetic)
    report = multitask.evaluate(test)
    nothing, everything = baselines(test)
    assert report.mean_dice > max(nothing, everything) + 0.2
    assert report.classification is not None
    assert report.classification.n_samples == len(test)
    assert report.classification.balanced_accuracy > 1 / 7 + 0.15  # chance is 1/7
    assert {"val_joint_score", "val_balanced_accuracy", "val_cls_loss"} <= set(multitask.history_[0])
    best = max(multitask.history_, key=lambda row: row["val_joint_score"])
    assert multitask.best_epoch_ == best["epoch"]
    # one forward pass gives both; the other entry points agree with it
    result = multitask.segment(test, return_proba=True)
    assert result.class_proba is not None and result.class_proba.shape == (len(test), 7)
    assert np.allclose(result.class_proba.sum(1), 1, atol=1e-5)
    assert np.array_equal(multitask.predict_diagnosis(test), result.class_predictions)
    assert all(np.array_equal(a, b) for a, b in zip(multitask.predict(test), result.masks, strict=True))
    assert report.predicted == result.class_predictions.tolist()
    rows = report.per_image_rows()
    assert rows[0]["image_id"] == test.image_ids[0] and "p_mel" in rows[0] and rows[0]["label"] in multitask.classes_


def test_class_balance_by_loss_and_monitor_choice(synthetic):
    root, split_csv = synthetic
    model = (
        tiny(classify=True)
        .set_params(
            recipe__epochs=1,
            recipe__batch_size=32,
            recipe__class_balance="loss",
            recipe__monitor="balanced_accuracy",
            loss="dice",
            cls_weight=0.5,
        )
        .fit(root, split_csv=split_csv, **FAST)
    )
    assert model.best_epoch_ == 1 and np.isfinite(model.history_[0]["val_loss"])
    with pytest.raises(HamkitError, match="monitor='balanced_accuracy' is not a validation metric"):
        tiny().set_params(recipe__monitor="balanced_accuracy").fit(root, split_csv=split_csv, **FAST)
    with pytest.raises(HamkitError, match="class_balance"):
        tiny(classify=True).set_params(recipe__class_balance="oversample").fit(root, split_csv=split_csv, **FAST)
    with pytest.raises(HamkitError, match="unknown segmentation loss"):
        tiny().set_params(loss="focal").fit(root, split_csv=split_csv, **FAST)


# ---------------------------------------------------------------------------- inference
def write_images(folder: Path) -> list[Path]:
    rng = np.random.default_rng(3)
    paths = []
    for i, (w, h) in enumerate([(70, 50), (128, 96), (33, 47)]):
        base = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((w, h), Image.Resampling.BILINEAR)
        path = folder / f"img{i}.png"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(path)
        paths.append(path)
    return paths


def test_masks_come_back_at_each_original_size(segmenter, tmp_path):
    model, _ = segmenter
    paths = write_images(tmp_path / "imgs")
    masks, maps = model.predict(paths, return_proba=True, batch_size=2)
    assert [m.shape for m in masks] == [(50, 70), (96, 128), (47, 33)]
    assert all(m.dtype == bool for m in masks)
    assert all(
        p.dtype == np.float32 and p.shape == m.shape and 0 <= p.min() and p.max() <= 1
        for p, m in zip(maps, masks, strict=True)
    )
    assert all(np.array_equal(m, p > 0.5) for m, p in zip(masks, maps, strict=True))
    assert all(np.array_equal(m, p > 0.8) for m, p in zip(model.predict(paths, threshold=0.8), maps, strict=True))
    # the same pixels as PIL images or uint8 arrays give the same masks
    pil = [Image.open(p).convert("RGB") for p in paths]
    assert all(np.array_equal(a, b) for a, b in zip(model.predict(pil), masks, strict=True))
    arrays = [np.asarray(im) for im in pil]
    assert all(np.array_equal(a, b) for a, b in zip(model.predict(arrays), masks, strict=True))
    # a preprocessed tensor gives masks at the tensor's size
    assert [m.shape for m in model.predict(torch.zeros(2, 3, 32, 32))] == [(32, 32), (32, 32)]
    # post-processing leaves at most one 8-connected component per mask
    for mask in model.predict(paths, postprocess="largest+fill", threshold=0.3):
        assert ndimage.label(mask, structure=np.ones((3, 3)))[1] <= 1
    assert model.predict(paths, threshold=1.0)[0].sum() == 0


def test_write_masks_writes_isic_named_png_at_original_size(segmenter, tmp_path):
    model, _ = segmenter
    paths = write_images(tmp_path / "imgs")
    written = model.write_masks(tmp_path / "imgs", tmp_path / "masks", postprocess="largest")
    assert [p.name for p in written] == ["img0_segmentation.png", "img1_segmentation.png", "img2_segmentation.png"]
    expected = model.predict(paths, postprocess="largest")
    for path, image, mask in zip(written, paths, expected, strict=True):
        with Image.open(path) as png:
            assert png.mode == "L" and png.size == image_size_of(image)
            assert set(np.unique(np.asarray(png)).tolist()) <= {0, 255}
        assert np.array_equal(read_mask(path, image_size_of(image), threshold=127), mask)
    match = find_masks(tmp_path / "masks", ["img0", "img1", "img2"])
    assert not match.missing and not match.extra
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == [p.name for p in written]  # no temp files
    twin = write_images(tmp_path / "other")[0]
    with pytest.raises(DataError, match="occur twice: img0"):
        model.write_masks([paths[0], twin], tmp_path / "m2")


def test_plot_examples_writes_panels(segmenter, synthetic, tmp_path):
    model, _ = segmenter
    path = model.plot_examples(held_out(*synthetic), tmp_path / "examples.png", n=3)
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size[0] > png.size[1]


# ---------------------------------------------------------------------------- persistence
def test_save_load_round_trip_and_checkpoints(segmenter, multitask, tmp_path):
    model, out_dir = segmenter
    paths = write_images(tmp_path / "imgs")
    folder = model.save(tmp_path / "seg")
    config = json.loads((folder / "config.json").read_text())
    assert config["kind"] == "LesionSegmenter" and config["backbone_kwargs"]["encoder_depth"] == 3
    loaded = LesionSegmenter.load(folder, device="cpu")
    for a, b in zip(loaded.predict_mask_proba(paths), model.predict_mask_proba(paths), strict=True):
        assert np.array_equal(a, b)
    best = LesionSegmenter.load(out_dir / "best", device="cpu")  # the training run's best checkpoint
    assert all(np.array_equal(a, b) for a, b in zip(best.predict(paths), model.predict(paths), strict=True))
    assert (out_dir / "history.csv").is_file() and (out_dir / "last" / "state.pt").is_file()

    multi = LesionSegmenter.load(multitask.save(tmp_path / "multi"), device="cpu")
    assert np.array_equal(multi.predict_diagnosis_proba(paths), multitask.predict_diagnosis_proba(paths))
    with pytest.raises(HamkitError, match="no classification head"):
        loaded.predict_diagnosis_proba(paths)
    for old in ("predict_proba", "predict_class_proba", "predict_classes"):  # the names before 0.2.0 are gone
        assert not hasattr(loaded, old)
    with pytest.raises(HamkitError, match="not 'deeplabv3_resnet50'"):
        LesionSegmenter.load(folder, backbone="deeplabv3_resnet50")

    config["classify"] = True  # the weights have no head: they do not fit
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        HamkitError, match="weights do not fit a smp:Unet:tu-mobilenetv3_small_050 segmenter with a 7-class head"
    ):
        LesionSegmenter.load(folder)


def test_loading_a_classifier_checkpoint_is_refused(tiny_folder, tmp_path):
    data = SkinDataset.from_folder(tiny_folder, image_size=32)
    clf = LesionClassifier("mobilenet_v3_small", image_size=32, pretrained=False, device="cpu")
    folder = clf.set_params(recipe__epochs=1, recipe__batch_size=14).fit(data, **FAST).save(tmp_path / "clf")
    with pytest.raises(
        HamkitError, match="a LesionClassifier checkpoint, not a LesionSegmenter; load it with LesionClassifier.load"
    ):
        LesionSegmenter.load(folder)
    seg_folder = (
        tiny()
        .set_params(recipe__epochs=1)
        .fit(SkinDataset.from_folder(tiny_folder, masks=True), **FAST)
        .save(tmp_path / "s")
    )
    with pytest.raises(HamkitError, match="a LesionSegmenter checkpoint, not a LesionClassifier"):
        LesionClassifier.load(seg_folder)


# ---------------------------------------------------------------------------- losses and AMP
def test_joint_loss_parts_and_float32_under_bfloat16():
    torch.manual_seed(0)
    logits, masks = torch.randn(2, 1, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float()
    class_logits, labels = torch.randn(2, 3), torch.tensor([0, 2])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, masks)
    p = logits.sigmoid()
    soft_dice = 1 - 2 * (p * masks).sum() / (p.sum() + masks.sum())
    ce = torch.nn.functional.cross_entropy(class_logits, labels)
    total, seg, cls = SegmentationLoss("bce+dice", cls_weight=0.5)(logits, masks, class_logits, labels)
    assert torch.allclose(seg, bce + soft_dice, atol=1e-5) and torch.allclose(cls, ce)
    assert torch.allclose(total, bce + soft_dice + 0.5 * ce, atol=1e-5)
    assert torch.allclose(SegmentationLoss("bce")(logits, masks)[0], bce)
    only_dice = SegmentationLoss("dice")(logits.bfloat16(), masks.bfloat16())[0]
    assert only_dice.dtype == torch.float32
    assert torch.allclose(only_dice, soft_dice, atol=2e-2)
    with pytest.raises(HamkitError, match="cls_weight"):
        SegmentationLoss(cls_weight=-1)


def test_training_with_cpu_autocast_stays_finite(tiny_folder):
    data = SkinDataset.from_folder(tiny_folder, masks=True)
    model = (
        tiny(classify=True).set_params(recipe__epochs=1, recipe__batch_size=7, recipe__amp=True).fit(data, data, **FAST)
    )
    row = model.history_[0]
    assert all(np.isfinite(row[k]) for k in ("train_loss", "val_loss", "val_dice", "val_cls_loss"))
    net = model.network_
    assert isinstance(net, SegmentationNetwork) and net.head is not None


def test_interrupted_training_resumes_to_the_same_weights(tiny_folder, tmp_path):
    data = SkinDataset.from_folder(tiny_folder, masks=True)
    recipe = TrainConfig(epochs=2, batch_size=7, scheduler="none", lr=1e-2)
    straight = tiny(classify=True, recipe=recipe).fit(data, data, out_dir=tmp_path / "a", **FAST)
    interrupted = tiny(classify=True, recipe=recipe).set_params(recipe__epochs=1)
    interrupted.fit(data, data, out_dir=tmp_path / "b", **FAST)  # stopped after one of the two epochs
    resumed = tiny(classify=True, recipe=recipe).fit(data, data, out_dir=tmp_path / "b", resume=True, **FAST)
    assert [row["epoch"] for row in resumed.history_] == [1, 2]
    assert resumed.history_[1]["val_dice"] == straight.history_[1]["val_dice"]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(
        resumed.segment(x, return_proba=True).probabilities[0], straight.segment(x, return_proba=True).probabilities[0]
    )


def test_generic_dataset_is_scored_at_the_working_resolution(segmenter):
    model, _ = segmenter
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(5, 3, 32, 32, generator=gen)
    masks = torch.zeros(5, 1, 32, 32)
    masks[:, :, 8:24, 8:24] = 1
    data = torch.utils.data.TensorDataset(images, torch.zeros(5, dtype=torch.long), masks)
    report = model.evaluate(data, batch_size=2)
    assert report.resolution == "working" and report.n_images == 5
    predicted = model.predict(images)
    expected = segmentation_report([m[0].numpy() > 0.5 for m in masks], predicted)
    assert report.dice == pytest.approx(expected.dice)


# ---------------------------------------------------------------------------- bad input
def _samples(root: Path) -> list[Sample]:
    return list(SkinDataset.from_folder(root, masks=True).samples)


def test_missing_masks_error_or_skip_with_a_report(tiny_folder, tmp_path):
    samples = _samples(tiny_folder)
    lacking = Sample(samples[0].image_id, samples[0].path, samples[0].label, samples[0].group, None)
    data = SkinDataset([lacking, *samples[1:]], with_masks=False, image_size=32)
    with pytest.raises(DataError, match=f"1 image\\(s\\) have no mask: {lacking.image_id}; pass on_missing='skip'"):
        tiny().set_params(recipe__epochs=1).fit(data, **FAST)
    model = tiny().set_params(recipe__epochs=1).fit(data, on_missing="skip", **FAST)
    assert model.skipped_ == {lacking.image_id: "mask not found"}
    report = model.evaluate(data, on_missing="skip")
    assert report.n_images == 13 and lacking.image_id not in report.image_ids
    assert report.skipped == {lacking.image_id: "mask not found"}
    assert json.loads(report.to_json())["skipped"] == {lacking.image_id: "mask not found"}
    # the same through a data root and a split CSV
    (tiny_folder / "masks" / f"{lacking.image_id}_segmentation.png").unlink()
    split_csv = tmp_path / "split.csv"
    split_csv.write_text("image_id,split\n" + "".join(f"{s.image_id},test\n" for s in samples))
    with pytest.raises(DataError, match=f"{lacking.image_id}.*on_missing='skip'"):
        model.evaluate(tiny_folder, split_csv=split_csv)
    from_root = model.evaluate(tiny_folder, split_csv=split_csv, on_missing="skip")
    assert from_root.n_images == 13 and lacking.image_id in from_root.skipped
    assert from_root.dice == pytest.approx(report.dice)


def test_mask_of_another_size_is_an_error(tiny_folder):
    model = tiny().set_params(recipe__epochs=1).fit(SkinDataset.from_folder(tiny_folder, masks=True), **FAST)
    Image.fromarray(np.full((20, 30), 255, np.uint8)).save(tiny_folder / "masks" / "ISIC_0000004_segmentation.png")
    data = SkinDataset.from_folder(tiny_folder, masks=True, image_size=32)
    with pytest.raises(DataError, match="ISIC_0000004_segmentation.png: mask is 30x20 but its image is 60x45"):
        model.evaluate(data)
    with pytest.raises(DataError, match="mask is 30x20"):
        tiny().set_params(recipe__epochs=1, recipe__batch_size=7).fit(
            data, **FAST
        )  # two full batches: every image is read


def test_non_binary_mask_needs_a_threshold(tiny_folder):
    grey = np.zeros((45, 60), np.uint8)
    grey[10:35, 15:45] = 200
    grey[20:25, 25:35] = 90  # a third grey level, as JPEG-compressed masks have
    Image.fromarray(grey).save(tiny_folder / "masks" / "ISIC_0000005_segmentation.png")
    data = SkinDataset.from_folder(tiny_folder, masks=True)
    with pytest.raises(DataError, match="ISIC_0000005_segmentation.png: mask is not binary .* pass a threshold"):
        tiny().set_params(recipe__epochs=1, recipe__batch_size=7).fit(
            data, **FAST
        )  # two full batches: every image is read
    model = tiny().set_params(recipe__epochs=1).fit(data, mask_threshold=127, **FAST)
    with pytest.raises(DataError, match="not binary"):
        model.evaluate(data)
    report = model.evaluate(data, mask_threshold=127)
    position = report.image_ids.index("ISIC_0000005")
    assert report.true_area[position] == int((grey > 127).sum())


def test_other_bad_input_is_explained(tiny_folder, segmenter):
    model, _ = segmenter
    with pytest.raises(DataError, match="no images to predict on"):
        model.predict([])
    with pytest.raises(HamkitError, match="not fitted yet"):
        tiny().predict(torch.zeros(1, 3, 32, 32))
    with pytest.raises(HamkitError, match="threshold must be a probability"):
        model.predict(torch.zeros(1, 3, 32, 32), threshold=2)
    with pytest.raises(HamkitError, match="unknown postprocess 'biggest'"):
        model.predict(torch.zeros(1, 3, 32, 32), postprocess="biggest")
    with pytest.raises(HamkitError, match="needs an image_size divisible by 32; got 36, use e.g. 64"):
        tiny(backbone="smp:FPN:resnet18", backbone_kwargs=None, image_size=36).set_params(recipe__epochs=1).fit(
            SkinDataset.from_folder(tiny_folder, masks=True), **FAST
        )
    unlabelled = SkinDataset.from_paths(
        [s.path for s in _samples(tiny_folder)], masks=[s.mask_path for s in _samples(tiny_folder)]
    )
    with pytest.raises(DataError, match="every image needs a class 0..6"):
        tiny(classify=True).set_params(recipe__epochs=1).fit(unlabelled, **FAST)
    with pytest.raises(DataError, match="needs split_csv"):
        model.evaluate(tiny_folder)
    with pytest.raises(DataError, match="cannot use a dict"):
        model.evaluate({"images": []})


# ---------------------------------------------------------------------------- real data
def test_real_sample_trains_and_evaluates(shared_sample, tmp_path):
    data = SkinDataset.from_folder(shared_sample, masks=shared_sample / "masks", on_missing="skip", image_size=32)
    assert len(data) == 75
    model = tiny(classify=True).set_params(recipe__epochs=1, recipe__batch_size=16).fit(data, **FAST)  # a few steps
    assert np.isfinite(model.history_[0]["train_loss"])
    report = model.evaluate(data, on_missing="skip")
    assert report.n_images == 75 and report.resolution == "original"
    assert len(report.skipped) == 10015 - 75  # listed in the metadata, no file in the sample
    assert all(0 <= d <= 1 for d in report.dice) and 0 <= report.thresholded_jaccard <= 1
    assert report.classification is not None and report.classification.n_samples == 75
    for palette_id in ("ISIC_0024354", "ISIC_0024412"):  # palette masks, read through the palette
        position = report.image_ids.index(palette_id)
        with Image.open(shared_sample / "masks" / f"{palette_id}_segmentation.png") as mask:
            assert mask.mode == "P"
            lesion = int((np.asarray(mask.convert("L")) > 127).sum())
        assert report.true_area[position] == lesion < 0.9 * 600 * 450
    paths = model.write_masks(data.paths[:2], tmp_path / "masks")
    assert all(image_size_of(p) == (600, 450) for p in paths)
    report.save(tmp_path / "report.json")
    report.save_csv(tmp_path / "per_image.csv")
    assert len((tmp_path / "per_image.csv").read_text().splitlines()) == 76


def test_write_masks_that_stop_on_a_bad_image_say_so(tmp_path):
    """A file that fails while decoding (not at the up-front check): the masks written before it
    stay, INCOMPLETE.txt says how many and why."""
    import numpy as np
    from PIL import Image

    from hamkit import HamkitError, LesionSegmenter
    from hamkit.segment.inference import INCOMPLETE_NOTE

    seg = LesionSegmenter("smp:Unet:resnet18", image_size=32, pretrained=False, device="cpu")
    seg.network_ = seg._build(pretrained=False, weights=None).eval()
    images = tmp_path / "images"
    images.mkdir()
    for k in range(3):
        Image.fromarray(np.full((40, 50, 3), 40 * k, np.uint8)).save(images / f"a{k}.png")
    noise = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(noise).save(images / "b_broken.jpg")
    whole = (images / "b_broken.jpg").read_bytes()
    (images / "b_broken.jpg").write_bytes(whole[: len(whole) // 2])  # the header reads, the pixels do not
    out = tmp_path / "masks"
    with pytest.raises(HamkitError, match="masks written"):
        seg.write_masks(images, out, batch_size=1)
    note = (out / INCOMPLETE_NOTE).read_text()
    assert note.startswith("incomplete: 3 of 4 masks") and "b_broken" in note
    assert len(list(out.glob("*_segmentation.png"))) == 3
    (images / "b_broken.jpg").unlink()
    assert len(seg.write_masks(images, out)) == 3
    assert not (out / INCOMPLETE_NOTE).exists()
