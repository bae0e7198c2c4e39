"""A pillar's registry entries resolve without importing the pillar first (core never imports pillars)."""
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(SRC)!r}); {code}"],
                          capture_output=True, text=True, timeout=120)


def test_norm_bias_regulariser_resolves_in_a_fresh_process():
    p = _run("import sys; from robustlab.core.train import TrainConfig; "
             "c = TrainConfig(regularizer='norm-bias', regularizer_coef=0.1); "
             "print(c.regularizer, 'robustlab.probes' in sys.modules)")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["norm-bias", "True"]


def test_import_robustlab_stays_lazy_and_unknown_names_still_fail():
    p = _run("import sys, robustlab; print(any(m.startswith(('robustlab.meta', 'robustlab.probes')) "
             "for m in sys.modules))")
    assert p.stdout.strip() == "False", p.stderr
    p = _run("from robustlab.core.train import TrainConfig; TrainConfig(regularizer='nope')")
    assert p.returncode != 0 and "unknown regularizer 'nope'; choose one of:" in p.stderr
    assert "norm-bias" in p.stderr   # the pillars' entries are listed among the choices
