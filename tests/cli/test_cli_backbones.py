"""Tests of the ``hamkit backbones`` and ``hamkit plugins`` commands (in-process, via main())."""

from __future__ import annotations

import pytest

from hamkit.backbones import registry as reg
from hamkit.backbones.offline import offline_backbones
from hamkit.backbones.torchvision_specs import BUILTIN_SPECS
from hamkit.cli.backbones import format_table
from hamkit.cli.main import main


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip()]


def test_format_table_aligns_columns() -> None:
    assert format_table(("A", "BB"), [(1, "x"), ("long", "y")]).splitlines() == ["A     BB", "1     x", "long  y"]


def test_backbones_lists_all_builtins(isolated_registry: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backbones"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows[0] == ["NAME", "TASKS", "FEATURE_DIM", "INPUT", "PRETRAINED", "OFFLINE", "SOURCE"]
    table = {row[0]: row for row in rows[1:] if len(row) == 7}
    # the built-ins, and the timm models whose ImageNet weights are installed
    assert set(table) == set(BUILTIN_SPECS) | set(offline_backbones())
    assert table["resnet50"] == [
        "resnet50",
        "classification",
        "2048",
        "224x224",
        "IMAGENET1K_V2,IMAGENET1K_V1",
        "-",
        "hamkit",
    ]
    assert table["deeplabv3_resnet101"][1:4] == ["segmentation", "2048", "256x256"]


def test_backbones_pattern_and_task(isolated_registry: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backbones", "*mobilenet*", "--task", "segmentation"]) == 0
    names = [row[0] for row in _rows(capsys.readouterr().out)[1:] if len(row) == 7]
    assert names == ["deeplabv3_mobilenet_v3_large"]


def test_backbones_no_match(isolated_registry: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backbones", "vgg*"]) == 1
    assert "no backbone matches 'vgg*'" in capsys.readouterr().out


def test_backbones_describes_a_pass_through_name(isolated_registry: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backbones", "smp:unet:resnet18"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows[1] == [
        "smp:Unet:resnet18",
        "segmentation",
        "512",
        "256x256",
        "imagenet,ssl,swsl",
        "-",
        "segmentation-models-pytorch",
    ]
    assert main(["backbones", "smp:unet:resnet18", "--task", "classification"]) == 1


def test_backbones_unknown_pass_through_name_is_an_error(
    isolated_registry: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backbones", "timm:resnt18"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hamkit backbones: error: unknown timm model 'resnt18'")
    assert "timm:resnet18" in err and "Traceback" not in err


def test_backbones_rejects_unknown_task(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["backbones", "--task", "detection"])
    assert info.value.code == 2
    assert "invalid choice: 'detection'" in capsys.readouterr().err


def test_plugins_when_disabled(isolated_registry: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--load"]) == 0
    assert "plugin discovery is off (HAMKIT_DISABLE_PLUGINS is set)" in capsys.readouterr().out


def test_plugins_when_none_installed(
    isolated_registry: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HAMKIT_DISABLE_PLUGINS")
    monkeypatch.setattr(reg._plugins, "discover", lambda: [])
    assert main(["plugins"]) == 0
    assert "no backbone plugins installed (entry point group 'hamkit.backbones')" in (capsys.readouterr().out)


def test_backbones_marks_the_installed_offline_weights(
    isolated_registry: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backbones", "lite0"]) == 0
    out = capsys.readouterr().out
    rows = {row[0]: row for row in _rows(out)[1:] if len(row) == 7}
    assert rows["timm:tf_efficientnet_lite0"][4:6] == ["in1k", "in1k"]
    assert "Pretrained weights installed (no network needed): timm:tf_efficientnet_lite0" in out
    assert main(["backbones", "smp:Linknet:tu-tf_efficientnet_lite0"]) == 0
    assert _rows(capsys.readouterr().out)[1][4:6] == ["imagenet", "imagenet"]


def test_backbones_browses_timm_and_smp_names(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("timm")
    assert main(["backbones", "timm:*efficientnet_lite*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "timm:tf_efficientnet_lite0" in lines and "timm:efficientnet_lite0" in lines
    assert all(line.startswith("timm:") for line in lines if line and not line[0].isdigit())
    assert reg.list_backbones("timm:tf_efficientnet_lite", task="segmentation") == []  # timm: classification
    assert "timm:tf_efficientnet_lite2" in reg.list_backbones("timm:tf_efficientnet_lite")  # no wildcard: contains
    pytest.importorskip("segmentation_models_pytorch")
    found = reg.list_backbones("smp:unet:resnet3*", task="segmentation")
    assert "smp:Unet:resnet34" in found and all(name.lower().startswith("smp:unet:resnet3") for name in found)
    assert main(["backbones", "timm:*no_such_model_anywhere*"]) == 1
    assert "no backbone matches" in capsys.readouterr().out


def test_isolated_forgets_what_was_registered_in_it() -> None:
    with reg.isolated(plugins=False):

        @reg.register_backbone("tiny_isolated_net", feature_dim=3)
        def tiny(pretrained: bool = False, **kwargs: object) -> None:  # pragma: no cover - never built
            raise NotImplementedError

        assert reg.list_backbones("tiny_isolated") == ["tiny_isolated_net"]
    assert reg.list_backbones("tiny_isolated") == []
