"""Pre-processing defenses for few-shot classifiers, and how to attack through them (thesis §5.5, Table 5.12).

A defense is an ``nn.Module`` mapping images in [0, 1] to images in [0, 1] of the same shape,
put in front of a fitted few-shot classifier (:class:`~.learners.EpisodeClassifier`):
``defended(classifier, defense)`` is ``classifier ∘ defense``. Two are built, each with its own
small network trained on the meta-train classes' images (:func:`train_defense`, saved as safetensors):

* ``wavelet-sr`` — Mustafa et al. [120]: wavelet soft-thresholding (BayesShrink, :mod:`.wavelets`),
  then a super-resolution network (a small SRResNet: residual blocks, pixel shuffle). Our
  classifiers take a fixed input size, so the denoised image is first down-sampled 2× (area) and the
  network super-resolves it back; Mustafa et al. super-resolve the full-size image 2× and feed the
  larger image to an ImageNet classifier.
* ``defensegan`` — Samangouei et al. [134]: replace x by G(z*), z* = argmin_z ‖G(z) − x‖² found by
  ``steps`` Adam steps from each of ``restarts`` random z ~ N(0, I), the best restart kept. G is
  the decoder of a small VAE trained on the meta-train images (they train a WGAN; a VAE decoder
  trains in CPU minutes, and its latent prior N(0, I) is where the random restarts are drawn).

Attacking through them (Athalye et al. 2018): :class:`BPDA` runs the defense in the forward pass
and is the identity in the backward pass (both defenses are meant to return ≈ x); :class:`EOT`
averages the classifier's probabilities over ``samples`` draws of a randomised defense (DefenseGAN's
random restarts), so the attack's loss is −log E[p(y | defense(x))]. :func:`attack_model` builds the
module the core's attacks run on: ``"naive"`` (autograd through whatever the defense computes —
for DefenseGAN that is a zero derivative, since z* comes out of an optimiser) or ``"bpda"``.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import ConfigError
from ..core.io import environment_info, load_checkpoint, load_weights_into, save_checkpoint
from ..core.registry import Registry
from .wavelets import check_wavelet, wavelet_denoise

GRADIENTS = ("naive", "bpda")
_DEFENSES: Registry[type] = Registry("defense")


def register_defense(name: str):
    return _DEFENSES.register_class(name)


def list_defenses() -> list[str]:
    return _DEFENSES.names()


def build_defense(name: str, *, in_channels: int = 1, image_size: int = 28, **options) -> "Defense":
    """A fresh (untrained) defense ``name`` for images of ``in_channels`` × ``image_size``²."""
    cls = _DEFENSES.get(name)
    unknown = sorted(set(options) - set(cls.OPTIONS))
    if unknown:
        raise ConfigError(f"defense {cls.name!r} has no option {unknown[0]!r}; its options: "
                          f"{', '.join(cls.OPTIONS)}")
    if image_size % 4:
        raise ConfigError(f"the defenses need an image size divisible by 4, got {image_size}")
    return cls(in_channels=in_channels, image_size=image_size, **options)


class Defense(nn.Module):
    """Base class: ``forward(x) -> x'`` in [0, 1], same shape; ``fit(images)`` trains its network.

    ``randomised``: whether two calls on the same input may differ (then EOT applies).
    ``OPTIONS``: the constructor's options (recorded in the checkpoint's sidecar).
    """

    name = "defense"
    randomised = False
    OPTIONS: tuple[str, ...] = ()

    def __init__(self, in_channels: int, image_size: int):
        super().__init__()
        self.in_channels, self.image_size = int(in_channels), int(image_size)

    def options(self) -> dict:
        return {k: getattr(self, k) for k in self.OPTIONS}

    def reseed(self, seed: int) -> "Defense":
        """Restart the defense's own random draws from ``seed`` (nothing to do for a deterministic one)."""
        return self

    def training_loss(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def fit(self, images: torch.Tensor, *, epochs: int = 10, batch_size: int = 64, lr: float = 1e-3,
            seed: int = 0) -> list[float]:
        """Adam on :meth:`training_loss` over shuffled mini-batches; returns the mean loss per epoch."""
        if images.numel() == 0:
            raise ConfigError("no images to train the defense on; check the dataset's meta-train split")
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        dev = next(self.parameters()).device
        history = []
        self.train()
        for _ in range(epochs):
            total, n = 0.0, 0
            for idx in torch.randperm(len(images), generator=gen).split(batch_size):
                xb = images[idx].to(dev)
                loss = self.training_loss(xb, gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total, n = total + loss.item() * len(idx), n + len(idx)
            history.append(total / n)
        self.eval()
        return history


class _ResBlock(nn.Module):
    def __init__(self, f: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(f, f, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(f, f, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


class SuperResolution(nn.Module):
    """×2 super-resolution in the shape of SRResNet [99]: head conv, residual blocks, global skip,
    conv to 4·C channels, pixel shuffle; added to the bilinear up-sampling of the input."""

    def __init__(self, channels: int, features: int = 32, blocks: int = 2):
        super().__init__()
        self.head = nn.Conv2d(channels, features, 3, padding=1)
        self.blocks = nn.Sequential(*[_ResBlock(features) for _ in range(blocks)])
        self.tail = nn.Sequential(nn.Conv2d(features, 4 * channels, 3, padding=1), nn.PixelShuffle(2))

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        h = self.head(low)
        up = F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=False)
        return up + self.tail(h + self.blocks(h))


@register_defense("wavelet-sr")
class WaveletSR(Defense):
    """Wavelet soft-thresholding, 2× area down-sampling, learned 2× super-resolution (Mustafa et al. [120]).

    ``threshold=None`` is BayesShrink; ``train_noise`` is the ℓ∞ size of the uniform noise added to
    training inputs (the network learns to map denoised, down-sampled, slightly noisy images to clean ones).
    """

    OPTIONS = ("wavelet", "levels", "threshold", "features", "blocks", "train_noise")

    def __init__(self, in_channels: int = 1, image_size: int = 28, wavelet: str = "db2", levels: int = 2,
                 threshold: float | None = None, features: int = 32, blocks: int = 2, train_noise: float = 16 / 255):
        super().__init__(in_channels, image_size)
        self.wavelet, self.levels = check_wavelet(wavelet), int(levels)
        self.threshold = None if threshold is None else float(threshold)
        self.features, self.blocks, self.train_noise = int(features), int(blocks), float(train_noise)
        self.sr = SuperResolution(in_channels, self.features, self.blocks)

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        return wavelet_denoise(x, self.wavelet, self.levels, self.threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = F.avg_pool2d(self.denoise(x), 2)
        return self.sr(low).clamp(0.0, 1.0)

    def training_loss(self, x, gen):
        noise = (torch.rand(x.shape, generator=gen) * 2 - 1).to(x.device) * self.train_noise
        noisy = (x + noise).clamp(0.0, 1.0)
        return F.l1_loss(self.sr(F.avg_pool2d(self.denoise(noisy), 2)), x)  # L1 as in EDSR/SRResNet practice


class _Encoder(nn.Module):
    def __init__(self, c: int, size: int, latent: int, width: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(c, width // 2, 4, 2, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(width // 2, width, 4, 2, 1), nn.ReLU(inplace=True), nn.Flatten())
        self.out = nn.Linear(width * (size // 4) ** 2, 2 * latent)

    def forward(self, x):
        return self.out(self.conv(x)).chunk(2, dim=1)  # mean, log-variance


class Generator(nn.Module):
    """G(z): z ∈ R^latent → image in [0, 1] (linear, two transposed convolutions, sigmoid)."""

    def __init__(self, c: int, size: int, latent: int, width: int):
        super().__init__()
        self.shape = (width, size // 4, size // 4)
        self.fc = nn.Linear(latent, width * (size // 4) ** 2)
        self.up = nn.Sequential(nn.ReLU(inplace=True), nn.ConvTranspose2d(width, width // 2, 4, 2, 1),
                                nn.ReLU(inplace=True), nn.ConvTranspose2d(width // 2, c, 4, 2, 1), nn.Sigmoid())

    def forward(self, z):
        return self.up(self.fc(z).view(-1, *self.shape))


@register_defense("defensegan")
class DefenseGAN(Defense):
    """Projection onto the range of a generator, G(z*) (Samangouei et al. [134]; G: a VAE decoder).

    ``restarts`` (their R) random starts z ~ N(0, I), ``steps`` (their L) Adam steps of ``step_size``
    on ‖G(z) − x‖² each; the restart with the smallest final error wins. Paper values: L = 200,
    R = 10 on MNIST; the defaults here are CPU-sized. ``beta`` weighs the VAE's KL term in training;
    ``width`` is the channel count of G's first feature map (the encoder mirrors it).
    Restarts are drawn from the defense's own generator (``seed``), which advances at every call.
    """

    OPTIONS = ("latent", "width", "restarts", "steps", "step_size", "beta", "seed")
    randomised = True

    def __init__(self, in_channels: int = 1, image_size: int = 28, latent: int = 32, width: int = 64,
                 restarts: int = 4, steps: int = 50, step_size: float = 0.1, beta: float = 1.0, seed: int = 0):
        super().__init__(in_channels, image_size)
        self.latent, self.width, self.restarts, self.steps = int(latent), int(width), int(restarts), int(steps)
        self.step_size, self.beta, self.seed = float(step_size), float(beta), int(seed)
        if self.restarts < 1 or self.steps < 0:
            raise ConfigError(f"defensegan needs restarts >= 1 and steps >= 0, got {restarts} and {steps}")
        self.encoder = _Encoder(in_channels, image_size, self.latent, self.width)
        self.generator = Generator(in_channels, image_size, self.latent, self.width)
        self.rng = torch.Generator().manual_seed(self.seed)

    def reseed(self, seed: int) -> "DefenseGAN":
        self.rng.manual_seed(int(seed))
        return self

    def training_loss(self, x, gen):
        mu, logvar = self.encoder(x)
        z = mu + torch.randn(mu.shape, generator=gen).to(x.device) * (0.5 * logvar).exp()
        rec = F.binary_cross_entropy(self.generator(z), x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return (rec + self.beta * kl) / len(x)

    def project(self, x: torch.Tensor, *, restarts: int | None = None, steps: int | None = None,
                rng: torch.Generator | None = None, z0: torch.Tensor | None = None, trace: list | None = None):
        """(G(z*), z*, ‖G(z*) − x‖² per example) for images ``x``; nothing flows back to ``x`` or G.

        Starts: ``z0`` (restarts, N, latent) if given, else drawn from ``rng`` (default: the defense's).
        ``trace`` (a list) receives the mean squared error over examples and restarts before each step.
        """
        if z0 is None:
            r = self.restarts if restarts is None else restarts
            z0 = torch.randn((r, len(x), self.latent), generator=rng or self.rng)
        r = len(z0)
        n_steps = self.steps if steps is None else steps
        target = x.detach().unsqueeze(0).expand(r, *x.shape).flatten(0, 1)
        z = z0.flatten(0, 1).to(x.device, x.dtype).clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=self.step_size)
        with torch.enable_grad():
            for _ in range(n_steps):
                err = (self.generator(z) - target).pow(2).flatten(1).sum(1)
                if trace is not None:
                    trace.append(err.mean().item())
                (z.grad,) = torch.autograd.grad(err.sum(), z)  # z only: the generator's weights get no .grad
                opt.step()
        with torch.no_grad():
            out = self.generator(z).view(r, *x.shape)
            err = (out - x.unsqueeze(0)).pow(2).flatten(2).sum(2)
            best = err.argmin(0)
            pick = torch.arange(len(x), device=x.device)
            return out[best, pick], z.detach().view(r, len(x), -1)[best, pick], err[best, pick]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(x)[0]
        # z* comes out of an optimiser, so autograd sees no path from x to G(z*): the derivative a
        # naive attacker gets is exactly 0 (kept in x's graph so the attack's autograd call is valid)
        return out + 0.0 * x


class BPDA(nn.Module):
    """Backward Pass Differentiable Approximation (Athalye et al. 2018) with the identity:
    the forward pass is ``defense(x)``, the backward pass treats it as ``x``."""

    def __init__(self, defense: nn.Module):
        super().__init__()
        self.defense = defense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            y = self.defense(x)
        return y + (x - x.detach())  # value exactly y (x − x = 0), derivative exactly the identity


class EOT(nn.Module):
    """Expectation over Transformation: log of the mean predicted probability over ``samples`` forward passes.

    A randomised model's passes differ; the cross-entropy of this output is −log E[p(y | x)], whose
    gradient averages the passes' gradients (each weighted by its p(y)). ``samples=1``: the model's logits.
    """

    def __init__(self, model: nn.Module, samples: int = 1):
        super().__init__()
        if samples < 1:
            raise ConfigError(f"EOT needs samples >= 1, got {samples}")
        self.model, self.samples = model, int(samples)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.samples == 1:
            return self.model(x)
        logp = torch.stack([F.log_softmax(self.model(x), -1) for _ in range(self.samples)])
        return torch.logsumexp(logp, 0) - math.log(self.samples)


def defended(classifier: nn.Module, defense: nn.Module) -> nn.Sequential:
    """``classifier ∘ defense`` as one module (what is deployed and what accuracy is measured on)."""
    return nn.Sequential(defense, classifier)


def attack_model(classifier: nn.Module, defense: nn.Module, gradient: str = "bpda", eot: int = 1) -> nn.Module:
    """The module an attack differentiates: ``"naive"`` = ``defended(...)`` as is; ``"bpda"`` = the
    defense replaced by :class:`BPDA` in the backward pass; both under :class:`EOT` with ``eot`` samples."""
    if gradient not in GRADIENTS:
        raise ConfigError(f"unknown attack gradient {gradient!r}; choose one of: {', '.join(GRADIENTS)}")
    front = BPDA(defense) if gradient == "bpda" else defense
    return EOT(defended(classifier, front), eot)


def meta_train_images(data) -> torch.Tensor:
    """The images of a :class:`~robustlab.core.data.episodes.FewShotData`'s meta-train classes only."""
    keep = torch.isin(data.y, torch.as_tensor(data.split["train"], dtype=data.y.dtype))
    return data.x[keep]


def train_defense(name: str, data, out: str | Path | None = None, *, epochs: int = 10, batch_size: int = 64,
                  lr: float = 1e-3, seed: int = 0, **options) -> tuple[Defense, dict]:
    """Build defense ``name`` for ``data``'s images, train it on the meta-train classes, save it to ``out``.

    Returns (defense in eval mode, record); the record (options, data source, losses, versions)
    is also the checkpoint's sidecar.
    """
    c, h, _ = data.input_shape
    torch.manual_seed(seed)
    defense = build_defense(name, in_channels=c, image_size=h, **options)
    images = meta_train_images(data)
    history = defense.fit(images, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    record = {"pillar": "meta-defense", "model": f"defense:{name}", "defense": name, "options": defense.options(),
              "input_shape": list(data.input_shape), "dataset": data.name, "data_source": data.source,
              "train_images": len(images), "train": {"epochs": epochs, "batch_size": batch_size, "lr": lr,
                                                     "seed": seed, "loss_per_epoch": history},
              "versions": environment_info()}
    if out is not None:
        save_checkpoint(out, defense, record)
    return defense, record


def load_defense(path: str | Path) -> Defense:
    """A defense saved by :func:`train_defense` (or ``robustlab meta train-defense``), in eval mode."""
    from ..core.errors import CheckpointError

    tensors, meta = load_checkpoint(path)
    if meta.get("pillar") != "meta-defense":
        raise CheckpointError(f"{path} is not a defense checkpoint; pass the file `robustlab meta train-defense` "
                              "wrote")
    c, h, _ = meta["input_shape"]
    defense = build_defense(meta["defense"], in_channels=c, image_size=h, **meta["options"])
    load_weights_into(defense, tensors, meta, meta["model"], path)
    return defense.eval()
