"""The ``"lesion"`` method: a lesion photographed again (turned, zoomed, re-lit) pairs; another does not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from sklearn.base import clone

from hamkit import Deduplicator
from hamkit.dedup import lesion_match
from hamkit.dedup.lesion_match import (
    CROP_SIDE,
    embedding_candidates,
    inlier_score,
    lesion_box,
    lesion_crop,
    lesion_features,
    match_pair,
    match_pairs,
    mirror_descriptors,
    spread_weight,
    verify_candidates,
    vote_candidates,
    whitened,
)
from hamkit.dedup.methods import METHODS, LesionMethod
from hamkit.errors import HamkitError

cv2 = pytest.importorskip("cv2")


def _lesion(random_state: int, size: int = 400) -> np.ndarray:
    """A textured dark blob on skin-coloured, gently textured background (RGB uint8)."""
    rng = np.random.default_rng(random_state)
    noise = sum(
        cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), sigma) * sigma for sigma in (1.5, 4.0)
    )
    noise = (noise - noise.min()) / (np.ptp(noise) + 1e-6)
    for x, y in rng.integers(0, size, (150, 2)).tolist():  # globules and dots
        cv2.circle(noise, (x, y), int(rng.integers(2, 6)), float(rng.random()), -1)
    yy, xx = np.mgrid[:size, :size] / size
    cx, cy, r = rng.uniform(0.4, 0.6, 2).tolist() + [rng.uniform(0.2, 0.3)]
    blob = np.clip(1.2 - np.hypot(xx - cx, yy - cy) / r, 0, 1)
    skin = np.array([210, 160, 140], np.float32)
    dark = np.array([90, 50, 40], np.float32)
    mix = blob[..., None] * (0.6 + 0.8 * noise[..., None])
    image = skin * (1 - np.clip(mix, 0, 1)) + dark * np.clip(mix, 0, 1) + 60 * (noise[..., None] - 0.5)
    return np.clip(image, 0, 255).astype(np.uint8)


def _photograph(
    scene: np.ndarray, *, angle: float, zoom: float, shift: tuple[float, float], gain: float
) -> Image.Image:
    """Another 200x150 photograph of ``scene``: turned, zoomed, shifted and re-lit."""
    size = scene.shape[0]
    matrix = cv2.getRotationMatrix2D((size / 2 + shift[0], size / 2 + shift[1]), angle, zoom)
    view = cv2.warpAffine(scene, matrix, (size, size), borderMode=cv2.BORDER_REFLECT)
    crop = view[50:350, :]  # 400 x 300
    image = Image.fromarray(crop).resize((200, 150), Image.Resampling.BILINEAR)
    return ImageEnhance.Brightness(image).enhance(gain)


def _folder(tmp_path):
    first, second = _lesion(1), _lesion(2)
    images = {
        "a1": _photograph(first, angle=0, zoom=1.0, shift=(0, 0), gain=1.0),
        "a2": _photograph(first, angle=35, zoom=1.25, shift=(15, -10), gain=1.15),
        "b1": _photograph(second, angle=0, zoom=1.0, shift=(0, 0), gain=1.0),
        "b2": _photograph(second, angle=-20, zoom=0.85, shift=(-10, 10), gain=0.9).transpose(
            Image.Transpose.FLIP_LEFT_RIGHT
        ),
    }
    for random_state in range(3, 7):  # other lesions
        images[f"c{random_state}"] = _photograph(_lesion(random_state), angle=0, zoom=1.0, shift=(0, 0), gain=1.0)
    for name, image in images.items():
        image.save(tmp_path / f"{name}.png")
    return tmp_path


def test_registered_with_its_settings_on_the_method() -> None:
    assert METHODS["lesion"] is LesionMethod
    method = LesionMethod(candidates=7, random_state=3)
    assert (method.candidates, method.random_state) == (7, 3)
    assert method.check_threshold(None) == 0.5
    with pytest.raises(HamkitError, match="keypoint-match score in"):
        method.check_threshold(1.0)
    with pytest.raises(HamkitError, match="candidates of method 'lesion'"):
        LesionMethod(candidates=0).check()
    assert clone(method).get_params() == {
        "candidates": 7,
        "neighbours": 0,
        "views": 2,
        "random_state": 3,
    }
    with pytest.raises(HamkitError, match="views of method 'lesion' must be 1, 2, 4 or 8"):
        LesionMethod(views=3).check()
    with pytest.raises(HamkitError, match="neighbours of method 'lesion'"):
        LesionMethod(neighbours=-1).check()
    with pytest.raises(HamkitError, match="neighbours of method 'lesion'"):
        LesionMethod(neighbours=1.5).check()  # type: ignore[arg-type]
    assert repr(Deduplicator("lesion").set_params(method__candidates=20).method) == "LesionMethod(candidates=20)"


def test_score_is_half_at_ten_inliers() -> None:
    assert inlier_score(np.array([0, 10, 90])).tolist() == pytest.approx([0.0, 0.5, 0.9])


def test_mirrored_descriptors_match_the_mirror_image() -> None:
    image = Image.fromarray(_lesion(4)).resize((200, 150))
    plain = lesion_features(image)
    mirror = lesion_features(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    assert len(plain) > 50
    # the mirror image's own descriptors match the permuted ones, not the unpermuted ones
    assert match_pair(plain, mirror, mirrored=True) > 3 * max(1, match_pair(plain, mirror, mirrored=False))
    assert (mirror_descriptors(mirror_descriptors(plain.descriptors)) == plain.descriptors).all()


def test_same_lesion_pairs_and_different_lesions_do_not(tmp_path) -> None:
    result = Deduplicator("lesion", progress=False, cache_dir=False).find(_folder(tmp_path))
    names = {(result.paths[i].stem, result.paths[j].stem) for i, j in zip(result.pairs.i, result.pairs.j)}
    assert names == {("a1", "a2"), ("b1", "b2")}, names
    assert result.candidates is not None and len(result.candidates) > len(result.pairs)  # the rest scored too
    assert (result.pairs.score >= 0.5).all()


def test_a_turned_zoomed_photograph_has_spread_inliers_and_another_lesion_none() -> None:
    scene, other = _lesion(7), _lesion(8)
    photos = [
        _photograph(scene, angle=0, zoom=1.0, shift=(0, 0), gain=1.0),
        _photograph(scene, angle=35, zoom=1.3, shift=(15, -10), gain=0.8),
        _photograph(other, angle=0, zoom=1.0, shift=(0, 0), gain=1.0),
    ]
    features = [lesion_features(photo) for photo in photos]
    inliers, weighted = match_pairs(features, np.array([0, 0]), np.array([1, 2]), workers=2)
    assert inliers[0] >= 20 and weighted[0] >= 20  # turned by 35 degrees and zoomed: the similarity holds
    assert inliers[1] < 10 and weighted[1] <= inliers[1]
    assert match_pair(features[0], features[1]) == inliers[0]  # one pair alone: the same count


def test_inliers_along_a_line_weigh_nothing() -> None:
    ruler = np.stack([np.linspace(0, 280, 30), np.full(30, 200.0)], axis=1)
    assert spread_weight(ruler) == 0.0
    assert spread_weight(ruler[:2]) == 0.0
    square = np.stack(np.meshgrid(np.linspace(0, 100, 6), np.linspace(0, 100, 6)), axis=-1).reshape(-1, 2)
    assert spread_weight(square) == 1.0
    assert 0 < spread_weight(square / 10) < 1  # a small patch: part weight


def test_identical_pixels_always_pair_and_candidates_are_unique() -> None:
    flat = Image.new("RGB", (200, 150), (200, 150, 130))
    features = [lesion_features(flat), lesion_features(flat.copy())]
    assert match_pair(features[0], features[1]) >= 1000
    textured = [lesion_features(Image.fromarray(_lesion(s)).resize((200, 150))) for s in range(5)]
    i, j, votes, _ = vote_candidates(textured, k=2)
    assert (i < j).all() and len(set(zip(i.tolist(), j.tolist()))) == len(i)
    assert (votes > 0).all()


def test_lesion_box_is_the_dark_region_not_a_dark_corner() -> None:
    image = np.full((150, 200, 3), (210, 160, 140), np.uint8)
    image[:30, :30] = 20  # vignette corner, darker than the lesion
    image[70:110, 120:160] = (90, 50, 40)
    x0, y0, x1, y1 = lesion_box(image, margin=0.25)
    assert (x0, y0, x1, y1) == (110, 60, 170, 120)
    assert lesion_box(np.full((150, 200, 3), 128, np.uint8)) == (0, 0, 200, 150)  # nothing: the whole image


def test_colour_cast_is_removed_before_cropping() -> None:
    scene = _lesion(1)
    warm = np.clip(scene * np.array([1.15, 1.0, 0.8]), 0, 255).astype(np.uint8)
    plain, cast = (lesion_crop(Image.fromarray(s)).astype(float) for s in (scene, warm))
    assert plain.shape == (CROP_SIDE, CROP_SIDE, 3)
    assert np.abs(plain.mean((0, 1)) - cast.mean((0, 1))).max() < 6  # the channel means agree again
    assert np.abs(scene.mean((0, 1)) - warm.mean((0, 1))).max() > 20


def test_embedding_candidates_whiten_and_search_across() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 32)) + 50  # a large shared component, as every dermoscopic image has
    rows = np.concatenate([base, base + rng.normal(scale=0.05, size=base.shape)])
    i, j, sim = embedding_candidates(rows, k=1)
    assert set(zip(i.tolist(), j.tolist())) == {(k, k + 6) for k in range(6)}
    assert (sim > 0.9).all()
    i, j, _ = embedding_candidates(rows, k=2, cross=6)
    assert ((i < 6) & (j >= 6)).all() and {(k, k + 6) for k in range(6)} <= set(zip(i.tolist(), j.tolist()))
    assert whitened(rows, dims=4).shape == (12, 4) and whitened(rows).shape == (12, 5)


def test_embeddings_are_kept_and_neighbours_zero_builds_no_network(tmp_path) -> None:
    folder = _folder(tmp_path)
    method = LesionMethod(neighbours=3)
    dedup = Deduplicator(method, progress=False, cache_dir=False)
    first = dedup.find(folder)
    network = method.network_
    features = list(method.features_.values())
    assert all(f.embedding is not None and f.crop is None for f in features)  # crops dropped once embedded
    second = dedup.find(folder)
    assert method.network_ is network and all(a is b for a, b in zip(features, method.features_.values()))
    assert (first.pairs.i.tolist(), first.pairs.j.tolist()) == (second.pairs.i.tolist(), second.pairs.j.tolist())
    plain = LesionMethod()  # by default, no network
    found = Deduplicator(plain, progress=False, cache_dir=False).find(folder)
    assert "network_" not in plain.__dict__
    assert all(f.embedding is None and f.crop is None for f in plain.features_.values())
    names = {(found.paths[i].stem, found.paths[j].stem) for i, j in zip(found.pairs.i, found.pairs.j)}
    assert names == {("a1", "a2"), ("b1", "b2")}


def _textured(count: int) -> list:
    return [lesion_features(Image.fromarray(_lesion(s)).resize((200, 150))) for s in range(count)]


def test_descriptor_votes_find_other_photographs_in_their_parity() -> None:
    photos = []
    for random_state in range(1, 5):
        scene = _lesion(random_state)
        photos.append(_photograph(scene, angle=0, zoom=1.0, shift=(0, 0), gain=1.0))
        again = _photograph(scene, angle=25, zoom=1.2, shift=(10, -5), gain=0.9)
        photos.append(again.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if random_state == 4 else again)
    features = [lesion_features(photo) for photo in photos]
    i, j, votes, parity = vote_candidates(features, k=1)
    found = dict(zip(zip(i.tolist(), j.tolist()), parity.tolist()))
    # each lesion's two photographs are each other's best partner; the mirrored one is found mirrored
    assert found == {(0, 1): 0, (2, 3): 0, (4, 5): 0, (6, 7): 1}
    assert (votes > 0).all()
    again = vote_candidates(features, k=1)
    assert all((a == b).all() for a, b in zip(again, (i, j, votes, parity)))  # deterministic
    i, j, _, _ = vote_candidates(features, k=2, cross=4)  # first four against the last four
    assert ((i < 4) & (j >= 4)).all() and len(i)


def test_descriptor_votes_use_only_the_strongest_keypoints() -> None:
    features = _textured(5)
    assert all(len(f) > 20 for f in features)
    cut = [
        lesion_match.LesionFeatures(f.points[:20], f.descriptors[:20], f.width, f.digest, frames=f.frames[:20])
        for f in features
    ]
    few, same = vote_candidates(features, k=3, keypoints=20), vote_candidates(cut, k=3, keypoints=20)
    assert all(np.array_equal(a, b) for a, b in zip(few, same))
    assert not all(
        len(a) == len(b) and np.allclose(a, b) for a, b in zip(few, vote_candidates(features, k=3))
    )  # more keypoints vote otherwise
    empty = vote_candidates([lesion_features(Image.new("RGB", (200, 150), "white"))] * 3, k=2)
    assert all(len(part) == 0 for part in empty)  # no keypoints: no candidates
    for cross in (0, 5):  # one of the two sets empty: nothing across them
        assert all(len(part) == 0 for part in vote_candidates(features, k=2, cross=cross))
    few_each = [
        lesion_match.LesionFeatures(f.points[:4], f.descriptors[:4], f.width, f.digest, frames=f.frames[:4])
        for f in features
    ]
    i, j, _, _ = vote_candidates(few_each, k=4)  # too few descriptors for an inverted file: all searched
    assert len(i) and (i < j).all()


def test_two_stage_verification_rechecks_only_pairs_with_inliers(monkeypatch) -> None:
    scene = _lesion(1)
    images = [
        _photograph(scene, angle=0, zoom=1.0, shift=(0, 0), gain=1.0),
        _photograph(scene, angle=30, zoom=1.2, shift=(10, -10), gain=1.1),
        _photograph(_lesion(2), angle=0, zoom=1.0, shift=(0, 0), gain=1.0),
    ]
    features = [lesion_features(image) for image in images]
    i, j = np.array([0, 0]), np.array([1, 2])
    full_inliers, full_weighted = match_pairs(features, i, j)
    screened = match_pairs(features, i, j, keypoints=lesion_match.SCREEN_KEYPOINTS)
    done: list[int] = []
    rechecked: list[int] = []
    inliers, weighted = verify_candidates(features, i, j, progress=done.append, rechecking=rechecked.append)
    assert rechecked == [int((screened[1] >= lesion_match.RECHECK).sum())] and rechecked[0] >= 1
    assert sum(done) == 2 + rechecked[0]  # both stages report their pairs
    assert screened[1][0] >= lesion_match.RECHECK and inliers[0] == full_inliers[0] > screened[0][0]
    assert weighted[0] == full_weighted[0] and inlier_score(weighted[0]) > 0.5
    assert inlier_score(weighted[1]) < 0.3  # another lesion
    calls = []
    original = lesion_match.match_pairs

    def counting(*args, **kwargs):
        calls.append(len(args[1]))
        return original(*args, **kwargs)

    monkeypatch.setattr(lesion_match, "match_pairs", counting)
    monkeypatch.setattr(lesion_match, "RECHECK", 1e9)  # nothing rechecked: the screening's counts stand
    inliers, weighted = verify_candidates(features, i, j)
    assert calls == [2] and inliers.tolist() == screened[0].tolist() and weighted.tolist() == screened[1].tolist()


def test_search_between_two_sets_pairs_only_across_them(tmp_path) -> None:
    folder = _folder(tmp_path)
    first = sorted(folder.glob("[ab]1.png")) + sorted(folder.glob("c[34].png"))
    second = sorted(folder.glob("[ab]2.png")) + sorted(folder.glob("c[56].png"))
    found = Deduplicator("lesion", progress=False, cache_dir=False).find_cross(first, second)
    assert found is not None
    names = {(found.paths_a[i].stem, found.paths_b[j].stem) for i, j in zip(found.pairs.i, found.pairs.j)}
    assert names == {("a1", "a2"), ("b1", "b2")}
