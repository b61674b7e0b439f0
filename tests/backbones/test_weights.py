"""Tests of weights handling: local weights files, and failed downloads (network blocked)."""

from __future__ import annotations

import pickle
import socket
import warnings
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from safetensors.torch import save_file
from torchvision import models as tvm

from hamkit.backbones.registry import create_backbone
from hamkit.backbones.weights import download_guard, is_download_failure, read_state_dict
from hamkit.errors import WeightsError

pytestmark = pytest.mark.usefixtures("torch_seed")

SMALL = "mobilenet_v3_small"


def _block_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hub_offline: bool) -> None:
    """Block every socket and name lookup, point the weight caches at empty folders, and set the
    HF client's offline mode to ``hub_offline``."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access is disabled in the hamkit tests (Name or service not known)")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", hub_offline)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network, and the HF hub already in offline mode (no retries with back-off)."""
    _block_network(monkeypatch, tmp_path, hub_offline=True)


def _features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


# --- local files --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".pth"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    trained = create_backbone(SMALL)
    path = tmp_path / f"backbone{suffix}"
    state = {k: v.contiguous() for k, v in trained.state_dict().items()}
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    loaded = create_backbone(SMALL, weights=path)
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(_features(trained, x), _features(loaded, x))
    assert not torch.equal(_features(create_backbone(SMALL), x), _features(trained, x))


def test_upstream_checkpoint_with_head_and_wrappers(tmp_path: Path) -> None:
    upstream = tvm.mobilenet_v3_small(weights=None)  # classifier head included
    path = tmp_path / "downloaded_elsewhere.pth"
    wrapped = {f"module.{k}": v for k, v in upstream.state_dict().items()}  # DataParallel
    torch.save({"epoch": 3, "state_dict": wrapped}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # unexpected head keys are fine: no warning
        model = create_backbone(SMALL, weights=path)
    upstream.classifier = torch.nn.Identity()
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(_features(model, x), _features(upstream, x))


def test_backbone_nested_in_a_larger_model(tmp_path: Path) -> None:
    trained = create_backbone(SMALL)
    classifier = torch.nn.ModuleDict({"backbone": trained, "head": torch.nn.Linear(576, 7)})
    path = tmp_path / "classifier.safetensors"
    save_file(classifier.state_dict(), str(path))
    loaded = create_backbone(SMALL, weights=path)
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(_features(trained, x), _features(loaded, x))


def test_replaced_head_is_skipped_with_warning(tmp_path: Path) -> None:
    coco = tvm.segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=21, aux_loss=True
    )
    path = tmp_path / "coco.pt"
    torch.save(coco.state_dict(), path)
    with pytest.warns(UserWarning, match=r"skipped 2 tensor\(s\).*classifier\.4\.weight"):
        model = create_backbone("deeplabv3_mobilenet_v3_large", weights=path, out_channels=1)
    reference = coco.state_dict()
    state = model.state_dict()
    kept = [k for k in state if not k.startswith("classifier.4.")]
    assert all(torch.equal(state[k], reference[k]) for k in kept)
    assert state["classifier.4.weight"].shape == (1, 256, 1, 1)


@pytest.mark.parametrize("form", ["wrapper", "upstream"])
def test_smp_round_trip_both_key_forms(tmp_path: Path, form: str) -> None:
    trained = create_backbone("smp:Unet:resnet18")
    module = trained if form == "wrapper" else trained.upstream
    path = tmp_path / f"{form}.safetensors"
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
    loaded = create_backbone("smp:Unet:resnet18", weights=path)
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(_features(trained, x), _features(loaded, x))


def test_file_for_another_architecture(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.safetensors"
    save_file(tvm.resnet18(weights=None).state_dict(), str(path))
    with pytest.raises(WeightsError) as info:
        create_backbone(SMALL, weights=path)
    message = str(info.value)
    assert str(path) in message and f"'{SMALL}'" in message
    assert "features.0.0.weight" in message and "another architecture" in message


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": Path("not/a/tensor")}, path)  # weights_only=True refuses PosixPath
    with pytest.raises(WeightsError, match=r"refused it: it pickles pathlib\.\w*Path") as info:
        create_backbone(SMALL, weights=path)
    assert str(path) in str(info.value)
    assert isinstance(info.value.__cause__, pickle.UnpicklingError)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.pt", None, "does not exist"),
        ("weights.bin", b"", "unknown weights file extension '.bin'"),
        ("broken.safetensors", b"not safetensors", "not a readable safetensors file"),
        ("broken.pt", b"not a zip", "not a readable PyTorch file"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, content: bytes | None, match: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(WeightsError, match=match) as info:
        read_state_dict(path)
    assert name in str(info.value)


def test_non_tensor_entries_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "mixed.pt"
    torch.save({"conv.weight": torch.zeros(1), "step": 7}, path)
    with pytest.raises(WeightsError, match="entry 'step' is a int, not a tensor"):
        read_state_dict(path)


# --- downloads ----------------------------------------------------------------------------


def _assert_download_error(err: WeightsError, name: str) -> None:
    message = str(err)
    assert "\n" not in message
    assert message.startswith(f"could not download pretrained weights for {name} (")
    assert 'weights="path/to/file.safetensors" (or .pt/.pth)' in message
    assert "pretrained=False" in message
    assert err.__cause__ is not None and is_download_failure(err.__cause__)


@pytest.mark.parametrize("name", ["resnet18", "timm:test_resnet", "smp:Unet:resnet18"])
def test_failed_download_is_one_clear_error(offline: None, name: str) -> None:
    with pytest.raises(WeightsError) as info:
        create_backbone(name, pretrained=True)
    _assert_download_error(info.value, name)


def test_torchvision_download_cause_is_url_error(offline: None) -> None:
    with pytest.raises(WeightsError) as info:
        create_backbone("mobilenet_v3_small", pretrained=True)
    assert isinstance(info.value.__cause__, URLError)


def test_weights_file_wins_over_pretrained(offline: None, tmp_path: Path) -> None:
    path = tmp_path / "local.safetensors"
    trained = create_backbone(SMALL)
    save_file(trained.state_dict(), str(path))
    model = create_backbone(SMALL, pretrained=True, weights=path)  # no download attempted
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(_features(model, x), _features(trained, x))


def test_download_guard_passes_other_errors_through() -> None:
    with pytest.raises(KeyError):
        with download_guard("resnet18"):
            raise KeyError("not a download problem")
    with pytest.raises(RuntimeError, match="shape mismatch"):
        with download_guard("resnet18"):
            raise RuntimeError("shape mismatch")  # raised outside hub code
    with pytest.raises(WeightsError, match="for resnet18 \\(timed out\\)"):
        with download_guard("resnet18"):
            raise TimeoutError("timed out")


@pytest.mark.parametrize(
    ("name", "upstream", "encoder_of"),
    [
        ("smp:Unet:resnet18", lambda: tvm.resnet18(weights=None), lambda b: b.model.encoder),
        ("smp:Unet:tu-resnet18", None, lambda b: b.model.encoder.model),
        ("deeplabv3_mobilenet_v3_large", lambda: tvm.mobilenet_v3_large(weights=None), lambda b: b.backbone),
    ],
)
def test_encoder_only_file_loads_into_the_encoder(tmp_path: Path, name, upstream, encoder_of) -> None:
    if upstream is None:  # a timm checkpoint for smp's timm-universal encoder
        import timm

        upstream = lambda: timm.create_model("resnet18", pretrained=False)  # noqa: E731
    source = upstream()
    path = tmp_path / "encoder.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    with pytest.warns(UserWarning, match="only the encoder.*decoder, heads"):
        loaded = create_backbone(name, task="segmentation", weights=path)
    encoder = encoder_of(loaded)
    state = source.state_dict()
    for key, value in encoder.state_dict().items():  # every encoder tensor comes from the file
        match = [k for k in state if k == key or k.endswith("." + key)]
        assert match and torch.equal(value, state[match[0]]), key


def test_encoder_file_of_another_architecture_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.safetensors"
    save_file(tvm.resnet18(weights=None).state_dict(), str(path))
    with pytest.raises(WeightsError, match=r"nor does its encoder alone.*another architecture"):
        create_backbone("smp:Unet:resnet34", task="segmentation", weights=path)


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network and no proxy, but the HF client NOT in offline mode (hamkit must switch it)."""
    _block_network(monkeypatch, tmp_path, hub_offline=False)
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)


def test_unreachable_hub_fails_at_once_in_offline_mode(no_dns: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hf_constants

    seen: list[bool] = []
    import timm.models._builder as timm_builder

    real = timm_builder.load_pretrained

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(hf_constants.HF_HUB_OFFLINE)  # the client's mode while timm downloads
        return real(*args, **kwargs)

    monkeypatch.setattr(timm_builder, "load_pretrained", spy)
    with pytest.raises(WeightsError, match="Hugging Face Hub cannot be reached.*not in its local cache"):
        create_backbone("timm:test_resnet", pretrained=True)
    assert seen == [True]  # offline mode: no retries with back-off
    assert hf_constants.HF_HUB_OFFLINE is False  # restored afterwards


def test_hub_offline_mode_is_left_alone_behind_a_proxy(no_dns: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from hamkit.backbones.weights import hub_offline_when_unreachable

    with hub_offline_when_unreachable() as forced:
        assert forced
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")  # the proxy may resolve names
    with hub_offline_when_unreachable() as forced:
        assert not forced
