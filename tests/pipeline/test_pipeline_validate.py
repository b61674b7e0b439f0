"""hamkit run checks every setting before its first step, naming the setting and where it was set."""

from __future__ import annotations

import pytest

from hamkit import HamkitError
from hamkit.cli.main import main
from hamkit.pipeline.config import default_preset, load_config
from hamkit.pipeline.run import run_pipeline
from hamkit.pipeline.validate import check_masks, check_settings


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"classifier": {"class_balance": "oversample"}}, "classifier.class_balance"),
        ({"classifier": {"epochs": 0}}, "classifier.epochs"),
        ({"segmenter": {"lr": float("nan")}}, "segmenter.lr"),
        ({"segmenter": {"batch_size": 1}}, "segmenter.batch_size"),
        ({"dedup": {"methods": ["verified", "sha1"]}}, "dedup.methods"),
        ({"dedup": {"verified_threshold": 1.5}}, "dedup.verified_threshold"),
        ({"split": {"fractions": [0.8, 0.1, float("nan")]}}, "split.fractions"),
        ({"split": {"fractions": [0.8, 0.3, 0.1]}}, "split.fractions"),
        ({"run": {"num_workers": -3}}, "run.num_workers"),
        ({"run": {"device": "tpu"}}, "run.device"),
        ({"classifier": {"backbone": "resnet19"}}, "classifier.backbone"),
        ({"segmenter": {"backbone": "resnet18"}}, "segmenter.backbone"),
        ({"data": {"labels": "/nonexistent/meta.csv"}}, "data.labels"),
        ({"classifier": {"operating_point": "mel:recall=0.9"}}, "classifier.operating_point"),
        ({"classifier": {"operating_point": "mel:sensitivity=1.5"}}, "classifier.operating_point"),
    ],
)
def test_each_bad_setting_is_named(override, expected):
    settings = load_config(overrides=override)
    with pytest.raises(HamkitError, match=expected.replace(".", r"\.")) as err:
        check_settings(settings)
    assert "set in command line" in str(err.value)


def test_every_problem_at_once_with_the_file_that_set_it(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text("[classifier]\nepochs = 0\n[segmenter]\nepochs = 0\n")
    with pytest.raises(HamkitError) as err:
        check_settings(load_config(toml))
    text = str(err.value)
    assert text.startswith("2 bad settings")
    assert f"classifier.epochs (set in {toml}) = 0" in text and f"segmenter.epochs (set in {toml})" in text


def test_the_presets_and_defaults_are_valid():
    for preset in ("demo", "cpu", "report", "gpu"):
        check_settings(load_config(preset=preset))


def test_a_config_error_stops_the_run_before_any_step(tmp_path, capsys, monkeypatch):
    toml = tmp_path / "run.toml"
    toml.write_text('[classifier]\nclass_balance = "oversample"\n')

    def no_step(*args, **kwargs):
        raise AssertionError("the data step began before the settings were checked")

    monkeypatch.setattr("hamkit.pipeline.run._data_step", no_step)
    assert main(["run", "--config", str(toml), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "classifier.class_balance" in err and str(toml) in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_missing_data_folder_is_named(tmp_path):
    with pytest.raises(HamkitError, match="--data: .* is not a folder"):
        run_pipeline(tmp_path / "out", data=tmp_path / "nowhere")


def test_masks_must_match_the_images(tmp_path):
    (tmp_path / "ISIC_1_segmentation.png").write_bytes(b"")
    check_masks(tmp_path, ["ISIC_1"])
    with pytest.raises(HamkitError, match="1 of 2 images have no mask .*ISIC_2"):
        check_masks(tmp_path, ["ISIC_1", "ISIC_2"])


def test_default_preset_follows_the_data():
    assert default_preset(None) == "demo"
    assert default_preset("/data/ham") == "cpu"
    assert default_preset(None, {"data": {"root": "/data/ham"}}) == "cpu"


def test_the_old_preset_name_is_gone():
    with pytest.raises(HamkitError, match="unknown preset 'seed'; choose one of demo, cpu, report, gpu"):
        load_config(preset="seed")


def test_every_unknown_setting_of_a_file_is_named_at_once(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text("[classifier]\nepochz = 3\nlrr = 0.1\n[segmentr]\nepochs = 1\n")
    with pytest.raises(HamkitError) as err:
        load_config(toml)
    text = str(err.value)
    assert text.startswith(f"{toml}: unknown ") and text.count("\n") == 0
    for name in ("setting classifier.epochz", "setting classifier.lrr", "section [segmentr]"):
        assert name in text
    assert "[classifier] has enabled, backbone" in text and "sections are data, dedup" in text


def test_the_old_seed_settings_are_named_by_their_new_name(tmp_path, capsys):
    toml = tmp_path / "old.toml"
    toml.write_text("[data]\nseed = 1\n[split]\nseed = 2\n")
    with pytest.raises(HamkitError) as err:
        load_config(toml)
    assert str(err.value) == (
        f"{toml}: data.seed was renamed to data.random_state; split.seed was renamed to split.random_state; "
        "write the new name"
    )
    assert main(["run", "--print-config", "--set", "split.seed=3"]) == 1
    assert "command line: split.seed was renamed to split.random_state" in capsys.readouterr().err
    assert load_config(overrides={"split": {"random_state": 3}})["split"]["random_state"] == 3


def test_set_overrides_any_setting_without_a_file(tmp_path, capsys):
    argv = ["run", "--print-config", "--set", "classifier.epochs=3", "--set", "classifier.optimizer=adamw"]
    assert main([*argv, "--set", "dedup.methods=['exact', 'phash']", "--set", "split.fractions=[0.8, 0.1, 0.1]"]) == 0
    printed = capsys.readouterr().out
    assert "epochs = 3" in printed and 'optimizer = "adamw"' in printed and 'methods = ["exact", "phash"]' in printed
    assert main(["run", "--print-config", "--set", "classifier.epochs"]) == 1
    assert "write SECTION.KEY=VALUE" in capsys.readouterr().err
    assert main(["run", "--print-config", "--set", "classifier.epochz=3"]) == 1
    assert "command line: unknown setting classifier.epochz" in capsys.readouterr().err
    with pytest.raises(HamkitError, match="classifier.epochs must be a int, got 'three'"):
        load_config(overrides={"classifier": {"epochs": "three"}})


def test_the_training_settings_have_one_owner():
    """The run's checks, TrainConfig and the CLI's choices read hamkit.engine.settings."""
    from hamkit.cli.main import build_parser
    from hamkit.engine.recipe import TrainConfig
    from hamkit.engine.settings import AUGMENTS, CLASS_BALANCE_MODES, OFF, OPTIMIZERS, check

    train = build_parser()._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    classifier = train._subparsers._group_actions[0].choices["classifier"]  # type: ignore[union-attr]
    choices = {a.dest: tuple(a.choices) for a in classifier._actions if a.choices}
    assert choices["optimizer"] == OPTIMIZERS and choices["class_balance"] == CLASS_BALANCE_MODES
    assert choices["augment"] == AUGMENTS and OFF in CLASS_BALANCE_MODES and OFF in AUGMENTS
    for key, value in (("optimizer", "adagrad"), ("class_balance", ""), ("class_balance", None), ("lr", -1.0)):
        expected = check(key, value)
        assert expected
        with pytest.raises(HamkitError) as err:
            TrainConfig(**{key: value}).validate()
        assert str(err.value) == expected
        if value is not None:  # TOML has no None: the run's file cannot say it
            with pytest.raises(HamkitError) as run_err:
                check_settings(load_config(overrides={"classifier": {key: value}}))
            assert expected in str(run_err.value)
    TrainConfig(class_balance=OFF, scheduler=OFF, augment=OFF).validate()
    check_settings(load_config(overrides={"classifier": {"class_balance": OFF}}))


def test_the_training_defaults_have_one_owner():
    """TrainConfig, the estimators' default recipes, `hamkit train`'s flags and the run's TOML sections
    take their training defaults from hamkit.engine.settings: change one there and all of them follow."""
    import dataclasses

    from hamkit import LesionClassifier, LesionSegmenter
    from hamkit.cli.main import build_parser
    from hamkit.engine.recipe import TrainConfig
    from hamkit.engine.settings import DEFAULTS, RUN_SECTION_KEYS, defaults_for
    from hamkit.pipeline.config import DEFAULTS as RUN_DEFAULTS

    assert {f.name: f.default for f in dataclasses.fields(TrainConfig)} == DEFAULTS
    train = build_parser()._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    flags = {"workers": "num_workers"}  # flag dest -> TrainConfig field, where the names differ
    for kind, estimator in (("classifier", LesionClassifier), ("segmenter", LesionSegmenter)):
        default = defaults_for(kind)
        assert dataclasses.asdict(estimator()._recipe({})) == {**default, "device": "auto"}
        parser = train._subparsers._group_actions[0].choices[kind]  # type: ignore[union-attr]
        given = {flags.get(a.dest, a.dest): a.default for a in parser._actions}
        shared = set(given) & set(DEFAULTS) - {"monitor", "resume", "out_dir", "progress"}
        assert {"epochs", "batch_size", "lr", "optimizer", "warmup_epochs", "augment", "random_state"} <= shared
        assert {key: given[key] for key in shared} == {key: default[key] for key in shared}
        section = RUN_DEFAULTS[kind]
        assert {key: section[key] for key in RUN_SECTION_KEYS[kind]} == {
            key: default[key] for key in RUN_SECTION_KEYS[kind]
        }
    assert defaults_for("segmenter")["batch_size"] != DEFAULTS["batch_size"]  # the one estimator-specific change


def test_every_training_key_of_a_run_section_reaches_the_recipe() -> None:
    from types import SimpleNamespace

    from hamkit.engine.settings import RUN_SECTION_KEYS, defaults_for
    from hamkit.pipeline.stages import _recipe

    changed = {
        "epochs": 3,
        "batch_size": 5,
        "lr": 0.002,
        "optimizer": "adamw",
        "weight_decay": 0.01,
        "warmup_epochs": 0.5,
        "ema_decay": 0.9,
        "freeze": 0.25,
        "input_lr_scale": 0.1,
        "augment": "light",
        "class_balance": "sqrt",
    }
    ctx = SimpleNamespace(workers=0, training_progress=False)
    for kind, keys in RUN_SECTION_KEYS.items():
        assert set(keys) <= set(changed)  # a new section key needs a value here
        section = {key: changed[key] for key in keys}
        assert all(section[key] != defaults_for(kind)[key] for key in keys)
        recipe = _recipe(ctx, kind, section)  # type: ignore[arg-type]
        assert {key: getattr(recipe, key) for key in keys} == section


def test_lesion_crops_need_masks_and_the_segmenter(tmp_path):
    from hamkit.pipeline.run import _crops_need_masks

    assert load_config(None, "cpu")["classifier"]["lesion_crop"] == 0.0  # whole images by default
    asked = load_config(None, "cpu", overrides={"classifier": {"lesion_crop": 1.5}})
    with pytest.raises(HamkitError, match=r"lesion_crop = 1.5 \(command line\).*data.masks.*lesion_crop=0"):
        _crops_need_masks(asked, None, tmp_path)
    _crops_need_masks(asked, tmp_path, tmp_path)  # with masks: fine
    off = load_config(None, "cpu", overrides={"segmenter": {"enabled": False}, "classifier": {"lesion_crop": 1.25}})
    with pytest.raises(HamkitError, match="lesion_crop .*needs the segmenter"):
        check_settings(off)
    bad = load_config(None, "demo", overrides={"classifier": {"lesion_crop": 0.5}})
    with pytest.raises(HamkitError, match="lesion_crop must be 0"):
        check_settings(bad)
