from __future__ import annotations

import numpy as np
import pytest
from conftest import write_image, write_mask
from PIL import Image

from hamkit.data.images import (
    find_images,
    find_masks,
    image_size_of,
    load_image_array,
    open_image,
    read_mask,
)
from hamkit.errors import DataError


def test_find_images_recursive_skips_masks_and_hidden(tmp_path):
    write_image(tmp_path / "part_1" / "ISIC_1.jpg")
    write_image(tmp_path / "part_2" / "ISIC_2.png")
    write_image(tmp_path / "part_2" / "ISIC_2_segmentation.png")
    write_image(tmp_path / ".hidden" / "ISIC_3.jpg")
    (tmp_path / "notes.txt").write_text("x")
    found = find_images(tmp_path)
    assert list(found) == ["ISIC_1", "ISIC_2"]
    assert found["ISIC_2"].parent.name == "part_2"


def test_find_images_rejects_duplicate_ids(tmp_path):
    write_image(tmp_path / "a" / "ISIC_1.jpg")
    write_image(tmp_path / "b" / "ISIC_1.png")
    with pytest.raises(DataError, match="'ISIC_1' occurs twice"):
        find_images(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        find_images(tmp_path / "missing")


def test_find_masks_reports_missing_and_extra(tmp_path):
    write_mask(tmp_path / "m" / "ISIC_1_segmentation.png")
    write_mask(tmp_path / "m" / "ISIC_9_segmentation.png")
    match = find_masks(tmp_path / "m", ["ISIC_1", "ISIC_2"])
    assert list(match.masks) == ["ISIC_1"]
    assert match.missing == ["ISIC_2"]
    assert [p.name for p in match.extra] == ["ISIC_9_segmentation.png"]
    assert "ISIC_2" in match.describe() and "ISIC_9_segmentation.png" in match.describe()


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "I;16"])
def test_open_image_converts_every_mode_to_rgb(tmp_path, mode):
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    path = write_image(tmp_path / f"x.{fmt.lower()}", mode="RGB", fmt=fmt)
    if mode == "I;16":
        array = np.arange(45 * 60, dtype=np.uint16).reshape(45, 60) * 20
        Image.fromarray(array).save(path)
    else:
        Image.open(path).convert(mode).save(path, format=fmt)
    image = open_image(path)
    assert image.mode == "RGB" and image.size == (60, 45)
    if mode == "I;16":  # 16-bit is scaled to 8-bit, not clipped
        assert np.asarray(image)[..., 0].max() > 200


def test_open_image_applies_exif_rotation(tmp_path):
    path = tmp_path / "rot.jpg"
    image = Image.new("RGB", (60, 40), (200, 10, 10))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    image.save(path, exif=exif.tobytes())
    assert open_image(path).size == (40, 60)
    assert image_size_of(path) == (40, 60)
    assert load_image_array(path, 16).shape == (16, 16, 3)


def test_jpeg_draft_decodes_at_reduced_scale(tmp_path):
    path = write_image(tmp_path / "big.jpg", size=(800, 600))
    assert open_image(path).size == (800, 600)
    small = open_image(path, 64)
    assert small.size == (100, 75)  # 1/8 scale is still >= 64 on both sides
    array = load_image_array(path, 64)
    assert array.shape == (64, 64, 3) and array.dtype == np.uint8


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"this is text", "not an image"), (None, "truncated or corrupt")],
)
def test_bad_files_raise_named_errors(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    if content is None:
        good = write_image(tmp_path / "good.jpg", size=(200, 150)).read_bytes()
        path.write_bytes(good[: len(good) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        load_image_array(path, 32)
    assert "bad.jpg" in str(info.value)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = write_image(tmp_path / "bomb.png", size=(100, 100))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DataError, match="bomb.png: refused as a possible decompression bomb"):
        open_image(path)


def test_read_mask_through_palette(tmp_path):
    plain = write_mask(tmp_path / "a_segmentation.png")
    inverted = write_mask(tmp_path / "b_segmentation.png", palette_inverted=True)
    assert np.array_equal(read_mask(tmp_path / "a_segmentation.png"), plain)
    # raw indices would give the complement; through the palette it is the lesion
    raw = np.asarray(Image.open(tmp_path / "b_segmentation.png")) > 0
    assert np.array_equal(raw, ~inverted)
    assert np.array_equal(read_mask(tmp_path / "b_segmentation.png"), inverted)


def test_read_mask_size_and_binary_checks(tmp_path):
    write_mask(tmp_path / "m.png")
    with pytest.raises(DataError, match=r"m\.png: mask is 60x45 but its image is 600x450"):
        read_mask(tmp_path / "m.png", expected_size=(600, 450))
    ramp = np.tile(np.arange(60, dtype=np.uint8) * 4, (45, 1))
    Image.fromarray(ramp).save(tmp_path / "grey.png")
    with pytest.raises(DataError, match="not binary .* pass a threshold"):
        read_mask(tmp_path / "grey.png")
    assert read_mask(tmp_path / "grey.png", threshold=127).sum() == (ramp > 127).sum()
    Image.fromarray(np.eye(4, dtype=np.uint8)).save(tmp_path / "zero_one.png")
    assert read_mask(tmp_path / "zero_one.png").sum() == 4  # 0/1 masks: the higher level is lesion
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "empty.png")
    assert not read_mask(tmp_path / "empty.png").any()


def test_real_masks_read_through_palette(shared_sample):
    masks = sorted((shared_sample / "masks").glob("*_segmentation.png"))
    assert len(masks) == 75
    palette = [m for m in masks if Image.open(m).mode == "P"]
    assert len(palette) == 2
    for mask_path in palette:
        image_path = shared_sample / "images" / mask_path.name.replace("_segmentation.png", ".jpg")
        lesion = read_mask(mask_path, image_size_of(image_path))
        # the lesion is the minority of the frame and darker than the skin around it
        assert 0.05 < lesion.mean() < 0.6
        gray = np.asarray(open_image(image_path).convert("L"), dtype=float)
        assert gray[lesion].mean() < gray[~lesion].mean()


def test_size_of_a_truncated_png_is_a_data_error(tmp_path):
    """PNG keeps its EXIF after the pixels, so even reading the orientation needs a whole file."""
    import numpy as np
    from PIL import Image

    from hamkit.data.images import image_size_of
    from hamkit.errors import DataError

    path = tmp_path / "cut.png"
    Image.fromarray(np.full((40, 50, 3), 9, np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DataError, match="cut.png: truncated or corrupt"):
        image_size_of(path)
