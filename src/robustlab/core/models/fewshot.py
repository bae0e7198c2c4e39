"""Few-shot backbones (thesis §5.2–5.4): Conv-4, the R2-D2 embedding, ResNet-12, and feature denoising.

Every backbone maps images in [0, 1] to a flat feature vector (``out_dim``); with
``num_classes > 0`` a linear layer on top makes it a classifier (MAML, the transfer baseline).
``denoise_after`` inserts a feature-denoising block [Xie et al. 2019] after the listed stages
(1-based; the thesis's best R2-D2 variant has it after the fourth, Table 5.10).
Sizes follow the reference implementations: Conv-4 with 64 channels (1,600 features on 84 px);
R2-D2 96-192-384-512 with blocks 3 and 4 concatenated (8,192 on 32 px, 51,200 on 84 px); ResNet-12
64-160-320-640 without final pooling (16,000 on 84 px).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .architectures import _normalize
from .registry import register_model


class FeatureDenoise(nn.Module):
    """Non-local-means denoising block [Xie et al. 2019, "Feature denoising"], embedded-Gaussian form.

    ``y_i = Σ_j softmax_j(θ(x_i)·φ(x_j)/√d) x_j`` over the *spatial positions* j of one feature map,
    then a learned 1×1 convolution, batch norm, and a residual connection: ``out = x + BN(conv(y))``.
    θ and φ are learned 1×1 convolutions (registered parameters, trained with the network and kept
    at test time).
    """

    def __init__(self, channels: int, embed: int | None = None):
        super().__init__()
        self.embed = embed or max(1, channels // 2)
        self.theta = nn.Conv2d(channels, self.embed, 1, bias=False)
        self.phi = nn.Conv2d(channels, self.embed, 1, bias=False)
        self.out = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.theta(x).flatten(2).transpose(1, 2)                        # (b, hw, e)
        k = self.phi(x).flatten(2)                                           # (b, e, hw)
        attn = torch.softmax(q @ k / math.sqrt(self.embed), dim=-1)           # over positions j
        y = (attn @ x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, c, h, w)
        return x + self.bn(self.out(y))


class FewShotBackbone(nn.Module):
    """Normalize → stages (each optionally followed by denoising) → flat features [→ linear classifier].

    ``concat_last`` > 1 concatenates the flattened outputs of that many final stages (R2-D2).
    """

    def __init__(self, stages: list[nn.Module], widths: list[int], in_channels: int, image_size: int,
                 num_classes: int = 0, denoise_after: tuple[int, ...] = (), concat_last: int = 1,
                 mean=None, std=None):
        super().__init__()
        bad = [i for i in denoise_after if not 1 <= i <= len(stages)]
        if bad:
            from ..errors import ConfigError
            raise ConfigError(f"denoise_after {bad} is outside the backbone's stages 1..{len(stages)}")
        self.normalize = _normalize(in_channels, mean, std)
        self.stages = nn.ModuleList(stages)
        self.denoise = nn.ModuleDict({str(i): FeatureDenoise(widths[i - 1]) for i in sorted(set(denoise_after))})
        self.concat_last = concat_last
        self.input_shape = (in_channels, image_size, image_size)
        self.out_dim = self._feature_dim(in_channels, image_size)
        self.fc = nn.Linear(self.out_dim, num_classes) if num_classes > 0 else None

    def _feature_dim(self, in_channels: int, image_size: int) -> int:
        was = self.training
        self.eval()
        with torch.no_grad():
            d = self.features(torch.zeros(2, in_channels, image_size, image_size)).shape[1]
        self.train(was)
        return int(d)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.normalize(x)
        outs = []
        for i, stage in enumerate(self.stages, start=1):
            h = stage(h)
            if str(i) in self.denoise:
                h = self.denoise[str(i)](h)
            outs.append(h)
        return torch.cat([o.flatten(1) for o in outs[-self.concat_last:]], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        return self.fc(f) if self.fc is not None else f


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))


def _image_and_size(shape: tuple[int, ...]) -> dict:
    """A backbone sizes its embedding from the image side as well as the channel count."""
    return {"in_channels": shape[0], "image_size": shape[-1]}


#: registry facts shared by the backbones: ``num_classes=0`` (the default) builds the embedding alone
_OMNIGLOT, _CIFAR_FS, _MINI_IMAGENET = (1, 28, 28), (3, 32, 32), (3, 84, 84)
_BACKBONE = dict(num_classes=0, input_args=_image_and_size)
_COMMON = {"denoise_after": "stages followed by a feature-denoising block", "mean": "Normalize mean",
           "std": "Normalize std"}


@register_model("conv4", "Conv-4 few-shot backbone (ProtoNet / MAML; 64 channels, 4 conv-BN-ReLU-pool blocks)",
                input_shapes=(_OMNIGLOT, _CIFAR_FS), options={"hidden": "channels per block (64)", **_COMMON},
                **_BACKBONE)
def conv4(num_classes=0, in_channels=1, image_size=28, hidden=64, denoise_after=(), mean=None, std=None, **_):
    widths = [hidden] * 4
    stages = [_conv_block(cin, cout) for cin, cout in zip([in_channels] + widths[:-1], widths)]
    return FewShotBackbone(stages, widths, in_channels, image_size, num_classes, tuple(denoise_after),
                           mean=mean, std=std)


def _r2d2_block(cin: int, cout: int, dropout: float, activate: bool) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.MaxPool2d(2)]
    if activate:
        layers.append(nn.LeakyReLU(0.1))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


@register_model("r2d2-net", "R2-D2 embedding (96-192-384-512; blocks 3 and 4 concatenated; Bertinetto et al. 2019)",
                input_shapes=(_CIFAR_FS, _MINI_IMAGENET), options={"widths": "channels of the four blocks", **_COMMON},
                **_BACKBONE)
def r2d2_net(num_classes=0, in_channels=3, image_size=32, widths=(96, 192, 384, 512), denoise_after=(),
             mean=None, std=None, **_):
    w = list(widths)
    drops = (0.0, 0.0, 0.1, 0.3)  # keep-probabilities 0.9 and 0.7 in blocks 3 and 4, as in the reference
    stages = [_r2d2_block(cin, cout, p, activate=i < 3)
              for i, (cin, cout, p) in enumerate(zip([in_channels] + w[:-1], w, drops))]
    return FewShotBackbone(stages, w, in_channels, image_size, num_classes, tuple(denoise_after), concat_last=2,
                           mean=mean, std=std)


class DropBlock2d(nn.Module):
    """DropBlock [Ghiasi et al. 2018]: drop contiguous ``block_size``×``block_size`` regions of each
    feature map, then rescale so the expected activation is unchanged; identity in eval mode.

    Block centres are sampled with rate γ = p/b² · HW/((H−b+1)(W−b+1)) inside the valid region, so
    that about a fraction ``p`` of the units is dropped (the paper's eq. 1). MetaOptNet's ResNet-12
    uses it in its last two blocks (``drop_rate`` 0.1; block 5 on mini-ImageNet, 2 on CIFAR-FS).
    """

    def __init__(self, drop_rate: float, block_size: int):
        super().__init__()
        if not 0.0 <= drop_rate < 1.0 or block_size < 1:
            from ..errors import ConfigError
            raise ConfigError(f"DropBlock needs 0 <= drop_rate < 1 and block_size >= 1, got {drop_rate}, {block_size}")
        self.drop_rate, self.block_size = drop_rate, block_size

    def extra_repr(self) -> str:
        return f"drop_rate={self.drop_rate}, block_size={self.block_size}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_rate == 0.0:
            return x
        n, c, h, w = x.shape
        b = min(self.block_size, h, w)
        valid = (h - b + 1) * (w - b + 1)
        gamma = self.drop_rate / b ** 2 * h * w / valid
        centres = torch.bernoulli(torch.full((n, c, h - b + 1, w - b + 1), min(gamma, 1.0), device=x.device))
        # each sampled centre grows into a b×b block: max-pool of the zero-padded centre map
        pad = (b - 1, b - 1, b - 1, b - 1)
        blocks = F.max_pool2d(F.pad(centres, pad), kernel_size=b, stride=1)[..., :h, :w] if b > 1 else centres
        keep = 1.0 - blocks
        return x * keep * (keep.numel() / keep.sum().clamp_min(1.0))


class _ResBlock12(nn.Module):
    """ResNet-12 block: three 3×3 conv-BN(-LeakyReLU) layers, a 1×1 shortcut, LeakyReLU, 2×2 max-pool,
    then DropBlock when ``drop_rate`` > 0."""

    def __init__(self, cin: int, cout: int, drop_rate: float = 0.0, block_size: int = 5):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(c, cout, 3, padding=1, bias=False) for c in (cin, cout, cout)])
        self.bns = nn.ModuleList([nn.BatchNorm2d(cout) for _ in range(3)])
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.drop = DropBlock2d(drop_rate, block_size)

    def forward(self, x):
        h = x
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            h = bn(conv(h))
            if i < 2:
                h = F.leaky_relu(h, 0.1)
        return self.drop(F.max_pool2d(F.leaky_relu(h + self.shortcut(x), 0.1), 2))


@register_model("resnet12", "ResNet-12 few-shot backbone (MetaOptNet; 64-160-320-640, no final pooling)",
                input_shapes=(_MINI_IMAGENET, _CIFAR_FS),
                options={"widths": "channels of the four blocks",
                         "drop_rate": "DropBlock rate (blocks 3–4; unit dropout in 1–2; default 0: off; MetaOptNet 0.1)",
                         "dropblock_size": "DropBlock block side (default 5 on 84 px inputs, 2 on smaller)",
                         **_COMMON},
                **_BACKBONE)
def resnet12(num_classes=0, in_channels=3, image_size=84, widths=(64, 160, 320, 640), denoise_after=(),
             mean=None, std=None, drop_rate=0.0, dropblock_size=None, **_):
    w = list(widths)
    size = dropblock_size or (5 if image_size >= 84 else 2)
    # blocks 1–2: unit dropout (a 1×1 block) at the same rate, as the MetaOptNet reference does
    stages = [_ResBlock12(cin, cout, drop_rate, size if i >= 2 else 1)
              for i, (cin, cout) in enumerate(zip([in_channels] + w[:-1], w))]
    return FewShotBackbone(stages, w, in_channels, image_size, num_classes, tuple(denoise_after),
                           mean=mean, std=std)
