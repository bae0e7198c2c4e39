"""Pre-processing defenses (thesis §5.5): the wavelet transform, the two defenses, BPDA/EOT, masking flags."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustlab.core.errors import ConfigError, UnknownNameError
from robustlab.core.evaluate import evaluate
from robustlab.meta.defenses import (BPDA, EOT, attack_model, build_defense, defended, list_defenses, load_defense,
                                     train_defense)
from robustlab.meta.heads import get_head
from robustlab.meta.learners import EpisodeClassifier, HeadLearner
from robustlab.meta.wavelets import LOWPASS, dwt2, dwt_matrix, idwt2, soft_threshold, wavelet_denoise

torch.set_num_threads(1)


# ---------------------------------------------------------------- wavelets
@pytest.mark.parametrize("wavelet", ["haar", "db2", "db4"])
@pytest.mark.parametrize("n,levels", [(8, 1), (8, 3), (28, 2)])
def test_dwt_matrix_is_orthogonal_so_the_transform_inverts_exactly(wavelet, n, levels):
    w = dwt_matrix(n, wavelet, levels)
    assert torch.allclose(w @ w.T, torch.eye(n, dtype=torch.float64), atol=1e-12)
    x = torch.rand(3, 2, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(idwt2(dwt2(x, wavelet, levels), wavelet, levels), x, atol=1e-12)
    # no thresholding at all: the denoiser is the identity
    assert torch.allclose(wavelet_denoise(x, wavelet, levels, threshold=0.0), x, atol=1e-12)


@pytest.mark.parametrize("wavelet", ["db2", "db4"])
def test_daubechies_filters_have_their_vanishing_moments(wavelet):
    h = LOWPASS[wavelet]
    g = [(-1) ** i * h[len(h) - 1 - i] for i in range(len(h))]
    assert math.isclose(sum(h), math.sqrt(2), abs_tol=1e-12)
    for k in range(len(h) // 2):        # dbN: the high-pass filter kills polynomials of degree < N
        assert abs(sum(gi * i ** k for i, gi in enumerate(g))) < 1e-10


def test_haar_coefficients_of_a_2x2_image_by_hand():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    # (a+b+c+d)/2, horizontal (a−b+c−d)/2, vertical (a+b−c−d)/2, diagonal (a−b−c+d)/2
    assert torch.allclose(dwt2(x, "haar", 1), torch.tensor([[5.0, -1.0], [-2.0, 0.0]], dtype=torch.float64))


def test_soft_threshold_zeros_small_coefficients_and_shrinks_the_rest():
    c = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.4, 1.0, 2.0])
    assert torch.equal(soft_threshold(c, 1.0), torch.tensor([-2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]))


def test_removing_every_haar_detail_leaves_the_block_means():
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = wavelet_denoise(x, "haar", 2, threshold=float("inf"))
    blocks = F.avg_pool2d(x, 4).repeat_interleave(4, -1).repeat_interleave(4, -2)
    assert torch.allclose(out, blocks, atol=1e-12)


def test_bayes_shrink_removes_noise_from_a_smooth_image():
    g = torch.Generator().manual_seed(2)
    ramp = torch.linspace(0.2, 0.8, 32, dtype=torch.float64)
    clean = (ramp[:, None] + ramp[None, :]).div(2).expand(4, 1, 32, 32)
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=g, dtype=torch.float64)
    out = wavelet_denoise(noisy, "db2", 2)
    assert (out - clean).pow(2).mean() < 0.5 * (noisy - clean).pow(2).mean()


# ---------------------------------------------------------------- defenses
def _tiny(name, size=8):
    opts = {"wavelet-sr": dict(features=8, blocks=1), "defensegan": dict(latent=4, width=16, restarts=2, steps=5)}[name]
    torch.manual_seed(0)
    return build_defense(name, in_channels=1, image_size=size, **opts).eval()


@pytest.mark.parametrize("name", ["wavelet-sr", "defensegan"])
def test_defenses_map_the_unit_box_to_itself_and_keep_the_shape(name):
    d = _tiny(name)
    x = torch.cat([torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8), torch.rand(6, 1, 8, 8)])
    y = d(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1


def test_unknown_defense_names_and_options_are_one_line_errors():
    with pytest.raises(UnknownNameError, match="defensegan") as e:
        build_defense("jpeg")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="has no option 'restarts'"):
        build_defense("wavelet-sr", restarts=3)
    with pytest.raises(ConfigError, match="naive, bpda"):
        attack_model(nn.Identity(), nn.Identity(), gradient="exact")
    assert {"wavelet-sr", "defensegan"} <= set(list_defenses())


def test_bpda_gradient_is_the_classifiers_gradient_at_the_defended_point():
    d = _tiny("wavelet-sr")
    clf = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 1, 2, 0, 1])
    xg = x.clone().requires_grad_(True)
    (g_bpda,) = torch.autograd.grad(F.cross_entropy(clf(BPDA(d)(xg)), y, reduction="sum"), xg)
    u = d(x).detach().requires_grad_(True)
    (g_id,) = torch.autograd.grad(F.cross_entropy(clf(u), y, reduction="sum"), u)
    assert torch.allclose(g_bpda, g_id, atol=1e-7)
    assert torch.equal(BPDA(d)(x), d(x))                  # forward: the defense itself


def test_eot_is_the_log_of_the_mean_probability_over_draws():
    class Noisy(nn.Module):
        def forward(self, x):
            return x + torch.randn(x.shape)

    x = torch.randn(4, 3)
    torch.manual_seed(5)
    out = EOT(Noisy(), samples=3)(x)
    torch.manual_seed(5)
    probs = torch.stack([F.softmax(x + torch.randn(x.shape), -1) for _ in range(3)]).mean(0)
    assert torch.allclose(out, probs.log(), atol=1e-6)
    assert torch.equal(EOT(nn.Identity(), samples=1)(x), x)


def test_projection_error_falls_and_the_best_restart_is_returned():
    d = _tiny("defensegan")
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    z0 = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(0))
    trace = []
    out, z, err = d.project(x, z0=z0, steps=60, trace=trace)
    marks = [trace[i] for i in (0, 15, 30, 59)]
    assert all(a > b for a, b in zip(marks, marks[1:])), marks
    assert torch.allclose(err, (out - x).pow(2).flatten(1).sum(1), atol=1e-5)
    assert torch.allclose(d.generator(z), out, atol=1e-6)
    # each restart run on its own (Adam is per coordinate, so restarts do not interact): the winner is their best
    alone = torch.stack([d.project(x, z0=z0[r:r + 1], steps=60)[2] for r in range(3)])
    assert torch.allclose(err, alone.min(0).values, atol=1e-4)
    assert (alone.max(0).values > err + 1e-3).any()       # the restarts did end in different places


def test_naive_gradient_through_defensegan_is_zero_and_bpdas_is_not():
    d = _tiny("defensegan")
    clf = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    x = torch.rand(4, 1, 8, 8).requires_grad_(True)
    y = torch.tensor([0, 1, 2, 0])
    for gradient, zero in (("naive", True), ("bpda", False)):
        (g,) = torch.autograd.grad(F.cross_entropy(attack_model(clf, d, gradient)(x), y), x)
        assert bool((g == 0).all()) is zero


def test_defense_checkpoint_round_trip(tmp_path):
    from robustlab.core.data.episodes import FewShotData

    x, y = _bars(40, 0)
    data = FewShotData("bars", x, y, ["h", "v", "x"], ["g"] * 3, {"train": [0, 1], "val": [], "test": [2]},
                       source="synthetic")
    d, rec = train_defense("wavelet-sr", data, tmp_path / "d.safetensors", epochs=1, features=8, blocks=1)
    assert rec["train_images"] == int((y < 2).sum())       # meta-train classes only
    back = load_defense(tmp_path / "d.safetensors")
    assert back.options() == d.options()
    assert torch.equal(back(x[:3]), d(x[:3]))


# ---------------------------------------------------------------- attacking through a defense
def _bars(n, seed):
    """8×8 images: class 0 a horizontal bar in row 1 or 2, class 1 a vertical bar in column 5 or 6, class 2 both."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(3 * n, 1, 8, 8)
    pos = torch.randint(0, 2, (3 * n, 2), generator=g)
    for i in range(3 * n):
        c = i % 3
        if c in (0, 2):
            x[i, 0, 1 + pos[i, 0], 1:7] = 1
        if c in (1, 2):
            x[i, 0, 1:7, 5 + pos[i, 1]] = 1
    return (x + 0.05 * torch.rand(x.shape, generator=g)).clamp(0, 1), torch.arange(3 * n) % 3


@pytest.fixture(scope="module")
def bars_setup():
    """A ProtoNet on raw pixels fitted on a 2-way support, and a DefenseGAN whose VAE learned the bars."""
    x, y = _bars(200, 0)
    keep = y < 2
    torch.manual_seed(0)
    gan = build_defense("defensegan", in_channels=1, image_size=8, latent=4, width=16, restarts=1, steps=5, step_size=0.4)
    gan.fit(x[keep], epochs=20, batch_size=32, lr=3e-3, seed=0)
    learner = HeadLearner(nn.Flatten(), get_head("protonet")).eval()
    sx, sy = x[keep][:20], y[keep][:20]
    adapted = learner.adapt(sx[None], sy[None], 2)
    qx, qy = _bars(15, 1)
    q = qy < 2
    return EpisodeClassifier(learner, adapted, 1), gan, qx[q], qy[q]


def test_naive_attack_through_defensegan_is_flagged_and_bpda_is_stronger(bars_setup):
    clf, gan, qx, qy = bars_setup
    eps = 0.3
    naive = evaluate(attack_model(clf, gan, "naive"), qx, qy, eps=eps, suite="quick", seed=0)
    bpda = evaluate(attack_model(clf, gan, "bpda"), qx, qy, eps=eps, suite="quick", seed=0)
    assert naive.natural >= 0.8                               # the projection keeps the bars recognisable
    failed_naive = {c.name for c in naive.failed_checks}
    failed_bpda = {c.name for c in bpda.failed_checks}
    assert "nonzero-gradients" in failed_naive and "nonzero-gradients" not in failed_bpda
    assert bpda.robust["pgd-20"] < naive.robust["pgd-20"]
    assert defended(clf, gan)(qx).shape == (len(qx), 2)


# ---------------------------------------------------------------- CLI
def test_cli_eval_with_a_defense_writes_the_three_rows_and_refuses_bad_names(tmp_path):
    import json

    from robustlab.core.data.episodes import FewShotData
    from robustlab.meta.run import meta_config, train_meta
    from tests.conftest import run_cli

    g = torch.Generator().manual_seed(0)
    protos = torch.rand(10, 1, 28, 28, generator=g)
    x = (protos.repeat_interleave(8, 0) + 0.2 * torch.randn(80, 1, 28, 28, generator=g)).clamp(0, 1)
    data = FewShotData("toy", x, torch.arange(10).repeat_interleave(8), [f"c{i}" for i in range(10)], ["g"] * 10,
                       {"train": list(range(6)), "val": [], "test": list(range(6, 10))}, source="toy")
    cfg = meta_config("tiny", method="meta-natural", dataset="glyphs", epochs=1, model_width=8,
                      extra=dict(head="protonet", way=3, shot=1, query=2, tasks=2, episodes_per_epoch=2))
    train_meta(cfg, tmp_path / "run", progress=False, data=data)
    train_defense("wavelet-sr", data, tmp_path / "sr.safetensors", epochs=1, features=8, blocks=1)
    ckpt = str(tmp_path / "run" / "model.safetensors")
    r = run_cli("meta", "eval", ckpt, "--defense", "wavelet-sr", "--defense-weights", str(tmp_path / "sr.safetensors"),
                "--episodes", "2", "--checks", "0", "--attacks", "pgd-3", "--query", "2")
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "run" / "eval-wavelet-sr.json").read_text())["rows"]
    assert list(rows) == ["undefended", "wavelet-sr (naive attack)", "wavelet-sr (BPDA)"]
    assert rows["wavelet-sr (BPDA)"]["defense"]["gradient"] == "bpda"
    assert all(r_["attack_outputs_outside_threat_model"] == 0 for r_ in rows.values())
    r = run_cli("meta", "eval", ckpt, "--defense", "defensegan", "--defense-weights", str(tmp_path / "sr.safetensors"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "holds the 'wavelet-sr'" in r.stderr, r.stderr


def test_worst_case_mode_counts_a_query_only_if_it_survives_both_gradients():
    """``gradient="worst"``: at most the lower of the naive and the BPDA accuracy, per attack."""
    from robustlab.core.data.episodes import FewShotData
    from robustlab.meta.evaluate import episode_accuracies

    x, y = _bars(40, 3)
    data = FewShotData("bars", x, y, ["h", "v", "both"], ["g"] * 3, {"train": [], "val": [], "test": [0, 1, 2]},
                       source="test")
    learner = HeadLearner(nn.Flatten(), get_head("protonet")).eval()
    torch.manual_seed(0)
    sr = build_defense("wavelet-sr", in_channels=1, image_size=8)

    def acc(gradient):
        sampler = data.sampler("test", way=3, shot=1, query=5, tasks=2)
        res = episode_accuracies(learner, sampler, episodes=6, eps=0.3, attacks="pgd-10", defense=sr,
                                 gradient=gradient, seed=0, device=torch.device("cpu"))
        return res["accuracy"]["pgd-10"]["mean"], res["attack_outputs_outside_threat_model"]

    (naive, _), (bpda, _), (worst, outside) = acc("naive"), acc("bpda"), acc("worst")
    assert worst <= min(naive, bpda) + 1e-9 and outside == 0
