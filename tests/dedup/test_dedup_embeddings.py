"""Batch norm folded into the convolutions for CPU embeddings (``hamkit.dedup.embeddings``)."""

from __future__ import annotations

import torch
from torch import nn

from hamkit.backbones.registry import create_backbone
from hamkit.dedup.embeddings import _fused, fold_batch_norms


def _norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_timm_norm_and_activation_layers_are_folded_with_the_same_output(torch_seed) -> None:
    # timm's EfficientNet-Lite: BatchNormAct2d after convolutions with TensorFlow's "same" padding,
    # which torch.fx cannot trace: every norm is folded, the activation kept
    network = create_backbone("timm:tf_efficientnet_lite0", task="classification", pretrained=False).eval()
    with torch.no_grad():  # statistics a trained network would have, not the identity of a new one
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
    assert _norms(network) > 40
    fused = _fused(network)
    assert _norms(fused) == 0 and _norms(network) > 40  # a copy: the original keeps its layers
    images = torch.randn(3, 3, 96, 80)
    with torch.inference_mode():
        expected, found = network(images), fused(images)
    torch.testing.assert_close(found, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def test_a_norm_that_no_convolution_feeds_is_left_alone() -> None:
    # the first norm takes the input, the second a ReLU's output: neither follows a convolution
    net = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4)).eval()
    assert fold_batch_norms(net) is net


def test_a_model_in_training_mode_is_not_folded() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    assert fold_batch_norms(net) is net
    assert _norms(fold_batch_norms(net.eval())) == 0
