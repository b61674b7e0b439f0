from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import write_metadata
from torch.utils.data import DataLoader

from hamkit.data.dataset import SkinDataset
from hamkit.data.metadata import read_metadata
from hamkit.data.splits import split_dataset
from hamkit.errors import DataError


def test_from_folder_items_and_normalisation(tiny_folder):
    ds = SkinDataset.from_folder(tiny_folder, masks=True, image_size=32, mean=(0, 0, 0), std=(1, 1, 1))
    assert len(ds) == 14 and ds.with_masks
    item = ds[3]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert item["mask"].shape == (1, 32, 32) and set(item["mask"].unique().tolist()) == {0.0, 1.0}
    assert item["label"].item() == 3 and item["image_id"] == "ISIC_0000003"
    # ISIC_0000003's mask is a palette image whose index 0 is white: read correctly, the
    # lesion is the centred ellipse, so the centre is lesion and the corner is skin
    assert item["mask"][0, 16, 16] == 1 and item["mask"][0, 0, 0] == 0
    assert ds.class_counts().tolist() == [2] * 7


def test_dataloader_batches_and_workers(tiny_folder):
    ds = SkinDataset.from_folder(tiny_folder, image_size=24)
    batch = next(iter(DataLoader(ds, batch_size=5, num_workers=2)))
    assert batch["image"].shape == (5, 3, 24, 24) and batch["label"].shape == (5,)
    assert "mask" not in batch


def test_augment_flips_image_and_mask_together(tiny_folder):
    ds = SkinDataset.from_folder(tiny_folder, masks=True, image_size=32, augment=True)
    torch.manual_seed(0)
    plain = ds.with_options(augment=False)[0]
    seen = set()
    for _ in range(12):
        item = ds[0]
        # whatever the transform, the mask moved with the image: mask area unchanged and
        # the image pixels under the mask are the plain image's pixels under its mask
        assert item["mask"].sum() == plain["mask"].sum()
        inside = item["image"][:, item["mask"][0] > 0].mean()
        assert torch.isclose(inside, plain["image"][:, plain["mask"][0] > 0].mean(), atol=1e-5)
        seen.add(item["image"].numpy().tobytes())
    assert len(seen) > 1


def test_split_selection_and_subset(tiny_folder, tmp_path):
    records = read_metadata(tiny_folder / "HAM10000_metadata.csv")
    split = split_dataset(records, (0.5, 0.25, 0.25), random_state=0)
    split.save(tmp_path / "split.csv")
    parts = {
        name: SkinDataset.from_folder(tiny_folder, split_csv=tmp_path / "split.csv", split=name, image_size=16)
        for name in ("train", "val", "test")
    }
    assert sum(len(p) for p in parts.values()) == 14
    assert not set(parts["train"].image_ids) & set(parts["test"].image_ids)
    assert len(parts["train"].subset([0, 1])) == 2
    with pytest.raises(DataError, match="unknown split 'dev'"):
        SkinDataset.from_folder(tiny_folder, split_csv=tmp_path / "split.csv", split="dev")


def test_missing_files_and_masks_are_reported(tiny_folder):
    (tiny_folder / "HAM10000_images_part_2" / "ISIC_0000010.jpg").unlink()
    (tiny_folder / "masks" / "ISIC_0000002_segmentation.png").unlink()
    with pytest.raises(DataError, match="ISIC_0000010"):
        SkinDataset.from_folder(tiny_folder)
    ds = SkinDataset.from_folder(tiny_folder, masks=tiny_folder / "masks", on_missing="skip")
    assert ds.skipped == {"ISIC_0000010": "image file not found", "ISIC_0000002": "mask not found"}
    assert len(ds) == 12


def test_missing_mask_is_an_error_by_default(tiny_folder):
    (tiny_folder / "masks" / "ISIC_0000002_segmentation.png").unlink()
    with pytest.raises(DataError, match=r"1 image\(s\) have no mask: ISIC_0000002"):
        SkinDataset.from_folder(tiny_folder, masks=tiny_folder / "masks")


def test_no_label_file_and_empty_dataset(tmp_path, tiny_folder):
    (tiny_folder / "HAM10000_metadata.csv").rename(tmp_path / "elsewhere.csv")
    with pytest.raises(DataError, match="no label file"):
        SkinDataset.from_folder(tiny_folder)
    assert len(SkinDataset.from_folder(tiny_folder, labels=tmp_path / "elsewhere.csv")) == 14
    with pytest.raises(DataError, match="empty"):
        SkinDataset([])


def test_unlabelled_images_are_listed(tiny_folder):
    write_metadata(tiny_folder / "HAM10000_metadata.csv", [("HAM_1", "ISIC_0000000", "nv")])
    ds = SkinDataset.from_folder(tiny_folder)
    assert len(ds) == 1 and len(ds.unlabelled) == 13


def test_from_paths(tiny_folder):
    paths = sorted(tiny_folder.rglob("ISIC_000000[0-2].jpg"))
    ds = SkinDataset.from_paths(paths, image_size=16)
    assert ds.labels.tolist() == [-1, -1, -1]
    with pytest.raises(DataError, match="2 labels for 3 images"):
        SkinDataset.from_paths(paths, labels=[0, 1])
    with pytest.raises(DataError, match="class indices"):
        SkinDataset.from_paths(paths, labels=[0, 1, 9])


def test_corrupt_image_error_names_file(tiny_folder):
    (tiny_folder / "HAM10000_images_part_1" / "ISIC_0000001.jpg").write_bytes(b"not a jpeg")
    ds = SkinDataset.from_folder(tiny_folder, image_size=16)
    with pytest.raises(DataError, match="ISIC_0000001.jpg: not an image"):
        ds[1]


def test_real_sample_with_palette_masks(shared_sample):
    ds = SkinDataset.from_folder(
        shared_sample / "images",
        labels=shared_sample / "HAM10000_metadata.csv",
        masks=shared_sample / "masks",
        image_size=64,
        on_missing="skip",
    )
    assert len(ds) == 75 and ds.with_masks
    assert len(ds.skipped) == 10015 - 75
    index = ds.image_ids.index("ISIC_0024354")  # a palette mask whose index 0 is white
    fraction = ds[index]["mask"].mean().item()
    assert 0.2 < fraction < 0.45  # read raw, it would be about 0.67
    assert np.all(ds.class_counts() >= 10)
