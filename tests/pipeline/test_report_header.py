"""The report's run header says which weights each network started from."""

from __future__ import annotations

from types import SimpleNamespace

from hamkit.backbones.registry import describe_initial_weights
from hamkit.pipeline.config import load_config
from hamkit.pipeline.report import _header_html


def _ctx(run: dict) -> SimpleNamespace:
    return SimpleNamespace(result=SimpleNamespace(summary={"run": run}, seconds={"dedup": 1.0}))


def test_header_names_the_starting_weights_and_warns_about_random_ones() -> None:
    run = {
        "pretrained": {"classifier": True, "segmenter": False},
        "initial_weights": {
            "classifier": "timm:tf_efficientnet_lite0: "
            + describe_initial_weights("timm:tf_efficientnet_lite0", pretrained=True),
            "segmenter": "smp:Unet:resnet18: " + describe_initial_weights("smp:Unet:resnet18"),
        },
    }
    page = _header_html(_ctx(run))
    assert "classifier started from</td><td>timm:tf_efficientnet_lite0: ImageNet weights installed with hamkit" in page
    assert "segmenter started from</td><td>smp:Unet:resnet18: random initialisation" in page
    assert "<b>Trained from random weights:</b> segmenter" in page


def test_no_banner_when_every_network_is_pretrained() -> None:
    page = _header_html(_ctx({"pretrained": {"classifier": True, "segmenter": True}}))
    assert "Trained from random weights" not in page


def test_every_preset_starts_from_weights_that_need_no_download_except_report() -> None:
    from hamkit.backbones.registry import get_backbone

    for preset in ("demo", "cpu", "gpu"):
        config = load_config(preset=preset)
        for section in ("classifier", "segmenter"):
            assert config[section]["pretrained"], (preset, section)
            # the gpu preset's hub networks fall back on installed weights (offline_backbone)
            offline = config[section]["offline_backbone"] or config[section]["backbone"]
            assert get_backbone(offline).pretrained_offline, (preset, section)
    assert load_config(preset="report")["classifier"]["backbone"] == "resnet50"  # the original recipe's hub weights
