from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hamkit.data.crops import lesion_crops
from hamkit.data.dataset import SkinDataset
from hamkit.data.images import load_image_array
from hamkit.errors import DataError


def _mask(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    left, top, right, bottom = box
    mask[top:bottom, left:right] = True
    return mask


def test_crop_is_square_in_the_image_and_holds_the_lesion_with_its_margin():
    # a 200x150 image's mask resized to 64x64 (squashed): the crop is square in the image's pixels
    full = _mask(150, 200, (80, 50, 120, 80))  # 40 wide, 30 high
    small = np.asarray(Image.fromarray(full.astype(np.uint8) * 255).resize((64, 64), Image.Resampling.NEAREST)) > 0
    left, top, right, bottom = lesion_crops(small[None], 200 / 150, margin=1.5)[0]
    width, height = (right - left) * 200, (bottom - top) * 150
    assert width == pytest.approx(height, rel=1e-6)
    assert width == pytest.approx(1.5 * 40, abs=4)  # the mask was resized: a pixel of slack
    assert left * 200 <= 80 and right * 200 >= 120 and top * 150 <= 50 and bottom * 150 >= 80
    assert (left + right) / 2 * 200 == pytest.approx(100, abs=2)


def test_crops_stay_inside_the_image_and_within_their_bounds():
    masks = np.stack(
        [
            _mask(150, 200, (0, 0, 10, 10)),  # in a corner: shifted inside, not shrunk
            _mask(150, 200, (0, 0, 200, 150)),  # all lesion: the shorter side
            _mask(150, 200, (99, 74, 101, 76)),  # a speck: the smallest crop
            np.zeros((150, 200), bool),  # nothing found: the centred square
        ]
    )
    crops = lesion_crops(masks, 4 / 3, margin=1.25, min_share=0.3)
    assert (crops >= 0).all() and (crops <= 1).all()
    sides = (crops[:, 2] - crops[:, 0]) * 200
    assert sides == pytest.approx([45, 150, 45, 150])
    assert crops[0, :2].tolist() == [0.0, 0.0]
    assert crops[3].tolist() == pytest.approx([0.125, 0.0, 0.875, 1.0])


def test_one_aspect_per_image_and_no_masks():
    masks = np.stack([_mask(40, 40, (10, 10, 20, 20))] * 2)
    crops = lesion_crops(masks, [1.0, 2.0], margin=1.0, min_share=0.01)
    assert crops[0].tolist() == pytest.approx([0.25, 0.25, 0.5, 0.5])
    # twice as wide: the lesion is 20x10 image units wide x high, the square 20 high
    assert (crops[1, 3] - crops[1, 1]) == pytest.approx(0.5)
    assert (crops[1, 2] - crops[1, 0]) == pytest.approx(0.25)
    assert lesion_crops(np.zeros((0, 8, 8), bool)).shape == (0, 4)


def test_masks_of_several_sizes_give_the_crops_of_each():
    # as the segmenter returns them: a list, each mask at its own image's size (its own aspect)
    wide, square = _mask(150, 200, (80, 50, 120, 80)), _mask(64, 64, (16, 16, 32, 32))
    crops = lesion_crops([wide, square, wide])
    assert crops[0].tolist() == crops[2].tolist() == lesion_crops(wide[None], 4 / 3)[0].tolist()
    assert crops[1].tolist() == lesion_crops(square[None])[0].tolist()
    with pytest.raises(DataError, match="mask 1 has shape"):
        lesion_crops([wide, np.zeros(5)])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(masks=np.zeros((8, 8))), "(N, H, W)"),
        (dict(masks=np.zeros((1, 8, 8)), margin=0.9), "margin must be at least 1"),
        (dict(masks=np.zeros((1, 8, 8)), min_share=0.0), "min_share"),
        (dict(masks=np.zeros((1, 8, 8)), aspects=-1.0), "positive"),
    ],
)
def test_bad_arguments_say_what_is_wrong(kwargs, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        lesion_crops(**kwargs)


def test_a_cropped_image_is_the_region_of_the_whole_one(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (150, 200, 3), dtype=np.uint8)
    path = tmp_path / "a.png"  # lossless, so the region can be compared pixel for pixel
    Image.fromarray(pixels).save(path)
    crop = (0.25, 0.2, 0.625, 0.7)  # 75 x 75 pixels
    got = load_image_array(path, 75, crop)
    assert np.array_equal(got, pixels[30:105, 50:125])
    with pytest.raises(DataError, match="a.png.*not inside the image"):
        load_image_array(path, 32, (0.5, 0.0, 0.4, 1.0))


def test_a_jpeg_region_is_decoded_at_the_scale_it_needs(tmp_path):
    # a large JPEG is decoded at reduced scale; a small region of it must not lose its detail
    rng = np.random.default_rng(1)
    pixels = np.kron(rng.integers(0, 256, (100, 100, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))
    path = tmp_path / "big.jpg"
    Image.fromarray(pixels).save(path, quality=98)
    crop = (0.5, 0.5, 0.6, 0.6)  # 80 x 80 source pixels, 10 x 10 blocks
    got = load_image_array(path, 80, crop)
    full = np.asarray(Image.open(path).convert("RGB"))  # decoded at full scale
    assert np.array_equal(got, full[400:480, 400:480])  # not a blur of 1/8-scale pixels


def test_dataset_with_crops_decodes_the_regions_cached_or_not(tiny_folder, tmp_path):
    whole = SkinDataset.from_folder(tiny_folder, masks=True, image_size=32)
    masks = np.stack([whole[i]["mask"][0].numpy() for i in range(len(whole))])
    crops = lesion_crops(masks, 1.0)
    plain = whole.with_crops(crops)
    cached = SkinDataset.from_folder(tiny_folder, masks=True, image_size=32, cache=tmp_path / "c").with_crops(crops)
    assert plain.cropped and plain.crops[2] == pytest.approx(tuple(crops[2]))
    for i in (0, 3, 13):
        assert torch.equal(plain[i]["image"], cached[i]["image"])
        assert torch.equal(plain[i]["mask"], cached[i]["mask"])
    # the crop differs from the whole image, and its mask is the mask's region
    assert not torch.equal(plain[0]["image"], whole[0]["image"])
    assert plain[0]["mask"].mean() > whole[0]["mask"].mean()
    # whole and cropped images are separate cache entries; dropping the crops gives the whole images
    keys = {p.name.split(".")[0] for p in (tmp_path / "c").glob("*.images.npy")}
    assert len(keys) == 2  # (their masks are entries of their own)
    back = plain.with_crops(None)
    assert not back.cropped and torch.equal(back[0]["image"], whole[0]["image"])
    # subsets keep their crops
    assert plain.subset([3, 0]).crops == [plain.crops[3], plain.crops[0]]


def test_dataset_crops_are_checked(tiny_folder):
    data = SkinDataset.from_folder(tiny_folder, image_size=16)
    with pytest.raises(DataError, match="2 crop regions for 14 images"):
        data.with_crops([(0, 0, 1, 1)] * 2)
    bad = [(0.0, 0.0, 1.0, 1.0)] * 13 + [(0.0, 0.0, 1.5, 1.0)]
    with pytest.raises(DataError, match="ISIC_0000013.*not inside the image"):
        data.with_crops(bad)


def test_predictions_on_crops_are_sized_as_the_regions(tiny_folder):
    # a segmenter's masks of a cropped dataset cover the region, so they take the region's size
    from hamkit.data.images import image_size_of
    from hamkit.engine.inputs import prepare_inputs

    data = SkinDataset.from_folder(tiny_folder, image_size=16)
    width, height = image_size_of(data.paths[0])
    crops = [(0.0, 0.0, 0.5, 0.25)] + [None] * (len(data) - 1)
    inputs = prepare_inputs(data.with_crops(crops), image_size=16, mean=(0, 0, 0), std=(1, 1, 1))
    assert inputs.original_sizes[0] == (round(width / 2), round(height / 4))
    assert inputs.original_sizes[1] == image_size_of(data.paths[1])
