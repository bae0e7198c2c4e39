"""Chapter 4 tables' settings: Table 4.14's teacher, one tiny stage read from the presets."""
from robustlab.core.train import preset
from robustlab.distill import DISTILL_PRESETS, DistillSettings


def _table(name):
    from robustlab.reproduce import get_table

    return get_table(name)


def _resolve(table, key, scale):
    from robustlab.reproduce import resolve_config

    run = next(r for r in table.runs if r.key == key)
    return run, resolve_config(table, run, scale)


def test_table_4_14_distils_from_at_resnet18():
    """Its 'both flips and crops' row (76.86 / 38.21) is AT ResNet18 → MNV2 (Tables 4.3, 4.12, 4.13)."""
    t = _table("table-4.14")
    by_key = {r.key: r for r in t.runs}
    students = [r for r in t.runs if r.method == "kd"]
    assert len(students) == 5
    for r in students:
        teacher = by_key[r.teacher]
        assert (teacher.arch, teacher.method) == ("resnet18", "pgd-at"), r.key
    both = next(r for r in students if r.key == "kd_aug")
    t43 = next(r for r in _table("table-4.3").runs if r.key == "kd_r18_mnv2")
    assert both.thesis == t43.thesis == (76.86, 38.21)
    assert any("caption" in n for n in t.notes)


def test_tiny_stage_teachers_have_headroom_and_one_budget():
    tiny = DISTILL_PRESETS["tiny"]
    t = _table("table-4.8")
    _, teacher = _resolve(t, "at_r18", "tiny")
    _, student = _resolve(t, "ard_r18_mnv2", "tiny")
    _, at_student = _resolve(t, "at_mnv2", "tiny")
    assert teacher.model_width == 32 and student.model_width == at_student.model_width == tiny.train["model_width"] == 8
    assert teacher.epochs == student.epochs == at_student.epochs == 40
    assert DistillSettings.of(student).temperature == tiny.settings.temperature == 1.0
    core = preset("tiny")
    assert (student.eps, student.alpha, student.steps) == (core.eps, core.alpha, core.steps)


def test_paper_scale_tables_train_with_the_authors_kl_reduction():
    t = _table("table-4.8")
    _, paper = _resolve(t, "ard_r18_mnv2", "paper")
    _, tiny = _resolve(t, "ard_r18_mnv2", "tiny")
    assert DistillSettings.of(paper).kl_reduction == "mean-over-classes"
    assert DistillSettings.of(tiny).kl_reduction == "batchmean"
