"""Architectures of thesis Chapter 6: DenseNet-40 and Fixup ResNet-20 (norm-bias, Tables 6.5–6.7),
the 6-layer ConvNet and WideResNet-16 variants of the NTK study (Figures 6.1 and 6.5).

Every model starts with a :class:`Normalize` layer (inputs in [0, 1]) and ends in global average
pooling where the thesis's CIFAR versions pool a fixed 4×4 or 8×8 map, so the same code runs on
8×8 digits at tiny scale.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .architectures import _NORMALIZE, WideResNet, _image_and_size, _normalize
from .registry import register_model

_SHAPES = ((3, 32, 32), (1, 8, 8))   # CIFAR (the thesis's), digits (tiny scale)


# ---------------------------------------------------------------- DenseNet-BC-40 (Huang et al.)
class _Bottleneck(nn.Module):
    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(4 * growth), nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x):
        out = self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))
        return torch.cat([out, x], 1)


class _Transition(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.bn, self.conv = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNet(nn.Module):
    """DenseNet-BC: three dense blocks of bottleneck layers, growth rate k, compression 0.5."""

    def __init__(self, blocks=(6, 6, 6), growth=12, num_classes=10, in_channels=3, mean=None, std=None):
        super().__init__()
        self.normalize = _normalize(in_channels, mean, std)
        c = 2 * growth
        self.conv1 = nn.Conv2d(in_channels, c, 3, padding=1, bias=False)
        stages = []
        for i, n in enumerate(blocks):
            layers = []
            for _ in range(n):
                layers.append(_Bottleneck(c, growth))
                c += growth
            stages.append(nn.Sequential(*layers))
            if i < len(blocks) - 1:
                stages.append(_Transition(c, c // 2))
                c //= 2
        self.features = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(c)
        self.linear = nn.Linear(c, num_classes)

    def forward(self, x):
        out = F.relu(self.bn(self.features(self.conv1(self.normalize(x)))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model("densenet40", "DenseNet-BC-40, growth 12 (thesis §6.3, the authors' densenet_cifar)",
                input_shapes=_SHAPES, options={"growth": "growth rate (default 12)", **_NORMALIZE})
def densenet40(num_classes=10, in_channels=3, growth=12, mean=None, std=None):
    return DenseNet((6, 6, 6), growth, num_classes, in_channels, mean, std)


# ---------------------------------------------------------------- Fixup ResNet-20 (Zhang et al. 2019)
class _FixupBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bias1a, self.bias1b, self.bias2a, self.bias2b = (nn.Parameter(torch.zeros(1)) for _ in range(4))
        self.scale = nn.Parameter(torch.ones(1))
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x):
        out = F.relu(self.conv1(x + self.bias1a) + self.bias1b)
        out = self.conv2(out + self.bias2a) * self.scale + self.bias2b
        identity = x
        if self.stride != 1 or self.extra:
            # option-A shortcut of the Fixup CIFAR code: subsample, then pad channels with zeros
            identity = F.avg_pool2d(x + self.bias1a, 1, self.stride)
            identity = torch.cat([identity, identity.new_zeros(identity.shape[0], self.extra, *identity.shape[2:])], 1)
        return F.relu(out + identity)


class FixupResNet(nn.Module):
    """CIFAR ResNet without normalisation: Fixup initialisation, scalar biases and multipliers."""

    def __init__(self, blocks=(3, 3, 3), num_classes=10, in_channels=3, mean=None, std=None):
        super().__init__()
        self.normalize = _normalize(in_channels, mean, std)
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bias1, self.bias2 = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
        layers, cin = [], 16
        for i, n in enumerate(blocks):
            for j in range(n):
                layers.append(_FixupBlock(cin, 16 * 2 ** i, 2 if (i > 0 and j == 0) else 1))
                cin = 16 * 2 ** i
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)
        self._fixup_init(sum(blocks))

    @torch.no_grad()
    def _fixup_init(self, num_blocks: int) -> None:
        for m in self.layers:
            fan_out = m.conv1.weight.shape[0] * m.conv1.weight[0][0].numel()
            nn.init.normal_(m.conv1.weight, 0, math.sqrt(2 / fan_out) * num_blocks ** -0.5)
            nn.init.zeros_(m.conv2.weight)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        out = F.relu(self.conv1(self.normalize(x)) + self.bias1)
        out = F.adaptive_avg_pool2d(self.layers(out), 1).flatten(1)
        return self.fc(out + self.bias2)


@register_model("fixup-resnet20", "ResNet-20 with Fixup initialisation, no batch norm (thesis §6.3)",
                input_shapes=_SHAPES, options=dict(_NORMALIZE))
def fixup_resnet20(num_classes=10, in_channels=3, mean=None, std=None):
    return FixupResNet((3, 3, 3), num_classes, in_channels, mean, std)


# ---------------------------------------------------------------- NTK study networks (§6.4)
@register_model("convnet6", "6-layer ConvNet of the NTK study: 5 convs (w,2w,2w,4w,4w) + linear (thesis §6.4)",
                input_shapes=((3, 32, 32), (1, 8, 8)), input_args=_image_and_size,
                options={"width": "channels of the first conv (default 16)",
                         "pool": "max-pool size after convs 3 and 4 (3 for 32x32, 2 for 8x8)", **_NORMALIZE})
def convnet6(num_classes=10, in_channels=3, width=16, image_size=32, pool=None, mean=None, std=None):
    """Max-pooling by ``pool`` after the third and fourth convolutions, as in the authors' code
    (3 for 32×32 CIFAR: a 3×3 map, Linear(36w → 10); default 2 below 32×32, e.g. 8×8 digits)."""
    pool = pool or (3 if image_size >= 32 else 2)
    side = image_size // pool // pool
    if side < 1:
        raise ConfigError(f"convnet6: {image_size}x{image_size} inputs vanish after two {pool}x{pool} poolings")
    w, chans, layers = width, [in_channels, width, 2 * width, 2 * width, 4 * width, 4 * width], []
    layers.append(_normalize(in_channels, mean, std))
    for i in range(5):
        layers += [nn.Conv2d(chans[i], chans[i + 1], 3, padding=1), nn.ReLU()]
        if i in (2, 3):
            layers.append(nn.MaxPool2d(pool))
    layers += [nn.Flatten(), nn.Linear(4 * w * side * side, num_classes)]
    return nn.Sequential(*layers)


@register_model("wrn-16", "WideResNet-16-k of the NTK study, optionally without batch norm or skips (§6.4)",
                input_shapes=_SHAPES, options={"widen": "widening factor k (default 4)",
                                               "batch_norm": "batch norm layers (default on)",
                                               "skip": "residual connections (default on)", **_NORMALIZE})
def wrn_16(num_classes=10, in_channels=3, widen=4, batch_norm=True, skip=True, mean=None, std=None):
    return WideResNet(16, widen, num_classes, in_channels, mean, std, batch_norm=batch_norm, skip=skip)
