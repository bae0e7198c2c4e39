"""Adversarial attacks: one class per attack (torchattacks-style), one shared implementation.

``PGD(model, eps=8/255, alpha=2/255, steps=20)(x, y) -> x_adv``. Inputs and outputs live in
[0, 1]; every output lies in the eps-ball around ``x`` (the threat model); the model is left
exactly as found (parameters, train/eval mode, batch-norm statistics).
"""
from .base import Attack, ThreatModel, attack_class, check_eps, get_attack, list_attacks, register_attack
from .fgsm import FGSM
from .pgd import PGD
from .mifgsm import MIFGSM
from .deepfool import DeepFool, UnboundedDeepFool
from .noise import RandomNoise
from .apgd import APGD, APGDDLR, APGDT
from .square import Square

__all__ = ["Attack", "ThreatModel", "PGD", "FGSM", "MIFGSM", "DeepFool", "UnboundedDeepFool", "RandomNoise", "APGD", "APGDDLR",
           "APGDT", "Square", "attack_class", "check_eps", "get_attack", "list_attacks", "register_attack"]
