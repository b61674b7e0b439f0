from __future__ import annotations

import pytest
from PIL import Image

from hamkit.data.plots import plot_class_balance
from hamkit.errors import DataError


def test_pie_chart_is_a_png(tmp_path):
    path = plot_class_balance([1] * 60 + [0] * 10 + [6] * 3, tmp_path / "pie.png")
    image = Image.open(path)
    assert image.format == "PNG" and image.size[0] > 300
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_pie_chart_rejects_bad_labels(tmp_path):
    with pytest.raises(DataError):
        plot_class_balance([], tmp_path / "x.png")
    with pytest.raises(DataError):
        plot_class_balance([9], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
