"""A classifier of lesion-centred crops: the crops follow it from training to every prediction."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from hamkit import HamkitError, LesionClassifier, SkinDataset, TrainConfig
from hamkit.data.crops import lesion_crops
from hamkit.data.images import read_mask

RECIPE = TrainConfig(epochs=1, batch_size=16, lr=1e-3, random_state=0)
FIT = dict(num_workers=0, progress=False)


class TrueMasks:
    """Stands in for a fitted LesionSegmenter: ``predict`` gives each image's own mask, at its size."""

    def __init__(self, mask_dir):
        self.mask_dir = mask_dir
        self.calls = 0

    def predict(self, images):
        self.calls += 1
        return [read_mask(self.mask_dir / f"{i}_segmentation.png") for i in images.image_ids]


@pytest.fixture(scope="module")
def cropped(synthetic, tmp_path_factory):
    segmenter = TrueMasks(synthetic.masks_dir)
    clf = LesionClassifier("resnet18", image_size=32, pretrained=False, lesion_crop=1.5, recipe=RECIPE, device="cpu")
    out = tmp_path_factory.mktemp("crop_run")
    clf.fit(synthetic.root, split_csv=synthetic.root / "split.csv", segmenter=segmenter, cache=out / "c", **FIT)
    return clf, segmenter


def test_the_setting_is_a_parameter_and_is_checked():
    clf = LesionClassifier("resnet18", pretrained=False, lesion_crop=1.25)
    assert clone(clf).get_params()["lesion_crop"] == 1.25
    with pytest.raises(HamkitError, match="lesion_crop must be 0 .* or at least 1"):
        LesionClassifier("resnet18", pretrained=False, lesion_crop=0.5, recipe=RECIPE).fit(
            np.zeros((4, 16, 16, 3), np.uint8), np.array([0, 1, 0, 1])
        )


def test_predictions_are_those_of_the_crops_the_masks_place(cropped, synthetic):
    clf, segmenter = cropped
    assert segmenter.calls == 2  # the training and the validation images
    paths = sorted(synthetic.root.rglob("ISIC_*.jpg"))[:12]
    data = SkinDataset.from_paths(paths)
    masks = [read_mask(synthetic.masks_dir / f"{p.stem}_segmentation.png") for p in paths]
    by_hand = data.with_crops(lesion_crops(masks, margin=1.5))
    proba = clf.predict_proba(paths, segmenter=segmenter)
    assert np.array_equal(proba, clf.predict_proba(by_hand))  # one answer: the same crops
    # the whole images give other answers
    assert not np.allclose(proba, clf.predict_proba(data.with_crops([(0.0, 0.0, 1.0, 1.0)] * len(paths))))
    split = synthetic.root / "split.csv"
    report = clf.evaluate(synthetic.root, split_csv=split, segmenter=segmenter)
    test = SkinDataset.from_folder(synthetic.root, split_csv=split, split="test")
    assert report.accuracy == pytest.approx(np.mean(clf.predict(test, segmenter=segmenter) == test.labels))


def test_the_setting_is_saved_with_the_model(cropped, synthetic, tmp_path):
    clf, segmenter = cropped
    clf.save(tmp_path / "m")
    loaded = LesionClassifier.load(tmp_path / "m", device="cpu")
    assert loaded.lesion_crop == 1.5
    paths = sorted(synthetic.root.rglob("ISIC_*.jpg"))[:5]
    assert np.array_equal(
        loaded.predict_proba(paths, segmenter=segmenter), clf.predict_proba(paths, segmenter=segmenter)
    )


def test_missing_or_misplaced_segmenter_says_what_to_do(cropped, synthetic):
    clf, segmenter = cropped
    paths = sorted(synthetic.root.rglob("ISIC_*.jpg"))[:3]
    with pytest.raises(
        HamkitError, match=r"lesion-centred crops \(lesion_crop=1.5\): pass segmenter=.*--segmenter MODEL"
    ):
        clf.predict(paths)
    with pytest.raises(HamkitError, match="cut from image files: pass paths, a folder or a SkinDataset"):
        clf.predict_proba(np.zeros((2, 32, 32, 3), np.uint8), segmenter=segmenter)
    whole = LesionClassifier("resnet18", image_size=32, pretrained=False, recipe=RECIPE, device="cpu")
    with pytest.raises(HamkitError, match="takes whole images .*leave segmenter out"):
        whole.fit(synthetic.root, split_csv=synthetic.root / "split.csv", segmenter=segmenter, **FIT)
