"""Tests of hamkit.backbones.registry: specs, names, wildcards, user registration, laziness."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import hamkit
from hamkit.backbones import registry as reg
from hamkit.backbones.spec import IMAGENET_MEAN, BackboneSpec, PluginInfo
from hamkit.backbones.torchvision_specs import BUILTIN_SPECS
from hamkit.errors import BackboneNotFoundError, HamkitError, WeightsError

BUILTINS = sorted(BUILTIN_SPECS)


def _pool(*, task: str, pretrained: bool | str, **kwargs: object) -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


# --- listing and lookup -------------------------------------------------------------------


def test_list_backbones_all_builtins_sorted(isolated_registry: None) -> None:
    assert reg.list_backbones() == BUILTINS
    assert len(BUILTINS) == 10


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("resnet*", ["resnet101", "resnet18", "resnet34", "resnet50"]),
        ("resnet?8", ["resnet18"]),
        ("RESNET1*", ["resnet101", "resnet18"]),  # case-insensitive
        ("*_v3_*", ["deeplabv3_mobilenet_v3_large", "mobilenet_v3_large", "mobilenet_v3_small"]),
        ("mobilenet_v[23]", ["mobilenet_v2"]),  # wildcards: whole-name match
        ("mobilenet_v3", ["deeplabv3_mobilenet_v3_large", "mobilenet_v3_large", "mobilenet_v3_small"]),
        ("nothing*", []),
    ],
)
def test_list_backbones_wildcards(isolated_registry: None, pattern: str, expected: list[str]) -> None:
    assert reg.list_backbones(pattern) == expected


def test_list_backbones_task_filter(isolated_registry: None) -> None:
    seg = reg.list_backbones(task="segmentation")
    assert seg == ["deeplabv3_mobilenet_v3_large", "deeplabv3_resnet101", "deeplabv3_resnet50"]
    cls = reg.list_backbones("*net*", task="classification")
    assert cls == ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"] + [
        "resnet101",
        "resnet18",
        "resnet34",
        "resnet50",
    ]
    with pytest.raises(HamkitError, match="unknown task 'detection'"):
        reg.list_backbones(task="detection")


def test_unknown_name_suggests_close_matches(isolated_registry: None) -> None:
    with pytest.raises(BackboneNotFoundError) as info:
        reg.get_backbone("resnet19")
    message = str(info.value)
    assert "'resnet19'" in message and "did you mean resnet18" in message
    assert "timm:<model>" in message and "smp:<Arch>:<encoder>" in message
    assert isinstance(info.value, LookupError)
    with pytest.raises(BackboneNotFoundError, match="did you mean mobilenet_v2"):
        reg.get_backbone("MobileNet_V2")  # case differs: suggested, not silently accepted


def test_get_backbone_builtin_spec(isolated_registry: None) -> None:
    spec = reg.get_backbone("deeplabv3_resnet50")
    assert spec.tasks == ("segmentation",) and spec.feature_dim == 2048
    assert spec.source == "hamkit" and spec.mean == IMAGENET_MEAN
    assert spec.default_task == "segmentation"


def test_public_names_are_lazily_exported() -> None:
    for name in (
        "BackboneSpec",
        "PluginInfo",
        "register_backbone",
        "create_backbone",
        "get_backbone",
        "list_backbones",
        "list_plugins",
    ):
        assert getattr(hamkit, name) is getattr(reg, name)


# --- specs --------------------------------------------------------------------------------


def test_spec_normalises_fields() -> None:
    spec = BackboneSpec(
        "x",
        "segmentation",
        _pool,
        8,
        input_size=[64, 32],
        mean=[0, 0, 0],
        pretrained_weights="imagenet",
        description="  two\n lines ",
    )
    assert spec.tasks == ("segmentation",) and spec.input_size == (64, 32)
    assert spec.mean == (0.0, 0.0, 0.0) and spec.pretrained_weights == ("imagenet",)
    assert spec.description == "two lines"
    with pytest.raises(AttributeError):
        spec.name = "y"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tasks": ("detection",)}, "tasks must be"),
        ({"tasks": ()}, "tasks must be"),
        ({"feature_dim": 0}, "feature_dim"),
        ({"feature_dim": 2.5}, "feature_dim"),
        ({"mean": (0.5, 0.5)}, "mean needs 3"),
        ({"std": (0.5, 0.0, 0.5)}, "std must be positive"),
        ({"input_size": (224,)}, "input_size"),
        ({"builder": 3}, "builder must be callable"),
        ({"name": " "}, "non-empty"),
    ],
)
def test_spec_rejects_invalid_fields(kwargs: dict[str, object], match: str) -> None:
    fields: dict[str, object] = {"name": "x", "tasks": ("classification",), "builder": _pool, "feature_dim": 3}
    fields.update(kwargs)
    with pytest.raises(HamkitError, match=match):
        BackboneSpec(**fields)  # type: ignore[arg-type]


def test_plugin_info_fields() -> None:
    info = PluginInfo("a", "pkg", "1.0", "mod:obj", "failed", "ImportError: x")
    assert (info.name, info.package, info.status, info.error) == ("a", "pkg", "failed", "ImportError: x")


# --- user registration --------------------------------------------------------------------


def test_register_decorator_and_create(isolated_registry: None) -> None:
    @reg.register_backbone("meancolour", feature_dim=3)
    def meancolour(*, task: str, pretrained: bool | str, **kwargs: object) -> nn.Module:
        """Mean colour of the image.

        More text.
        """
        return _pool(task=task, pretrained=pretrained)

    spec = meancolour.backbone_spec  # type: ignore[attr-defined]
    assert reg.get_backbone("meancolour") is spec
    assert spec.description == "Mean colour of the image."
    assert spec.source == meancolour.__module__.split(".")[0]
    assert "meancolour" in reg.list_backbones("mean*", task="classification")
    model = reg.create_backbone("meancolour")
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    assert torch.equal(model(x), x.mean(dim=(2, 3)))
    assert model.feature_dim == 3  # set from the spec: the builder's module had none


def test_register_existing_name_needs_override(isolated_registry: None) -> None:
    reg.register_backbone(BackboneSpec("mine", ("classification",), _pool, 3))
    with pytest.raises(HamkitError, match="already registered.*override=True"):
        reg.register_backbone("mine", feature_dim=5)(_pool)
    replacement = BackboneSpec("mine", ("classification",), _pool, 5)
    assert reg.register_backbone(replacement, override=True) is replacement
    assert reg.get_backbone("mine").feature_dim == 5


def test_register_builtin_name_needs_override(isolated_registry: None) -> None:
    with pytest.raises(HamkitError, match="'resnet18' is already registered.*'hamkit'"):
        reg.register_backbone("resnet18", feature_dim=3)(_pool)
    assert reg.get_backbone("resnet18").feature_dim == 512
    reg.register_backbone("resnet18", feature_dim=3, override=True)(_pool)
    assert reg.get_backbone("resnet18").feature_dim == 3


@pytest.mark.parametrize("name", ["timm:mine", "smp:Unet:mine"])
def test_reserved_prefixes_cannot_be_registered(isolated_registry: None, name: str) -> None:
    with pytest.raises(HamkitError, match="reserved"):
        reg.register_backbone(name, feature_dim=3, override=True)(_pool)


def test_register_requires_feature_dim(isolated_registry: None) -> None:
    with pytest.raises(HamkitError, match="feature_dim is required"):
        reg.register_backbone("nodim")


def test_task_none_picks_first_and_unserved_task_is_refused(isolated_registry: None) -> None:
    seen: list[str] = []

    @reg.register_backbone("dual", tasks=("segmentation", "classification"), feature_dim=3)
    def dual(*, task: str, pretrained: bool | str, **kwargs: object) -> nn.Module:
        seen.append(task)
        return _pool(task=task, pretrained=pretrained)

    reg.create_backbone("dual")
    reg.create_backbone("dual", task="classification")
    assert seen == ["segmentation", "classification"]
    with pytest.raises(HamkitError, match="serves classification, not 'segmentation'"):
        reg.create_backbone("resnet18", task="segmentation")


def test_builder_must_return_a_module(isolated_registry: None) -> None:
    reg.register_backbone("broken", feature_dim=3)(lambda **kwargs: "not a model")
    with pytest.raises(HamkitError, match="returned a str, not a torch.nn.Module"):
        reg.create_backbone("broken")


def test_pretrained_choices_are_checked(isolated_registry: None) -> None:
    reg.register_backbone("random_only", feature_dim=3)(_pool)
    with pytest.raises(WeightsError, match="has no pretrained weights; pass pretrained=False"):
        reg.create_backbone("random_only", pretrained=True)
    with pytest.raises(WeightsError, match="no pretrained weights 'IMAGENET9'.*IMAGENET1K_V1"):
        reg.create_backbone("resnet18", pretrained="IMAGENET9")


# --- laziness -----------------------------------------------------------------------------

_LAZY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import importlib.metadata as md
    calls = []
    original = md.entry_points
    def counting(*args, **kwargs):
        calls.append(kwargs.get("group"))
        return original(*args, **kwargs)
    md.entry_points = counting
    heavy = ("torch", "torchvision", "timm", "segmentation_models_pytorch")
    import hamkit
    import hamkit.backbones.registry as r
    state = {
        "heavy_after_import": [m for m in heavy if m in sys.modules],
        "discovered_at_import": r._REGISTRY._plugins is not None or bool(calls),
    }
    names = r.list_backbones()
    spec = r.get_backbone("resnet50")
    seg = r.list_backbones(task="segmentation")
    state.update(
        heavy_after_list=[m for m in heavy if m in sys.modules],
        discovery_calls=calls,
        n_names=len(names),
        feature_dim=spec.feature_dim,
        n_seg=len(seg),
    )
    print(json.dumps(state))
    """
)


def test_import_and_listing_do_not_import_torch_or_discover_early() -> None:
    env = {k: v for k, v in os.environ.items() if k != "HAMKIT_DISABLE_PLUGINS"}
    result = subprocess.run(
        [sys.executable, "-c", _LAZY_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    )
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert state["heavy_after_import"] == []
    assert state["discovered_at_import"] is False
    assert state["heavy_after_list"] == []
    assert state["discovery_calls"] == ["hamkit.backbones"]  # once, on the first query
    assert state["feature_dim"] == 2048 and state["n_seg"] >= 3 and state["n_names"] >= 10
