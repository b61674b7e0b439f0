"""A dedup method is one class plus one registration: the registry is the one list that the
Deduplicator, the CLI's choices, the pipeline's checks and the documentation read."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from hamkit import Deduplicator, HamkitError
from hamkit.cli.main import build_parser, main
from hamkit.dedup.methods import (
    METHODS,
    DedupMethod,
    Signatures,
    Threshold,
    get_method,
    isolated_methods,
    method_names,
    register_method,
)
from hamkit.dedup.pairs import Pairs, equal_value_pairs
from hamkit.pipeline.config import load_config
from hamkit.pipeline.validate import check_settings

ROOT = REPO


class MeanGrey(DedupMethod):
    """A toy method: images whose mean grey level, in ``levels`` steps, is the same pair up."""

    name = "mean_grey"
    metric = "cosine"
    threshold_meaning = "none"

    def __init__(self, *, levels: int = 8) -> None:
        self.levels = levels

    def check(self) -> None:
        if self.levels < 1:
            raise HamkitError(f"levels must be at least 1, got {self.levels}")

    def check_threshold(self, threshold: Threshold) -> Threshold:
        return None

    def signatures(self, dedup: Deduplicator, paths: Sequence[Path]) -> Signatures:
        values = [np.asarray(Image.open(p).convert("L"), dtype=np.float64).mean() for p in paths]
        return np.array([f"{int(v * self.levels / 256)}" for v in values], dtype=object), {}

    def self_pairs(self, dedup: Deduplicator, signatures: np.ndarray, threshold: Threshold) -> tuple[Pairs, None]:
        return equal_value_pairs(signatures, signatures, self_search=True), None

    def cross_pairs(self, dedup: Deduplicator, a: np.ndarray, b: np.ndarray, threshold: Threshold) -> Pairs:
        return equal_value_pairs(a, b, self_search=False)


@pytest.fixture()
def toy() -> type[MeanGrey]:
    with isolated_methods():
        yield register_method(MeanGrey)
    assert "mean_grey" not in METHODS  # forgotten on leaving the context


def _images(folder: Path) -> Path:
    for name, grey in (("dark_a", 20), ("dark_b", 22), ("light", 230)):
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), (grey, grey, grey)).save(folder / f"{name}.png")
    return folder


def test_a_registered_method_works_in_the_deduplicator(toy, tmp_path):
    result = Deduplicator("mean_grey", progress=False).find(_images(tmp_path / "imgs"))
    assert result.method == "mean_grey"
    assert {
        frozenset((result.paths[i].stem, result.paths[j].stem)) for i, j in zip(result.pairs.i, result.pairs.j)
    } == {frozenset(("dark_a", "dark_b"))}
    coarse = Deduplicator("mean_grey", progress=False).set_params(method__levels=1)
    assert len(coarse.find(tmp_path / "imgs").pairs) == 3
    with pytest.raises(HamkitError, match="levels must be at least 1"):
        Deduplicator(MeanGrey(levels=0)).find(tmp_path / "imgs")


def test_a_registered_method_is_in_the_cli_choices(toy, tmp_path, capsys):
    args = build_parser().parse_args(["dedup", "imgs", "--out", "o", "--method", "mean_grey"])
    assert args.method == "mean_grey"
    assert "mean_grey" in build_parser()._subparsers._group_actions[0].choices["dedup"].format_help()
    out = tmp_path / "out"
    folder = _images(tmp_path / "imgs")
    assert main(["dedup", str(folder), "--out", str(out), "--method", "mean_grey", "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["pairs"] == 1
    assert main(["dedup", str(folder), "--out", str(out), "--method", "mean_grey", "--backbone", "resnet18"]) == 2
    assert "--backbone does not apply to --method mean_grey; drop it" in capsys.readouterr().err


def test_a_registered_method_passes_the_pipeline_checks(toy):
    check_settings(load_config(overrides={"dedup": {"methods": ["verified", "mean_grey"]}}))
    with pytest.raises(
        HamkitError, match="must be a non-empty list of verified, cnn, phash, dhash, exact, lesion, mean_grey"
    ):
        check_settings(load_config(overrides={"dedup": {"methods": ["sha1"]}}))


def test_an_unregistered_method_is_refused_everywhere(capsys):
    assert "mean_grey" not in method_names()
    with pytest.raises(HamkitError, match="unknown method 'mean_grey'"):
        get_method("mean_grey")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["dedup", "imgs", "--out", "o", "--method", "mean_grey"])
    assert "invalid choice: 'mean_grey'" in capsys.readouterr().err
    with pytest.raises(HamkitError, match="dedup.methods"):
        check_settings(load_config(overrides={"dedup": {"methods": ["mean_grey"]}}))


def test_the_documented_methods_are_the_registered_ones():
    text = (ROOT / "docs" / "tutorials" / "dedup.md").read_text(encoding="utf-8")
    table = text.split("## Methods and thresholds", 1)[1].split("\n\n", 2)[1]
    documented = re.findall(r"^\| `(\w+)`", table, flags=re.M)
    assert sorted(documented) == sorted(method_names())
    for name in method_names():
        cls = METHODS[name]
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}`"))
        assert ("| none |" if cls.default_threshold is None else f"| {cls.default_threshold} |") in row, name


def test_the_run_settings_of_a_method_reach_it(tmp_path):
    from hamkit.pipeline.stages import _make_deduplicators

    settings = load_config(preset="report")

    class Context:
        pass

    ctx = Context()
    ctx.settings = settings  # type: ignore[attr-defined]
    ctx.workers = 0  # type: ignore[attr-defined]
    ctx.progress = False  # type: ignore[attr-defined]
    ctx.out = tmp_path  # type: ignore[attr-defined]
    made = _make_deduplicators(ctx)  # type: ignore[arg-type]
    assert [d.method.name for d in made] == ["exact", "cnn"]
    cnn = made[1]
    assert cnn.threshold == 0.93 and cnn.method.backbone == "mobilenet_v2" and cnn.method.pretrained is True


def test_the_cnn_method_defaults_to_installed_weights_and_their_measured_threshold(tmp_path, monkeypatch):
    """``Deduplicator("cnn")`` needs no network: its default network's ImageNet weights are installed
    with hamkit, and its default threshold is the one measured for that network."""
    import socket

    from matplotlib import cbook

    from hamkit.backbones import offline
    from hamkit.backbones.defaults import EMBEDDING_BACKBONE, EMBEDDING_THRESHOLD
    from hamkit.backbones.registry import get_backbone
    from hamkit.dedup.methods import CnnMethod

    if not get_backbone(EMBEDDING_BACKBONE).pretrained_offline or not offline.installed("tf_efficientnet_lite0"):
        pytest.skip("the EfficientNet-Lite0 weights package is not installed")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network used")

    local_connect = socket.socket.connect

    def connect(sock: socket.socket, address: object) -> None:  # the decoding workers' local pipes pass
        if sock.family != socket.AF_UNIX:
            refuse()
        local_connect(sock, address)

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setenv("HAMKIT_CACHE", str(tmp_path / "cache"))
    photo = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    folder = tmp_path / "images"
    folder.mkdir()
    photo.save(folder / "hopper.jpg", quality=95)
    photo.save(folder / "hopper_reencoded.jpg", quality=70)
    photo.transpose(Image.Transpose.ROTATE_90).resize((160, 120)).save(folder / "other.png")
    Image.open(cbook.get_sample_data("logo2.png", asfileobj=False)).convert("RGB").save(folder / "logo.png")

    dedup = Deduplicator("cnn", progress=False, cache_dir=False)
    result = dedup.find(folder)
    assert isinstance(dedup.method_, CnnMethod) and dedup.method_.backbone == EMBEDDING_BACKBONE
    assert dedup.method_.pretrained is True and CnnMethod.default_threshold == EMBEDDING_THRESHOLD
    assert result.threshold == EMBEDDING_THRESHOLD
    pairs = {frozenset((result.paths[i].name, result.paths[j].name)) for i, j in zip(result.pairs.i, result.pairs.j)}
    assert frozenset(("hopper.jpg", "hopper_reencoded.jpg")) in pairs
    assert not any("logo.png" in pair for pair in pairs)
    # hamkit run's [dedup] cnn settings are the method's own defaults
    section = load_config()["dedup"]
    assert (section["cnn_backbone"], section["cnn_threshold"]) == (EMBEDDING_BACKBONE, EMBEDDING_THRESHOLD)
