"""Teacher untouched by distillation; ARD from a robust teacher beats KD from a natural one (§4.4.1 vs §4.5)."""
import pytest
import torch

from robustlab.core.data import get_dataset
from robustlab.core.evaluate import evaluate
from robustlab.core.models import load_model
from robustlab.distill import distill_config, distill_run, load_teacher
from robustlab.distill.methods import TeacherLogits

STUDENT = dict(model_width=8, eps=0.2, alpha=0.1, steps=3, lr=0.05)


@pytest.mark.parametrize("method", ["kd", "ard", "fast-ard"])
def test_teacher_parameters_bit_identical(teachers, tmp_path, method, monkeypatch):
    path = teachers["pgd-at"]
    before = load_teacher(path).model
    before_state = {k: v.clone() for k, v in before.state_dict().items()}
    cfg = distill_config("tiny", method, teacher_meta={"dataset": "digits"}, epochs=2 if method != "fast-ard" else 4,
                         replay=2, settings={"temperature": 4.0}, **STUDENT)
    # watch the very teacher object the method uses (distill_run looks get_method up at call time)
    import robustlab.core.train as CT

    used = {}
    real = CT.get_method

    def spy(name, cfg_, **kw):
        used["teacher"] = kw.get("teacher")
        return real(name, cfg_, **kw)

    monkeypatch.setattr(CT, "get_method", spy)
    distill_run(cfg, path, tmp_path / method, progress=False, suite=None)
    t = used["teacher"]
    assert t is not None and not t.training
    assert all(not p.requires_grad and p.grad is None for p in t.parameters())
    after = {k: v.cpu() for k, v in t.state_dict().items()}
    assert set(after) == set(before_state)
    for k, v in before_state.items():  # weights *and* batch-norm buffers
        assert torch.equal(v, after[k]), k
    # and the file on disk is untouched
    reloaded = load_teacher(path).model
    assert all(torch.equal(v, reloaded.state_dict()[k]) for k, v in before_state.items())


def test_teacher_cache_matches_forward():
    torch.manual_seed(0)
    from robustlab.core.models import get_model

    teacher = get_model("small-cnn", num_classes=10, in_channels=1, width=4)
    x = torch.rand(6, 1, 8, 8)
    cached = TeacherLogits(teacher, cache=True)
    a = cached(x)
    b = cached(x[[3, 1, 5]])
    assert cached.misses == 6 and cached.hits == 3
    with torch.no_grad():
        ref = teacher.eval()(x)
    assert torch.allclose(a, ref) and torch.allclose(b, ref[[3, 1, 5]])


def test_ard_from_robust_teacher_beats_kd_from_natural_teacher(teachers, tmp_path):
    """Thesis §4.4.1 (KD from a natural teacher leaves no robustness) vs §4.5 (ARD from an AT teacher)."""
    data = get_dataset("digits")
    robust = {}
    for name, method, teacher in [("ard", "ard", "pgd-at"), ("kd", "kd", "natural")]:
        cfg = distill_config("tiny", method, teacher_meta={"dataset": "digits"}, epochs=10, milestones=(7, 9),
                             settings={"temperature": 4.0}, **STUDENT)
        distill_run(cfg, teachers[teacher], tmp_path / name, progress=False, suite=None)
        model, _ = load_model(tmp_path / name / "model.safetensors")
        r = evaluate(model, data.x_test, data.y_test, eps=0.2, suite="pgd-20", checks=False)
        robust[name] = (r.natural, r.robust["pgd-20"])
    print(robust)
    assert robust["ard"][0] > 0.6, robust          # the ARD student learned the task
    assert robust["ard"][1] > robust["kd"][1] + 0.15, robust
