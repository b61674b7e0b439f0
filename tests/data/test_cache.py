from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from hamkit.data.cache import DecodeCache
from hamkit.data.dataset import SkinDataset


def test_cached_items_equal_uncached(tiny_folder, tmp_path):
    plain = SkinDataset.from_folder(tiny_folder, masks=True, image_size=32)
    cached = SkinDataset.from_folder(tiny_folder, masks=True, image_size=32, cache=tmp_path / "cache")
    for i in (0, 3, 13):
        assert torch.equal(plain[i]["image"], cached[i]["image"])
        assert torch.equal(plain[i]["mask"], cached[i]["mask"])
    files = sorted(p.name.split(".", 1)[1] for p in (tmp_path / "cache").iterdir())
    assert files == ["images.npy", "json", "json", "masks.npy"]  # images and masks: one entry each


def test_images_are_shared_by_datasets_with_and_without_masks(tiny_folder, tmp_path, monkeypatch):
    """A classifier's dataset (images) and a segmenter's (images and masks) over the same files
    keep one copy of the decoded images: the second decodes only what the first lacks."""
    cache = DecodeCache(tmp_path / "cache")
    paths = sorted(tiny_folder.rglob("*.jpg"))
    masks = sorted(tiny_folder.rglob("*_segmentation.png"))
    plain = cache.load(paths, 16)
    stamp = plain.images.stat().st_mtime_ns
    decoded: list[bool] = []
    build = DecodeCache._build

    def counting(self, entry, paths, mask_paths, *args, images=True, **kwargs):
        decoded.append(images)
        return build(self, entry, paths, mask_paths, *args, images=images, **kwargs)

    monkeypatch.setattr(DecodeCache, "_build", counting)
    with_masks = cache.load(paths, 16, mask_paths=masks)
    assert decoded == [False]  # the masks only
    assert with_masks.images == plain.images and with_masks.images.stat().st_mtime_ns == stamp
    images, mask_array = with_masks.open()
    assert images.shape == (14, 16, 16, 3) and mask_array is not None and set(np.unique(mask_array)) <= {0, 1}
    assert cache.load(paths, 16, mask_paths=masks) == with_masks and decoded == [False]  # nothing more
    assert len(list((tmp_path / "cache").glob("*.images.npy"))) == 1

    other = DecodeCache(tmp_path / "other")  # masks first: the images come with them, in one pass
    first = other.load(paths, 16, mask_paths=masks)
    assert decoded == [False, True]
    assert other.load(paths, 16).images == first.images and decoded == [False, True]
    assert np.array_equal(first.open()[0], images) and np.array_equal(first.open()[1], mask_array)


def test_cache_is_reused_and_invalidated(tiny_folder, tmp_path):
    cache = DecodeCache(tmp_path / "cache")
    paths = sorted(tiny_folder.rglob("*.jpg"))
    entry = cache.load(paths, 16)
    stamp = entry.images.stat().st_mtime_ns
    assert cache.load(paths, 16).images.stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert cache.load(paths, 24).key != entry.key  # another size is another entry
    image = paths[0]
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    changed = cache.load(paths, 16)
    assert changed.key != entry.key  # a changed source file invalidates the entry
    images, masks = changed.open()
    assert images.shape == (14, 16, 16, 3) and masks is None


def test_interrupted_build_leaves_no_entry(tiny_folder, tmp_path, monkeypatch):
    cache = DecodeCache(tmp_path / "cache")
    paths = sorted(tiny_folder.rglob("*.jpg"))
    paths[5].write_bytes(b"broken")
    from hamkit.errors import DataError

    with pytest.raises(DataError, match="ISIC_0000005"):
        cache.load(paths, 16)
    assert list((tmp_path / "cache").iterdir()) == []


def test_cache_works_with_worker_processes(tiny_folder, tmp_path):
    ds = SkinDataset.from_folder(tiny_folder, image_size=16, cache=DecodeCache(tmp_path / "c", num_workers=2))
    loader = torch.utils.data.DataLoader(ds, batch_size=7, num_workers=2)
    batches = list(loader)
    assert sum(len(b["label"]) for b in batches) == 14
    direct = np.stack([ds[i]["image"].numpy() for i in range(7)])
    assert np.array_equal(batches[0]["image"].numpy(), direct)


def test_images_kept_beside_masks_by_an_earlier_version_are_removed(tiny_folder, tmp_path):
    cache = DecodeCache(tmp_path / "cache")
    paths = sorted(tiny_folder.rglob("*.jpg"))
    masks = sorted(tiny_folder.rglob("*_segmentation.png"))
    entry = cache.load(paths, 16, mask_paths=masks)
    old = tmp_path / "cache" / f"{entry.masks_key}.images.npy"  # where the images were kept before
    old.write_bytes(entry.images.read_bytes())
    again = cache.load(paths, 16, mask_paths=masks)
    assert not old.exists() and again == entry and again.images.is_file()
