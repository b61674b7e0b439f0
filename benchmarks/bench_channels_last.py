"""Training speed on CPU in the channels-last memory format against the default (NCHW).

The reference is the same network, batch and optimizer step in the default contiguous format,
measured in alternating rounds in one process. The trainer's ``channels_last="auto"`` turns the
format on for CPU training only where this prints a gain: networks with depthwise convolutions.

    python benchmarks/bench_channels_last.py
    python benchmarks/bench_channels_last.py --models mobilenet_v3_small@128 resnet18@64 --rounds 5
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from hamkit.backbones.registry import create_backbone

DEFAULT_MODELS = ["mobilenet_v3_small@128", "mobilenet_v3_large@64", "resnet18@64", "resnet18@112"]


def _step_time(
    net: torch.nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor, steps: int
) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(net(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="backbone@size")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    print(
        f"CPU training step, batch {args.batch_size}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"{platform.machine()}; img/s, median of {args.rounds} alternating rounds"
    )
    print(f"{'model':<28}{'NCHW':>10}{'channels_last':>15}{'ratio':>8}")
    for item in args.models:
        name, size = item.rsplit("@", 1)
        torch.manual_seed(0)
        nets = {}
        for fmt in ("nchw", "cl"):
            body = create_backbone(name, task="classification", pretrained=False)
            net = torch.nn.Sequential(body, torch.nn.Linear(body.feature_dim, 7))
            if fmt == "cl":
                net = net.to(memory_format=torch.channels_last)
            nets[fmt] = (net, torch.optim.AdamW(net.parameters(), 1e-3))
        images = torch.randn(args.batch_size, 3, int(size), int(size))
        labels = torch.randint(0, 7, (args.batch_size,))
        rates: dict[str, list[float]] = {"nchw": [], "cl": []}
        for net, optimizer in nets.values():
            _step_time(net, optimizer, images, labels, 1)  # warm-up
        for _ in range(args.rounds):
            for fmt, (net, optimizer) in nets.items():
                rates[fmt].append(args.batch_size / _step_time(net, optimizer, images, labels, args.steps))
        nchw, cl = (sorted(rates[f])[len(rates[f]) // 2] for f in ("nchw", "cl"))
        print(f"{item:<28}{nchw:>10.0f}{cl:>15.0f}{cl / nchw:>7.2f}x")


if __name__ == "__main__":
    from _shared import recorded

    with recorded():  # --results FILE: also save the output, with its provenance, as JSON
        main()
