"""Engine overhead: LesionClassifier.fit / predict_proba against a plain PyTorch loop.

Same network (the classifier's own ClassifierNetwork, re-initialised from the same random state), same
pre-decoded tensors (a TensorDataset, so image decoding is not part of either side), same batch
size, optimiser and learning rate, no class balancing, no validation. Both sides alternate over
several rounds in this one process and the best round of each is reported.

    python benchmarks/bench_classifier.py [--backbone resnet18] [--size 128] [--images 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hamkit import LesionClassifier, TrainConfig


def plain_train(network: nn.Module, data: TensorDataset, batch_size: int, lr: float, device: torch.device) -> float:
    network.to(device).train()
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, num_workers=0)
    criterion = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        loss = criterion(network(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()  # a plain loop logs its loss too
    return len(data) / (time.perf_counter() - start)


@torch.inference_mode()
def plain_predict(network: nn.Module, images: torch.Tensor, batch_size: int, device: torch.device) -> float:
    network.to(device).eval()
    start = time.perf_counter()
    outputs = [
        network(images[i : i + batch_size].to(device)).softmax(1).cpu() for i in range(0, len(images), batch_size)
    ]
    torch.cat(outputs).numpy()
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.images, 3, args.size, args.size, generator=generator)
    labels = torch.randint(0, 7, (args.images,), generator=generator)
    data = TensorDataset(images, labels)
    recipe = TrainConfig(
        epochs=1, batch_size=args.batch_size, lr=1e-4, class_balance="none", scheduler="none", amp=False
    )
    clf = LesionClassifier(args.backbone, image_size=args.size, pretrained=False, recipe=recipe, device=args.device)
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    results: dict[str, list[float]] = {k: [] for k in ("plain train", "hamkit fit", "plain predict", "hamkit predict")}
    for _ in range(args.rounds):
        torch.manual_seed(0)
        network = clf._build(pretrained=False, weights=None)
        results["plain train"].append(plain_train(network, data, args.batch_size, 1e-4, device))
        start = time.perf_counter()
        clf.fit(data, num_workers=0, progress=False)
        results["hamkit fit"].append(args.images / (time.perf_counter() - start))
        results["plain predict"].append(plain_predict(clf.network_, images, args.batch_size * 2, device))
        start = time.perf_counter()
        clf.predict_proba(images, batch_size=args.batch_size * 2)
        results["hamkit predict"].append(args.images / (time.perf_counter() - start))
    best = {k: max(v) for k, v in results.items()}
    print(
        f"LesionClassifier vs plain PyTorch loop: {args.backbone} at {args.size}px, {args.images} images, "
        f"batch {args.batch_size}, device {device}, torch {torch.__version__}, "
        f"{platform.machine()}, best of {args.rounds} rounds"
    )
    print(f"{'':<10}{'plain img/s':>13}{'hamkit img/s':>14}{'hamkit/plain':>14}{'overhead':>10}")
    for phase in ("train", "predict"):
        plain = best[f"plain {phase}"]
        ours = best[f"hamkit {'fit' if phase == 'train' else 'predict'}"]
        print(f"{phase:<10}{plain:>13.1f}{ours:>14.1f}{ours / plain:>13.3f}x{(1 - ours / plain) * 100:>9.1f}%")


if __name__ == "__main__":
    from _shared import recorded

    with recorded():  # --results FILE: also save the output, with its provenance, as JSON
        main()
