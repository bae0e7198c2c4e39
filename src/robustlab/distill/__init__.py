"""Chapter 4: knowledge distillation (KD), Adversarially Robust Distillation (ARD) and Fast-ARD.

Importing this package registers the training methods ``kd``, ``ard`` and ``fast-ard`` with
:mod:`robustlab.core.train`. :func:`distill_run` trains a student from a teacher checkpoint into
a run directory (the library behind ``robustlab distill``).
"""
from .losses import KL_REDUCTIONS, distill_kl, kd_objective, per_example_kl
from .methods import (AdversariallyRobustDistillation, DistillSettings, FastARD, KnowledgeDistillation,
                      TeacherLogits, freeze)
from .run import (DISTILL_PRESETS, DistillPreset, Teacher, distill_config, distill_run, distillation_methods,
                  distill_settings, is_distillation, load_teacher)

__all__ = ["KL_REDUCTIONS", "distill_kl", "kd_objective", "per_example_kl", "DistillSettings",
           "KnowledgeDistillation", "AdversariallyRobustDistillation", "FastARD", "TeacherLogits", "freeze",
           "distillation_methods", "is_distillation", "DISTILL_PRESETS", "DistillPreset", "Teacher", "distill_config", "distill_run",
           "distill_settings", "load_teacher"]
