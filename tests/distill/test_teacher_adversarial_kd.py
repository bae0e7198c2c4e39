"""KD with the teacher's adversarial examples (thesis Table 4.14, last row)."""
import torch
import torch.nn.functional as F

from robustlab.core.train import TrainConfig, TrainState, get_method
from robustlab.core.models import get_model
import robustlab.distill  # noqa: F401  (registers kd)


def _state(student):
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    return TrainState(student, student, opt, torch.Generator().manual_seed(0), torch.device("cpu"))


def test_teacher_adversarial_examples_attack_the_teacher_within_eps():
    torch.manual_seed(0)
    teacher = get_model("mlp", in_channels=1, width=32).eval()
    student = get_model("mlp", in_channels=1, width=16)
    cfg = TrainConfig(model="mlp", dataset="digits", method="kd", eps=0.2, alpha=0.05, steps=10,
                      extra={"teacher_adv_examples": True, "temperature": 4.0})
    kd = get_method("kd", cfg, teacher=teacher)
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    x_adv = kd.teacher_adversarial_examples(_state(student), x, y)
    assert (x_adv - x).abs().max() <= 0.2 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():  # PGD on the teacher raises the teacher's loss, not the student's by design
        assert F.cross_entropy(teacher(x_adv), y) > F.cross_entropy(teacher(x), y)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


def test_teacher_adversarial_kd_doubles_the_distilled_batch():
    torch.manual_seed(0)
    teacher = get_model("mlp", in_channels=1, width=32).eval()
    student = get_model("mlp", in_channels=1, width=16)
    base = dict(model="mlp", dataset="digits", method="kd", eps=0.2, alpha=0.05, steps=3)
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    plain = get_method("kd", TrainConfig(**base, extra={"temperature": 4.0}), teacher=teacher)
    adv = get_method("kd", TrainConfig(**base, extra={"temperature": 4.0, "teacher_adv_examples": True}),
                     teacher=teacher)
    _, logits_plain = plain.loss(_state(student), x, y)
    _, logits_adv = adv.loss(_state(student), x, y)
    assert logits_plain.shape[0] == 8 and logits_adv.shape[0] == 16
    assert torch.allclose(logits_adv[:8], logits_plain)  # first half: the clean batch
