"""Training speed on CPU with the first layers of a network frozen (``freeze``) against every layer training.

The reference is the same network, batch and optimizer step with every layer training, measured
in alternating rounds in one process, both in the channels-last format the trainer uses for these
networks on CPU. The frozen copy is what the trainer makes of ``freeze=SHARE``
(:func:`hamkit.engine.trainer.freeze_layers`: no gradient for the first share of the layers, their
batch norms in eval mode, the optimizer given only the parameters that train).

    python benchmarks/bench_freeze.py
    python benchmarks/bench_freeze.py --models timm:tf_efficientnet_lite0@128 --shares 0.3 0.5 --rounds 5
"""

from __future__ import annotations

import argparse
import platform

import torch
from bench_channels_last import _step_time

from hamkit.backbones.registry import create_backbone
from hamkit.engine.trainer import freeze_layers

DEFAULT_MODELS = ["timm:tf_efficientnet_lite0@128"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="backbone@size")
    parser.add_argument("--shares", nargs="+", type=float, default=[0.3])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    print(
        f"CPU training step, batch {args.batch_size}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"{platform.machine()}; img/s (median of {args.rounds} alternating rounds, channels-last); "
        "time: the frozen step as a share of the full one"
    )
    print(f"{'model':<34}{'share':>8}{'all train':>11}{'frozen':>9}{'time':>8}")
    for item in args.models:
        name, size = item.rsplit("@", 1)
        images = torch.randn(args.batch_size, 3, int(size), int(size)).contiguous(memory_format=torch.channels_last)
        labels = torch.randint(0, 7, (args.batch_size,))
        for share in args.shares:
            nets = {}
            for frozen in (0.0, share):
                torch.manual_seed(0)
                body = create_backbone(name, task="classification", pretrained=False)
                net = torch.nn.Sequential(body, torch.nn.Linear(body.feature_dim, 7))
                net = net.to(memory_format=torch.channels_last).train()
                layers, _ = freeze_layers(net, frozen)
                for layer in layers:
                    layer.eval()
                trainable = [p for p in net.parameters() if p.requires_grad]
                nets[frozen] = (net, torch.optim.AdamW(trainable, 1e-3))
            rates: dict[float, list[float]] = {key: [] for key in nets}
            for net, optimizer in nets.values():
                _step_time(net, optimizer, images, labels, 1)  # warm-up
            for _ in range(args.rounds):
                for key, (net, optimizer) in nets.items():
                    rates[key].append(args.batch_size / _step_time(net, optimizer, images, labels, args.steps))
            full, part = (sorted(rates[k])[len(rates[k]) // 2] for k in (0.0, share))
            print(f"{item:<34}{share:>8g}{full:>11.0f}{part:>9.0f}{full / part:>7.2f}x")


if __name__ == "__main__":
    from _shared import recorded

    with recorded():  # --results FILE: also save the output, with its provenance, as JSON
        main()
