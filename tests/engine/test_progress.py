"""Inference progress: a bar over the batches on a terminal only, named by the caller."""

from __future__ import annotations

import io
import sys

import numpy as np

from hamkit import LesionClassifier, TrainConfig
from hamkit.engine.progress import batch_progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_off_a_terminal_or_when_off(monkeypatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    assert list(batch_progress(range(3), progress="predict")) == [0, 1, 2]
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert list(batch_progress(range(3), progress=False)) == [0, 1, 2]
    assert stream.getvalue() == "" and terminal.getvalue() == ""


def test_predict_and_evaluate_show_a_named_bar_on_a_terminal(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (10, 16, 16, 3), dtype=np.uint8)
    labels = np.arange(10) % 2
    recipe = TrainConfig(epochs=1, batch_size=4, progress=False, augment=False, num_workers=0)
    clf = LesionClassifier("mobilenet_v3_small", num_classes=2, image_size=16, pretrained=False, recipe=recipe)
    clf.fit(images, labels)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    quiet = clf.predict_proba(images, batch_size=4)
    assert terminal.getvalue() == ""
    shown = clf.predict_proba(images, batch_size=4, progress="predict")
    assert "predict:" in terminal.getvalue() and "/3 " in terminal.getvalue()  # three batches of 4
    np.testing.assert_array_equal(quiet, shown)
