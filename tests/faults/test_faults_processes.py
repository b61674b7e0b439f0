"""Processes end with hamkit's: ``kill PID`` on ``hamkit dedup`` leaves no decoding worker behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import REPO, write_image

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _children(pid: int) -> set[int]:
    """Every process below ``pid`` (children, their children...)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = {int(k) for k in (task / "children").read_text().split()}
            except OSError:
                continue
            todo.extend(kids - found)
            found |= kids
    return found


def _wait_for_children(process: subprocess.Popen, count: int, timeout: float = 60) -> set[int]:
    """The processes below ``process`` once there are ``count`` of them (or what there is after
    ``timeout`` seconds, or when it ended)."""
    workers: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(workers) < count and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
        workers = _children(process.pid)
    return workers


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# hamkit dedup as the console script runs it, with a decode slow enough to be killed in the middle
SCRIPT = textwrap.dedent(
    """
    import sys, time
    from hamkit.dedup import inputs

    original = inputs.DecodeJob.__getitem__

    def slow(self, index):
        time.sleep(0.5)
        return original(self, index)

    inputs.DecodeJob.__getitem__ = slow
    from hamkit.cli.main import main

    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.parametrize("method", ["phash", "verified"])
def test_sigterm_on_dedup_leaves_no_worker_alive(tmp_path: Path, method: str) -> None:
    for i in range(40):
        write_image(tmp_path / "images" / f"img{i:03d}.png", size=(40, 30), random_state=i)
    env = {**os.environ, "HAMKIT_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO / "src")}
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "dedup", str(tmp_path / "images"), "--out", str(tmp_path / "out")]
        + ["--method", method, "--workers", "2", "--batch-size", "2", "--quiet", "--no-review"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        workers = _wait_for_children(process, 2)
        assert len(workers) >= 2, "the decoding workers never started"
        time.sleep(0.5)  # the workers are busy decoding
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = [pid for pid in workers if _alive(pid)]
    finally:
        if process.poll() is None:
            process.kill()
    for pid in survivors:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"worker processes alive 5 s after SIGTERM: {survivors}"
    assert process.returncode == 143
    assert "terminated" in process.stderr.read().decode()
    assert not (tmp_path / "out" / "kept.txt").exists()


# hamkit train / predict as the console script runs them, each DataLoader worker slowed down: it
# touches MARKER once it has an image to decode, then sleeps HAMKIT_TEST_SLEEP seconds per image
WORKER_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    import torch
    from hamkit.data import dataset

    original = dataset.SkinDataset.__getitem__

    def slow(self, index):
        if torch.utils.data.get_worker_info() is not None:
            Path(os.environ["HAMKIT_TEST_MARKER"]).touch()
            time.sleep(float(os.environ["HAMKIT_TEST_SLEEP"]))
        return original(self, index)

    dataset.SkinDataset.__getitem__ = slow
    from hamkit.cli.main import main

    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """14 small images of 7 classes in the HAM10000 layout (one folder for the module's tests)."""
    from conftest import write_metadata

    root = tmp_path_factory.mktemp("tiny") / "data"
    codes = ["mel", "nv", "bcc", "akiec", "bkl", "df", "vasc"]
    for i in range(14):
        write_image(root / "HAM10000_images_part_1" / f"ISIC_{i:07d}.jpg", random_state=i)
    write_metadata(root / "HAM10000_metadata.csv", [(f"L{i // 2}", f"ISIC_{i:07d}", codes[i % 7]) for i in range(14)])
    return root


@pytest.fixture(scope="module")
def saved_classifier(tiny_data: Path) -> Path:
    from hamkit import LesionClassifier, SkinDataset

    clf = LesionClassifier("resnet18", image_size=32, pretrained=False, device="cpu")
    clf.set_params(recipe__epochs=1, recipe__batch_size=4).fit(
        SkinDataset.from_folder(tiny_data, image_size=32), progress=False
    )
    return clf.save(tiny_data.parent / "model")


def _command(kind: str, data: Path, tmp_path: Path, model: Path | None) -> list[str]:
    if kind == "predict":
        assert model is not None
        return ["predict", str(model), str(data), "--workers", "2", "--batch-size", "1", "--device", "cpu"]
    ids = sorted(p.stem for p in data.rglob("ISIC_*.jpg"))
    split = tmp_path / "split.csv"
    split.write_text(
        "image_id,split\n" + "".join(f"{i},{'val' if n % 3 == 0 else 'train'}\n" for n, i in enumerate(ids))
    )
    return ["train", "classifier", "--data", str(data), "--split-csv", str(split), "--out", str(tmp_path / "run")] + [
        "--backbone", "resnet18", "--no-pretrained", "--image-size", "32", "--epochs", "3", "--batch-size", "2",
        "--workers", "2", "--device", "cpu", "--quiet",
    ]  # fmt: skip


def _start(argv: list[str], tmp_path: Path, sleep: float) -> tuple[subprocess.Popen, set[int]]:
    """Start ``hamkit ARGV`` and return it with its worker processes, once a worker is decoding."""
    marker = tmp_path / "decoding"
    env = {
        **os.environ,
        "HAMKIT_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": str(REPO / "src"),
        "HAMKIT_TEST_MARKER": str(marker),
        "HAMKIT_TEST_SLEEP": str(sleep),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    workers = _children(process.pid)
    if not marker.exists() or len(workers) < 2:
        process.kill()
        pytest.fail(f"the workers never started decoding: {process.communicate()[1].decode()[-2000:]}")
    return process, workers


def _survivors(pids: set[int]) -> list[int]:
    """The processes of ``pids`` still alive 5 s from now (sooner when all have ended); killed."""
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [pid for pid in pids if _alive(pid)]
    for pid in alive:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    return alive


@pytest.mark.parametrize("kind", ["train", "predict"])
def test_sigterm_on_train_and_predict_leaves_no_process_alive(
    kind: str, tiny_data: Path, tmp_path: Path, request
) -> None:
    model = request.getfixturevalue("saved_classifier") if kind == "predict" else None
    process, workers = _start(_command(kind, tiny_data, tmp_path, model), tmp_path, sleep=0.5)
    try:
        process.send_signal(signal.SIGTERM)
        survivors = _survivors(workers | {process.pid})
    finally:
        if process.poll() is None:
            process.kill()
    assert not survivors, f"hamkit processes alive 5 s after SIGTERM: {survivors}"
    assert process.wait(timeout=30) == 143
    err = process.stderr.read().decode()  # type: ignore[union-attr]
    assert "terminated" in err and "Traceback" not in err


@pytest.mark.parametrize("kind", ["train", "predict"])
def test_workers_of_train_and_predict_die_with_a_killed_parent(
    kind: str, tiny_data: Path, tmp_path: Path, request
) -> None:
    # kill -9 runs no handler in the parent: only the workers' own request to die with it ends them
    # (busy decoding, they would otherwise live on until the image is done: 60 s here)
    model = request.getfixturevalue("saved_classifier") if kind == "predict" else None
    process, workers = _start(_command(kind, tiny_data, tmp_path, model), tmp_path, sleep=60)
    process.kill()
    process.wait(timeout=30)
    survivors = _survivors(workers)
    assert not survivors, f"worker processes alive 5 s after their parent was killed: {survivors}"


AUDIT_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from hamkit.dedup import crossdata

    original = crossdata._digests

    def slow(path):
        time.sleep(0.5)
        return original(path)

    crossdata._digests = slow  # the hashing processes are forked: they see it too
    from hamkit.cli.main import main

    sys.exit(main(sys.argv[1:]))
    """
)


def test_sigterm_on_a_cross_data_set_audit_ends_its_hashing_processes(tmp_path: Path) -> None:
    for i in range(210):  # more than 200 images: hashed by a pool of processes
        write_image(tmp_path / ("a" if i % 2 else "b") / f"img{i:03d}.png", size=(16, 12), random_state=i)
    env = {**os.environ, "HAMKIT_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO / "src")}
    argv = ["audit", "--data", str(tmp_path / "a"), "--data", str(tmp_path / "b"), "--workers", "2", "--quiet"]
    process = subprocess.Popen(
        [sys.executable, "-c", AUDIT_SCRIPT, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        workers = _wait_for_children(process, 2)
        assert len(workers) >= 2, "the hashing processes never started"
        time.sleep(1.0)  # they are busy hashing: about 200 images, 0.5 s each, are left
        process.send_signal(signal.SIGTERM)
        survivors = _survivors(workers | {process.pid})
    finally:
        if process.poll() is None:
            process.kill()
    assert not survivors, f"hamkit processes alive 5 s after SIGTERM: {survivors}"
    assert process.wait(timeout=30) == 143


def test_every_pool_of_processes_hamkit_makes_dies_with_its_parent() -> None:
    """Every DataLoader in hamkit's code gets a worker_init_fn (WorkerInit), and process pools come
    from hamkit._proc.process_pool, so a new pool cannot forget it."""
    import ast

    source = REPO / "src" / "hamkit"
    loaders, pools = [], []
    for path in sorted(source.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            where = f"{path.relative_to(source)}:{node.lineno}"
            if name == "DataLoader":
                loaders.append(where)
                assert any(k.arg == "worker_init_fn" for k in node.keywords), f"{where}: DataLoader without WorkerInit"
            if name in ("ProcessPoolExecutor", "Pool", "Process") and path.name != "_proc.py":
                pools.append(where)
    assert len(loaders) >= 8  # the scan found them: decoding, caching, training, inference, segmentation
    assert pools == [], f"make pools with hamkit._proc.process_pool: {pools}"
