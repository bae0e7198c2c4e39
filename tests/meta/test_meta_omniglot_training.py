"""Learning on the real Omniglot subset (held-out alphabets): ProtoNet accuracy and what AQ buys.

The slow tests are the issue's acceptance figures (5-way 1-shot on the three test-only alphabets);
the fast one checks, in seconds, that meta-training learns something transferable at all.
"""
import pytest
import torch

from robustlab.meta import episode_accuracies, meta_config, train_meta
from robustlab.meta.run import load_data, meta_test_sampler

torch.set_num_threads(1)

#: the slow runs: 10 x 50 batches of 4 episodes (natural), 6 x 50 with PGD-3 (AQ); Conv-4 width 32
NATURAL = dict(epochs=10)
AQ = dict(epochs=6, steps=3, alpha=8 / 255)


def _omniglot(shared_dir, method, tmp, **over):
    cfg = meta_config("tiny", method=method, dataset="omniglot", data_dir=str(shared_dir / "data" / "omniglot"),
                      extra=dict(head="protonet", episodes_per_epoch=50, test_query=5), **over)
    data = load_data(cfg)
    learner, _ = train_meta(cfg, tmp / method, progress=False, data=data)
    return learner, cfg, data


@pytest.fixture(scope="module")
def trained(shared_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("omniglot")
    return {m: _omniglot(shared_dir, m, tmp, **over) for m, over in (("meta-natural", NATURAL), ("meta-aq", AQ))}


@pytest.mark.slow
def test_natural_protonet_reaches_80_percent_5way_1shot_on_held_out_alphabets(trained):
    learner, cfg, data = trained["meta-natural"]
    res = episode_accuracies(learner, meta_test_sampler(data, cfg), episodes=400, eps=cfg.eps, attacks=[], seed=1)
    assert res["accuracy"]["natural"]["mean"] >= 0.80, res["accuracy"]


@pytest.mark.slow
def test_aq_raises_robust_accuracy_clearly_above_natural_at_16_over_255(trained):
    robust = {}
    for method, (learner, cfg, data) in trained.items():
        assert cfg.eps == 16 / 255
        res = episode_accuracies(learner, meta_test_sampler(data, cfg), episodes=60, eps=cfg.eps, attacks="pgd-10",
                                 seed=2)
        robust[method] = res["accuracy"]["pgd-10"]
    gap = robust["meta-aq"]["mean"] - robust["meta-natural"]["mean"]
    assert gap > 0.15 and gap > robust["meta-aq"]["ci95"] + robust["meta-natural"]["ci95"], robust


def test_fast_meta_training_transfers_to_held_out_alphabets(shared_dir, tmp_path):
    learner, cfg, data = _fast(shared_dir, tmp_path)
    res = episode_accuracies(learner, meta_test_sampler(data, cfg), episodes=40, eps=cfg.eps, attacks=[], seed=1)
    assert res["accuracy"]["natural"]["mean"] > 0.40      # chance is 0.20


def _fast(shared_dir, tmp):
    cfg = meta_config("tiny", method="meta-natural", dataset="omniglot", epochs=1, model_width=16,
                      data_dir=str(shared_dir / "data" / "omniglot"),
                      extra=dict(head="protonet", episodes_per_epoch=25, test_query=5))
    data = load_data(cfg)
    learner, _ = train_meta(cfg, tmp / "fast", progress=False, data=data)
    return learner, cfg, data
