"""CNN embeddings on a CPU with batch norm folded into the convolutions against the network as it is.

The reference is the same network (eval mode, channels-last, ``torch.inference_mode``) without
folding, measured in alternating rounds in one process. The folded copy is what the duplicate
methods embed with on a CPU (:func:`hamkit.dedup.embeddings._fused`: torch.fx's fusion where it
can trace the network, then :func:`hamkit.dedup.embeddings.fold_batch_norms`). The largest
difference between the two networks' features is printed beside the speeds.

    python benchmarks/bench_fold.py
    python benchmarks/bench_fold.py --models timm:tf_efficientnet_lite0@128 mobilenet_v2@128 --rounds 5
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from hamkit.backbones.registry import create_backbone, get_backbone
from hamkit.dedup.embeddings import _fused

DEFAULT_MODELS = ["timm:tf_efficientnet_lite0@128", "mobilenet_v2@128"]


def _seconds(net: torch.nn.Module, images: torch.Tensor, passes: int) -> float:
    started = time.perf_counter()
    with torch.inference_mode():
        for _ in range(passes):
            net(images)
    return (time.perf_counter() - started) / passes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="backbone@size")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args()
    print(
        f"CPU embedding, batch {args.batch_size}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"{platform.machine()}; img/s (median of {args.rounds} alternating rounds, channels-last, ImageNet weights "
        "where hamkit installs them, random ones otherwise)"
    )
    print(f"{'model':<34}{'weights':>9}{'as it is':>10}{'folded':>9}{'speed-up':>10}{'largest difference':>20}")
    for item in args.models:
        name, size = item.rsplit("@", 1)
        torch.manual_seed(0)
        offline = bool(get_backbone(name).offline_weights)  # never a download: random weights time the same
        network = create_backbone(name, task="classification", pretrained=offline)
        plain = network.eval().to(memory_format=torch.channels_last)
        folded = _fused(plain).to(memory_format=torch.channels_last)
        images = torch.randn(args.batch_size, 3, int(size), int(size)).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            expected, found = plain(images), folded(images)
        difference = float((found - expected).abs().max() / expected.abs().max())
        rates: dict[str, list[float]] = {"plain": [], "folded": []}
        for _ in range(args.rounds):
            for key, net in (("plain", plain), ("folded", folded)):
                rates[key].append(args.batch_size / _seconds(net, images, args.passes))
        plain_rate, folded_rate = (sorted(rates[k])[len(rates[k]) // 2] for k in ("plain", "folded"))
        print(
            f"{item:<34}{'ImageNet' if offline else 'random':>9}{plain_rate:>10.0f}{folded_rate:>9.0f}"
            f"{folded_rate / plain_rate:>9.2f}x"
            f"{difference:>19.1e} of the largest feature"
        )


if __name__ == "__main__":
    from _shared import recorded

    with recorded():  # --results FILE: also save the output, with its provenance, as JSON
        main()
