"""Segmenter inference benchmark: images/s of ``LesionSegmenter.predict`` against a plain PyTorch loop.

Both sides run the same network object (``segmenter.network_``, eval mode, the same batch size
and torch threads) in this one process, alternating round by round (the order flips every
round) so that drift in the machine's load hits both equally. The overhead is measured in CPU
time of this process (robust to other processes on a shared machine; see :func:`race`), and
wall-clock images/s (best round) are printed next to it.

Two comparisons, each doing the same work on both sides:

* ``tensor``: the input is a preprocessed float tensor ``(N, 3, S, S)`` (already decoded,
  resized, normalised). Plain loop: forward, sigmoid, threshold, to NumPy. hamkit:
  ``predict(tensor)`` (masks at the tensor's size).
* ``original size``: the input is N decoded 600x450 ``uint8`` RGB arrays in memory. Plain loop:
  Pillow bilinear resize to S, to tensor, normalise, forward, sigmoid, bilinear resize of the
  probabilities back to 450x600, threshold, to NumPy. hamkit: ``predict(arrays)`` (the same steps
  through its Dataset/DataLoader, ``num_workers=0``).

JPEG decoding is left out on purpose (hamkit decodes JPEGs at reduced scale, which a plain loop
would not, and that would flatter hamkit).

    python benchmarks/bench_segmenter.py [--backbone deeplabv3_mobilenet_v3_large] [--size 256]
        [--images 16] [--batch 8] [--rounds 10] [--threads 1]

The model is trained for one epoch on a few synthetic images first (only so that it is a
fitted ``LesionSegmenter`` built through the public API; its weights do not change the timing).

Finally both comparisons run again with a network that costs nothing (its logits are a scaled
input channel): the difference left is what ``predict`` adds per image (input handling,
DataLoader, resizing, thresholding, list building), which is then expressed as a share of the
plain loop's time per image with the real network. On a shared machine this second measure is
the steadier one; the first includes the noise of the network's own run time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from hamkit.backbones.registry import get_backbone
from hamkit.data.dataset import SkinDataset
from hamkit.engine.recipe import TrainConfig
from hamkit.segment import LesionSegmenter, SegmentationNetwork
from hamkit.synthetic import make_synthetic

ORIGINAL = (600, 450)  # HAM10000's (width, height)


class TrivialSegmentation(torch.nn.Module):
    """A segmentation "backbone" that costs nothing: its logits are a scaled first channel."""

    feature_dim = 3

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return x[:, :1] * 0.1


def make_arrays(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = []
    for _ in range(count):
        small = rng.integers(0, 256, (57, 75, 3), dtype=np.uint8)
        arrays.append(np.asarray(Image.fromarray(small).resize(ORIGINAL, Image.Resampling.BICUBIC)))
    return arrays


def plain_tensor(network: torch.nn.Module, x: torch.Tensor, batch: int) -> list[np.ndarray]:
    masks: list[np.ndarray] = []
    with torch.inference_mode():
        for chunk in x.split(batch):
            logits = network(chunk)[0]
            masks += list((logits.float().sigmoid() > 0.5)[:, 0].numpy())
    return masks


def plain_original(
    network: torch.nn.Module, arrays: list[np.ndarray], size: int, batch: int, mean: torch.Tensor, std: torch.Tensor
) -> list[np.ndarray]:
    masks: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(arrays), batch):
            chunk = arrays[start : start + batch]
            tensors = []
            for array in chunk:
                resized = Image.fromarray(array).resize((size, size), Image.Resampling.BILINEAR)
                tensors.append(torch.from_numpy(np.array(resized, dtype=np.uint8)).permute(2, 0, 1).float() / 255)
            x = (torch.stack(tensors) - mean) / std
            probabilities = network(x)[0].float().sigmoid()
            full = F.interpolate(probabilities, size=(ORIGINAL[1], ORIGINAL[0]), mode="bilinear", align_corners=False)
            masks += list((full > 0.5)[:, 0].numpy())
    return masks


def race(
    name: str, count: int, rounds: int, plain: Callable[[], list[np.ndarray]], hamkit: Callable[[], list[np.ndarray]]
) -> dict[str, float | str]:
    """Alternate the two ``rounds`` times (order flipped every round) and summarise.

    Each call is timed twice: wall-clock (``perf_counter``) and the CPU time of this process
    (``process_time``). On a shared machine other processes steal the CPU at random, which
    moves wall-clock times by tens of percent; the CPU time counts only the work this process
    did, so the overhead is computed from it (with one torch thread and ``num_workers=0`` the
    process's CPU time is the work done). Wall-clock images/s are reported as well.
    """
    reference, ours = plain(), hamkit()  # warm-up, and both must agree
    assert all(np.array_equal(a, b) for a, b in zip(reference, ours, strict=True)), f"{name}: masks differ"
    wall: dict[str, list[float]] = {"plain": [], "hamkit": []}
    cpu: dict[str, list[float]] = {"plain": [], "hamkit": []}
    for r in range(rounds):
        order = [("plain", plain), ("hamkit", hamkit)]
        for label, fn in order if r % 2 == 0 else order[::-1]:
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[label].append(time.perf_counter() - start_wall)
            cpu[label].append(time.process_time() - start_cpu)
    paired = [100 * (h / p - 1) for p, h in zip(cpu["plain"], cpu["hamkit"], strict=True)]
    return {
        "name": name,
        "plain_wall": count / min(wall["plain"]),
        "hamkit_wall": count / min(wall["hamkit"]),
        "plain_cpu": count / statistics.median(cpu["plain"]),
        "hamkit_cpu": count / statistics.median(cpu["hamkit"]),
        "overhead": 100 * (statistics.median(cpu["hamkit"]) / statistics.median(cpu["plain"]) - 1),
        "paired_min": min(paired),
        "paired_max": max(paired),
    }


def main() -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="deeplabv3_mobilenet_v3_large")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1, so that CPU time measures the work done)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = make_synthetic(Path(tmp) / "synth", n_lesions=7, image_size=(96, 72), random_state=0)
        data = SkinDataset.from_folder(synthetic.root, masks=True)
        recipe = TrainConfig(epochs=1, batch_size=4, augment="none")
        segmenter = LesionSegmenter(args.backbone, image_size=args.size, pretrained=False, recipe=recipe, device="cpu")
        segmenter.fit(data.subset(range(4)), num_workers=0, progress=False)
    network = segmenter.network_.eval()
    spec = get_backbone(args.backbone)
    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
    x = torch.randn(args.images, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    arrays = make_arrays(args.images)
    rows = [
        race(
            "tensor (model input)",
            args.images,
            args.rounds,
            lambda: plain_tensor(network, x, args.batch),
            lambda: segmenter.predict(x, batch_size=args.batch),
        ),  # type: ignore[arg-type,return-value]
        race(
            "uint8 600x450 -> masks 600x450",
            args.images,
            args.rounds,
            lambda: plain_original(network, arrays, args.size, args.batch, mean, std),
            lambda: segmenter.predict(arrays, batch_size=args.batch),
        ),  # type: ignore[arg-type,return-value]
    ]
    # the same races with a network that costs nothing: what is left is each side's own cost
    segmenter.network_ = SegmentationNetwork(TrivialSegmentation()).eval()
    trivial = segmenter.network_
    bare = [
        race(
            "tensor (model input)",
            args.images,
            args.rounds,
            lambda: plain_tensor(trivial, x, args.batch),
            lambda: segmenter.predict(x, batch_size=args.batch),
        ),  # type: ignore[arg-type,return-value]
        race(
            "uint8 600x450 -> masks 600x450",
            args.images,
            args.rounds,
            lambda: plain_original(trivial, arrays, args.size, args.batch, mean, std),
            lambda: segmenter.predict(arrays, batch_size=args.batch),
        ),  # type: ignore[arg-type,return-value]
    ]
    print(
        f"{args.backbone} at {args.size}x{args.size}, {args.images} images, batch {args.batch}, "
        f"{torch.get_num_threads()} torch thread(s), {args.rounds} alternating rounds; "
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    )
    print()
    print("With the network:")
    print(
        "| input | plain PyTorch img/s: CPU time / wall (best) | LesionSegmenter.predict img/s: CPU time / "
        "wall (best) | overhead (median CPU time) | per-round CPU overhead [min, max] |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['name']} | {row['plain_cpu']:.2f} / {row['plain_wall']:.2f} "
            f"| {row['hamkit_cpu']:.2f} / {row['hamkit_wall']:.2f} | {row['overhead']:+.1f}% "
            f"| [{row['paired_min']:+.1f}%, {row['paired_max']:+.1f}%] |"
        )
    print()
    print("Without it (a network that costs nothing), so the difference is what predict() adds per image:")
    print(
        "| input | plain PyTorch ms/img | LesionSegmenter.predict ms/img | added ms/img "
        "| added, as a share of the plain loop's time with the network |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for row, full in zip(bare, rows, strict=True):
        plain_ms, hamkit_ms = 1000 / float(row["plain_cpu"]), 1000 / float(row["hamkit_cpu"])
        share = 100 * (hamkit_ms - plain_ms) / (1000 / float(full["plain_cpu"]))
        print(f"| {row['name']} | {plain_ms:.2f} | {hamkit_ms:.2f} | {hamkit_ms - plain_ms:+.2f} | {share:+.2f}% |")
    return {"with_network": rows, "without_network": bare}


if __name__ == "__main__":
    from _shared import recorded

    with recorded() as record:  # --results FILE: also save the output, with its provenance, as JSON
        record["rows"] = main()
