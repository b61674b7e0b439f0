"""Segmentation figures: outlines, overlays and panel PNGs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hamkit.errors import DataError
from hamkit.figures import panels
from hamkit.figures.panels import (
    PREDICTION_COLOUR,
    TRUTH_COLOUR,
    contour_overlay,
    mask_contour,
    save_overlay,
    segmentation_panels,
)


def square(shape: tuple[int, int], top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[top : top + side, left : left + side] = True
    return mask


def test_contour_is_the_inner_boundary_of_the_mask():
    mask = square((8, 8), 1, 1, 5)
    outline = mask_contour(mask)
    assert outline.sum() == 16  # a 5x5 square has 16 boundary pixels
    assert not outline[2:5, 2:5].any() and outline[1, 1:6].all()
    assert (outline <= mask).all()
    assert mask_contour(mask, thickness=2).sum() == 24  # 25 - the 1x1 centre
    assert not mask_contour(np.zeros((4, 4), bool)).any()
    edge = np.ones((3, 3), bool)  # a lesion filling the image: its border pixels are its outline
    assert mask_contour(edge).sum() == 8


def test_overlay_draws_truth_green_and_prediction_magenta_on_a_copy():
    image = np.full((10, 10, 3), 40, np.uint8)
    truth, pred = square((10, 10), 1, 1, 6), square((10, 10), 3, 3, 6)
    out = contour_overlay(image, truth, pred, thickness=1)
    assert out[1, 1].tolist() == list(TRUTH_COLOUR)
    assert out[8, 8].tolist() == list(PREDICTION_COLOUR)
    assert out[3, 6].tolist() == list(PREDICTION_COLOUR)  # on both outlines: the prediction is drawn last
    assert out[4, 4].tolist() == [40, 40, 40]  # inside both: untouched
    assert (image == 40).all()  # the input is not modified
    assert contour_overlay(Image.fromarray(image)).tolist() == image.tolist()
    with pytest.raises(DataError, match="predicted mask is 5x5 but the image is 10x10"):
        contour_overlay(image, prediction=np.zeros((5, 5), bool))


def test_save_overlay_writes_a_full_resolution_png(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (30, 45, 3), dtype=np.uint8)
    path = save_overlay(image, tmp_path / "o" / "ov.png", truth=square((30, 45), 5, 5, 10))
    with Image.open(path) as written:
        assert written.size == (45, 30) and written.format == "PNG"
        assert np.asarray(written)[5, 5].tolist() == list(TRUTH_COLOUR)
    assert [p.name for p in path.parent.iterdir()] == ["ov.png"]


def test_panels_png_has_one_row_per_image_and_reads_paths(tmp_path):
    rng = np.random.default_rng(1)
    jpeg = tmp_path / "ISIC_1.jpg"
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(jpeg)
    images = [rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), jpeg]
    truths = [square((30, 40), 5, 5, 10), None]
    preds = [square((30, 40), 6, 6, 10), square((40, 60), 2, 2, 20)]
    two = segmentation_panels(images, truths, preds, tmp_path / "panels.png", image_ids=["a", "b"], title="t")
    one = segmentation_panels(images[:1], truths[:1], preds[:1], tmp_path / "one.png")
    with Image.open(two) as a, Image.open(one) as b:
        assert a.format == "PNG" and a.size[0] == b.size[0] > 4 * 100  # four panels side by side
        assert a.size[1] == pytest.approx(2 * b.size[1], rel=0.05)  # one row per image
        pixels = np.asarray(a.convert("RGB"))
    assert pixels.std() > 10  # something was drawn
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ISIC_1.jpg", "one.png", "panels.png"]


def test_panel_errors(tmp_path):
    with pytest.raises(DataError, match="no images"):
        segmentation_panels([], [], [], tmp_path / "x.png")
    with pytest.raises(DataError, match="2 images, 1 ground-truth masks and 2 predictions"):
        segmentation_panels([np.zeros((4, 4, 3), np.uint8)] * 2, [None], [np.zeros((4, 4))] * 2, tmp_path / "x.png")
    with pytest.raises(DataError, match="image 0: ground-truth mask is 3x3"):
        segmentation_panels([np.zeros((4, 4, 3), np.uint8)], [np.zeros((3, 3))], [np.zeros((4, 4))], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    assert panels.__name__ == "hamkit.figures.panels"
