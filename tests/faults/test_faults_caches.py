"""Damaged caches are rebuilt, with one warning line, instead of stopping the next run."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image

from hamkit.data.cache import DecodeCache
from hamkit.dedup.deduplicator import Deduplicator


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _fewer_rows(path: Path) -> None:
    if path.suffix == ".npz":  # a shard: one row fewer than keys
        with np.load(path) as data:
            keys, rows = data["keys"], data["embeddings"]
        with path.open("wb") as handle:
            np.savez(handle, keys=keys, embeddings=rows[:-1])
    else:
        np.save(path, np.load(path)[:-1])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x93NUMPY garbage" * 7)


def _zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def _pickled(path: Path) -> None:  # numpy's advice would be to load it with allow_pickle: never
    with path.open("wb") as handle:
        np.save(handle, np.array([{"a": 1}], dtype=object), allow_pickle=True)


DAMAGE = [_truncate, _fewer_rows, _garbage, _zero_bytes, _pickled]


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__.strip("_"))
def test_a_damaged_decode_cache_entry_is_rebuilt(tiny_folder: Path, tmp_path: Path, damage) -> None:
    cache = DecodeCache(tmp_path / "cache")
    paths = sorted(tiny_folder.rglob("*.jpg"))
    masks = sorted(tiny_folder.rglob("*_segmentation.png"))
    entry = cache.load(paths, 16, mask_paths=masks)
    expected = entry.open()[0].copy()
    damage(entry.images)
    with pytest.warns(UserWarning, match=f"decode cache entry {entry.key}.*damaged.*building it again") as caught:
        rebuilt = cache.load(paths, 16, mask_paths=masks)
    assert len(caught) == 1
    images, masks_array = rebuilt.open()
    assert np.array_equal(images, expected) and masks_array is not None and masks_array.shape == (14, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.load(paths, 16, mask_paths=masks)  # sound again: no second warning


def test_a_damaged_decode_cache_marker_is_rebuilt(tiny_folder: Path, tmp_path: Path) -> None:
    cache = DecodeCache(tmp_path / "cache")
    paths = sorted(tiny_folder.rglob("*.jpg"))
    entry = cache.load(paths, 16)
    marker = tmp_path / "cache" / f"{entry.key}.json"
    for text in ("{not json", json.dumps({"count": 3, "image_size": 16})):
        marker.write_text(text)
        with pytest.warns(UserWarning, match="marker"):
            assert cache.load(paths, 16).open()[0].shape == (14, 16, 16, 3)


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__.strip("_"))
def test_a_damaged_hash_cache_shard_is_rebuilt(tmp_path: Path, damage) -> None:
    for i in range(4):
        write_image(tmp_path / "images" / f"img{i}.png", random_state=i % 3)
    dedup = Deduplicator("phash", cache_dir=tmp_path / "cache", num_workers=0, progress=False)
    first = dedup.find(tmp_path / "images")
    shards = sorted((tmp_path / "cache").rglob("shard-*.npz"))
    assert len(shards) == 1
    damage(shards[0])
    with pytest.warns(UserWarning, match="damaged.*computed again") as caught:
        again = Deduplicator("phash", cache_dir=tmp_path / "cache", num_workers=0, progress=False).find(
            tmp_path / "images"
        )
    assert len(caught) == 1
    assert len(again.pairs) == len(first.pairs) == 1
    with warnings.catch_warnings():  # the shard was replaced by a sound one
        warnings.simplefilter("error")
        Deduplicator("phash", cache_dir=tmp_path / "cache", num_workers=0, progress=False).find(tmp_path / "images")


def test_a_hash_cache_shard_with_mismatched_arrays_is_rebuilt(tmp_path: Path) -> None:
    from hamkit.dedup.embeddings import EmbeddingCache

    cache = EmbeddingCache(tmp_path, {"x": 1})
    cache.add(["a", "b"], np.ones((2, 4), dtype=np.float32))
    shard = next(cache.folder.glob("shard-*.npz"))
    np.savez(shard, keys=np.array(["a", "b", "c"]), embeddings=np.ones((2, 4), dtype=np.float32))
    with pytest.warns(UserWarning, match="damaged"):
        assert EmbeddingCache(tmp_path, {"x": 1}).load() == {}
    assert not shard.exists()


def test_a_full_disk_while_building_the_decode_cache_is_one_error_and_no_entry(
    tiny_folder: Path, tmp_path: Path, monkeypatch
) -> None:
    import errno
    import os

    from hamkit.errors import DiskFullError

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    cache = DecodeCache(tmp_path / "cache")
    with pytest.raises(DiskFullError, match="images.npy: cannot be written: no space left"):
        cache.load(sorted(tiny_folder.rglob("*.jpg")), 16)
    assert list((tmp_path / "cache").iterdir()) == []
