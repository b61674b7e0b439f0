"""Cosine duplicate search: hamkit's blockwise ``cosine_pairs`` vs imagededup's CNN ``find_duplicates``.

Both get the same L2-normalised random float32 embeddings (576-d, the size of MobileNetV3-small
features, which imagededup's CNN method uses) with ~1% planted near duplicates (a copy plus noise,
renormalised; cosine ~0.97, all > 0.95), and the same threshold (0.93). Each measurement runs in
a fresh child process (this script, ``--worker``), which reports the wall time of the search
call alone and its peak RSS (``getrusage``: includes the embeddings, the interpreter and, for
imagededup, torch, which it imports; imagededup's multiprocessing workers are reported
separately). Recall = share of the planted pairs found. The last column is the 1-minute load average
before each measurement (other work on the machine slows every row alike).

imagededup's ``find_duplicates(encoding_map=...)`` builds the full N x N similarity matrix
(float32 up to 10k items; beyond, float16 row chunks computed in a multiprocessing pool, whose
inputs - a pickled copy of all embeddings per chunk - and outputs pass through one worker, then
stacked), so it is run only where that fits in memory. Measured at 50k: 10.3 GiB peak in the main
process, 14.8 GiB in the worker, i.e. about ``6 * N**2`` bytes for the larger one; it runs when
``6 * N**2`` bytes + 1.5 GiB < 80% of MemAvailable (``--skip-imagededup`` turns it off). Its CNN
object is built with an identity model so no weights are downloaded (the model is unused when
encodings are given).

    python benchmarks/bench_search.py [--sizes 10000 50000 100000] [--faiss-sizes 10000] [--ivf-sizes 100000]

faiss rows (when faiss is importable): the exact flat range search, the approximate IVF index
(``--ivf-sizes``, which may go beyond ``--sizes``: 1M runs IVF alone) and the approximate HNSW
index. For the approximate rows, recall is measured against the exact numpy search for 2,000
random query rows, and that subset's time, scaled to the N**2 / 2 products of a self search,
estimates what the exact search would take at that N (the last-but-one column).

    python benchmarks/bench_search.py --sizes 100000 --faiss-sizes --ivf-sizes 100000 1000000 \
        --skip-imagededup --timeout 1500
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import numpy as np
from _shared import run_child

DIM = 576
THRESHOLD = 0.93
QUERY_SUBSET = 2000


def make_embeddings(n: int, dim: int = DIM, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit random embeddings with n // 100 planted near duplicates; returns (emb, planted pairs)."""
    rng = np.random.default_rng(random_state)
    emb = rng.standard_normal((n, dim), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    k = max(1, n // 100)
    dups = np.arange(n - k, n)
    sources = rng.choice(n - k, k, replace=False)
    noise = rng.standard_normal((k, dim), dtype=np.float32) * np.float32(0.25 / np.sqrt(dim))
    emb[dups] = emb[sources] + noise
    emb[dups] /= np.linalg.norm(emb[dups], axis=1, keepdims=True)
    sims = np.einsum("ij,ij->i", emb[sources], emb[dups])
    assert sims.min() > 0.95, sims.min()
    planted = np.stack([np.minimum(sources, dups), np.maximum(sources, dups)], axis=1)
    return emb, planted


def recall_of(found: set[tuple[int, int]], planted: np.ndarray) -> float:
    return sum((int(a), int(b)) in found for a, b in planted) / len(planted)


def peak_mib() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def worker(method: str, n: int) -> dict:
    """Run one search in this (fresh) process and return its measurements."""
    emb, planted = make_embeddings(n)
    result: dict = {"method": method, "n": n}
    if method == "hamkit":
        from hamkit.dedup.search import cosine_pairs

        start = time.perf_counter()
        pairs = cosine_pairs(emb, THRESHOLD, backend="numpy")
        result["time_s"] = time.perf_counter() - start
        found = set(zip(pairs.i.tolist(), pairs.j.tolist()))
        result["pairs"] = len(pairs)
    elif method == "imagededup":
        import torch
        from imagededup.methods import CNN
        from imagededup.utils.models import CustomModel

        encoding_map = {str(k): emb[k] for k in range(n)}
        cnn = CNN(
            verbose=False,
            model_config=CustomModel(name="identity", model=torch.nn.Identity(), transform=lambda image: image),
        )
        start = time.perf_counter()
        duplicates = cnn.find_duplicates(encoding_map=encoding_map, min_similarity_threshold=THRESHOLD)
        result["time_s"] = time.perf_counter() - start
        found = {(min(int(a), int(b)), max(int(a), int(b))) for a, names in duplicates.items() for b in names}
        result["pairs"] = len(found)
    elif method in ("faiss-flat", "faiss-ivf", "faiss-hnsw"):
        from hamkit.dedup.search import HnswConfig, IvfConfig, cosine_cross_pairs, cosine_pairs

        backend = "faiss" if method == "faiss-flat" else method
        start = time.perf_counter()
        pairs = cosine_pairs(emb, THRESHOLD, backend=backend, ivf=IvfConfig(), hnsw=HnswConfig())
        result["time_s"] = time.perf_counter() - start
        found = set(zip(pairs.i.tolist(), pairs.j.tolist()))
        result["pairs"] = len(pairs)
        if method != "faiss-flat":  # recall against the exact search, on a subset of query rows
            queries = np.random.default_rng(1).choice(n, min(QUERY_SUBSET, n), replace=False)
            start = time.perf_counter()
            exact = cosine_cross_pairs(emb[queries], emb, THRESHOLD, backend="numpy")
            subset_s = time.perf_counter() - start
            # the exact self search computes half of the N x N products these queries sample
            result["exact_estimate_s"] = subset_s * n / len(queries) / 2
            rows, cols = queries[exact.i], exact.j
            keep = rows != cols
            truth = {(min(a, b), max(a, b)) for a, b in zip(rows[keep].tolist(), cols[keep].tolist())}
            result["recall_vs_exact"] = len(truth & found) / max(1, len(truth))
            result["exact_subset_pairs"] = len(truth)
    else:
        raise SystemExit(f"unknown method {method}")
    result["recall"] = recall_of(found, planted)
    result["peak_mib"], result["children_peak_mib"] = peak_mib()
    return result


def mem_available_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument(
        "--faiss-sizes",
        type=int,
        nargs="*",
        default=[10_000],
        help="sizes for the faiss flat and HNSW rows (none: skip them)",
    )
    parser.add_argument(
        "--ivf-sizes",
        type=int,
        nargs="*",
        default=[100_000],
        help="sizes for the faiss IVF rows (none: skip them); may exceed --sizes",
    )
    parser.add_argument("--skip-imagededup", action="store_true", help="hamkit (and faiss) rows only")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per measurement")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]))))
        return

    try:
        import faiss  # noqa: F401

        have_faiss = True
    except ImportError:
        have_faiss = False
    print(f"# cosine duplicate search, {DIM}-d float32, ~1% planted duplicates, threshold {THRESHOLD}")
    print(
        f"# {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
        f"numpy {np.__version__}, faiss {'yes' if have_faiss else 'no'}"
    )
    rows = []
    for n in sorted(set(args.sizes) | set(args.ivf_sizes if have_faiss else [])):
        if n not in args.sizes:  # an IVF-only size (1M: the exact rows would take hours)
            rows.append(run_child(__file__, "faiss-ivf", n, args.timeout))
            continue
        ours = run_child(__file__, "hamkit", n, args.timeout)
        rows.append(ours)
        estimate = 6 * n * n + 1.5 * 2**30
        if args.skip_imagededup:
            theirs = {"method": "imagededup", "n": n, "skipped": "--skip-imagededup"}
        elif estimate < 0.8 * mem_available_bytes():
            theirs = run_child(__file__, "imagededup", n, args.timeout)
        else:
            theirs = {
                "method": "imagededup",
                "n": n,
                "skipped": f"N x N matrix: needs ~{estimate / 2**30:.0f} GiB in one process",
            }
        rows.append(theirs)
        if "time_s" in ours and "time_s" in theirs:
            ours["speedup"] = theirs["time_s"] / ours["time_s"]
            ours["mem_ratio"] = theirs["peak_mib"] / ours["peak_mib"]
        if have_faiss and n in args.faiss_sizes:
            rows.append(run_child(__file__, "faiss-flat", n, args.timeout))
        if have_faiss and n in args.ivf_sizes:
            rows.append(run_child(__file__, "faiss-ivf", n, args.timeout))
        if have_faiss and n in args.faiss_sizes:
            rows.append(run_child(__file__, "faiss-hnsw", n, args.timeout))

    print()
    print(
        "| method | N | search time (s) | peak RSS (MiB) | workers' peak RSS (MiB) | pairs | "
        "planted recall | imagededup time / hamkit | imagededup RSS / hamkit | "
        "exact time estimate / this | load avg before |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        name = row["method"]
        if "recall_vs_exact" in row:
            name += f" (recall vs exact on {QUERY_SUBSET} queries: {row['recall_vs_exact']:.4f})"
        if "skipped" in row:
            print(f"| {name} | {row['n']:,} | skipped: {row['skipped']} | | | | | | | | |")
            continue
        children = row.get("children_peak_mib") or None
        estimate = row.get("exact_estimate_s")
        versus = f"{estimate:.0f} s / {estimate / row['time_s']:.1f}x" if estimate else "-"
        print(
            f"| {name} | {row['n']:,} | {row['time_s']:.2f} | {row['peak_mib']:.0f} | "
            f"{fmt(children, '.0f')} | {row['pairs']:,} | {row['recall']:.4f} | "
            f"{fmt(row.get('speedup'), '.1f')} | {fmt(row.get('mem_ratio'), '.1f')} | "
            f"{versus} | {row['load_before']:.1f} |"
        )


if __name__ == "__main__":
    main()
