"""Adversarial Querying and friends on one episode batch: what is attacked, how often the head is fitted."""
import pytest
import torch

from robustlab.core.attacks.base import ThreatModel
from robustlab.core.train import TrainState, get_method
from robustlab.meta.learners import EpisodeClassifier
from robustlab.meta.run import build_learner, meta_config
from robustlab.core.data.episodes import FewShotData

torch.set_num_threads(1)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8 * 6, 1, 28, 28, generator=g)
    y = torch.arange(8).repeat_interleave(6)
    return FewShotData("toy", x, y, [f"c{i}" for i in range(8)], ["g"] * 8,
                       {"train": list(range(8)), "val": [], "test": []}, source="toy")


def _setup(method, head, **extra):
    cfg = meta_config("tiny", method=method, dataset="glyphs", model_width=8, steps=3,
                      extra=dict(head=head, way=3, shot=2, query=2, tasks=2, **extra))
    torch.manual_seed(0)
    learner = build_learner(cfg, (1, 28, 28))
    opt = torch.optim.Adam(learner.parameters(), lr=1e-3)
    state = TrainState(learner, learner, opt, torch.Generator().manual_seed(0), torch.device("cpu"))
    ep = _data().sampler("train", way=3, shot=2, query=2, tasks=2).sample(torch.Generator().manual_seed(1))
    return cfg, learner, state, ep


@pytest.mark.parametrize("head", ["r2d2", "protonet", "svm", "maml"])
def test_aq_attacks_only_the_query_inside_the_ball_and_fits_the_head_once(head, monkeypatch):
    cfg, learner, state, ep = _setup("meta-aq", head)
    support0, query0 = ep.support_x.clone(), ep.query_x.clone()
    seen_support, seen_query, fits = [], [], []
    adapt, qlog = learner.adapt, learner.query_logits
    monkeypatch.setattr(learner, "adapt", lambda sx, *a, **k: (seen_support.append(sx.clone()), fits.append(1),
                                                              adapt(sx, *a, **k))[-1])
    monkeypatch.setattr(learner, "query_logits", lambda ad, qx: (seen_query.append(qx.detach().clone()), qlog(ad, qx))[-1])
    out = get_method("meta-aq", cfg).train_batch(state, ep)
    assert len(fits) == 1                                  # one fit per episode batch, reused by all PGD steps
    assert torch.equal(seen_support[0], support0) and torch.equal(ep.support_x, support0)
    assert len(seen_query) == cfg.steps + 1                # each PGD step + the training loss
    final = seen_query[-1]
    threat = ThreatModel(cfg.eps)
    assert threat.contains(final.flatten(0, 1), query0.flatten(0, 1), tol=1e-6).all()
    assert (final - query0).abs().max() > cfg.eps / 2     # it did move the query
    assert out["n"] == ep.query_y.numel() and out["loss"] > 0


def test_episode_classifier_gives_the_learners_logits_and_attacks_leave_it_untouched():
    cfg, learner, state, ep = _setup("meta-aq", "r2d2")
    learner.eval()
    with torch.no_grad():
        fitted = learner.adapt(ep.support_x, ep.support_y, ep.way)
        direct = learner.query_logits(fitted, ep.query_x)
    model = EpisodeClassifier(learner, fitted, ep.tasks)
    assert torch.allclose(model(ep.query_x.flatten(0, 1)), direct.flatten(0, 1), atol=1e-6)


def test_fitting_once_gives_the_same_attack_as_refitting_each_step():
    """Reusing the head across PGD steps is exact: the support (hence the fit) never changes."""
    from robustlab.core.attacks import PGD

    cfg, learner, state, ep = _setup("meta-aq", "r2d2")
    learner.eval()
    qx, qy = ep.query_x.flatten(0, 1), ep.query_y.flatten()

    class Refit(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.learner = learner

        def forward(self, x):
            fitted = learner.adapt(ep.support_x, ep.support_y, ep.way)
            return learner.query_logits(fitted, x.view(ep.tasks, -1, *x.shape[1:])).flatten(0, 1)

    with torch.no_grad():
        once = EpisodeClassifier(learner, learner.adapt(ep.support_x, ep.support_y, ep.way), ep.tasks)
    a = PGD(once, eps=cfg.eps, alpha=cfg.alpha, steps=5, seed=3, keep_best=False)(qx, qy)
    b = PGD(Refit(), eps=cfg.eps, alpha=cfg.alpha, steps=5, seed=3, keep_best=False)(qx, qy)
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("method,head", [("meta-natural", "svm"), ("meta-trades", "r2d2"), ("adml", "maml")])
def test_other_methods_take_a_finite_step(method, head):
    cfg, learner, state, ep = _setup(method, head)
    before = [p.detach().clone() for p in learner.parameters()]
    out = get_method(method, cfg).train_batch(state, ep)
    assert torch.isfinite(torch.tensor(out["loss"]))
    assert any(not torch.equal(a, p) for a, p in zip(before, learner.parameters()))
