"""Damaged checkpoints and resume folders of another model: one line that says what and the fix."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from torch.utils.data import TensorDataset

from hamkit import HamkitError, LesionClassifier, LesionSegmenter


def _data(n=24):
    torch.manual_seed(0)
    return TensorDataset(torch.randn(n, 3, 32, 32), torch.arange(n) % 7)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "run"
    clf = LesionClassifier("mobilenet_v3_small", image_size=32, pretrained=False, device="cpu")
    clf.set_params(recipe__epochs=1, recipe__batch_size=8, recipe__lr=1e-3).fit(
        _data(), _data(), num_workers=0, progress=False, out_dir=out
    )
    clf.save(out / "model")
    return out


def test_config_missing_a_key(run_folder, tmp_path):
    import shutil

    broken = tmp_path / "model"
    shutil.copytree(run_folder / "model", broken)
    config = json.loads((broken / "config.json").read_text())
    del config["image_size"]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(HamkitError, match=r"config\.json lacks image_size; .* save the model again"):
        LesionClassifier.load(broken)


def test_resume_with_another_backbone(run_folder):
    clf = LesionClassifier("resnet18", image_size=32, pretrained=False, device="cpu")
    with pytest.raises(HamkitError, match="another backbone .*'mobilenet_v3_small', not 'resnet18'"):
        clf.set_params(recipe__epochs=2, recipe__batch_size=8).fit(
            _data(), _data(), num_workers=0, progress=False, out_dir=run_folder, resume=True
        )


def test_resume_a_classifier_folder_as_a_segmenter(run_folder):
    data = TensorDataset(torch.randn(24, 3, 32, 32), torch.zeros(24, dtype=torch.long), torch.zeros(24, 1, 32, 32))
    seg = LesionSegmenter("smp:Unet:resnet18", image_size=32, pretrained=False, device="cpu")
    with pytest.raises(HamkitError, match="interrupted run of another model .*'LesionClassifier'"):
        seg.set_params(recipe__epochs=2, recipe__batch_size=8).fit(
            data, data, num_workers=0, progress=False, out_dir=run_folder, resume=True
        )


def test_pickled_training_state_is_refused_in_one_line(run_folder, tmp_path):
    import shutil

    from hamkit.engine.checkpoint import STATE_NAME, load_training_state

    copy = tmp_path / "last"
    shutil.copytree(run_folder / "last", copy)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with (copy / STATE_NAME).open("wb") as handle:
        pickle.dump({"optimizer": Evil()}, handle)
    with pytest.raises(HamkitError) as err:
        load_training_state(copy)
    message = str(err.value)
    assert "refused: it holds Python objects" in message and "\n" not in message
    assert "weights_only=False" not in message
