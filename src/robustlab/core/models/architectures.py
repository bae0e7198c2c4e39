"""Built-in architectures: small models for digits/tiny runs and the CIFAR models of thesis §4.3.

ResNet18 [He et al.], WideResNet-34-10 [Zagoruyko & Komodakis] and MobileNetV2 [Sandler et al.]
in their CIFAR variants (3x3 stem, no initial max-pool; MobileNetV2 with stride 1 in the stem
and first bottleneck stages, as in the public CIFAR ports the thesis used).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .init import init_biases
from .registry import register_model

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2471, 0.2435, 0.2616)


class Normalize(nn.Module):
    """Per-channel (x - mean) / std as the model's first layer, so attacks work in pixel space."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def _normalize(in_channels: int, mean=None, std=None) -> Normalize:
    if mean is None:
        mean, std = (CIFAR_MEAN, CIFAR_STD) if in_channels == 3 else ((0.5,) * in_channels, (0.5,) * in_channels)
    return Normalize(mean, std)


# ---------------------------------------------------------------- small models
def _image_and_size(shape: tuple[int, ...]) -> dict:
    """An MLP on flattened square images needs the side length as well as the channel count."""
    return {"in_channels": shape[0], "image_size": shape[-1]}


_DIGITS = (1, 8, 8)
_CIFAR = (3, 32, 32)
_NORMALIZE = {"mean": "per-channel mean of the Normalize layer (default: the dataset's)",
              "std": "per-channel std of the Normalize layer"}


@register_model("mlp", "ReLU MLP (thesis §2.1; depth 4 in Ch. 6), for 8x8 digits and tests",
                input_shapes=(_DIGITS, _CIFAR), input_args=_image_and_size,
                options={"width": "hidden units per layer (default 256)", "depth": "linear layers (default 3)",
                         "bias_init": "bias initialisation (thesis §6.2)", "bias_scale": "its scale",
                         "widths": "hidden widths, one per hidden layer (overrides width and depth)",
                         **_NORMALIZE})
def mlp(num_classes=10, in_channels=1, image_size=8, width=256, mean=None, std=None, depth=3,
        bias_init="default", bias_scale=0.0, widths=None):
    """``depth`` linear layers (default 3: two hidden layers), or hidden layers of the given ``widths``
    (thesis §6.2's 3072-2048-2048-1024-10 is ``widths=(2048, 2048, 1024)``); ``bias_init``/``bias_scale``
    as in :func:`~robustlab.core.models.init.init_biases` (thesis §6.2)."""
    if widths is not None:
        if not widths or min(int(w) for w in widths) < 1:
            raise ConfigError(f"mlp widths must be positive hidden-layer sizes, got {widths}")
        width, depth = None, len(widths) + 1
    if depth < 1:
        raise ConfigError(f"mlp depth must be >= 1, got {depth}")
    hidden = [int(w) for w in widths] if widths is not None else [width] * (depth - 1)
    dims = [in_channels * image_size * image_size] + hidden + [num_classes]
    layers = [_normalize(in_channels, mean, std), nn.Flatten()]
    for i in range(depth):
        layers += [nn.Linear(dims[i], dims[i + 1])] + ([nn.ReLU()] if i < depth - 1 else [])
    return init_biases(nn.Sequential(*layers), bias_init, bias_scale)


@register_model("small-cnn", "small CNN (two conv blocks with batch norm) for digits and tiny runs",
                input_shapes=(_DIGITS, _CIFAR),
                options={"width": "channels of the first block (default 32)", **_NORMALIZE})
def small_cnn(num_classes=10, in_channels=1, width=32, mean=None, std=None, **_):
    w = width
    return nn.Sequential(
        _normalize(in_channels, mean, std),
        nn.Conv2d(in_channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
        nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(2 * w, num_classes),
    )


# ---------------------------------------------------------------- ResNet18
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, cout, stride=1, skip=True):
        super().__init__()
        self.skip = skip  # thesis §6.5: ResNet-18 without skip connections
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x) if self.skip else out)


class ResNet(nn.Module):
    def __init__(self, blocks=(2, 2, 2, 2), num_classes=10, in_channels=3, width=64, mean=None, std=None,
                 skip=True):
        super().__init__()
        self.normalize = _normalize(in_channels, mean, std)
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, cin = [], width
        for i, n in enumerate(blocks):
            cout, stride = width * 2 ** i, (1 if i == 0 else 2)
            for j in range(n):
                layers.append(BasicBlock(cin, cout, stride if j == 0 else 1, skip))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        out = self.layers(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


@register_model("resnet18", "CIFAR ResNet18 (thesis §4.3 teacher)", input_shapes=(_CIFAR,),
                options={"skip": "residual connections (default on; off for Ch. 6)",
                         "width": "channels of the first stage (default 64; narrower for Ch. 6's tiny runs)",
                         **_NORMALIZE},
                thesis_params=11.2e6, thesis_madds=1.1e9)
def resnet18(num_classes=10, in_channels=3, width=64, mean=None, std=None, skip=True):
    return ResNet((2, 2, 2, 2), num_classes, in_channels, width, mean, std, skip)


# ---------------------------------------------------------------- WideResNet-34-10
class WideBlock(nn.Module):
    def __init__(self, cin, cout, stride, batch_norm=True, skip=True):
        super().__init__()
        norm = nn.BatchNorm2d if batch_norm else (lambda c: nn.Identity())
        self.bn1 = norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.skip = skip  # thesis §6.4 ablation: WideResNet without skip connections
        self.shortcut = None if (cin == cout and stride == 1) or not skip else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        o = F.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(F.relu(self.bn2(y)))
        if not self.skip:
            return y
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(nn.Module):
    def __init__(self, depth=34, widen=10, num_classes=10, in_channels=3, mean=None, std=None,
                 batch_norm=True, skip=True):
        super().__init__()
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.normalize = _normalize(in_channels, mean, std)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        blocks, cin = [], widths[0]
        for i, stride in enumerate((1, 2, 2)):
            for j in range(n):
                blocks.append(WideBlock(cin, widths[i + 1], stride if j == 0 else 1, batch_norm, skip))
                cin = widths[i + 1]
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin) if batch_norm else nn.Identity()
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        out = self.blocks(self.conv1(self.normalize(x)))
        out = F.relu(self.bn(out))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model("wrn-34-10", "CIFAR WideResNet-34-10 (thesis §4.3 teacher)", input_shapes=(_CIFAR,),
                options={"depth": "depth 6n+4 (default 34)", "widen": "widening factor (default 10)", **_NORMALIZE},
                thesis_params=46.2e6, thesis_madds=13.3e9)
def wrn_34_10(num_classes=10, in_channels=3, depth=34, widen=10, mean=None, std=None):
    return WideResNet(depth, widen, num_classes, in_channels, mean, std)


# ---------------------------------------------------------------- MobileNetV2 (CIFAR)
class InvertedResidual(nn.Module):
    """Expand 1×1 → depthwise 3×3 → project 1×1 (linear bottleneck) [Sandler et al.].

    ``projection_shortcut``: a stride-1 block that changes width adds a 1×1 convolution + BN of its
    input (the CIFAR port the thesis's authors trained), instead of having no shortcut at all.
    """

    def __init__(self, cin, cout, expansion, stride, act=nn.ReLU, projection_shortcut=True):
        super().__init__()
        hidden = cin * expansion
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            act(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.shortcut = None
        if stride == 1 and cin == cout:
            self.shortcut = nn.Identity()
        elif stride == 1 and projection_shortcut:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.conv(x)
        return out if self.shortcut is None else out + self.shortcut(x)


class MobileNetV2(nn.Module):
    """CIFAR MobileNetV2: 3×3 stem of stride 1, first two stages of stride 1, 1280-wide head.

    Defaults are the model behind the thesis's numbers (the authors' CIFAR port): ReLU activations
    and 1×1 projection shortcuts in the four stride-1 blocks that change width — 2,296,922
    parameters for 10 classes (thesis §4.6: ~2.3M). ``act=nn.ReLU6, projection_shortcut=False`` is
    the torchvision-style block (2,237,770 parameters), kept as ``mobilenetv2-relu6``.
    """

    # (expansion, out channels, repeats, stride); strides of the first two stages are 1 for 32x32 inputs
    CFG = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, num_classes=10, in_channels=3, mean=None, std=None, act=nn.ReLU, projection_shortcut=True,
                 width_mult=1.0):
        super().__init__()
        self.normalize = _normalize(in_channels, mean, std)

        def w(c):   # every layer's channels scaled alike (1.0: the published network)
            return max(4, int(round(c * width_mult)))

        layers = [nn.Conv2d(in_channels, w(32), 3, 1, 1, bias=False), nn.BatchNorm2d(w(32)), act(inplace=True)]
        cin = w(32)
        for t, c, n, s in self.CFG:
            for i in range(n):
                layers.append(InvertedResidual(cin, w(c), t, s if i == 0 else 1, act, projection_shortcut))
                cin = w(c)
        layers += [nn.Conv2d(cin, w(1280), 1, bias=False), nn.BatchNorm2d(w(1280)), act(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(w(1280), num_classes)

    def forward(self, x):
        out = self.features(self.normalize(x))
        return self.classifier(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model("mobilenetv2", "CIFAR MobileNetV2 as the thesis's authors trained it (ReLU, projection shortcuts; "
                "thesis §4.3 student)", input_shapes=(_CIFAR,),
                options={"width_mult": "channel multiplier (default 1.0; narrower for Ch. 6's tiny runs)", **_NORMALIZE},
                thesis_params=2.3e6, thesis_madds=187e6)
def mobilenetv2(num_classes=10, in_channels=3, mean=None, std=None, width_mult=1.0):
    return MobileNetV2(num_classes, in_channels, mean, std, width_mult=width_mult)


@register_model("mobilenetv2-relu6", "CIFAR MobileNetV2 with ReLU6 and no projection shortcuts (torchvision-style "
                "block)", input_shapes=(_CIFAR,), options=dict(_NORMALIZE), thesis_params=2.3e6, thesis_madds=187e6)
def mobilenetv2_relu6(num_classes=10, in_channels=3, mean=None, std=None):
    return MobileNetV2(num_classes, in_channels, mean, std, act=nn.ReLU6, projection_shortcut=False)
