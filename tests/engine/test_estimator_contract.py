"""scikit-learn's estimator contract: keyword-only parameters stored unchanged, get_params /
set_params / clone, fit(X, y) and score, GridSearchCV and cross_validate, the recipe."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_validate

from hamkit import LesionClassifier, LesionSegmenter, TrainConfig
from hamkit.errors import HamkitError


def _images(n: int = 24, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Two classes a network can tell apart at once: dark and bright images."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    base = np.where(labels[:, None, None, None] == 1, 200, 40)
    images = np.clip(base + rng.integers(-20, 20, (n, size, size, 3)), 0, 255).astype(np.uint8)
    return images, labels


def _tiny(**changes: object) -> LesionClassifier:
    params = {
        "num_classes": 2,
        "image_size": 16,
        "pretrained": False,
        "device": "cpu",
        "recipe": TrainConfig(epochs=2, batch_size=8, lr=1e-2, progress=False, augment=False, num_workers=0),
    }
    return LesionClassifier("mobilenet_v3_small", **{**params, **changes})


@pytest.mark.parametrize(
    "estimator",
    [
        LesionClassifier("resnet18", image_size=32, pretrained=False, dropout=0.1),
        LesionSegmenter("smp:Unet:resnet18", image_size=64, classify=True, backbone_kwargs={"encoder_depth": 3}),
    ],
    ids=["classifier", "segmenter"],
)
def test_clone_and_params_round_trip(estimator: object) -> None:
    params = estimator.get_params()  # type: ignore[attr-defined]
    copy = clone(estimator)
    assert type(copy) is type(estimator)
    assert copy.get_params() == params
    assert type(estimator)(**params).get_params() == params
    assert copy.set_params(image_size=96) is copy and copy.image_size == 96
    assert estimator.image_size != 96  # type: ignore[attr-defined]
    assert not hasattr(copy, "network_")


def test_positional_arguments_after_the_backbone_are_refused() -> None:
    with pytest.raises(TypeError):
        LesionClassifier("resnet18", 224)  # type: ignore[misc]  # was a silent 224-class head
    with pytest.raises(TypeError):
        LesionSegmenter("smp:Unet:resnet18", 128)  # type: ignore[misc]


def test_values_are_stored_unchanged_and_checked_in_fit() -> None:
    clf = _tiny(num_classes=1)
    assert clf.num_classes == 1  # no validation in __init__
    images, labels = _images()
    with pytest.raises(HamkitError, match="num_classes"):
        clf.fit(images, labels)
    with pytest.raises(HamkitError, match="unknown training option"):
        _tiny().fit(images, labels, epoch=3)
    with pytest.raises(HamkitError, match="epochs must be at least 1"):
        _tiny().set_params(recipe__epochs=0).fit(images, labels)


def test_deep_params_reach_into_the_recipe() -> None:
    clf = _tiny()
    params = clf.get_params(deep=True)
    assert params["recipe__epochs"] == 2 and params["recipe__lr"] == 1e-2
    clf.set_params(recipe__lr=1e-3)
    assert clf.recipe is not None and clf.recipe.lr == 1e-3
    copy = clone(clf)
    assert copy.recipe == clf.recipe and copy.recipe is not clf.recipe


def test_the_recipe_has_one_door() -> None:
    """fit takes the run options only; a recipe setting or an estimator parameter there is refused
    with the fix, before any training."""
    images, labels = _images()
    with pytest.raises(HamkitError, match=r"epochs is a setting of the training recipe.*recipe=TrainConfig\(epochs="):
        _tiny().fit(images, labels, epochs=3)
    with pytest.raises(HamkitError, match=r"lr, random_state are settings .*set_params\(recipe__lr=\.\.\.\)"):
        _tiny().fit(images, labels, lr=1e-3, random_state=1)
    with pytest.raises(HamkitError, match=r"loss is a parameter of LesionSegmenter.*LesionSegmenter\(loss=\.\.\.\)"):
        LesionSegmenter("smp:Unet:resnet18", pretrained=False).fit(images, loss="dice")


def test_set_params_reaches_a_default_recipe_and_never_changes_a_shared_one() -> None:
    fresh = LesionClassifier(pretrained=False)
    assert fresh.recipe is None
    fresh.set_params(recipe__epochs=3)
    assert fresh.recipe == TrainConfig(epochs=3)  # the classifier's default recipe, one field changed
    shared = TrainConfig(epochs=5, lr=1e-3)
    first = LesionClassifier(pretrained=False, recipe=shared)
    second = LesionClassifier(pretrained=False, recipe=shared)
    first.set_params(recipe__lr=1e-2)
    assert first.recipe.lr == 1e-2 and first.recipe.epochs == 5
    assert shared.lr == 1e-3 and second.recipe is shared
    second.set_params(recipe=shared, recipe__epochs=1)  # a recipe given together with one of its fields
    assert second.recipe.epochs == 1 and shared.epochs == 5


def test_fit_x_y_score_and_recorded_recipe(tmp_path) -> None:
    images, labels = _images()
    torch.manual_seed(0)
    clf = _tiny().fit(images, labels)
    assert clf.recipe_.epochs == 2 and len(clf.history_) == 2
    assert 0.0 <= clf.score(images, labels) <= 1.0
    clf.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["recipe"]["epochs"] == 2 and config["recipe"]["lr"] == 1e-2
    assert "out_dir" not in config["recipe"] and "device" not in config["recipe"]
    loaded = LesionClassifier.load(tmp_path / "model")
    assert loaded.recipe_ == clf.recipe_.set_params(progress=True, num_workers=None, device="auto")
    np.testing.assert_allclose(loaded.predict_proba(images), clf.predict_proba(images), atol=1e-6)


def test_run_options_of_fit_do_not_change_the_parameter(tmp_path) -> None:
    images, labels = _images(12)
    clf = _tiny()
    clf.fit(images, labels, out_dir=tmp_path / "run")
    assert clf.recipe is not None and clf.recipe.out_dir is None
    assert clf.recipe_.out_dir == tmp_path / "run" and (tmp_path / "run" / "history.csv").is_file()


def test_grid_search_and_cross_validate() -> None:
    images, labels = _images()
    search = GridSearchCV(_tiny(), {"recipe__lr": [1e-2, 1e-5]}, cv=2, error_score="raise")
    search.fit(images, labels)
    assert set(search.cv_results_["param_recipe__lr"]) == {1e-2, 1e-5}
    assert search.best_estimator_.recipe.lr in (1e-2, 1e-5)
    scores = cross_validate(_tiny(), images, labels, cv=2, error_score="raise")
    assert scores["test_score"].shape == (2,) and np.all(np.isfinite(scores["test_score"]))


def test_both_estimators_export_onnx_through_the_one_function(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from hamkit.export import export_onnx

    images, labels = _images(12)
    clf = _tiny().set_params(recipe__epochs=1).fit(images, labels)
    assert not hasattr(clf, "export_onnx")  # one door: hamkit.export_onnx, no method importing the exporter back
    result = export_onnx(clf, tmp_path / "clf.onnx")
    assert result.kind == "LesionClassifier" and result.max_abs_diff["logits"] < 1e-4
    seg = LesionSegmenter(
        "smp:Unet:resnet18",
        image_size=32,
        pretrained=False,
        device="cpu",
        backbone_kwargs={"encoder_depth": 3, "decoder_channels": [16, 8, 4]},
    )
    seg.network_ = seg._build(pretrained=False, weights=None).eval()  # untrained weights export the same way
    out = export_onnx(seg, tmp_path / "seg.onnx")
    assert tuple(out.outputs) == ("mask_logits",) and out.max_abs_diff["mask_logits"] < 1e-4
