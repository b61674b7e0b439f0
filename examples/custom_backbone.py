"""Register your own backbone, load its weights from a local file, and train a classifier on it.

Usage: python examples/custom_backbone.py [WORK_DIR]

``@register_backbone`` adds a name to hamkit's registry; from then on every hamkit estimator
accepts it like a built-in (``LesionClassifier("small_cnn")``, ``Deduplicator(CnnMethod(backbone=...))``).
To share a backbone with others, put the same decorated function in a package and declare it
as an entry point in the ``hamkit.backbones`` group: see ``examples/plugin_package``.

The script writes a small synthetic dataset into WORK_DIR (default: a new temporary folder).
No network, no GPU; a few seconds.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from hamkit import (
    LesionClassifier,
    TrainConfig,
    create_backbone,
    get_backbone,
    list_backbones,
    make_synthetic,
    read_metadata,
    register_backbone,
    split_dataset,
)


class SmallCNN(nn.Module):
    """Three stride-2 conv blocks and global average pooling: images (N, 3, H, W) -> (N, width)."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width // 4, width // 2, width):
            layers += [
                nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        self.feature_dim = width  # every hamkit backbone says how wide its output is

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(N, width)`` of normalised images ``(N, 3, H, W)``."""
        return self.features(images).mean(dim=(2, 3))


@register_backbone(
    "small_cnn",
    tasks=("classification",),
    feature_dim=64,
    input_size=(64, 64),
    description="SmallCNN: three conv blocks, 64-d features (example)",
)
def small_cnn(*, task: str = "classification", pretrained: bool | str = False, **kwargs: Any) -> SmallCNN:
    """Build SmallCNN (hamkit calls builders as ``builder(task=..., pretrained=..., **kwargs)``)."""
    return SmallCNN(**kwargs)


def main(work: Path) -> None:
    """Register ``small_cnn``, load its weights from a file, and train a classifier on it in ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    print("registered:", list_backbones("small*"), "->", get_backbone("small_cnn").description)
    features = create_backbone("small_cnn").eval()(torch.zeros(2, 3, 64, 64))
    print("features of two images:", tuple(features.shape))

    # weights from a local file (what you do on a machine without internet access)
    torch.manual_seed(0)
    reference = create_backbone("small_cnn").eval()
    save_file(reference.state_dict(), str(work / "small_cnn.safetensors"))
    loaded = create_backbone("small_cnn", weights=work / "small_cnn.safetensors").eval()
    probe = torch.rand(1, 3, 64, 64)
    print("weights file loaded, same output:", torch.equal(loaded(probe), reference(probe)))

    # the estimators take the name like any built-in
    data = make_synthetic(work / "data", n_lesions=40, random_state=0, image_size=(96, 72), overwrite=True)
    split_csv = split_dataset(read_metadata(data.metadata_csv), random_state=0).save(work / "split.csv")
    recipe = TrainConfig(epochs=3, batch_size=16, lr=3e-3)
    model = LesionClassifier("small_cnn", image_size=64, pretrained=False, recipe=recipe, device="cpu")
    model.fit(data.root, split_csv=split_csv, num_workers=0, progress=False)
    report = model.evaluate(data.root, split_csv=split_csv, split="test")
    print(
        f"LesionClassifier('small_cnn'): test balanced accuracy {report.balanced_accuracy:.3f} "
        f"on {report.n_samples} images"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="hamkit-backbone-")))
