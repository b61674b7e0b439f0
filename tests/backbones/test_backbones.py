"""Tests of the backbones: built-ins, timm: and smp: pass-through names, the module contract."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models._api import WeightsEnum

from hamkit.backbones.registry import create_backbone, get_backbone
from hamkit.backbones.smp_specs import smp_spec
from hamkit.backbones.spec import IMAGENET_MEAN, IMAGENET_STD
from hamkit.backbones.timm_specs import timm_spec
from hamkit.backbones.torchvision_specs import BUILTIN_SPECS
from hamkit.errors import BackboneNotFoundError, HamkitError

pytestmark = pytest.mark.usefixtures("torch_seed")

CLASSIFIERS = sorted(n for n, s in BUILTIN_SPECS.items() if s.tasks == ("classification",))
SEGMENTERS = sorted(n for n, s in BUILTIN_SPECS.items() if s.tasks == ("segmentation",))


def _image(n: int = 1, size: int = 64) -> torch.Tensor:
    return torch.randn(n, 3, size, size)


def _check_segmentation(
    model: nn.Module, feature_dim: int, out_channels: int, size: int, compare_plain: bool = True
) -> None:
    model.eval()
    x = _image(1, size)
    with torch.no_grad():
        logits, features = model(x, return_features=True)
        if compare_plain:  # same computation with or without the features
            assert torch.equal(model(x), logits)
    assert logits.shape == (1, out_channels, size, size)  # input resolution
    assert features.ndim == 4 and features.shape[:2] == (1, feature_dim)
    assert model.feature_dim == feature_dim
    assert torch.isfinite(logits).all() and torch.isfinite(features).all()


# --- built-ins ----------------------------------------------------------------------------


def test_builtin_names() -> None:
    assert CLASSIFIERS == [
        "mobilenet_v2",
        "mobilenet_v3_large",
        "mobilenet_v3_small",
        "resnet101",
        "resnet18",
        "resnet34",
        "resnet50",
    ]
    assert SEGMENTERS == ["deeplabv3_mobilenet_v3_large", "deeplabv3_resnet101", "deeplabv3_resnet50"]


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_builtin_classifier_contract(name: str) -> None:
    spec = get_backbone(name)
    model = create_backbone(name).eval()
    with torch.no_grad():
        features = model(_image())
    assert features.shape == (1, spec.feature_dim)
    assert model.feature_dim == spec.feature_dim
    assert torch.isfinite(features).all()


@pytest.mark.parametrize("name", SEGMENTERS)
def test_builtin_segmenter_contract(name: str) -> None:
    spec = get_backbone(name)
    model = create_backbone(name, out_channels=2)
    big = "resnet" in name  # keep the dilated ResNet-50/101 cheap: one small forward pass
    _check_segmentation(model, spec.feature_dim, 2, size=32 if big else 64, compare_plain=not big)
    assert not any(k.startswith("aux_classifier") for k in model.state_dict())


@pytest.mark.parametrize("name", sorted(BUILTIN_SPECS))
def test_builtin_metadata_matches_torchvision(name: str) -> None:
    spec = BUILTIN_SPECS[name]
    enum = tvm.get_model_weights(name)
    assert set(spec.pretrained_weights) == set(enum.__members__) - {"DEFAULT"}
    assert spec.pretrained_weights[0] == enum.DEFAULT.name  # pretrained=True picks DEFAULT
    assert (spec.mean, spec.std, spec.source) == (IMAGENET_MEAN, IMAGENET_STD, "hamkit")
    assert spec.description and all(s % 32 == 0 for s in spec.input_size)


# --- pretrained=True, with torchvision's download replaced by a local state dict ----------


@pytest.fixture
def fake_torchvision_weights(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, dict]]:
    """Make every torchvision weights enum return a fresh random checkpoint of its model."""
    builders: dict[str, Callable[[], nn.Module]] = {
        "ResNet18_Weights": lambda: tvm.resnet18(weights=None),
        "DeepLabV3_MobileNet_V3_Large_Weights": lambda: tvm.segmentation.deeplabv3_mobilenet_v3_large(
            weights=None, weights_backbone=None, num_classes=21, aux_loss=True
        ),
    }
    served: dict[str, dict] = {}

    def get_state_dict(self: WeightsEnum, *args: object, **kwargs: object) -> dict:
        state = builders[type(self).__name__]().state_dict()
        served[type(self).__name__] = state
        return state

    monkeypatch.setattr(WeightsEnum, "get_state_dict", get_state_dict)
    yield served


def test_pretrained_classifier_loads_upstream_weights(fake_torchvision_weights: dict) -> None:
    model = create_backbone("resnet18", pretrained="IMAGENET1K_V1")
    reference = fake_torchvision_weights["ResNet18_Weights"]
    state = model.state_dict()
    assert set(reference) - set(state) == {"fc.weight", "fc.bias"}  # head dropped
    assert all(torch.equal(state[k], reference[k]) for k in state)
    assert isinstance(model.fc, nn.Identity)
    with torch.no_grad():
        assert model.eval()(_image()).shape == (1, 512)


def test_pretrained_deeplab_replaces_head_and_drops_aux(fake_torchvision_weights: dict) -> None:
    model = create_backbone("deeplabv3_mobilenet_v3_large", pretrained=True, out_channels=3)
    reference = fake_torchvision_weights["DeepLabV3_MobileNet_V3_Large_Weights"]
    state = model.state_dict()
    assert not any(k.startswith("aux_classifier") for k in state)
    assert state["classifier.4.weight"].shape == (3, 256, 1, 1)
    same = [k for k in state if not k.startswith("classifier.4.")]
    assert same and all(torch.equal(state[k], reference[k]) for k in same)
    assert set(model.backbone.return_layers.values()) == {"out"}
    _check_segmentation(model, 960, out_channels=3, size=64)


# --- timm: --------------------------------------------------------------------------------


def test_timm_spec_metadata_and_build() -> None:
    spec = get_backbone("timm:test_resnet")
    assert spec.name == "timm:test_resnet" and spec.tasks == ("classification",)
    assert spec.source == "timm" and spec.feature_dim == 96
    assert spec.input_size == (160, 160) and spec.mean == (0.5, 0.5, 0.5)
    assert spec.pretrained_weights == ("r160_in1k",)
    assert get_backbone("timm:test_resnet") is spec  # cached
    model = create_backbone("timm:test_resnet").eval()
    with torch.no_grad():
        features = model(_image(2))
    assert features.shape == (2, 96) and model.feature_dim == 96


def test_timm_feature_dim_is_the_pooled_pre_logits_width() -> None:
    # MobileNetV3 has a 1x1 "conv_head" after pooling: num_features (288) != output width (1024)
    spec = get_backbone("timm:mobilenetv3_small_050")
    model = create_backbone("timm:mobilenetv3_small_050").eval()
    with torch.no_grad():
        features = model(_image())
    assert features.shape == (1, spec.feature_dim) == (1, 1024)
    assert model.num_features != spec.feature_dim


def test_timm_pretrained_tag_in_name() -> None:
    assert timm_spec("resnet18.a1_in1k").pretrained_weights == ("a1_in1k",)
    assert "tv_in1k" in timm_spec("resnet18").pretrained_weights


def test_timm_unknown_model_suggests() -> None:
    with pytest.raises(BackboneNotFoundError, match="did you mean timm:resnet18"):
        get_backbone("timm:resnet_18")
    with pytest.raises(BackboneNotFoundError, match="unknown timm model ''"):
        get_backbone("timm:")


# --- smp: ---------------------------------------------------------------------------------


def test_smp_spec_and_contract() -> None:
    spec = get_backbone("smp:unet:resnet18")
    assert spec.name == "smp:Unet:resnet18"  # smp's spelling of the architecture
    assert spec.tasks == ("segmentation",) and spec.source == "segmentation-models-pytorch"
    assert spec.feature_dim == 512 and spec.pretrained_weights[0] == "imagenet"
    model = create_backbone("smp:Unet:resnet18", out_channels=2)
    _check_segmentation(model, 512, out_channels=2, size=64)


@pytest.mark.parametrize(
    ("name", "feature_dim"),
    [("smp:PSPNet:resnet18", 128), ("smp:DeepLabV3Plus:resnet18", 512)],
)
def test_smp_feature_dim_follows_the_architecture(name: str, feature_dim: int) -> None:
    spec = get_backbone(name)  # PSPNet uses only 3 encoder stages by default
    assert spec.feature_dim == feature_dim
    _check_segmentation(create_backbone(name), feature_dim, out_channels=1, size=64)


def test_smp_timm_universal_encoder() -> None:
    spec = smp_spec("Unet:tu-test_resnet")
    assert spec.feature_dim == 96 and spec.mean == (0.5, 0.5, 0.5)
    assert spec.pretrained_weights == ("imagenet",)
    _check_segmentation(create_backbone(spec.name), 96, out_channels=1, size=64)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("smp:Unte:resnet18", "unknown smp architecture 'Unte'.*did you mean Unet"),
        ("smp:Unet:resnet19", "unknown smp encoder 'resnet19'.*did you mean resnet18"),
        ("smp:Unet:tu-resnet_18", "did you mean tu-resnet18"),
        ("smp:Unet", "malformed backbone name 'smp:Unet'.*smp:<Arch>:<encoder>"),
    ],
)
def test_smp_bad_names(name: str, match: str) -> None:
    with pytest.raises(BackboneNotFoundError, match=match):
        get_backbone(name)


def test_smp_aux_params_refused() -> None:
    with pytest.raises(HamkitError, match="aux_params.*return_features=True"):
        create_backbone("smp:Unet:resnet18", aux_params={"classes": 7})


def test_pass_through_task_mismatch() -> None:
    with pytest.raises(HamkitError, match="serves segmentation, not 'classification'"):
        create_backbone("smp:Unet:resnet18", task="classification")
    with pytest.raises(HamkitError, match="serves classification, not 'segmentation'"):
        create_backbone("timm:test_resnet", task="segmentation")
