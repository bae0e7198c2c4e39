"""Robust few-shot learning (thesis Chapter 5): heads, MAML, Adversarial Querying, episodic evaluation."""
from . import methods  # noqa: F401  (registers the meta-training methods with the core)
from .heads import FittedHead, get_head, list_heads, register_head
from .learners import EpisodeClassifier, HeadLearner, MAMLLearner
from .evaluate import episode_accuracies, masking_checks, mean_ci
from .defenses import attack_model, build_defense, defended, list_defenses, load_defense, train_defense
from .run import EPSILON, build_learner, load_learner, meta_config, train_meta

__all__ = ["FittedHead", "get_head", "list_heads", "register_head", "EpisodeClassifier", "HeadLearner",
           "MAMLLearner", "episode_accuracies", "masking_checks", "mean_ci", "EPSILON", "build_learner",
           "load_learner", "meta_config", "train_meta", "attack_model", "build_defense", "defended", "list_defenses",
           "load_defense", "train_defense"]
