"""Duplicate detection at scale: time and peak memory per stage, one process against shards and local Ray.

A synthetic collection of small textured images (120 x 90 JPEG) with planted copies of known
truth (every 50th image gets a shifted, brightened, mirrored or quarter-turned copy) is grown to
each size. Per size and mode it runs, each in a fresh process so that its peak memory is its own:

* ``single``: ``hamkit dedup IMAGES --out OUT --no-review`` (one process and its decoding workers);
* ``shards``: ``hamkit dedup IMAGES --shard I/2 --out RUN`` for both shards at once (two processes,
  as two machines would run them), then ``hamkit dedup --merge RUN --out OUT``; the stages' times
  and peak memory come from the shards' completion markers;
* ``disk``: ``--backend disk``, the stages one after the other in one process, scenes on disk;
* ``ray``: the same stages as Ray tasks on a local Ray of 2 CPUs (``--backend ray``).

Each mode's pairs.csv is compared with the single process's, and the planted copies' recall is
counted. The results go to ``benchmarks/results/dedup_scale.json``; ``docs/gen_benchmarks.py``
renders the table of ``docs/benchmarks_dedup.md`` from it, with the 1M row estimated from the
largest size measured and the projection to a cluster.

    python benchmarks/dedup_scale.py --sizes 10000 --modes single shards ray
    python benchmarks/dedup_scale.py --sizes 100000 --modes shards   # appends to the results file
    python benchmarks/dedup_scale.py --search-memory 20000 100000    # the search stage alone
    python benchmarks/dedup_scale.py --real HAM10000_FOLDER          # one process against Ray, real images
    python benchmarks/dedup_scale.py --whole 20000 100000            # a whole hamkit dedup, default settings
    python benchmarks/dedup_scale.py --whole 100000 --memory-limit 1536  # the same, in a memory cgroup (root)

Peak memory of a whole command (``single``, ``disk`` and ``--whole``) is sampled from ``/proc``
over the command's process and every process below it (its decoding workers): the largest sum
of their resident memory (``RSS``: shared pages counted once per process, an upper bound) and of
their proportional set size (``PSS``: a shared page split among the processes that share it),
and the largest single process's own peak (``VmHWM``).

Much of a process's resident memory can be file pages (shared libraries, the JPEGs it read, the
memory-mapped window index) that the kernel drops when memory runs short. ``--memory-limit MIB``
runs ``--whole`` inside a Linux memory cgroup (v1 or v2; needs root) with that hard limit and no
swap: the command must finish there with the same ``pairs.csv``; the cgroup's own peak (every page
charged once, file pages included, at most the limit) and the peak of its anonymous memory (every
page counted once, also those a decoding worker shares with the process it was forked from: the
memory the kernel cannot drop) are recorded beside the samples.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import provenance  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "dedup_scale.json"
EXTRA = RESULTS.with_name("dedup_scale_extra.json")  # --search-memory and --decode-ratio
SIZE = (120, 90)
COPY_EVERY = 50


def make_collection(folder: Path, n: int, random_state: int = 0) -> list[tuple[str, str]]:
    """``n`` images in ``folder`` (``n // COPY_EVERY`` of them planted copies); the planted pairs."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    done = folder / "planted.json"
    if done.exists():
        return [tuple(p) for p in json.loads(done.read_text())]  # type: ignore[misc]
    rng = np.random.default_rng(random_state)
    width, height = SIZE
    planted: list[tuple[str, str]] = []
    originals = n - n // COPY_EVERY
    for index in range(originals):
        noise = rng.random((height // 3, width // 3, 3)).astype(np.float32)
        image = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
        image = cv2.GaussianBlur(image, (0, 0), 1.0) * 160 + 40
        blob = np.zeros((height, width), np.float32)
        cv2.ellipse(
            blob,
            (int(rng.integers(30, 90)), int(rng.integers(25, 65))),
            (int(rng.integers(10, 30)), int(rng.integers(8, 25))),
            float(rng.uniform(0, 180)),
            0,
            360,
            1.0,
            -1,
        )
        image *= 1 - 0.5 * cv2.GaussianBlur(blob, (0, 0), 3)[..., None]
        pixels = np.clip(image, 0, 255).astype(np.uint8)
        name = f"img{index:07d}.jpg"
        cv2.imwrite(str(folder / name), pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if index % (COPY_EVERY - 1) == 0 and len(planted) < n - originals:
            kind = len(planted) % 4
            if kind == 0:  # shifted crop, resized back
                copy = cv2.resize(pixels[6:, 8:], (width, height))
            elif kind == 1:  # brighter
                copy = np.clip(pixels.astype(np.int16) + 25, 0, 255).astype(np.uint8)
            elif kind == 2:  # mirrored
                copy = np.ascontiguousarray(pixels[:, ::-1])
            else:  # a quarter turn
                copy = np.ascontiguousarray(np.rot90(pixels))
            copy_name = f"copy{len(planted):07d}.jpg"
            cv2.imwrite(str(folder / copy_name), copy, [cv2.IMWRITE_JPEG_QUALITY, 85])
            planted.append((name, copy_name))
    done.write_text(json.dumps(planted))
    return planted


def _child_peak_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)


def _hamkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "hamkit", "dedup", *args, "--quiet"]


def _stages(run: Path) -> dict[str, dict[str, float]]:
    """Per stage: the slowest shard's seconds and the largest peak memory (from the markers)."""
    out: dict[str, dict[str, float]] = {}
    for stage in ("signatures", "search", "verify"):
        markers = [json.loads(p.read_text()) for p in sorted(run.glob(f"shard-*/{stage}.done"))]
        if markers:
            out[stage] = {
                "seconds": max(m["seconds"] for m in markers),
                "peak_rss_mib": max(m["peak_rss_mib"] for m in markers),
            }
    return out


def _recall(out: Path, planted: list[tuple[str, str]]) -> float:
    found = set()
    for line in (out / "pairs.csv").read_text().splitlines()[1:]:
        a, b = line.split(",")[:2]
        found.add(frozenset((Path(a).name, Path(b).name)))
    return sum(frozenset(p) in found for p in planted) / max(1, len(planted))


def run_single(images: Path, work: Path, *backend: str) -> dict:
    """``hamkit dedup IMAGES --out OUT --no-review`` (and ``backend``'s flags): its wall time and
    the peak memory of the command and its decoding workers (:class:`_TreeSampler`)."""
    out = work / ("single" if not backend else backend[-1])
    shutil.rmtree(out, ignore_errors=True)
    row = _tree_measured(_hamkit(str(images), "--out", str(out), "--no-review", *backend))
    return {**row, "peak_of": "process tree", "out": str(out)}


def run_shards(images: Path, work: Path, shards: int = 2) -> dict:
    run, out = work / "run", work / "merged"
    shutil.rmtree(run, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    procs = [
        subprocess.Popen(_hamkit(str(images), "--shard", f"{i}/{shards}", "--out", str(run))) for i in range(shards)
    ]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit("a shard failed")
    shards_s = time.perf_counter() - started
    merge_started = time.perf_counter()
    subprocess.run(_hamkit("--merge", str(run), "--out", str(out), "--no-review"), check=True)
    merge_s = time.perf_counter() - merge_started
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "shards_seconds": round(shards_s, 1),
        "merge_seconds": round(merge_s, 1),
        "stages": _stages(run),
        "out": str(out),
    }


def run_disk(images: Path, work: Path) -> dict:
    return run_single(images, work, "--backend", "disk")


def run_ray(images: Path, work: Path) -> dict:
    out = work / "ray"
    shutil.rmtree(out, ignore_errors=True)
    code = (
        "import ray, sys\n"
        "ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)\n"
        "from hamkit.cli.main import main\n"
        f"sys.exit(main(['dedup', {str(images)!r}, '--out', {str(out)!r}, '--backend', 'ray', '--no-review', "
        "'--quiet']))\n"
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return {"seconds": round(time.perf_counter() - started, 1), "out": str(out)}


def worker(mode: str, n: int, work: Path) -> None:
    """One mode at one size, in this (fresh) process: prints its row as a JSON line."""
    images = work / f"images-{n}"
    planted = make_collection(images, n)
    folder = work / f"{mode}-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    row = {"single": run_single, "disk": run_disk, "shards": run_shards, "ray": run_ray}[mode](images, folder)
    out = Path(row.pop("out"))
    pairs = (out / "pairs.csv").read_bytes()
    reference = work / f"single-{n}" / "single" / "pairs.csv"
    row.update(
        {
            "images": n,
            "mode": mode,
            "peak_rss_mib": row.get("peak_rss_mib", _child_peak_mib()),
            "pairs": pairs.count(b"\n") - 1,
            "planted_recall": round(_recall(out, planted), 4),
            "same_pairs_csv_as_single": pairs == reference.read_bytes() if reference.exists() else None,
            "load_average": round(os.getloadavg()[0], 2),
        }
    )
    print(json.dumps(row), flush=True)


def real_worker(mode: str, images: Path, work: Path) -> None:
    """``hamkit dedup`` on a real folder in one mode (``single`` or ``ray``), in this (fresh)
    process: prints its row as a JSON line."""
    folder = work / f"real-{mode}"
    folder.mkdir(parents=True, exist_ok=True)
    row = {"single": run_single, "ray": run_ray}[mode](images, folder)
    pairs = (Path(row.pop("out")) / "pairs.csv").read_bytes()
    peak = row.get("peak_rss_mib", _child_peak_mib())
    row.update({"mode": mode, "peak_rss_mib": peak, "pairs": pairs.count(b"\n") - 1})
    print(json.dumps(row), flush=True)


def real(images: Path, work: Path) -> dict:
    """The one process against ``--backend ray`` on a local Ray of 2 CPUs on a real folder (each
    in a fresh process, one after the other), and whether their pairs.csv are the same bytes."""
    from hamkit.dedup.inputs import resolve_images

    count = len(resolve_images(images))
    rows = {}
    for mode in ("single", "ray"):
        command = [sys.executable, os.path.abspath(__file__), "--real-worker", mode, str(images), "--work", str(work)]
        load = os.getloadavg()[0]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows[mode] = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
        rows[mode]["load_average"] = [round(load, 2), round(os.getloadavg()[0], 2)]
        print(json.dumps(rows[mode]), flush=True)
    same = (work / "real-single" / "single" / "pairs.csv").read_bytes() == (
        work / "real-ray" / "ray" / "pairs.csv"
    ).read_bytes()
    return {
        "images": count,
        "rows": list(rows.values()),
        "ray_over_single": round(rows["ray"]["seconds"] / rows["single"]["seconds"], 3),
        "same_pairs_csv": same,
    }


def decode_ratio(shared: Path) -> dict | None:
    """Seconds to decode a 600 x 450 original into a scene over those of its 200 x 150 copy (the 75
    sample originals and their copies in the 200 px folder), for the projection to originals."""
    from hamkit.dedup.scenes import Scene

    originals = sorted((shared / "ham10000-sample" / "images").glob("*.jpg"))
    small = {p.name: p for p in (shared / "ham10000-200px").glob("HAM10000_images_part_*/*.jpg")}
    pairs = [(o, small[o.name]) for o in originals if o.name in small]
    if not pairs:
        return None
    times = {}
    for label, column in (("original", 0), ("small", 1)):
        started = time.perf_counter()
        for _ in range(3):
            for pair in pairs:
                Scene.from_path(pair[column])
        times[label] = (time.perf_counter() - started) / (3 * len(pairs))
    return {
        "images": len(pairs),
        "original_ms": round(1000 * times["original"], 2),
        "small_ms": round(1000 * times["small"], 2),
        "ratio": round(times["original"] / times["small"], 2),
    }


class _Sampler:
    """Polls a process's resident memory (``/proc/PID/status``) every ``every`` seconds, keeping
    the largest anonymous (``RssAnon``: the process's own heap, what the kernel cannot drop) and
    file-backed (``RssFile``: pages of memory-mapped files, page cache the kernel may reclaim), and
    its peak RSS (``VmHWM``: the peak of the process's own address space; a child's ``ru_maxrss``
    would also count the parent's peak at the moment it started the child)."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        import threading

        self.pid, self.every = pid, every
        self.peak = {"RssAnon": 0, "RssFile": 0, "VmHWM": 0}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    key, _, value = line.partition(":")
                    if key in self.peak:
                        self.peak[key] = max(self.peak[key], int(value.split()[0]))
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(self.every)

    def done(self) -> dict[str, float]:
        self.stop.set()
        self.thread.join()
        return {key: round(kib / 1024, 1) for key, kib in self.peak.items()}


def _descendants(root: int) -> list[int]:
    """``root`` and every live process below it (from the parent ids in ``/proc/PID/stat``)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _kib(path: str, keys: tuple[str, ...]) -> dict[str, int]:
    out = dict.fromkeys(keys, 0)
    for line in Path(path).read_text().splitlines():
        key, _, value = line.partition(":")
        if key in out:
            out[key] = int(value.split()[0])
    return out


class _TreeSampler:
    """Polls a process and every process below it (its decoding workers) every ``every`` seconds
    from ``/proc``: the largest sums over the tree of ``VmRSS`` (shared pages counted in every
    process that maps them: an upper bound), ``RssAnon`` and ``Pss`` (``smaps_rollup``: each
    shared page split among its sharers), the most processes at once, and the largest single
    process's peak (``VmHWM``, the kernel's own peak: exact for a process seen alive)."""

    def __init__(
        self,
        pid: int,
        every: float = 0.2,
        pause: tuple[float, float] | None = None,
        cgroup: _MemoryCgroup | None = None,
    ) -> None:
        import threading

        self.pid, self.every, self.pause, self.cgroup = pid, every, pause, cgroup
        self.peak = {"rss": 0, "anon": 0, "pss": 0, "hwm": 0, "main_hwm": 0, "processes": 0}
        if cgroup is not None:
            self.peak["cgroup_anon"] = 0
        self.paused = 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _hold(self) -> None:
        """Stop the whole tree (``SIGSTOP``: no CPU, its memory kept) from the pause's start to its
        end (times since the epoch), for a machine that must be left quiet meanwhile."""
        import signal

        assert self.pause is not None
        tree = _descendants(self.pid)
        for pid in tree:  # the command first: it starts no worker once stopped
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
        stopped = time.time()
        until = time.strftime("%H:%M", time.gmtime(self.pause[1]))
        print(f"paused {len(tree)} process(es) until {until} UTC", flush=True)
        while time.time() < self.pause[1] and not self.stop.is_set():
            time.sleep(1.0)
        for pid in reversed(tree):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
        self.paused += time.time() - stopped
        self.pause = None

    def _run(self) -> None:
        while not self.stop.is_set():
            if self.pause is not None and time.time() >= self.pause[0]:
                self._hold()
            rss = anon = pss = 0
            tree = _descendants(self.pid)
            for pid in tree:
                try:
                    status = _kib(f"/proc/{pid}/status", ("VmRSS", "RssAnon", "VmHWM"))
                    rollup = _kib(f"/proc/{pid}/smaps_rollup", ("Pss",))
                except (OSError, ValueError, IndexError):
                    continue
                rss, anon, pss = rss + status["VmRSS"], anon + status["RssAnon"], pss + rollup["Pss"]
                self.peak["hwm"] = max(self.peak["hwm"], status["VmHWM"])
                if pid == self.pid:
                    self.peak["main_hwm"] = max(self.peak["main_hwm"], status["VmHWM"])
            for key, value in (("rss", rss), ("anon", anon), ("pss", pss), ("processes", len(tree))):
                self.peak[key] = max(self.peak[key], value)
            if self.cgroup is not None:
                self.peak["cgroup_anon"] = max(self.peak["cgroup_anon"], self.cgroup.anon_kib())
            time.sleep(self.every)

    def done(self) -> dict[str, float]:
        self.stop.set()
        self.thread.join()
        processes = self.peak.pop("processes")
        return {
            **{f"peak_{key}_mib": round(kib / 1024, 1) for key, kib in self.peak.items()},
            "max_processes": processes,
        }


class _MemoryCgroup:
    """A fresh Linux memory cgroup (v2, or v1's ``memory`` controller) with a hard limit, for one
    command and every process it starts (root only). ``join`` is the child's ``preexec_fn``;
    ``facts`` reads the cgroup's peak and OOM kills; ``close`` removes it."""

    def __init__(self, limit_mib: int) -> None:
        name = f"hamkit-bench-{os.getpid()}"
        v1 = Path("/sys/fs/cgroup/memory")
        self.v2 = not v1.is_dir() and Path("/sys/fs/cgroup/cgroup.controllers").is_file()
        self.path = (Path("/sys/fs/cgroup") if self.v2 else v1) / name
        try:
            self.path.mkdir()
            limit = str(limit_mib * 1024 * 1024)
            if self.v2:
                (self.path / "memory.max").write_text(limit)
                (self.path / "memory.swap.max").write_text("0")
            else:
                (self.path / "memory.limit_in_bytes").write_text(limit)
                (self.path / "memory.swappiness").write_text("0")
        except OSError as err:
            raise SystemExit(f"--memory-limit needs a writable memory cgroup (run as root on Linux): {err}") from err
        self.procs = str(self.path / "cgroup.procs")

    def join(self) -> None:
        with open(self.procs, "w") as handle:
            handle.write(str(os.getpid()))

    def facts(self) -> dict[str, float]:
        if self.v2:
            peak = int((self.path / "memory.peak").read_text())
            events = (self.path / "memory.events").read_text()
        else:
            peak = int((self.path / "memory.max_usage_in_bytes").read_text())
            events = (self.path / "memory.oom_control").read_text()
        kills = re.search(r"oom_kill (\d+)", events)
        return {"cgroup_peak_mib": round(peak / 2**20, 1), "oom_kills": int(kills.group(1)) if kills else 0}

    def anon_kib(self) -> int:
        """The cgroup's anonymous memory now, every page counted once (pages a worker shares with
        the process it was forked from included once): what the kernel cannot drop without swap."""
        stat = (self.path / "memory.stat").read_text()
        found = re.search(r"^anon (\d+)$" if self.v2 else r"^rss (\d+)$", stat, re.MULTILINE)
        return int(found.group(1)) // 1024 if found else 0

    def close(self) -> None:
        for _ in range(50):  # the last processes may take a moment to leave
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def _tree_measured(
    command: list[str], pause: tuple[float, float] | None = None, memory_limit: int | None = None
) -> dict[str, float]:
    """Run ``command`` (its output as it comes); its wall seconds and :class:`_TreeSampler` peaks:
    ``peak_rss_mib`` is the largest sum of the tree's resident memory. With ``pause`` (start and
    end, seconds since the epoch) the command and its workers are stopped in between, and
    ``seconds`` leaves that time out (``paused_seconds``). With ``memory_limit`` (MiB) it runs in a
    :class:`_MemoryCgroup` with that limit, whose peak and OOM kills are added."""
    started = time.perf_counter()
    cgroup = _MemoryCgroup(memory_limit) if memory_limit else None
    try:
        child = subprocess.Popen(command, preexec_fn=cgroup.join if cgroup else None)
        sampler = _TreeSampler(child.pid, pause=pause, cgroup=cgroup)
        child.wait()
        peak = sampler.done()
        if cgroup is not None:
            peak.update({"memory_limit_mib": memory_limit, **cgroup.facts()})
    finally:
        if cgroup is not None:
            cgroup.close()
    if child.returncode:
        raise SystemExit(f"failed ({child.returncode}; {peak}): {' '.join(command)}")
    wall = time.perf_counter() - started
    row: dict[str, float] = {"seconds": round(wall - sampler.paused, 1), **peak}
    if sampler.paused:
        row.update({"wall_seconds": round(wall, 1), "paused_seconds": round(sampler.paused, 1)})
    return row


def whole(n: int, work: Path, pause: tuple[float, float] | None = None, memory_limit: int | None = None) -> dict:
    """A whole ``hamkit dedup IMAGES --out OUT --no-review`` with the default settings (the
    backend ``auto`` chooses) on the synthetic collection of ``n`` images, in a fresh process:
    wall time, peak memory of the command and its workers (:class:`_TreeSampler`), the backend
    chosen (``backend_used`` in summary.json), the pairs (and their file's SHA-256) and the planted
    copies' recall. ``pause`` and ``memory_limit``: see :func:`_tree_measured`."""
    images = work / f"images-{n}"
    started = time.perf_counter()
    planted = make_collection(images, n)
    print(f"{n} images ready in {time.perf_counter() - started:.0f} s", flush=True)
    out = work / f"whole-{n}"
    shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()[0]
    command = _hamkit(str(images), "--out", str(out), "--no-review")
    row: dict = {"images": n, **_tree_measured(command, pause, memory_limit)}
    summary = json.loads((out / "summary.json").read_text())
    pairs = (out / "pairs.csv").read_bytes()
    row.update(
        {
            "backend": summary["settings"]["method_settings"]["backend"],
            "backend_used": summary["settings"].get("backend_used"),
            "candidate_pairs": int(re.search(r"(\d+) candidate pair", summary["text"]).group(1)),  # type: ignore[union-attr]
            "pairs": pairs.count(b"\n") - 1,
            "pairs_sha256": hashlib.sha256(pairs).hexdigest(),
            "planted_recall": round(_recall(out, planted), 4),
            "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],
        }
    )
    shutil.rmtree(out, ignore_errors=True)
    return row


def _fake_stores(root: Path, n: int, shards: int) -> None:
    """The shard stores of ``n`` images whose thumbnails are random and whose scenes are empty
    (no greyscale pixels, no keypoints: verification rejects each pair at once), written directly,
    with every shard's signatures stage marked done."""
    from hamkit.dedup import shards as module

    shutil.rmtree(root, ignore_errors=True)
    paths = [Path(f"/none/img{i:07d}.jpg") for i in range(n)]
    run = module._run_of(paths, 10, 15)
    rng = np.random.default_rng(0)
    for number in range(shards):
        folder = module.shard_folder(root, number, shards)
        folder.mkdir(parents=True)
        start, stop = module.shard_range(n, number, shards)
        thumbs = np.lib.format.open_memmap(
            folder / "thumbs.npy", mode="w+", dtype=np.uint8, shape=(stop - start, 64, 64)
        )
        for first in range(0, stop - start, 4096):
            count = min(4096, stop - start - first)
            thumbs[first : first + count] = rng.integers(0, 256, (count, 64, 64), dtype=np.uint8)
        thumbs.flush()
        del thumbs
        np.save(folder / "offsets.npy", np.zeros((stop - start, 12), np.int64))
        (folder / "digests.txt").write_text("".join(f"{i:064x}\n" for i in range(start, stop)))
        (folder / "skipped.json").write_text("{}")
        (folder / "paths.txt").write_text("".join(f"{p}\n" for p in paths[start:stop]))
        for name in module._FLATS:
            (folder / f"{name}.bin").write_bytes(b"")
        manifest = {"format": 1, "shard": number, "of": shards, "start": start, "stop": stop, **run.__dict__}
        (folder / "manifest.json").write_text(json.dumps(manifest))
        (folder / "signatures.done").write_text("{}")


def _measured(command: list[str]) -> tuple[str, dict[str, float]]:
    """Run ``command``; its standard output, wall seconds and peak memory (:class:`_Sampler`):
    ``peak_rss_mib`` (anonymous and file pages together), ``peak_anon_mib`` and ``peak_file_mib``."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    sampler = _Sampler(child.pid)
    assert child.stdout is not None
    out = child.stdout.read()
    _, status = os.waitpid(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    peak = sampler.done()
    if child.returncode:
        raise SystemExit(f"failed ({child.returncode}): {' '.join(command)}")
    return out, {
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mib": peak["VmHWM"],
        "peak_anon_mib": peak["RssAnon"],
        "peak_file_mib": peak["RssFile"],
    }


def stages(n: int, work: Path) -> dict:
    """Time and peak memory of each stage after the decoding (search, verify, merge) of one
    shard over ``n`` images, each stage in a fresh process, on :func:`_fake_stores`: what the
    stages hold because of the collection's size (the index, the candidates, the paths and
    digests), not the cost of verifying real scenes (a batch's scenes, bounded by the batch)."""
    root, out = work / f"stages-{n}", work / f"stages-{n}-out"
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    _fake_stores(root, n, 1)
    head = (
        "import sys; from pathlib import Path; from hamkit.dedup import shards as m\n"
        f"paths = [Path(f'/none/img{{i:07d}}.jpg') for i in range({n})]\n"
    )
    row: dict = {"images": n, "shards": 1}
    for stage, command in (
        ("search", [sys.executable, "-c", head + f"m.stage_search(paths, {str(root)!r}, 0, 1)\n"]),
        ("verify", [sys.executable, "-c", head + f"m.stage_verify(paths, {str(root)!r}, 0, 1, workers=2)\n"]),
        ("merge", _hamkit("--merge", str(root), "--out", str(out), "--no-review")),
    ):
        _, row[stage] = _measured(command)
        print(stage, json.dumps(row[stage]), flush=True)
    with np.load(root / "shard-0-of-1" / "partners.npz") as data:
        row["partner_rows"] = int(len(data["query"]))
    row["candidate_pairs"] = sum(
        len(np.load(batch)["score"]) for batch in sorted((root / "shard-0-of-1").glob("verify-*.npz"))
    )
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    row["load_average"] = round(os.getloadavg()[0], 2)
    return row


def search_memory(n: int, work: Path, shards: int = 2, index: str = "disk") -> dict:
    """Peak memory and time of the search stage (the one stage that holds something of every
    image: the window index) at ``n`` images, without decoding any: shard stores whose
    thumbnails are random, written directly. Run in a fresh process (``--search-memory N``).

    ``index="disk"``: the stage as it is (a large index in a memory-mapped file);
    ``index="memory"``: the stage with the index in memory (as before), for the comparison; with
    both, the two stages' partners are compared array for array."""
    from hamkit.dedup import shards as module

    root = work / f"search-{n}"
    _fake_stores(root, n, shards)
    row: dict = {"images": n, "shards": shards}
    partners = {}
    for kind in ("memory", "disk") if index == "both" else (index,):
        shard = module.shard_folder(root, 0, shards)
        for name in ("search.done", "partners.npz"):
            (shard / name).unlink(missing_ok=True)
        code = (
            "import json, sys; from pathlib import Path; from hamkit.dedup import shards as m, candidates as c\n"
            + (
                "m.iter_window_hits = lambda *a, folder=None, **k: c.iter_window_hits(*a, **k)\n"
                if kind == "memory"
                else ""
            )
            + f"paths = [Path(f'/none/img{{i:07d}}.jpg') for i in range({n})]\n"
            f"m.stage_search(paths, {str(root)!r}, 0, {shards})\n"
            f"print((Path({str(root)!r}) / 'shard-0-of-{shards}' / 'search.done').read_text())\n"
        )
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        sampler = _Sampler(child.pid)
        out, _ = child.communicate()
        peak = sampler.done()
        if child.returncode:
            raise SystemExit(f"the search stage failed ({kind})")
        marker = json.loads(out[out.index("{") :])
        with np.load(shard / "partners.npz") as data:
            partners[kind] = {name: data[name] for name in data.files}
        suffix = "_memory" if index == "both" and kind == "memory" else ""
        row.update(
            {
                f"seconds{suffix}": round(time.perf_counter() - started, 1),
                f"stage_seconds{suffix}": marker["seconds"],
                f"peak_rss_mib{suffix}": peak["VmHWM"],  # anonymous and file pages together
                f"peak_anon_mib{suffix}": peak["RssAnon"],  # sampled every 0.1 s
                f"peak_file_mib{suffix}": peak["RssFile"],
            }
        )
    row["index"] = "disk" if index == "both" else index
    if index == "both":
        row["same_partners_as_memory"] = all(
            np.array_equal(partners["memory"][name], partners["disk"][name]) for name in partners["memory"]
        )
    shutil.rmtree(root, ignore_errors=True)
    row["load_average"] = round(os.getloadavg()[0], 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument(
        "--modes", nargs="+", default=["single", "shards", "ray"], choices=("single", "disk", "shards", "ray")
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/hamkit-dedup-scale"))
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--real-worker", nargs=2, metavar=("MODE", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--real",
        type=Path,
        metavar="FOLDER",
        help="only time hamkit dedup FOLDER in one process against --backend ray on a local Ray of 2 CPUs (each in "
        "a fresh process), and compare their pairs.csv (the 10,015 HAM10000 images, for example)",
    )
    parser.add_argument(
        "--decode-ratio",
        type=Path,
        metavar="SHARED_DATA",
        help="only measure the decoding time of 600 x 450 originals against 200 x 150 copies (the folder "
        "holding ham10000-sample and ham10000-200px)",
    )
    parser.add_argument(
        "--search-memory",
        type=int,
        nargs="+",
        metavar="N",
        help="only measure the search stage's time and peak memory at these sizes (random thumbnails, no decoding)",
    )
    parser.add_argument(
        "--stages",
        type=int,
        nargs="+",
        metavar="N",
        help="only measure the stages after decoding (search, verify, merge; one shard, each stage in a fresh "
        "process) at these sizes, on random thumbnails with empty scenes",
    )
    parser.add_argument(
        "--whole",
        type=int,
        nargs="+",
        metavar="N",
        help="only run a whole hamkit dedup with the default settings on the synthetic collection of each size: wall "
        "time, peak memory of the command and its workers, the backend auto chose",
    )
    parser.add_argument(
        "--pause",
        nargs=2,
        metavar=("HH:MM", "HH:MM"),
        help="with --whole: stop the command and its workers (SIGSTOP) from the first UTC time to the second, for a "
        "machine that must be left quiet meanwhile; the wall time leaves the pause out (paused_seconds)",
    )
    parser.add_argument(
        "--memory-limit",
        type=int,
        metavar="MIB",
        help="with --whole: run the command in a memory cgroup with this hard limit and no swap (Linux, root); the "
        "rows go to whole_limited",
    )
    parser.add_argument(
        "--index",
        choices=("disk", "memory", "both"),
        default="disk",
        help="with --search-memory: the window index on disk (the stage as it is), in memory (as before), or both "
        "(the partners compared)",
    )
    args = parser.parse_args()
    if args.search_memory:
        for n in args.search_memory:
            row = {**search_memory(n, args.work, index=args.index), **provenance()}
            print(json.dumps(row), flush=True)
            saved = json.loads(EXTRA.read_text()) if EXTRA.exists() else {"benchmark": "dedup_scale"}
            key = "search_memory" if args.index == "memory" else "search_memory_disk"
            saved[key] = [r for r in saved.get(key, []) if r["images"] != n] + [row]
            EXTRA.parent.mkdir(parents=True, exist_ok=True)
            EXTRA.write_text(json.dumps(saved, indent=1) + "\n")
        return
    if args.stages:
        for n in args.stages:
            row = {**stages(n, args.work), **provenance()}
            print(json.dumps(row), flush=True)
            saved = json.loads(EXTRA.read_text()) if EXTRA.exists() else {"benchmark": "dedup_scale"}
            saved["stages"] = [r for r in saved.get("stages", []) if r["images"] != n] + [row]
            EXTRA.write_text(json.dumps(saved, indent=1) + "\n")
        return
    if args.whole:
        pause = None
        if args.pause:
            import datetime

            today = datetime.datetime.now(datetime.UTC).date()
            pause = tuple(  # type: ignore[assignment]
                datetime.datetime.combine(today, datetime.time.fromisoformat(t), datetime.UTC).timestamp()
                for t in args.pause
            )
        for n in args.whole:
            row = {**whole(n, args.work, pause, args.memory_limit), **provenance()}
            print(json.dumps(row), flush=True)
            saved = json.loads(EXTRA.read_text()) if EXTRA.exists() else {"benchmark": "dedup_scale"}
            key = "whole_limited" if args.memory_limit else "whole"
            saved[key] = [r for r in saved.get(key, []) if r["images"] != n] + [row]
            EXTRA.write_text(json.dumps(saved, indent=1) + "\n")
        return
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), args.work)
        return
    if args.real_worker:
        real_worker(args.real_worker[0], Path(args.real_worker[1]), args.work)
        return
    if args.real:
        extra = json.loads(EXTRA.read_text()) if EXTRA.exists() else {"benchmark": "dedup_scale"}
        extra["real"] = {**real(args.real, args.work), **provenance()}
        print(json.dumps(extra["real"]))
        EXTRA.parent.mkdir(parents=True, exist_ok=True)
        EXTRA.write_text(json.dumps(extra, indent=1) + "\n")
        return
    if args.decode_ratio:
        extra = json.loads(EXTRA.read_text()) if EXTRA.exists() else {"benchmark": "dedup_scale"}
        extra["decode_ratio"] = {**(decode_ratio(args.decode_ratio) or {}), **provenance()}
        print(json.dumps(extra["decode_ratio"]))
        EXTRA.parent.mkdir(parents=True, exist_ok=True)
        EXTRA.write_text(json.dumps(extra, indent=1) + "\n")
        return
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"benchmark": "dedup_scale", "rows": []}
    rows = saved["rows"]
    for n in args.sizes:
        started = time.perf_counter()
        make_collection(args.work / f"images-{n}", n)
        print(f"{n} images ready in {time.perf_counter() - started:.0f} s", flush=True)
        for mode in args.modes:
            command = [sys.executable, os.path.abspath(__file__), "--worker", mode, str(n), "--work", str(args.work)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            row = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
            row.update(provenance())
            print(json.dumps(row), flush=True)
            rows = [r for r in rows if (r["images"], r["mode"]) != (n, mode)] + [row]
            saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"benchmark": "dedup_scale"}
            saved["rows"] = rows
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(saved, indent=1) + "\n")


if __name__ == "__main__":
    main()
