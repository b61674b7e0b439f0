"""Sharded and Ray runs on 2,000 real HAM10000 images plus planted copies: pairs.csv, groups and
kept/removed byte for byte those of the single process. Skips where the real data is absent."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import REAL_200PX

from hamkit import Deduplicator
from hamkit.dedup.methods import VerifiedMethod
from hamkit.synthetic.planting import plant_copies

REAL = REAL_200PX
SLICE = 2000

pytestmark = pytest.mark.skipif(
    not (REAL / "HAM10000_metadata.csv").is_file(), reason="the real HAM10000 folder is absent"
)


def _files(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in ("pairs.csv", "groups.json", "kept.txt", "removed.txt")}


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    images = sorted(REAL.glob("HAM10000_images_part_*/*.jpg"))[:SLICE]
    folder = tmp_path_factory.mktemp("real_shards")
    plant_copies(images, folder, per_kind=6, random_state=0)
    (folder / "planted.csv").unlink()
    result = Deduplicator(progress=False, cache_dir=False).find(folder)
    assert result is not None and len(result.pairs) >= 30
    return folder, _files(result.save(tmp_path_factory.mktemp("single")))


@pytest.mark.parametrize("shards", [2, 4])
def test_shards_equal_the_single_process_on_real_images(real, tmp_path, shards) -> None:
    folder, single = real
    dedup = Deduplicator(progress=False, cache_dir=False)
    from hamkit.dedup.inputs import resolve_images
    from hamkit.dedup.shards import run_local

    run_local(resolve_images(folder), tmp_path / "run", shards, workers=2, threads=2)
    assert _files(dedup.merge(tmp_path / "run").save(tmp_path / "merged")) == single


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'hamkit[ray]')")
def test_ray_equals_the_single_process_on_real_images(real, tmp_path) -> None:
    import ray

    folder, single = real
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = Deduplicator(VerifiedMethod(backend="ray"), progress=False, cache_dir=False).find(folder)
        assert _files(result.save(tmp_path / "ray")) == single
    finally:
        ray.shutdown()
