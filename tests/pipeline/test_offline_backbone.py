"""``offline_backbone``: a network whose pretrained weights cannot be had starts from installed ones.

The hub is stood in for by a registered backbone whose builder fails to download (a
``URLError``, as ``torch.hub`` raises offline), so nothing here needs or touches the network.
"""

from __future__ import annotations

import json
import tomllib
from urllib.error import URLError

import pytest
import torch

from hamkit.backbones.registry import isolated, missing_pretrained, register_backbone
from hamkit.cli.main import main
from hamkit.errors import HamkitError, WeightsError
from hamkit.pipeline.config import load_config, to_toml
from hamkit.pipeline.run import _settle_backbones
from hamkit.pipeline.validate import check_settings

HUB_NET = "hub_only_test_net"
INSTALLED = "timm:tf_efficientnet_lite0"


@pytest.fixture
def hub_net():
    """A classification backbone whose pretrained weights live only on an unreachable hub."""
    calls: list[bool | str] = []
    with isolated(plugins=False):

        @register_backbone(HUB_NET, feature_dim=4, pretrained_weights=("hub",))
        def hub_only_test_net(*, task, pretrained, **kwargs):
            calls.append(pretrained)
            if pretrained:
                raise URLError("[Errno -3] Temporary failure in name resolution")
            return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

        yield calls


def test_installed_weights_are_ready_without_building_anything() -> None:
    assert missing_pretrained(INSTALLED) is None
    assert missing_pretrained("resnet50", pretrained=False) is None  # random weights need nothing


def test_weights_that_cannot_be_downloaded_give_the_reason(hub_net) -> None:
    assert missing_pretrained(HUB_NET) == "<urlopen error [Errno -3] Temporary failure in name resolution>"
    assert hub_net == [True]  # one try, with the spec's default weights
    with pytest.raises(WeightsError, match="has no pretrained weights 'other'; available: hub"):
        missing_pretrained(HUB_NET, pretrained="other")


def test_a_builder_bug_is_not_taken_for_a_missing_download() -> None:
    with isolated(plugins=False):

        @register_backbone("broken_test_net", feature_dim=4, pretrained_weights=("hub",))
        def broken_test_net(*, task, pretrained, **kwargs):
            raise ValueError("a bug in the builder")

        with pytest.raises(ValueError, match="a bug in the builder"):
            missing_pretrained("broken_test_net")


def test_the_offline_backbone_takes_the_place_of_one_whose_weights_cannot_be_had(hub_net) -> None:
    settings = load_config(
        overrides={"classifier": {"backbone": HUB_NET, "offline_backbone": INSTALLED}, "segmenter": {"enabled": False}}
    )
    replaced = _settle_backbones(settings)
    assert settings["classifier"]["backbone"] == INSTALLED
    assert replaced["classifier"].backbone == HUB_NET
    assert "name resolution" in replaced["classifier"].reason


def test_without_an_offline_backbone_the_run_stops_before_its_first_step(hub_net) -> None:
    settings = load_config(overrides={"classifier": {"backbone": HUB_NET}, "segmenter": {"enabled": False}})
    with pytest.raises(WeightsError) as caught:
        _settle_backbones(settings)
    message = str(caught.value)
    assert message.startswith(
        f"classifier.backbone (set in command line) = '{HUB_NET}': its pretrained weights cannot be had"
    )
    assert "set classifier.offline_backbone to a backbone whose weights are installed" in message
    assert "timm:tf_efficientnet_lite0" in message and "classifier.pretrained = false" in message
    assert "\n" not in message


def test_the_dedup_network_s_weights_are_checked_before_the_first_step_too(hub_net) -> None:
    settings = load_config(overrides={"dedup": {"methods": ["verified", "cnn"], "cnn_backbone": HUB_NET}})
    with pytest.raises(WeightsError, match=r"^dedup.cnn_backbone \(set in command line\) = 'hub_only_test_net': its"):
        _settle_backbones(settings)
    settings["dedup"]["pretrained"] = False
    assert _settle_backbones(settings) == {}


def test_random_weights_need_no_offline_backbone(hub_net) -> None:
    settings = load_config(
        overrides={"classifier": {"backbone": HUB_NET, "pretrained": False}, "segmenter": {"enabled": False}}
    )
    assert _settle_backbones(settings) == {}
    assert hub_net == []  # nothing built


@pytest.mark.parametrize(
    ("section", "value", "expected"),
    [
        ("classifier", "timm:efficientnet_b0", "must be a backbone whose pretrained weights are installed"),
        ("classifier", "no_such_net", "no_such_net"),
        ("segmenter", INSTALLED, "serves classification, not segmentation"),
        ("segmenter", "smp:Unet:resnet18", "an smp model with encoder tu-tf_efficientnet_lite0"),
    ],
)
def test_an_offline_backbone_must_have_installed_weights(section, value, expected) -> None:
    settings = load_config(overrides={section: {"offline_backbone": value}})
    with pytest.raises(HamkitError, match=f"{section}.offline_backbone .*{expected}"):
        check_settings(settings)


def test_the_gpu_preset_falls_back_on_installed_weights_for_both_networks() -> None:
    settings = load_config(preset="gpu")
    check_settings(settings)
    for section in ("classifier", "segmenter"):
        assert settings[section]["offline_backbone"] != settings[section]["backbone"]


def test_a_run_says_which_backbone_it_used_instead_and_a_rerun_skips(hub_net, tmp_path, capsys) -> None:
    config = load_config(
        overrides={
            "data": {"synthetic_lesions": 24, "synthetic_image_size": [96, 72]},
            "dedup": {"methods": ["exact"]},
            "classifier": {
                "backbone": HUB_NET,
                "offline_backbone": INSTALLED,
                "image_size": 32,
                "epochs": 1,
                "batch_size": 16,
            },
            "segmenter": {"enabled": False},
            "run": {"num_workers": 0, "progress": False, "device": "cpu"},
        }
    )
    out = tmp_path / "run"
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text(to_toml(config))
    assert main(["run", "--config", str(settings_file), "--out", str(out), "--quiet", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    started = result["summary"]["run"]["initial_weights"]["classifier"]
    assert started.startswith(f"{INSTALLED}: ImageNet weights installed with hamkit (in1k), instead of {HUB_NET}")
    assert "could not be had" in (out / "report.html").read_text()
    written = (out / "config.toml").read_text()
    assert f"# classifier.backbone: {HUB_NET} was asked for" in written
    assert tomllib.loads(written)["classifier"]["backbone"] == INSTALLED
    assert json.loads((out / "classifier" / "model" / "config.json").read_text())["backbone"] == INSTALLED
    assert result["summary"]["run"]["offline_backbone_used"] == ["classifier"]
    assert main(["run", "--config", str(settings_file), "--out", str(out), "--quiet"]) == 0  # the same again
    printed = capsys.readouterr().out
    assert "classifier skipped" in " ".join(printed.split())
    assert f"classifier started from {INSTALLED}: ImageNet weights installed with hamkit (in1k), instead of" in printed


def test_weights_made_ready_once_are_not_fetched_again_in_the_process() -> None:
    calls: list[bool | str] = []
    with isolated(plugins=False):

        @register_backbone("cached_hub_test_net", feature_dim=4, pretrained_weights=("hub",))
        def cached_hub_test_net(*, task, pretrained, **kwargs):
            calls.append(pretrained)
            return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

        assert missing_pretrained("cached_hub_test_net") is None
        assert missing_pretrained("cached_hub_test_net") is None  # e.g. the run's check, then the fit's
    assert calls == [True]
