"""Sharded duplicate detection (hamkit.dedup.shards): N shards, merged, give the single process's
result, byte for byte in pairs.csv; a shard that dies is rerun alone; Ray gives the same."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sklearn.base import clone

from hamkit import Deduplicator
from hamkit.dedup.methods import VerifiedMethod
from hamkit.dedup.shards import ShardNotReady, shard_folder, stage_signatures
from hamkit.errors import DataError, HamkitError


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic lesion images with planted copies of every kind, and one unreadable file."""
    from hamkit.synthetic import make_synthetic
    from hamkit.synthetic.planting import plant_copies

    root = tmp_path_factory.mktemp("shards")
    data = make_synthetic(root / "data", n_lesions=40, random_state=0, image_size=(160, 120))
    images = sorted(data.root.rglob("*.jpg"))
    folder = root / "images"
    plant_copies(images, folder, per_kind=2, random_state=0)
    (folder / "planted.csv").unlink()
    (folder / "broken.jpg").write_bytes(b"not an image")
    return folder


def _files(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in ("pairs.csv", "groups.json", "kept.txt", "removed.txt")}


@pytest.fixture(scope="module")
def single(planted: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    result = Deduplicator(progress=False, cache_dir=False, num_workers=0).find(planted)
    assert result is not None and len(result.pairs) > 0
    return _files(result.save(tmp_path_factory.mktemp("single")))


@pytest.mark.parametrize("shards", [2, 4])
def test_merged_shards_equal_the_single_process(planted, single, tmp_path, shards) -> None:
    dedup = Deduplicator(progress=False, cache_dir=False, num_workers=0)
    for stage in range(3):  # each shard's stages in turn: a stage waits for every shard's stage before it
        for index in range(shards):
            try:
                dedup.find_shard(planted, tmp_path / "run", index, shards, wait=0)
            except ShardNotReady:
                assert stage < 2
    merged = dedup.merge(tmp_path / "run")
    assert _files(merged.save(tmp_path / "merged")) == single


def test_merge_applies_a_persons_decisions_as_find_does(planted, tmp_path) -> None:
    from hamkit.dedup.decisions import Decisions

    dedup = Deduplicator(progress=False, cache_dir=False, num_workers=0)
    found = dedup.find(planted)
    assert found is not None
    a, b = found.paths[found.pairs.i[0]].stem, found.paths[found.pairs.j[0]].stem
    decided = Decisions({(a, b): False})
    for stage in range(3):
        for index in range(2):
            try:
                dedup.find_shard(planted, tmp_path / "run", index, 2, wait=0)
            except ShardNotReady:
                assert stage < 2
    merged = dedup.merge(tmp_path / "run", decisions=decided)
    expected = dedup.find(planted, decisions=decided)
    assert expected is not None and len(merged.pairs) == len(found.pairs) - 1
    assert _files(merged.save(tmp_path / "merged")) == _files(expected.save(tmp_path / "single"))


def test_a_shard_killed_mid_run_is_rerun_alone(planted, single, tmp_path) -> None:
    run = tmp_path / "run"
    command = [sys.executable, "-m", "hamkit", "dedup", str(planted), "--out", str(run), "--quiet"]
    first = subprocess.Popen([*command, "--shard", "0/2"])
    second = subprocess.Popen([*command, "--shard", "1/2"])
    marker = shard_folder(run, 1, 2) / "signatures.done"
    deadline = time.monotonic() + 240
    while not marker.exists() and time.monotonic() < deadline:  # kill shard 1 after its first stage
        time.sleep(0.05)
    second.kill()
    second.wait()
    with pytest.raises((DataError, HamkitError)):
        if not (shard_folder(run, 1, 2) / "verify.done").exists():
            Deduplicator(progress=False).merge(run)
        else:
            raise DataError("finished before the kill")
    subprocess.run([*command, "--shard", "1/2"], check=True, timeout=300)
    assert first.wait(timeout=300) == 0
    subprocess.run(
        [
            sys.executable,
            "-m",
            "hamkit",
            "dedup",
            "--merge",
            str(run),
            "--out",
            str(tmp_path / "m"),
            "--quiet",
            "--no-review",
        ],
        check=True,
    )
    assert _files(tmp_path / "m") == single


def test_a_shard_that_died_after_a_batch_resumes_there(planted, single, tmp_path, monkeypatch) -> None:
    from hamkit.dedup import shards as module

    monkeypatch.setattr(module, "VERIFY_BATCH", 8)
    dedup = Deduplicator(progress=False, cache_dir=False, num_workers=0)
    paths = sorted(planted.rglob("*"))
    for index in range(2):
        stage_signatures(paths, tmp_path, index, 2)
    for index in range(2):
        module.stage_search(paths, tmp_path, index, 2)

    def die(number: int) -> None:
        if number == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        module.stage_verify(paths, tmp_path, 1, 2, after_batch=die)
    batches = sorted(p.name for p in shard_folder(tmp_path, 1, 2).glob("verify-*.npz"))
    assert batches == ["verify-000000.npz", "verify-000001.npz"]
    assert not (shard_folder(tmp_path, 1, 2) / "verify.done").exists()
    done: list[int] = []
    module.stage_verify(paths, tmp_path, 1, 2, after_batch=done.append)
    assert done and done[0] == 2  # the batches written before are not verified again
    module.stage_verify(paths, tmp_path, 0, 2)
    assert _files(dedup.merge(tmp_path).save(tmp_path / "merged")) == single


def test_shards_of_other_images_or_settings_are_refused(planted, tmp_path) -> None:
    paths = sorted(planted.rglob("*"))
    stage_signatures(paths, tmp_path, 0, 2)
    with pytest.raises(HamkitError, match="min_inliers"):
        stage_signatures(paths, tmp_path, 0, 2, min_inliers=20)
    with pytest.raises(HamkitError, match="paths_sha256|images"):
        stage_signatures(paths[:-1], tmp_path, 0, 2)
    with pytest.raises(DataError, match="1/2"):
        Deduplicator(progress=False).merge(tmp_path)
    with pytest.raises(HamkitError, match="verified"):
        Deduplicator("phash").merge(tmp_path)


def test_bad_shard_numbers_are_refused(planted, tmp_path) -> None:
    with pytest.raises(HamkitError, match="shard"):
        Deduplicator(progress=False).find_shard(planted, tmp_path, 2, 2)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'hamkit[ray]')")
def test_ray_backend_equals_the_single_process(planted, single, tmp_path) -> None:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        dedup = Deduplicator(VerifiedMethod(backend="ray"), progress=False, cache_dir=False)
        result = dedup.find(planted)
        assert _files(result.save(tmp_path / "ray")) == single
        with pytest.raises(HamkitError, match="find_cross runs in this process only"):
            dedup.find_cross(planted, planted)
    finally:
        ray.shutdown()


def test_disk_backend_equals_the_single_process(planted, single, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HAMKIT_SHARDS_DIR", str(tmp_path))
    dedup = Deduplicator(VerifiedMethod(backend="disk"), progress=False, cache_dir=False, num_workers=0)
    assert _files(dedup.find(planted).save(tmp_path / "disk")) == single
    assert [p.name for p in tmp_path.iterdir()] == ["disk"]  # the scenes' folder is gone
    with pytest.raises(HamkitError, match="audit runs in this process only"):
        dedup.audit(tmp_path / "split.csv", planted)


def test_an_ivf_index_on_disk_keeps_the_disk_backend_equal_to_single(planted, tmp_path, monkeypatch) -> None:
    from hamkit.dedup import candidates

    monkeypatch.setattr(candidates, "IVF_MIN_WINDOWS", 500)  # IVF in both runs: on disk in the shard's
    monkeypatch.setattr(candidates, "ADD_BLOCK", 40)
    monkeypatch.setenv("HAMKIT_SHARDS_DIR", str(tmp_path))
    single = Deduplicator(progress=False, cache_dir=False, num_workers=0).find(planted)
    disk = Deduplicator(VerifiedMethod(backend="disk"), progress=False, cache_dir=False, num_workers=0).find(planted)
    assert _files(disk.save(tmp_path / "disk")) == _files(single.save(tmp_path / "single"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk", "single"]  # the index's file went with the scenes


def test_auto_backend_runs_the_disk_stages_above_its_limit_with_the_same_result(
    planted, single, tmp_path, monkeypatch
) -> None:
    from hamkit.dedup import shards
    from hamkit.dedup.methods import verified

    staged = []
    run_local = shards.run_local
    monkeypatch.setattr(shards, "run_local", lambda *a, **k: staged.append(len(a[0])) or run_local(*a, **k))
    monkeypatch.setenv("HAMKIT_SHARDS_DIR", str(tmp_path))
    dedup = Deduplicator(progress=False, cache_dir=False, num_workers=0)  # backend="auto", the default
    assert dedup.method == "verified" and VerifiedMethod().backend == "auto"
    small = dedup.find(planted)
    assert staged == [] and small.settings["backend_used"] == "local"
    assert "Backend 'auto' chose 'local'" in small.summary()
    count = len(small.paths)
    monkeypatch.setattr(verified, "AUTO_DISK_ABOVE", count - 1)
    large = Deduplicator(progress=False, cache_dir=False, num_workers=0).find(planted)
    assert staged == [count] and large.settings["backend_used"] == "disk"
    assert large.settings["method_settings"]["backend"] == "auto"
    assert _files(large.save(tmp_path / "auto")) == single
    assert [p.name for p in tmp_path.iterdir()] == ["auto"]  # the scenes' folder is gone
    summary = json.loads((tmp_path / "auto" / "summary.json").read_text())
    assert summary["settings"]["backend_used"] == "disk" and "chose 'disk'" in summary["text"]
    monkeypatch.setattr(verified, "AUTO_DISK_ABOVE", count)  # the limit itself stays local
    at_limit = Deduplicator(progress=False, cache_dir=False, num_workers=0).find(planted)
    assert at_limit.settings["backend_used"] == "local" and staged == [count]


def test_auto_backend_runs_an_audit_and_a_cross_search_in_this_process(planted, monkeypatch) -> None:
    from hamkit.dedup.methods import verified

    monkeypatch.setattr(verified, "AUTO_DISK_ABOVE", 1)  # find would run on disk; these read scenes here
    dedup = Deduplicator(progress=False, cache_dir=False, num_workers=0)
    images = sorted(planted.glob("*.jpg"))
    cross = dedup.find_cross(images[::2], images[1::2])  # no "runs in this process only" refusal
    assert cross is not None and len(cross.paths_a) + len(cross.paths_b) == len(images)
    assert clone(dedup).get_params(deep=True)["method"] == "verified"
    method = VerifiedMethod()
    assert (
        clone(method).get_params()
        == method.get_params()
        == {
            "backend": "auto",
            "batch_size": 32,
            "candidates": 10,
            "min_inliers": 15,
        }
    )


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(HamkitError, match="backend"):
        Deduplicator(VerifiedMethod(backend="spark")).find([])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["imgs", "--shard", "0/2", "--keep", "largest"], "--keep applies to the merged results"),
        (["imgs", "--shard", "0/2", "--method", "phash"], "--shard runs --method verified only"),
        (["imgs", "--shard", "0/2", "--decisions", "d.csv"], "--decisions applies to the merged results"),
        (["--merge", "run", "--backend", "ray"], "--backend ray runs the whole search itself"),
        (["--merge", "run", "--method", "cnn"], "--merge joins shards of --method verified only"),
        (["imgs", "--shard", "2/2"], "0 <= I < N"),
    ],
)
def test_cli_refuses_what_a_shard_or_merge_cannot_honour(argv, message, tmp_path, capsys) -> None:
    from hamkit.cli.main import main

    status = main(["dedup", *argv, "--out", str(tmp_path / "out")])
    assert status != 0 and message in capsys.readouterr().err
