"""`vae-lab variance`: the toy gradient-variance experiments, one module per concern.

* :mod:`~vae_lab.variance.theory`: exact gradients of the family cross-entropies, the Gaussian example's
  moments;
* :mod:`~vae_lab.variance.experiment`: single-sample gradients from the estimators of
  ``conf/estimator/``, the family experiments (Figurnov, Mohamed & Mnih 2018, Figure 2 style) and the
  Gaussian score-vs-pathwise example;
* :mod:`~vae_lab.variance.stats`: mean, variance, bias, its standard error and the MSE of the estimates;
* :mod:`~vae_lab.variance.tables` and :mod:`~vae_lab.variance.plots`: what is printed and drawn;
* :mod:`~vae_lab.variance.settings`: the structured config (schema of ``conf/variance.yaml``);
* :mod:`~vae_lab.variance.command`: the Hydra task.
"""

from vae_lab.variance.command import run, task
from vae_lab.variance.experiment import (
    COLUMNS,
    ESTIMATOR_NAMES,
    FAMILY_NAMES,
    GAUSSIAN_COLUMNS,
    build_estimator,
    family_distributions,
    family_experiment,
    gaussian_estimates,
    gaussian_experiment,
    single_sample_grads,
    supported_estimators,
)
from vae_lab.variance.plots import plot_families, plot_gaussian
from vae_lab.variance.settings import VarianceConfig, load_settings
from vae_lab.variance.stats import STAT_COLUMNS, bias_in_standard_errors, gradient_stats
from vae_lab.variance.tables import estimator_label, family_table, gaussian_table
from vae_lab.variance.theory import (
    averaged_moments,
    bessel_ratio_derivative,
    dirichlet_exact_grad,
    gaussian_theory,
    sample_variance_std_error,
    vonmises_exact_grad,
)

__all__ = [
    "COLUMNS",
    "ESTIMATOR_NAMES",
    "FAMILY_NAMES",
    "GAUSSIAN_COLUMNS",
    "STAT_COLUMNS",
    "VarianceConfig",
    "averaged_moments",
    "bessel_ratio_derivative",
    "bias_in_standard_errors",
    "build_estimator",
    "dirichlet_exact_grad",
    "estimator_label",
    "family_distributions",
    "family_experiment",
    "family_table",
    "gaussian_estimates",
    "gaussian_experiment",
    "gaussian_table",
    "gaussian_theory",
    "gradient_stats",
    "load_settings",
    "plot_families",
    "plot_gaussian",
    "run",
    "sample_variance_std_error",
    "single_sample_grads",
    "supported_estimators",
    "task",
    "vonmises_exact_grad",
]
