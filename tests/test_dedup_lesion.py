"""The ``"lesion"`` method: a lesion photographed again (turned, zoomed, re-lit) pairs; another does not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from sklearn.base import clone

from hamkit import Deduplicator
from hamkit.dedup.lesion_match import (
    inlier_score,
    lesion_features,
    match_pair,
    mirror_descriptors,
    visual_word_candidates,
)
from hamkit.dedup.methods import METHODS, LesionMethod
from hamkit.errors import HamkitError

cv2 = pytest.importorskip("cv2")


def _lesion(seed: int, size: int = 400) -> np.ndarray:
    """A textured dark blob on skin-coloured, gently textured background (RGB uint8)."""
    rng = np.random.default_rng(seed)
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
    for seed in range(3, 7):  # other lesions
        images[f"c{seed}"] = _photograph(_lesion(seed), angle=0, zoom=1.0, shift=(0, 0), gain=1.0)
    for name, image in images.items():
        image.save(tmp_path / f"{name}.png")
    return tmp_path


def test_registered_with_its_settings_on_the_method() -> None:
    assert METHODS["lesion"] is LesionMethod
    method = LesionMethod(candidates=7, words=64, seed=3)
    assert (method.candidates, method.words, method.seed) == (7, 64, 3)
    assert method.check_threshold(None) == 0.5
    with pytest.raises(HamkitError, match="keypoint-match score in"):
        method.check_threshold(1.0)
    with pytest.raises(HamkitError, match="candidates of method 'lesion'"):
        LesionMethod(candidates=0).check()
    assert clone(method).get_params() == {"candidates": 7, "neighbours": 10, "views": 2, "words": 64, "seed": 3}
    with pytest.raises(HamkitError, match="views of method 'lesion' must be 1, 2, 4 or 8"):
        LesionMethod(views=3).check()
    with pytest.raises(HamkitError, match="neighbours of method 'lesion'"):
        LesionMethod(neighbours=-1).check()
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


def test_identical_pixels_always_pair_and_candidates_are_unique() -> None:
    flat = Image.new("RGB", (200, 150), (200, 150, 130))
    features = [lesion_features(flat), lesion_features(flat.copy())]
    assert match_pair(features[0], features[1]) >= 1000
    textured = [lesion_features(Image.fromarray(_lesion(s)).resize((200, 150))) for s in range(5)]
    i, j, sim, _ = visual_word_candidates(textured, k=2, words=32)
    assert (i < j).all() and len(set(zip(i.tolist(), j.tolist()))) == len(i)
    assert ((sim > 0) & (sim <= 1.0001)).all()
