"""Errors on the command line speak in flags, and mask errors name only what is really missing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hamkit.cli.main import in_flags, main
from hamkit.data.dataset import SkinDataset
from hamkit.errors import DataError


def test_python_advice_becomes_flags():
    message = "3 image(s) listed in meta.csv are not under data: a, b, c; pass on_missing='skip' to leave them out"
    assert in_flags("train", message).endswith("add --skip-missing to leave them out")
    offline = (
        "could not download pretrained weights for resnet50 (offline); to use a local file pass "
        'weights="path/to/file.safetensors" (or .pt/.pth), or pass pretrained=False'
    )
    assert "--weights path/to/file.safetensors (or .pt/.pth), or add --no-pretrained" in in_flags("train", offline)
    assert "pretrained = false" in in_flags("run", offline)
    assert in_flags("split", message) == message  # a command without that advice is left alone


def _folder(tmp_path, ids, masks):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rows = ["lesion_id,image_id,dx,dx_type,age,sex,localization"]
    for k, image_id in enumerate(ids):
        Image.fromarray(np.full((30, 40, 3), 20 * k, np.uint8)).save(tmp_path / "images" / f"{image_id}.jpg")
        rows.append(f"L{k},{image_id},nv,histo,40,male,back")
    for image_id in masks:
        Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "masks" / f"{image_id}_segmentation.png")
    (tmp_path / "HAM10000_metadata.csv").write_text("\n".join(rows) + "\n")
    split = tmp_path / "split.csv"
    split.write_text(
        "image_id,lesion_id,dx,split,group\n"
        + "".join(f"{i},L{k},nv,{'train' if k < 2 else 'test'},L{k}\n" for k, i in enumerate(ids))
    )
    return split


def test_mask_error_lists_only_the_images_without_a_mask(tmp_path):
    split = _folder(tmp_path, ["ISIC_1", "ISIC_2", "ISIC_3"], masks=["ISIC_1", "ISIC_3"])
    with pytest.raises(DataError) as err:
        SkinDataset.from_folder(tmp_path, split_csv=split, split="train", masks=tmp_path / "masks")
    text = str(err.value)
    assert "1 image(s) have no mask: ISIC_2" in text
    assert "have no image" not in text  # ISIC_3's mask belongs to the test split, it is not an orphan


def test_train_classifier_missing_images_advises_the_flag(tmp_path, capsys):
    split = _folder(tmp_path, ["ISIC_1", "ISIC_2", "ISIC_3"], masks=[])
    (tmp_path / "images" / "ISIC_2.jpg").unlink()
    code = main(
        [
            "train",
            "classifier",
            "--data",
            str(tmp_path),
            "--split-csv",
            str(split),
            "--out",
            str(tmp_path / "run"),
            "--no-pretrained",
            "--backbone",
            "mobilenet_v3_small",
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--quiet",
            "--workers",
            "0",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "add --skip-missing" in err and "on_missing" not in err
