"""Shared fixtures: the real HAM10000 sample in ../shared (skipped when absent) and small
images made on the fly."""

from __future__ import annotations

import os

# two xdist workers on two cores: one BLAS/OpenMP thread each avoids oversubscription
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
"""The checkout's root (tests live one or two folders below it)."""
SHARED_SAMPLE = REPO.parent / "shared" / "data" / "ham10000-sample"
REAL_200PX = REPO.parent / "shared" / "data" / "ham10000-200px"
"""All 10,015 HAM10000 images at 200x150, where the workplace has them (tests using it skip otherwise)."""


@pytest.fixture(scope="session", autouse=True)
def _private_hamkit_cache(tmp_path_factory: pytest.TempPathFactory):
    """Embedding and hash caches of the tests go to a temporary folder, not ~/.cache/hamkit."""
    previous = os.environ.get("HAMKIT_CACHE")
    os.environ["HAMKIT_CACHE"] = str(tmp_path_factory.mktemp("hamkit-cache"))
    yield
    if previous is None:
        os.environ.pop("HAMKIT_CACHE", None)
    else:
        os.environ["HAMKIT_CACHE"] = previous


@pytest.fixture(scope="session")
def shared_sample() -> Path:
    """The real HAM10000 sample (75 images, masks, full metadata); skips where it is absent."""
    if not (SHARED_SAMPLE / "HAM10000_metadata.csv").is_file():
        pytest.skip("../shared/data/ham10000-sample is not present")
    return SHARED_SAMPLE


def write_image(
    path: Path, size: tuple[int, int] = (60, 45), random_state: int = 0, mode: str = "RGB", fmt: str | None = None
) -> Path:
    """Write a random smooth image of ``size`` (width, height) in ``mode`` to ``path``."""
    rng = np.random.default_rng(random_state)
    width, height = size
    base = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize((width, height), Image.Resampling.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert(mode).save(path, format=fmt)
    return path


def write_mask(path: Path, size: tuple[int, int] = (60, 45), palette_inverted: bool = False) -> np.ndarray:
    """Write an ellipse mask (0/255); with ``palette_inverted`` as a palette image whose index 0
    is white, like some official HAM10000 masks. Returns the boolean lesion array."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    lesion = ((xx - width / 2) / (width / 3)) ** 2 + ((yy - height / 2) / (height / 3)) ** 2 <= 1
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette_inverted:
        image = Image.fromarray(np.where(lesion, 0, 1).astype(np.uint8), mode="P")
        image.putpalette([255, 255, 255, 0, 0, 0] + [0] * (256 * 3 - 6))
        image.save(path)
    else:
        Image.fromarray(lesion.astype(np.uint8) * 255).save(path)
    return lesion


def write_metadata(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """Write a HAM10000 metadata CSV from (lesion_id, image_id, dx) rows."""
    lines = ["lesion_id,image_id,dx,dx_type,age,sex,localization"]
    lines += [f"{lesion},{image},{dx},histo,50.0,male,back" for lesion, image, dx in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def tiny_folder(tmp_path: Path) -> Path:
    """A HAM10000-layout folder: 14 images in two part folders, masks (two palette ones), metadata."""
    root = tmp_path / "data"
    rows = []
    codes = ["mel", "nv", "bcc", "akiec", "bkl", "df", "vasc"]
    for i in range(14):
        image_id = f"ISIC_{i:07d}"
        part = 1 if i < 7 else 2
        write_image(root / f"HAM10000_images_part_{part}" / f"{image_id}.jpg", random_state=i)
        write_mask(root / "masks" / f"{image_id}_segmentation.png", palette_inverted=i in (3, 9))
        rows.append((f"HAM_{i // 2:07d}", image_id, codes[i % 7]))
    write_metadata(root / "HAM10000_metadata.csv", rows)
    return root


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory):
    """A small synthetic dataset (HAM10000 layout) with a leakage-free split.csv beside it."""
    from hamkit.data.metadata import read_metadata
    from hamkit.data.splits import split_dataset
    from hamkit.synthetic import make_synthetic

    data = make_synthetic(
        tmp_path_factory.mktemp("synthetic") / "data", n_lesions=100, random_state=0, image_size=(128, 96)
    )
    split_dataset(read_metadata(data.metadata_csv), random_state=0).save(data.root / "split.csv")
    return data


@pytest.fixture
def isolated_registry():
    """A backbone registry with the built-ins only and no plugin discovery, so registrations made by
    a test do not leak into others (:func:`hamkit.backbones.registry.isolated`)."""
    from hamkit.backbones import registry

    with registry.isolated(plugins=False):
        yield


@pytest.fixture
def torch_seed() -> None:
    """Seed torch's generator, so random weights and inputs are the same in every run."""
    import torch

    torch.manual_seed(0)


@pytest.fixture(scope="module")
def single_thread():
    """One torch thread for a module: bit-identical numbers, and no oversubscription next to xdist."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
