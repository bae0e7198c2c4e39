"""Which methods distil is the methods' own fact (needs_teacher), not a list in the distillation code."""
import pytest

from robustlab.core.errors import ConfigError
from robustlab.core.train import register_method
from robustlab.distill import distill_config, distillation_methods
from robustlab.distill.methods import KnowledgeDistillation


def test_a_newly_registered_teacher_method_is_accepted_without_other_edits():
    assert {"kd", "ard", "fast-ard"} <= set(distillation_methods())
    assert "natural" not in distillation_methods()

    @register_method("kd-test-variant")
    class Variant(KnowledgeDistillation):
        pass

    assert "kd-test-variant" in distillation_methods()
    assert distill_config("tiny", "kd-test-variant").method == "kd-test-variant"
    with pytest.raises(ConfigError, match="unknown distillation method 'pgd-at'"):
        distill_config("tiny", "pgd-at")
