"""`robustlab distill` CLI paths."""
import json

from conftest import run_cli


def test_distill_cli_user_errors(tmp_path):
    p = run_cli("distill", "--teacher", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and p.stderr.startswith("error:") and len(p.stderr.strip().splitlines()) == 1


def test_distill_cli_runs_and_reports(teachers, tmp_path):
    out = tmp_path / "kd"
    p = run_cli("distill", "--teacher", str(teachers["natural"]), "--method", "kd", "--width", "8", "--epochs", "1",
                "--temperature", "4", "--suite", "fgsm", "--no-checks", "--out", str(out))
    assert p.returncode == 0, p.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["method"] == "kd" and res["config"]["extra"]["temperature"] == 4.0
    assert res["config"]["extra"]["cache_teacher"] is True  # digits: no augmentation (§4.9)
    assert res["teacher_cache"]["hits"] == 0 and res["teacher_cache"]["misses"] == 1347  # one epoch: all first sightings
    assert set(res["evaluation"]) == {"kd student (small-cnn)", "teacher (small-cnn, natural)"}
    assert "Distillation: kd onto small-cnn" in (out / "report.md").read_text()
    # an existing run is refused without --resume, and continued with it
    args = ("distill", "--teacher", str(teachers["natural"]), "--method", "kd", "--width", "8", "--temperature", "4",
            "--suite", "fgsm", "--no-checks", "--out", str(out))
    p = run_cli(*args, "--epochs", "2")
    assert p.returncode == 2 and "--resume" in p.stderr
    p = run_cli(*args, "--epochs", "2", "--resume")
    assert p.returncode == 0, p.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["resumed_from_epoch"] == 1 and res["final"]["epoch"] == 2
    p = run_cli("distill", "--teacher", str(teachers["natural"]), "--method", "bogus", "--out", str(tmp_path / "b"))
    assert p.returncode == 2 and "unknown distillation method 'bogus'; choose one of: ard, fast-ard, kd" in p.stderr

