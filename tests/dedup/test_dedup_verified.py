"""The ``verified`` duplicate method: candidates, verification, calibration, conflicts, the CLI."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from hamkit import Deduplicator
from hamkit.dedup.candidates import THUMB, candidate_pairs, iter_window_hits
from hamkit.dedup.methods import VerifiedMethod
from hamkit.dedup.scenes import Scene
from hamkit.dedup.thresholds import calibrate_scores
from hamkit.dedup.verify import aligned_similarity, verify_pair
from hamkit.errors import HamkitError
from hamkit.synthetic.planting import KIND_FAMILY, PLANT_KINDS, alter_image, plant_copies, recall_by_family


def lesion_photo(random_state: int, size: tuple[int, int] = (200, 150)) -> np.ndarray:
    """A dermoscopy-like RGB image: skin with fine texture, a textured dark lesion, a vignette."""
    rng = np.random.default_rng(random_state)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    skin = rng.uniform(150, 210) + cv2.GaussianBlur(rng.normal(0, 30, (height, width)).astype(np.float32), (0, 0), 1.5)
    skin += rng.uniform(-25, 25) * (xx / width - 0.5) + rng.uniform(-25, 25) * (yy / height - 0.5)  # uneven light
    cx, cy = rng.uniform(0.35, 0.65) * width, rng.uniform(0.35, 0.65) * height
    radius = rng.uniform(0.15, 0.3) * height
    blob = np.clip(1.2 - np.hypot(xx - cx, yy - cy) / radius, 0, 1)
    texture = cv2.GaussianBlur(rng.normal(0, 60, (height, width)).astype(np.float32), (0, 0), 2.0)
    gray = skin - blob * (90 + texture)
    if rng.random() < 0.6:  # a dermatoscope's dark vignette, of varying size and centre
        vx, vy = width / 2 + rng.uniform(-0.1, 0.1) * width, height / 2 + rng.uniform(-0.1, 0.1) * height
        gray[np.hypot(xx - vx, yy - vy) > rng.uniform(0.5, 0.7) * width] = 15
    rgb = np.stack([gray * 1.0, gray * 0.8, gray * 0.75], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def planted_folder(tmp_path_factory) -> tuple[Path, list]:
    """40 distinct lesion photos plus two copies of every kind."""
    originals = tmp_path_factory.mktemp("originals")
    paths = []
    for k in range(40):
        path = originals / f"ISIC_{k:07d}.jpg"
        Image.fromarray(lesion_photo(k)).save(path, quality=92)
        paths.append(path)
    folder = tmp_path_factory.mktemp("planted")
    planted = plant_copies(paths, folder, per_kind=2, random_state=1)
    (folder / "planted.csv").unlink()
    return folder, planted


def test_candidates_find_turned_and_mirrored_thumbnails() -> None:
    rng = np.random.default_rng(0)
    thumbs = (rng.random((50, THUMB, THUMB)) * 255).astype(np.uint8)
    thumbs = np.stack([cv2.GaussianBlur(t, (0, 0), 2) for t in thumbs])
    thumbs[10] = np.rot90(thumbs[2], 3)
    thumbs[11] = thumbs[3][:, ::-1]
    thumbs[12] = np.clip(thumbs[4].astype(int) + 40, 0, 255)  # brighter
    found = candidate_pairs(thumbs, k=3)
    pairs = set(zip(found.i.tolist(), found.j.tolist(), strict=True))
    assert {(2, 10), (3, 11), (4, 12)} <= pairs
    assert np.all(found.i < found.j)
    assert bool(found.mirrored[(found.i == 3) & (found.j == 11)][0])
    assert len(pairs) <= 50 * 3  # about k per image, never all pairs


def test_an_ivf_index_on_disk_gives_the_same_hits_as_in_memory(tmp_path: Path, monkeypatch) -> None:
    from hamkit.dedup import candidates

    monkeypatch.setattr(candidates, "IVF_MIN_WINDOWS", 1000)  # an IVF index from 56 images on
    monkeypatch.setattr(candidates, "ADD_BLOCK", 100)  # several blocks, the last one larger
    rng = np.random.default_rng(3)
    thumbs = rng.integers(0, 256, (700, THUMB, THUMB), dtype=np.uint8)
    thumbs[650] = np.rot90(thumbs[20])
    settings = {"per_query": 16, "chunk": 128, "query_chunks": [0, 2, 5]}
    in_memory = list(iter_window_hits(thumbs, **settings))
    on_disk = list(iter_window_hits(thumbs, **settings, folder=tmp_path))
    assert [first for first, _ in on_disk] == [first for first, _ in in_memory] == [0, 256, 640]
    for (_, a), (_, b) in zip(in_memory, on_disk, strict=True):
        assert np.array_equal(a.owner, b.owner) and np.array_equal(a.similarity, b.similarity)
    assert (on_disk[2][1].owner[650 - 640, :, 0] == 20).any()  # the turned copy, found through the file
    assert [p.name for p in tmp_path.iterdir()] == ["windows.ivfdata"]  # the blocks are joined into it


def test_verification_accepts_altered_copies_and_refuses_other_lesions() -> None:
    rng = np.random.default_rng(3)
    image = Image.fromarray(lesion_photo(5))
    reference = Scene.from_image(image)
    for kind in ("rotated", "shifted", "cropped", "flipped", "turned", "resized", "colour"):
        copy = Scene.from_image(alter_image(image, kind, rng))
        scores = [
            verify_pair(reference.gray, reference.features, copy.gray, features, mirrored=mirror)
            for mirror, features in ((False, copy.features), (True, copy.mirror_features))
        ]
        best = max(scores)
        assert best[0] > 0.6 and best[1] >= 15, (kind, scores)
    for other in range(6, 12):  # different lesions, same skin, same vignette
        scene = Scene.from_image(Image.fromarray(lesion_photo(other)))
        for mirror, features in ((False, scene.features), (True, scene.mirror_features)):
            score, _ = verify_pair(reference.gray, reference.features, scene.gray, features, mirrored=mirror)
            assert score < 0.3, (other, mirror, score)


def test_aligned_similarity_ignores_a_shared_smooth_background() -> None:
    # two images that share only a dark vignette and smooth skin: no textured tile agrees
    a, b = lesion_photo(1)[..., 0], lesion_photo(2)[..., 0]
    assert aligned_similarity(a, b, np.float32([[1, 0, 0], [0, 1, 0]])) < 0.3
    assert aligned_similarity(a, a, np.float32([[1, 0, 0], [0, 1, 0]])) > 0.99
    flat = np.full((150, 200), 128, np.uint8)
    assert aligned_similarity(flat, flat, np.float32([[1, 0, 0], [0, 1, 0]])) == 0.0  # no texture, no vote


def test_textureless_identical_files_still_pair(tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        Image.new("RGB", (120, 90), (200, 150, 140)).save(tmp_path / name)
    Image.new("RGB", (120, 90), (40, 150, 140)).save(tmp_path / "c.png")
    result = Deduplicator(progress=False, cache_dir=False).find(tmp_path)
    assert [(result.paths[i].name, result.paths[j].name) for i, j in zip(result.pairs.i, result.pairs.j)] == [
        ("a.png", "b.png")
    ]


def test_default_finds_the_copies_and_no_distinct_lesion(planted_folder) -> None:
    folder, planted = planted_folder
    result = Deduplicator(progress=False, cache_dir=False).find(folder)
    assert result.method == "verified" and result.pairs.metric == "aligned"
    names = [p.name for p in result.paths]
    recall = recall_by_family(planted, {names[m]: g for g, grp in enumerate(result.groups) for m in grp.members})
    # these look-alike photos (similar skin and vignettes, centred blobs) are harder for the
    # candidate search than real ones; the targets are those of the real data
    assert recall["exact"] == 1.0 and recall["photometric"] == 1.0, recall
    assert recall["geometric"] >= 0.8, recall
    originals_paired = {
        (names[i], names[j])
        for i, j in zip(result.pairs.i, result.pairs.j)
        if not names[i].startswith("COPY") and not names[j].startswith("COPY")
    }
    assert originals_paired == set()
    copies_per_source = max(sum(c.source == other.source for c in planted) for other in planted)
    assert max(g.size for g in result.groups) <= 1 + copies_per_source
    assert result.candidates is not None and len(result.candidates) > len(result.pairs)


def test_pairs_csv_carries_score_and_inliers(planted_folder, tmp_path: Path) -> None:
    folder, _ = planted_folder
    result = Deduplicator(progress=False, cache_dir=False).find(folder)
    result.save(tmp_path)
    with open(tmp_path / "pairs.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(result.pairs)
    assert all(float(r["score"]) >= 0.5 for r in rows)
    assert all(int(r["inliers"]) >= 15 or int(r["inliers"]) == -1 for r in rows)


def test_calibrate_suggests_a_threshold_from_lesion_ids(planted_folder, tmp_path: Path) -> None:
    folder, _ = planted_folder
    dedup = Deduplicator(progress=False, cache_dir=False)
    result = dedup.find(folder)
    # a copy belongs to its source's lesion; every original is its own lesion
    lesions = {p.stem: (p.stem.split("_", 3)[3] if p.stem.startswith("COPY_") else p.stem) for p in result.paths}
    calibration = dedup.calibrate(result, lesions)
    assert calibration.suggested is not None and calibration.suggested <= 0.6
    row = calibration.at(0.5)
    assert row.across == 0 and row.within == len(result.pairs)
    assert "Suggested threshold" in calibration.summary()
    assert calibration.plot(tmp_path / "calibration.png").stat().st_size > 1000
    assert calibration.to_csv(tmp_path / "c.csv").read_text().startswith("threshold,within,across\n")


def test_calibrate_scores_says_when_nothing_separates() -> None:
    table = calibrate_scores(np.array([0.9, 0.9, 0.8]), np.array([False, False, True]), thresholds=[0.5, 0.85])
    assert table.suggested is None and "do not separate" in table.reason


def test_label_conflicts_are_listed(planted_folder, tmp_path: Path) -> None:
    folder, planted = planted_folder
    result = Deduplicator(progress=False, cache_dir=False).find(folder)
    diagnoses = {p.stem: "nv" for p in result.paths}
    victim = planted[0].path.stem
    diagnoses[victim] = "mel"
    conflicts = result.conflicts(diagnoses)
    assert conflicts and all(victim in (result.paths[a].stem, result.paths[b].stem) for a, b, _, _ in conflicts)
    text = result.save_conflicts(tmp_path / "conflicts.csv", diagnoses).read_text()
    assert text.splitlines()[0] == "path_a,path_b,score,dx_a,dx_b" and "mel" in text


def test_find_cross_keeps_only_pairs_between_the_sets(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    rng = np.random.default_rng(0)
    for k in range(8):
        Image.fromarray(lesion_photo(100 + k)).save(old / f"o{k}.jpg", quality=92)
    source = Image.fromarray(lesion_photo(100))
    alter_image(source, "rotated", rng).save(new / "rotated_o0.jpg", quality=90)
    alter_image(source, "flipped", rng).save(new / "flipped_o0.jpg", quality=90)  # also a pair within new
    Image.fromarray(lesion_photo(200)).save(new / "fresh.jpg", quality=92)
    cross = Deduplicator(progress=False, cache_dir=False).find_cross(new, old)
    found = sorted((cross.paths_a[i].name, cross.paths_b[j].name) for i, j in zip(cross.pairs.i, cross.pairs.j))
    assert found == [("flipped_o0.jpg", "o0.jpg"), ("rotated_o0.jpg", "o0.jpg")]


def test_settings_are_checked_when_it_runs() -> None:
    with pytest.raises(HamkitError, match="aligned-content score"):
        Deduplicator(threshold=2.0).find([])
    with pytest.raises(HamkitError, match="candidates"):
        Deduplicator(VerifiedMethod(candidates=0)).find([])
    with pytest.raises(HamkitError, match="min_inliers"):
        Deduplicator(VerifiedMethod(min_inliers=2)).find([])


def test_plant_copies_writes_every_kind(tmp_path: Path) -> None:
    sources = []
    for k in range(3):
        sources.append(tmp_path / f"s{k}.jpg")
        Image.fromarray(lesion_photo(k)).save(sources[-1])
    planted = plant_copies(sources, tmp_path / "out", per_kind=2, random_state=0)
    assert sorted({c.kind for c in planted}) == sorted(PLANT_KINDS) and len(planted) == 2 * len(PLANT_KINDS)
    assert set(KIND_FAMILY) == set(PLANT_KINDS)
    exact = next(c for c in planted if c.kind == "exact")
    assert exact.path.read_bytes() == exact.source.read_bytes()
    rows = (tmp_path / "out" / "planted.csv").read_text().splitlines()
    assert rows[0] == "copy,source,kind" and len(rows) == 1 + len(planted)


def test_cli_labels_and_against(planted_folder, tmp_path: Path) -> None:
    folder, planted = planted_folder
    metadata = tmp_path / "meta.csv"
    with open(metadata, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"])
        for path in sorted(folder.iterdir()):
            lesion = path.stem.split("_", 3)[3] if path.stem.startswith("COPY_") else path.stem
            dx = "mel" if path.stem == planted[0].path.stem else "nv"
            writer.writerow([f"HAM_{lesion}", path.stem, dx, "histo", "50", "male", "back"])
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "hamkit", "dedup", str(folder), "--out", str(out), "--quiet", "--labels", str(metadata)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "label conflicts" in done.stdout and "Suggested threshold" in done.stdout
    for name in ("pairs.csv", "conflicts.csv", "calibration.csv", "calibration.png", "review.png"):
        assert (out / name).is_file(), name
    assert len((out / "conflicts.csv").read_text().splitlines()) >= 2
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["label_conflicts"] >= 1 and summary["calibration"]["pairs_across_lesions"] == 0
    against = tmp_path / "against"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hamkit",
            "dedup",
            str(planted[0].path),
            "--against",
            str(folder),
            "--out",
            str(against),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = (against / "pairs.csv").read_text().splitlines()
    assert rows[0] == "path_a,path_b,score" and len(rows) >= 2


def test_unreadable_and_tiny_files_are_skipped_or_scanned(tmp_path: Path) -> None:
    Image.fromarray(lesion_photo(1)).save(tmp_path / "a.jpg", quality=92)
    Image.fromarray(lesion_photo(1)).save(tmp_path / "a_again.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    Image.new("RGB", (1, 1), "black").save(tmp_path / "dot.png")
    Image.new("RGB", (300, 2), "white").save(tmp_path / "sliver.png")
    result = Deduplicator(progress=False, cache_dir=False).find(tmp_path)
    assert [result.paths[i].name for i in result.skipped] == ["broken.jpg"]
    assert [(result.paths[i].name, result.paths[j].name) for i, j in zip(result.pairs.i, result.pairs.j)] == [
        ("a.jpg", "a_again.png")
    ]
    assert "candidate pair(s) were checked" in result.summary()


def test_no_hang_after_opencv_ran_in_the_parent(tmp_path: Path) -> None:
    # OpenCV's thread pool does not survive fork: decoding workers that used it hung for ever
    script = f"""
import cv2, numpy as np
from PIL import Image
from hamkit import Deduplicator
cv2.GaussianBlur(np.random.rand(2000, 2000).astype(np.float32), (0, 0), 5)  # starts the pool
for k in range(6):
    Image.fromarray((np.random.default_rng(k).random((150, 200, 3)) * 255).astype(np.uint8)).save(
        r"{tmp_path}/i%d.jpg" % k)
print(len(Deduplicator(progress=False, cache_dir=False, num_workers=2).find(r"{tmp_path}").paths))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "6", done.stderr


def _cross_pairs(audit) -> set[tuple[str, str]]:
    """Every pair an audit found, as sorted image-id tuples."""
    return {
        tuple(sorted((cross.paths_a[i].stem, cross.paths_b[j].stem)))
        for cross in audit.crossings.values()
        for i, j in zip(cross.pairs.i, cross.pairs.j)
    }


def _leaky_split(folder: Path, names: list[str], apart: tuple[str, str], path: Path) -> Path:
    """A split CSV with ``apart[0]`` in train and ``apart[1]`` in test (every third other image in val)."""
    splits = {name: ("val" if k % 3 == 0 else "train") for k, name in enumerate(names)}
    splits[apart[0]], splits[apart[1]] = "train", "test"
    path.write_text("image_id,split\n" + "".join(f"{name},{split}\n" for name, split in splits.items()))
    return path


def test_audit_after_find_decodes_and_searches_nothing_and_aligns_only_new_candidates(
    planted_folder, tmp_path, monkeypatch
):
    """The audit reuses the scenes, the window hits and the verifications of the search over all
    images, and still finds the planted pair that the split puts apart."""
    from hamkit.dedup import inputs as inputs_module  # the methods decode through it
    from hamkit.dedup import scenes as scenes_module
    from hamkit.dedup.methods import verified as verified_module

    folder, _ = planted_folder
    decodes: list[int] = []
    aligned: list[tuple[int, int, bool, bool]] = []
    real_decode, real_verify = inputs_module.decode_all, scenes_module.verify_pairs

    def counting_decode(job, **kwargs):
        decodes.append(len(job))
        return real_decode(job, **kwargs)

    def counting_verify(grays, features, mirror_features, i, j, mirrored, **kwargs):
        both = kwargs["both"]
        aligned.extend(
            (id(grays[a]), id(grays[b]), bool(m), bool(t)) for a, b, m, t in zip(i.tolist(), j.tolist(), mirrored, both)
        )
        return real_verify(grays, features, mirror_features, i, j, mirrored, **kwargs)

    def no_search(*args, **kwargs):
        raise AssertionError("the audit searched the thumbnails again")

    monkeypatch.setattr(scenes_module, "verify_pairs", counting_verify)
    dedup = Deduplicator(progress=False, cache_dir=False)
    result = dedup.find(folder)
    assert result.candidates is not None and 0 < len(aligned) <= len(
        result.candidates
    )  # identical pixels: no alignment
    names = [p.stem for p in result.paths]
    planted_pair = (names[result.pairs.i[0]], names[result.pairs.j[0]])
    split_csv = _leaky_split(folder, names, planted_pair, tmp_path / "split.csv")
    monkeypatch.setattr(inputs_module, "decode_all", counting_decode)
    monkeypatch.setattr(scenes_module, "candidate_pairs", no_search)
    monkeypatch.setattr(verified_module, "window_hits", no_search)
    audit = dedup.audit(split_csv, folder)
    assert tuple(sorted(planted_pair)) in _cross_pairs(audit)
    assert audit.crossings["train-test"].pairs.score.max() >= 0.5
    assert decodes == []  # every scene came from the search over all images
    assert len(set(aligned)) == len(aligned)  # no candidate aligned twice (the same way round)
    # the same audit again (as after a re-split that changed nothing) aligns nothing at all
    count = len(aligned)
    assert _cross_pairs(dedup.audit(split_csv, folder)) == _cross_pairs(audit)
    assert len(aligned) == count and decodes == []


def test_audit_reports_a_verified_pair_across_the_splits_without_proposing_it(planted_folder, tmp_path, monkeypatch):
    """A pair verified by the search over all images crosses the splits whether or not the
    candidates between two splits include it again (here there are none)."""
    from hamkit.dedup.candidates import Candidates
    from hamkit.dedup.methods import verified as verified_module

    folder, _ = planted_folder
    dedup = Deduplicator(progress=False, cache_dir=False)
    result = dedup.find(folder)
    names = [p.stem for p in result.paths]
    planted_pair = (names[result.pairs.i[0]], names[result.pairs.j[0]])
    split_csv = _leaky_split(folder, names, planted_pair, tmp_path / "split.csv")
    none = np.zeros(0, dtype=np.int64)

    def no_candidates(hits, **kwargs):
        return Candidates(none, none, np.zeros(0, np.float32), np.zeros(0, bool))

    monkeypatch.setattr(verified_module, "candidates_from_hits", no_candidates)
    audit = dedup.audit(split_csv, folder)
    assert tuple(sorted(planted_pair)) in _cross_pairs(audit)
    within = {tuple(sorted((names[i], names[j]))) for i, j in zip(result.pairs.i, result.pairs.j)}
    assert _cross_pairs(audit) <= within  # nothing but pairs the search over all images verified


def test_a_verification_stands_for_the_other_order_only_when_the_coarse_match_rejected_it(monkeypatch):
    """The verifier aligns the second image onto the first, so a pair can pass one way only; a
    memo entry of the other order is reused only when it had too few inliers to be borderline."""
    from hamkit.dedup import scenes as scenes_module
    from hamkit.dedup.scenes import REVERSE_REUSE_BELOW, verified_pairs

    scenes = [Scene.from_image(Image.fromarray(lesion_photo(300 + k))) for k in range(3)]
    memo: dict = {}
    first = verified_pairs(scenes, k=2, memo=memo)
    assert len(first) == 3 and len(memo) == 3
    reversed_memo = {}
    for n, (key, _) in enumerate(sorted(memo.items())):
        inliers = REVERSE_REUSE_BELOW - 1 if n == 0 else REVERSE_REUSE_BELOW  # one coarse reject, two not
        reversed_memo[(key[1], key[0], *key[2:])] = (0.0, inliers)
    aligned: list[int] = []
    real = scenes_module.verify_pairs

    def counting(*args, **kwargs):
        aligned.append(len(args[3]))
        return real(*args, **kwargs)

    monkeypatch.setattr(scenes_module, "verify_pairs", counting)
    verified_pairs(scenes, k=2, memo=reversed_memo)
    assert aligned == [2] and len(reversed_memo) == 5
