"""Named attack suites and attack labels such as ``pgd-20``, ``pgd-20x5`` (5 restarts), ``apgd-ce``.

A label is a registered attack name, optionally followed by ``-`` and the numbers the attack's
class declares (:attr:`Attack.label_options`): ``pgd-20x5``, ``apgd-t-100``, ``square-1000``. The
parser knows no attack by name, so a newly registered attack works in a suite with no other edit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..attacks import attack_class, get_attack, list_attacks
from ..attacks.base import Attack, ThreatModel
from ..errors import UnknownNameError


@dataclass(frozen=True)
class AttackSpec:
    """A labelled attack; the suite-level options it derives from ε (e.g. PGD's α) come from its class."""

    label: str
    attack: str
    kwargs: dict = field(default_factory=dict)

    @property
    def cls(self) -> type:
        return attack_class(self.attack)

    @property
    def bounded(self) -> bool:
        """Whether the attack stays in the threat model (``False``: unbounded DeepFool)."""
        return self.cls.bounded

    def build(self, model: nn.Module, threat: ThreatModel, seed: int) -> Attack:
        cls = self.cls
        kw = cls.suite_options(dict(self.kwargs), threat)
        kw["seed"] = seed + cls.suite_seed_offset
        return get_attack(self.attack, model, threat=threat, **kw)


def _split_label(text: str) -> tuple[str, str] | None:
    """(registered name, suffix) for the longest registered name that ``text`` starts with."""
    for name in sorted(list_attacks(), key=len, reverse=True):
        if text == name:
            return name, ""
        if text.startswith(name + "-") and len(text) > len(name) + 1:
            return name, text[len(name) + 1:]
    return None


def parse_attack(label: str) -> AttackSpec:
    """``pgd-20`` → PGD 20 steps; ``pgd-20x5`` → 5 restarts; ``apgd-ce``; ``square-1000``; ``fgsm`` ..."""
    text = label.strip().lower()
    split = _split_label(text)
    if split is None:
        examples = ", ".join(attack_class(n).label_syntax() for n in list_attacks())
        raise UnknownNameError(f"unknown attack {label.strip()!r}; use one of: {examples}")
    name, suffix = split
    return AttackSpec(text, name, attack_class(name).options_from_label(text, suffix))


@dataclass(frozen=True)
class Suite:
    """A named list of attack labels and the evaluation mode it runs in by default."""

    labels: tuple[str, ...]
    mode: str = "per-attack"
    about: str = ""


SUITES: dict[str, Suite] = {
    "quick": Suite(("fgsm", "pgd-20"), about="two cheap attacks"),
    "standard": Suite(("fgsm", "pgd-20", "mifgsm-20", "deepfool", "pgd-20x5"),
                      about="thesis Tables 4.11 / 5.11 at laptop cost"),
    "paper": Suite(("fgsm", "pgd-20", "mifgsm-20", "deepfool", "pgd-1000", "pgd-20x100"),
                   about="thesis Table 4.11 in full (paper scale)"),
    # Croce & Hein (2020) standard version without FAB-T (see docs/core.md): cascaded, as AutoAttack runs
    "autoattack": Suite(("apgd-ce", "apgd-t", "square"), mode="cascade",
                        about="AutoAttack: APGD-CE, APGD-T (9 targets), Square (5000 queries)"),
    "autoattack-lite": Suite(("apgd-ce", "apgd-t"), mode="cascade", about="AutoAttack's white-box part"),
}


def suite_labels(suite: str | list[str]) -> list[str]:
    if isinstance(suite, str):
        named = SUITES.get(suite.strip().lower())
        return list(named.labels) if named else [s for s in suite.split(",") if s.strip()]
    return list(suite)


def suite_mode(suite: str | list[str]) -> str:
    """The default evaluation mode of a suite: its own for named suites, per-attack for attack lists."""
    named = SUITES.get(suite.strip().lower()) if isinstance(suite, str) else None
    return named.mode if named else "per-attack"


def parse_suite(suite: str | list[str]) -> list[AttackSpec]:
    """A suite name (see :data:`SUITES`) or a comma-separated list of attack labels."""
    labels = suite_labels(suite)
    if not labels:
        raise UnknownNameError(f"empty attack suite; choose one of: {', '.join(SUITES)} or list attacks")
    return [parse_attack(s) for s in labels]


def list_suites() -> dict[str, list[str]]:
    return {k: list(s.labels) for k, s in SUITES.items()}
