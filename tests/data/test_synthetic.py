"""Tests of hamkit.synthetic (make_synthetic and its rendering, records and duplicate helpers)."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hamkit.classes import CLASS_CODES, ISIC_COLUMNS
from hamkit.errors import DataError
from hamkit.synthetic import SyntheticDataset, make_synthetic
from hamkit.synthetic._duplicates import DUPLICATE_KINDS, encode_mask, make_duplicate
from hamkit.synthetic._records import lesion_counts, photo_counts, unique_ids

MASKS = "HAM10000_segmentations_lesion_tschandl"
META_HEADER = "lesion_id,image_id,dx,dx_type,age,sex,localization"
TRUTH_HEADER = "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticDataset, float]:
    """The default-size dataset (150 lesions, 256x192, random_state 0) and the seconds it took."""
    start = time.perf_counter()
    dataset = make_synthetic(tmp_path_factory.mktemp("synth") / "ham", random_state=0)
    return dataset, time.perf_counter() - start


@pytest.fixture(scope="module")
def ds(built: tuple[SyntheticDataset, float]) -> SyntheticDataset:
    return built[0]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _images(ds: SyntheticDataset) -> dict[str, Path]:
    return {p.stem: p for folder in ds.image_dirs for p in folder.iterdir()}


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)


def _mask(ds: SyntheticDataset, image_id: str) -> np.ndarray:
    return np.asarray(Image.open(ds.masks_dir / f"{image_id}_segmentation.png").convert("L")) > 127


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- layout


def test_layout_and_headers(ds: SyntheticDataset) -> None:
    assert sorted(p.name for p in ds.root.iterdir()) == sorted(
        [
            "HAM10000_images_part_1",
            "HAM10000_images_part_2",
            MASKS,
            "HAM10000_metadata.csv",
            "ISIC2018_Task3_Training_GroundTruth.csv",
            "duplicates_groundtruth.csv",
        ]
    )
    assert ds.metadata_csv.read_text().splitlines()[0] == META_HEADER
    assert ds.groundtruth_csv.read_text().splitlines()[0] == TRUTH_HEADER
    assert ds.duplicates_csv.read_text().splitlines()[0] == "image_id,duplicate_of,kind"
    part_1 = sorted(p.stem for p in ds.image_dirs[0].iterdir())
    part_2 = sorted(p.stem for p in ds.image_dirs[1].iterdir())
    assert part_1 + part_2 == sorted(part_1 + part_2)  # first half of the ids in part 1
    assert abs(len(part_1) - len(part_2)) <= 1
    assert len(part_1) + len(part_2) == ds.n_images
    for path in _images(ds).values():
        assert path.suffix == ".jpg"
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
    assert not [p for p in ds.root.rglob(".*")]  # no temporary files left behind


def test_metadata_values(ds: SyntheticDataset) -> None:
    rows = _rows(ds.metadata_csv)
    ids = [r["image_id"] for r in rows]
    assert len(rows) == ds.n_images == len(set(ids))
    assert set(ids) == set(_images(ds))
    assert all(re.fullmatch(r"ISIC_\d{7}", i) for i in ids)
    assert all(re.fullmatch(r"HAM_\d{7}", r["lesion_id"]) for r in rows)
    assert {r["dx"] for r in rows} == set(CLASS_CODES)
    assert {r["dx_type"] for r in rows} <= {"histo", "follow_up", "consensus", "confocal"}
    assert {r["sex"] for r in rows} <= {"male", "female", "unknown"}
    assert all(r["localization"] for r in rows)
    ages = [r["age"] for r in rows]
    assert "" in ages  # a few empty ages, as in HAM10000
    assert all(re.fullmatch(r"\d+\.0", a) and float(a) % 5 == 0 for a in ages if a)
    by_lesion: dict[str, set[tuple[str, ...]]] = {}
    for r in rows:  # one lesion, one patient: all its photos share dx, age, sex, site
        by_lesion.setdefault(r["lesion_id"], set()).add((r["dx"], r["age"], r["sex"], r["localization"]))
    assert all(len(v) == 1 for v in by_lesion.values())
    assert len(by_lesion) == ds.n_lesions + ds.n_duplicates


def test_groundtruth_matches_metadata(ds: SyntheticDataset) -> None:
    dx = {r["image_id"]: r["dx"] for r in _rows(ds.metadata_csv)}
    truth = _rows(ds.groundtruth_csv)
    assert sorted(r["image"] for r in truth) == sorted(dx)
    for row in truth:
        values = [row[c] for c in ISIC_COLUMNS]
        assert sorted(values) == ["0.0"] * 6 + ["1.0"]
        assert CLASS_CODES[values.index("1.0")] == dx[row["image"]]


def test_masks_have_image_size_and_are_binary(ds: SyntheticDataset) -> None:
    images = _images(ds)
    masks = sorted(ds.masks_dir.iterdir())
    assert sorted(p.name for p in masks) == sorted(f"{i}_segmentation.png" for i in images)
    modes = []
    for path in masks:
        image_id = path.name.removesuffix("_segmentation.png")
        with Image.open(path) as mask, Image.open(images[image_id]) as image:
            assert mask.size == image.size
            modes.append(mask.mode)
            grey = np.asarray(mask.convert("L"))
        assert set(np.unique(grey).tolist()) == {0, 255}  # binary, non-empty, not full
        assert 0.005 < (grey > 127).mean() < 0.5  # the lesion is a minority of the photo
    assert set(modes) == {"L", "P"}
    assert 2 <= modes.count("P") <= 3


def test_palette_masks_read_right_only_through_convert(ds: SyntheticDataset) -> None:
    palette = [p for p in ds.masks_dir.iterdir() if Image.open(p).mode == "P"]
    assert palette
    images = _images(ds)
    for path in palette:
        with Image.open(path) as mask:
            raw = np.asarray(mask)
            lesion = np.asarray(mask.convert("L")) > 127
            assert mask.getpalette()[:3] == [255, 255, 255]  # index 0 is white
        assert np.array_equal(raw > 0, ~lesion)  # raw indices are inverted
        rgb = _rgb(images[path.name.removesuffix("_segmentation.png")])
        # the foreground read through the palette is the drawn lesion: a small, distinctly
        # coloured region; the raw-index reading would make it the skin (the majority)
        assert lesion.mean() < 0.5 < (raw > 0).mean()
        assert np.abs(rgb[lesion].mean(0) - rgb[~lesion].mean(0)).sum() > 30


def test_masks_outline_the_drawn_lesion(ds: SyntheticDataset) -> None:
    gaps, contrasts = [], []
    for image_id, path in _images(ds).items():
        rgb, mask = _rgb(path), _mask(ds, image_id)
        gaps.append(np.abs(rgb[mask].mean(0) - rgb[~mask].mean(0)).sum())
        # the colour changes where the mask changes: gradients peak on the mask's edge
        grey = rgb.mean(2)
        edge = (mask ^ np.roll(mask, 1, 0)) | (mask ^ np.roll(mask, 1, 1))
        grad = np.abs(np.diff(grey, axis=0, prepend=grey[:1])) + np.abs(np.diff(grey, axis=1, prepend=grey[:, :1]))
        contrasts.append(grad[edge].mean() / grad[~edge].mean())
    assert min(gaps) > 10 and np.median(gaps) > 60
    assert np.median(contrasts) > 3 and np.mean(np.array(contrasts) > 1.5) > 0.9


# ----------------------------------------------------------------------------- lesions & classes


def test_several_photos_per_lesion(ds: SyntheticDataset) -> None:
    rows = _rows(ds.metadata_csv)
    planted = {r["image_id"] for r in _rows(ds.duplicates_csv)}
    photos: dict[str, list[str]] = {}
    for r in rows:
        if r["image_id"] not in planted:
            photos.setdefault(r["lesion_id"], []).append(r["image_id"])
    assert len(photos) == ds.n_lesions
    counts = np.array([len(v) for v in photos.values()])
    assert counts.min() >= 1 and counts.max() <= 3
    assert (counts > 1).sum() >= 10
    images = _images(ds)
    for ids in [v for v in photos.values() if len(v) > 1][:10]:
        first, second = (_rgb(images[i]) for i in ids[:2])
        assert np.abs(first - second).mean() > 1.0  # re-photographed, not copied
        assert not np.array_equal(_mask(ds, ids[0]), _mask(ds, ids[1]))  # mask moved with it


def test_class_imbalance_like_ham10000(ds: SyntheticDataset) -> None:
    rows = _rows(ds.metadata_csv)
    per_class = {code: sum(r["dx"] == code for r in rows) for code in CLASS_CODES}
    assert ds.class_counts == per_class
    assert list(ds.class_counts) == list(CLASS_CODES)
    assert sum(per_class.values()) == ds.n_images
    assert max(per_class, key=per_class.get) == "nv"
    assert per_class["nv"] > 0.5 * ds.n_images
    assert per_class["mel"] > per_class["df"] and per_class["bkl"] > per_class["vasc"]
    planted = {r["image_id"] for r in _rows(ds.duplicates_csv)}
    lesions = {(r["lesion_id"], r["dx"]) for r in rows if r["image_id"] not in planted}
    assert all(sum(dx == code for _, dx in lesions) >= 4 for code in CLASS_CODES)


def test_lesion_counts_follow_ham10000_shares() -> None:
    counts = lesion_counts(150)
    assert sum(counts.values()) == 150 and min(counts.values()) == 4
    assert counts["nv"] == max(counts.values()) and counts["mel"] > counts["bcc"] > counts["akiec"]
    assert lesion_counts(7) == {code: 1 for code in CLASS_CODES}
    big = lesion_counts(10015)
    assert big["nv"] == 6705 and big["df"] == 115
    assert sum(lesion_counts(33).values()) == 33 and min(lesion_counts(33).values()) == 4


def test_photo_counts_and_ids() -> None:
    counts = photo_counts(np.random.default_rng(0), 2000, 1, 3)
    assert set(counts.tolist()) == {1, 2, 3}
    assert (counts == 1).sum() > (counts == 2).sum() > (counts == 3).sum()
    assert set(photo_counts(np.random.default_rng(0), 50, 2, 2).tolist()) == {2}
    ids = unique_ids(np.random.default_rng(0), 500, "ISIC_", 24306, 10015)
    assert len(set(ids)) == 500 and all(24306 <= int(i[5:]) < 24306 + 10015 for i in ids)


def test_classes_separable_by_colour_on_held_out_lesions(ds: SyntheticDataset) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    planted = {r["image_id"] for r in _rows(ds.duplicates_csv)}
    images = _images(ds)
    rows = [r for r in _rows(ds.metadata_csv) if r["image_id"] not in planted]
    features = np.array([_rgb(images[r["image_id"]])[_mask(ds, r["image_id"])].mean(0) / 255 for r in rows])
    labels = [r["dx"] for r in rows]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
    predicted = cross_val_predict(model, features, labels, groups=[r["lesion_id"] for r in rows], cv=GroupKFold(4))
    score = balanced_accuracy_score(labels, predicted)
    assert score >= 0.95, score  # measured 0.972 (2026-12-06; deterministic); chance is 1/7


# ----------------------------------------------------------------------------- duplicates


def test_planted_duplicates(ds: SyntheticDataset) -> None:
    dups = _rows(ds.duplicates_csv)
    meta = {r["image_id"]: r for r in _rows(ds.metadata_csv)}
    images = _images(ds)
    assert len(dups) == ds.n_duplicates == round(0.08 * (ds.n_images - ds.n_duplicates))
    assert {d["kind"] for d in dups} == set(DUPLICATE_KINDS)
    assert ds.duplicate_kinds == {k: sum(d["kind"] == k for d in dups) for k in DUPLICATE_KINDS}
    assert len({d["duplicate_of"] for d in dups}) == len(dups)
    lesion_sizes: dict[str, int] = {}
    for r in meta.values():
        lesion_sizes[r["lesion_id"]] = lesion_sizes.get(r["lesion_id"], 0) + 1
    ids = sorted(images)
    thumbs = np.stack(
        [
            np.asarray(
                Image.open(images[i]).convert("RGB").resize((32, 24), Image.Resampling.BOX),
                np.float32,
            )
            for i in ids
        ]
    )
    thumbs -= thumbs.mean(axis=(1, 2, 3), keepdims=True)  # brightness-shift invariant
    for d in dups:
        copy, source = d["image_id"], d["duplicate_of"]
        assert copy != source and source not in {x["image_id"] for x in dups}
        assert meta[copy]["dx"] == meta[source]["dx"]
        assert meta[copy]["lesion_id"] != meta[source]["lesion_id"]
        assert lesion_sizes[meta[copy]["lesion_id"]] == 1  # a new lesion id of its own
        copy_bytes, source_bytes = images[copy].read_bytes(), images[source].read_bytes()
        if d["kind"] == "exact":
            assert copy_bytes == source_bytes
            assert (ds.masks_dir / f"{copy}_segmentation.png").read_bytes() == (
                ds.masks_dir / f"{source}_segmentation.png"
            ).read_bytes()
            continue
        assert copy_bytes != source_bytes
        a = _rgb(images[source])
        b = np.asarray(
            Image.open(images[copy]).convert("RGB").resize(a.shape[1::-1], Image.Resampling.BILINEAR),
            np.float32,
        )
        assert np.abs(a - b).mean() < 16, d
        distances = np.abs(thumbs - thumbs[ids.index(copy)]).mean(axis=(1, 2, 3))
        distances[ids.index(copy)] = np.inf
        assert ids[int(np.argmin(distances))] == source, d  # its nearest image is its source
        mask_b = Image.fromarray(_mask(ds, copy)).resize(a.shape[1::-1], Image.Resampling.NEAREST)
        mask_a, mask_b = _mask(ds, source), np.asarray(mask_b)
        assert (mask_a & mask_b).sum() / (mask_a | mask_b).sum() > 0.6, d


@pytest.mark.parametrize("kind", DUPLICATE_KINDS)
def test_make_duplicate_transforms_mask_with_image(kind: str) -> None:
    height, width = 60, 80
    yy, xx = np.mgrid[0:height, 0:width]
    mask = (xx - 40) ** 2 / 20**2 + (yy - 30) ** 2 / 14**2 <= 1
    pixels = np.where(mask[..., None], [90, 50, 30], [230, 190, 170]).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    jpeg, mask_png = buffer.getvalue(), encode_mask(mask, palette="official")
    for random_state in range(6):  # both branches of 'resized'
        data, mask_data = make_duplicate(kind, jpeg, mask, mask_png, np.random.default_rng(random_state))
        image = np.asarray(Image.open(io.BytesIO(data)).convert("L"), np.float32)
        new_mask = np.asarray(Image.open(io.BytesIO(mask_data)).convert("L")) > 127
        assert new_mask.shape == image.shape
        # the dark ellipse in the image is exactly where the new mask says
        assert np.mean((image < 140) == new_mask) > 0.97
    with pytest.raises(ValueError, match="unknown duplicate kind"):
        make_duplicate("rotated", jpeg, mask, mask_png, np.random.default_rng(0))


def test_encode_mask_styles() -> None:
    mask = np.zeros((5, 6), bool)
    mask[1:4, 2:5] = True
    for style, raw_lesion in ((None, 255), ("official", 0), ("binary", 0)):
        image = Image.open(io.BytesIO(encode_mask(mask, palette=style)))
        assert image.mode == ("L" if style is None else "P")
        assert np.array_equal(np.asarray(image.convert("L")) > 127, mask)
        assert np.all(np.asarray(image)[mask] == raw_lesion)
    with pytest.raises(ValueError, match="palette"):
        encode_mask(mask, palette="rgb")


# ----------------------------------------------------------------------------- behaviour


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    kwargs = dict(n_lesions=12, image_size=(64, 48), duplicate_fraction=0.3)
    make_synthetic(tmp_path / "a", random_state=3, **kwargs)
    make_synthetic(tmp_path / "b", random_state=3, **kwargs)
    make_synthetic(tmp_path / "c", random_state=4, **kwargs)
    a, b, c = (_tree(tmp_path / name) for name in "abc")
    assert a == b
    assert a["HAM10000_metadata.csv"] != c["HAM10000_metadata.csv"]
    a_images = sorted(v for k, v in a.items() if k.endswith(".jpg"))
    c_images = sorted(v for k, v in c.items() if k.endswith(".jpg"))
    assert not set(a_images) & set(c_images)


def test_small_options(tmp_path: Path) -> None:
    ds = make_synthetic(
        tmp_path / "s",
        n_lesions=7,
        random_state=1,
        image_size=(48, 64),
        photos_per_lesion=(2, 2),
        duplicate_fraction=0.0,
    )
    assert ds.n_images == 14 and ds.n_duplicates == 0 and ds.class_counts == dict.fromkeys(CLASS_CODES, 2)
    assert ds.duplicates_csv.read_text() == "image_id,duplicate_of,kind\n"
    with Image.open(next(ds.image_dirs[0].iterdir())) as image:
        assert image.size == (48, 64)
    assert "14" in ds.summary() and "vasc 2" in ds.summary()


def test_refuses_non_empty_folder_unless_overwrite(tmp_path: Path) -> None:
    root = tmp_path / "busy"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match=r"busy.*not empty.*overwrite"):
        make_synthetic(root, n_lesions=7, image_size=(48, 48))
    assert [p.name for p in root.iterdir()] == ["notes.txt"]
    big = make_synthetic(root, n_lesions=20, image_size=(48, 48), overwrite=True)
    small = make_synthetic(root, n_lesions=7, image_size=(48, 48), overwrite=True)
    assert (root / "notes.txt").read_text() == "keep me"  # only its own outputs are replaced
    assert big.n_images > small.n_images
    assert sum(1 for d in small.image_dirs for _ in d.iterdir()) == small.n_images  # no stale files
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        make_synthetic(tmp_path / "file", n_lesions=7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(n_lesions=6), "at least 7"),
        (dict(n_lesions=2.5), "integer"),
        (dict(image_size=(0, 10)), "at least 32"),
        (dict(image_size=(64,)), r"\(width, height\)"),
        (dict(photos_per_lesion=(3, 1)), "min <= max"),
        (dict(photos_per_lesion=(0, 2)), "min <= max"),
        (dict(duplicate_fraction=0.9), "between 0 and 0.5"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        make_synthetic(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()  # nothing written


def test_default_size_runtime_is_reported(
    built: tuple[SyntheticDataset, float], capsys: pytest.CaptureFixture[str]
) -> None:
    dataset, seconds = built
    with capsys.disabled():
        print(f"\nmake_synthetic default size: {dataset.n_images} images in {seconds:.2f} s")
    assert dataset.n_lesions == 150 and dataset.n_images > 150


def test_import_does_not_pull_in_torch() -> None:
    code = "import sys, hamkit.synthetic.generator; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_hamkit_readers_accept_it(ds: SyntheticDataset) -> None:
    from hamkit.data import images as images_mod
    from hamkit.data import metadata

    records = metadata.read_metadata(ds.metadata_csv)
    assert len(records) == ds.n_images
    truth = metadata.read_isic_groundtruth(ds.groundtruth_csv)
    assert {r.image_id: r.label for r in truth} == {r.image_id: r.label for r in records}
    found = images_mod.find_images(ds.root)
    assert set(found) == {r.image_id for r in records}
    palette = next(p for p in ds.masks_dir.iterdir() if Image.open(p).mode == "P")
    image_id = palette.name.removesuffix("_segmentation.png")
    assert np.array_equal(images_mod.read_mask(palette), _mask(ds, image_id))
