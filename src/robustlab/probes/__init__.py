"""Theory probes of thesis Chapter 6: local minima, Hessian spectra, norm-bias, empirical NTK, rank.

Each instrument is a registered measurement ``probe(model, data, **options) -> dict`` that works on
any ``nn.Module``: ``run_probe("hessian", model, (x, y))``; ``list_probes()`` names them.
"""
from .registry import as_tensors, get_probe, list_probes, register_probe, run_probe
from . import hessian, minima, normbias, ntk, spectra  # noqa: F401  (register the probes)
from .hessian import DatasetObjective, extreme_eigenvalues, lanczos_extremes
from .minima import embed_linear, first_linear_inputs, relu_active_fraction
from .normbias import mu2_from_norm, norm_bias_penalty, norm_bias_term, parameter_norm
from .ntk import empirical_ntk, kernel_change
from .spectra import conv_singular_values, effective_rank, project_network

__all__ = ["register_probe", "get_probe", "list_probes", "run_probe", "as_tensors", "DatasetObjective",
           "extreme_eigenvalues", "lanczos_extremes", "empirical_ntk", "kernel_change",
           "conv_singular_values", "effective_rank", "project_network", "embed_linear", "first_linear_inputs",
           "relu_active_fraction", "mu2_from_norm", "norm_bias_penalty", "norm_bias_term", "parameter_norm"]
